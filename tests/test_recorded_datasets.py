"""Issue 24, "recorded everywhere": a run, its checkpoint, its sweep and the CLI's --dataset say
which data set they are about; a made-up 3-class grey 16 × 16 data set, registered here, goes
through the command line's train, evaluate and runs list, and through the run views."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from cifar_core.data.catalog import folder_dataset
from cifar_core.data.registry import register, unregister
from cifar_core.errors import DataError
from cifar_core.runs.store import RunStore
from cifar_core.runs.views import run_classes, run_dataset_title, runs_table, why_not_comparable
from cifar_core.sweeps.engine import start_sweep
from cifar_core.sweeps.space import SearchSpace
from cifar_core.sweeps.store import SweepStore
from cifar_core.training.checkpoint import load_checkpoint

SHAPES = ("circle", "square", "star")
TRAIN = ["--epochs", "1", "--batch-size", "6", "--log-every", "2", "--lr", "0.01",
         "--seed", "0", "--device", "cpu"]


def write_grey_shapes(root: Path, train_per_class: int = 8, test_per_class: int = 3) -> Path:
    """root/train/<class>/*.png and root/test/<class>/*.png: grey 16 × 16 pictures, each
    class a brightness of its own (so a network can tell them apart)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for c, name in enumerate(SHAPES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = np.clip(rng.normal(40 + 80 * c, 20, (16, 16)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8), mode="L").save(folder / f"{i}.png")
    return root


@pytest.fixture
def shapes(tmp_path, in_tmp_and_signals_kept):
    """'shapes' registered (titled 'Shapes', 1 × 16 × 16) for the test's length."""
    folder = write_grey_shapes(tmp_path / "shapes-pictures")
    register(folder_dataset("shapes", folder, "Shapes", (1, 16, 16)))
    yield folder
    unregister("shapes")


def trained_on_shapes(capsys, tmp_path) -> tuple[dict, Path]:
    """`train --dataset shapes --json`: (its summary line, the network file)."""
    out_file = tmp_path / "shapes.pth"
    code, out, err = run_cli(capsys, "train", "--dataset", "shapes", "--data-dir",
                             tmp_path / "data", "--runs-dir", tmp_path / "runs", "--out",
                             out_file, "--json", *TRAIN)
    assert code == 0, err
    return json.loads(out.splitlines()[-1]), out_file


def test_train_evaluate_and_runs_list_on_a_registered_data_set(capsys, tmp_path, shapes):
    summary, network = trained_on_shapes(capsys, tmp_path)
    run = RunStore(tmp_path / "runs").get(summary["run_id"])
    assert run.dataset == "shapes" and run.classes == SHAPES
    assert set(summary["per_class"]) == set(SHAPES) and summary["dataset"] == "shapes"
    checkpoint = load_checkpoint(network)
    assert (checkpoint.dataset, checkpoint.shape, checkpoint.classes) == (
        "shapes", (1, 16, 16), SHAPES)

    # evaluate tests it on its own data set, with no --dataset given.
    code, out, err = run_cli(capsys, "evaluate", network, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result["per_class"]) == set(SHAPES) and result["test_images"] == 9
    assert result["dataset"] == "shapes"
    assert result["accuracy"] == pytest.approx(summary["accuracy"])

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", tmp_path / "runs", "list")
    header, row = out.splitlines()
    # (after the id, accuracy, name and status: issue 26)
    assert header.split()[4] == "dataset" and " shapes " in row
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", tmp_path / "runs", "list", "--json")
    assert json.loads(out)["dataset"] == "shapes"
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", tmp_path / "runs", "show", run.id)
    assert code == 0 and "data set shapes in " in out


def test_evaluate_on_another_data_set_is_one_sentence(capsys, tmp_path, shapes, synthetic_dir):
    _, network = trained_on_shapes(capsys, tmp_path)
    code, out, err = run_cli(capsys, "evaluate", network, "--dataset", "cifar10",
                             "--data-dir", synthetic_dir)
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("error:") and "Shapes" in line and "CIFAR-10" in line
    assert "circle" in line


@pytest.mark.parametrize("command", [["train"], ["evaluate", "net.pth"], ["lr-find"],
                                     ["sweep", "--lr", "0.1"]])
def test_an_unknown_data_set_is_one_sentence_naming_the_choices(capsys, tmp_path, command):
    code, out, err = run_cli(capsys, *command, "--dataset", "nope", "--runs-dir" if command[0]
                             in ("train", "sweep") else "--data-dir", tmp_path / "runs")
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert "'nope'" in line and "cifar10" in line
    assert not (tmp_path / "runs").exists() or RunStore(tmp_path / "runs").list() == []


def test_a_sweep_and_its_runs_carry_its_data_set(tmp_path, shapes, monkeypatch):
    # Its runs are only made here, not trained (job processes know only built-in data sets).
    monkeypatch.setattr("cifar_core.sweeps.engine.JobRunner.launch_queued", lambda self: [])
    store = RunStore(tmp_path / "runs")
    space = SearchSpace.from_dict({"axes": {"epochs": {"values": [1]},
                                            "lr": {"values": [0.01, 0.1]}}})
    sweep = start_sweep(store, space, tmp_path, dataset="shapes", parallel=2)
    assert sweep.dataset == "shapes" and SweepStore(store).get(sweep.id).dataset == "shapes"
    made = SweepStore(store).runs(sweep.id)
    assert len(made) == 2 and {r.dataset for r in made} == {"shapes"}
    with pytest.raises(DataError, match="'nope'"):
        start_sweep(store, space, tmp_path, dataset="nope")
    assert len(SweepStore(store).list()) == 1


def test_views_give_a_runs_data_set_and_say_why_accuracies_do_not_compare(tmp_path, shapes):
    store = RunStore(tmp_path / "runs")
    cifar = store.create({}, "/data", "cli")
    grey = store.create({}, "/data", "cli", dataset="shapes")
    assert run_dataset_title(cifar) == "CIFAR-10" and run_dataset_title(grey) == "Shapes"
    # Class names: the data set's before the run loaded it, the run's own once recorded.
    assert run_classes(cifar)[0] == "airplane" and len(run_classes(cifar)) == 10
    store.record_classes(grey.id, ("b", "a"))
    assert run_classes(store.get(grey.id)) == ("b", "a")
    table = runs_table(store.list()).set_index("run")
    assert table.loc[cifar.id, "dataset"] == "CIFAR-10"
    assert table.loc[grey.id, "dataset"] == "Shapes"
    assert why_not_comparable([cifar, store.create({}, "/data", "cli")]) is None
    said = why_not_comparable(store.list())
    assert "CIFAR-10" in said and "Shapes" in said and "not comparable" in said


def test_a_photo_is_made_the_networks_picture_shape(tmp_path):
    """Try it: a photo for a grey 28 × 28 network is a grey 28 × 28 picture; one read for
    CIFAR-10 stays as it was, and can be made another network's shape later."""
    import torch
    from conftest import jpeg

    from cifar_core.explain.photos import network_inputs, photo_input, read_photo

    colour = read_photo(jpeg((200, 120)), "photo.jpg")
    assert tuple(colour.network_input.shape) == (3, 32, 32)
    grey = read_photo(jpeg((200, 120)), "photo.jpg", shape=(1, 28, 28))
    assert tuple(grey.network_input.shape) == (1, 28, 28)
    assert grey.network_input.dtype == torch.uint8
    # Grey is the colours' brightness (ITU-R 601 luma, as Pillow's 'L'), not one channel.
    as_grey = photo_input(colour, (1, 32, 32)).float()
    luma = torch.tensor([0.299, 0.587, 0.114])[:, None, None]
    assert (as_grey - (colour.network_input.float() * luma).sum(dim=0)).abs().mean() < 3
    assert photo_input(colour, (3, 32, 32)) is colour.network_input
    batch = network_inputs([colour, grey], shape=(1, 28, 28))
    assert tuple(batch.shape) == (2, 1, 28, 28)
    assert torch.equal(batch[1], grey.network_input)
    assert tuple(network_inputs([], shape=(1, 16, 16)).shape) == (0, 1, 16, 16)


@pytest.mark.parametrize("model", ["tutorial", "fast"])
def test_explaining_works_on_grey_16x16_pictures(model):
    """Try it's and Evaluate's explanations for a network of another picture shape."""
    import torch

    from cifar_core.explain.attribution import ATTRIBUTION_METHODS, attribution, overlay
    from cifar_core.explain.inside import (
        feature_maps,
        first_layer_filters,
        layer_table,
    )
    from cifar_core.training.models import model_spec

    torch.manual_seed(0)
    shape = (1, 16, 16)
    net = model_spec(model).build(3, None, shape).eval()
    picture = torch.randint(0, 256, shape, dtype=torch.uint8)
    for method in ATTRIBUTION_METHODS:
        heat = attribution(net, picture, method=method)
        assert heat.shape == (16, 16) and heat.min() >= 0 and heat.max() <= 1, method
    assert overlay(picture, heat, 4).shape == (64, 64, 3)
    maps = feature_maps(net, picture)
    assert maps and all(m.ndim == 3 for m in maps.values())
    assert first_layer_filters(net, input_shape=shape).ndim == 3
    assert layer_table(net, shape)


def test_a_queued_run_trains_on_its_own_data_set(capsys, tmp_path, shapes):
    """`train --run-id` (what the job runner starts) reads the data set from the run."""
    store = RunStore(tmp_path / "runs")
    config = {"epochs": 1, "batch_size": 6, "log_every": 2, "lr": 0.01, "seed": 0,
              "device": "cpu"}
    run = store.create(config, str(tmp_path / "data"), "dashboard", dataset="shapes")
    code, _, err = run_cli(capsys, "train", "--run-id", run.id, "--runs-dir", store.root)
    assert code == 0, err
    done = store.get(run.id)
    assert done.status == "completed" and done.classes == SHAPES
    assert load_checkpoint(done.checkpoint).dataset == "shapes"


def test_a_runs_menu_label_names_a_data_set_other_than_cifar10(tmp_path, shapes):
    from cifar_core.runs.views import run_label

    store = RunStore(tmp_path / "runs")
    grey = store.create({}, "/data", "cli", dataset="shapes")
    cifar = store.create({}, "/data", "cli")
    assert "Shapes" in run_label(grey)
    assert "CIFAR-10" not in run_label(cifar)  # the default: labels stay as short as before


def test_the_sweep_command_records_its_data_set_and_shows_it(capsys, tmp_path, shapes,
                                                            monkeypatch):
    monkeypatch.setattr("cifar_core.sweeps.engine.JobRunner.launch_queued", lambda self: [])
    runs = ("--runs-dir", tmp_path / "runs")
    code, _, err = run_cli(capsys, "sweep", "--dataset", "shapes", *runs, "--lr", "0.01,0.1",
                           "--epochs", "1", "--parallel", "2", "--no-wait")
    assert code == 0, err
    store = RunStore(tmp_path / "runs")
    [sweep] = SweepStore(store).list()
    assert sweep.dataset == "shapes"
    assert {r.dataset for r in SweepStore(store).runs(sweep.id)} == {"shapes"}
    code, out, _ = run_cli(capsys, "sweep", "show", sweep.id, *runs)
    assert code == 0 and "on Shapes" in out
    code, out, _ = run_cli(capsys, "sweep", "list", *runs, "--json")
    assert json.loads(out)["dataset"] == "shapes"


@pytest.fixture
def small_pictures(tmp_path):
    """'tiny8' registered: 8 × 8 colour pictures, too small for the tutorial's network."""
    register(folder_dataset("tiny8", tmp_path / "tiny8-pictures", "Tiny 8", (3, 8, 8)))
    yield
    unregister("tiny8")


def test_a_network_that_cannot_take_the_pictures_is_refused_before_a_run(capsys, tmp_path,
                                                                        small_pictures,
                                                                        in_tmp_and_signals_kept):
    runs = ("--runs-dir", tmp_path / "runs")
    code, out, err = run_cli(capsys, "train", "--dataset", "tiny8", *runs, "--model",
                             "tutorial", "--device", "cpu")
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert "at least 16 × 16" in line and "8 × 8" in line
    code, _, err = run_cli(capsys, "sweep", "--dataset", "tiny8", *runs, "--lr", "0.01,0.1",
                           "--epochs", "1", "--model", "tutorial,fast", "--no-wait")
    assert code == 2 and "at least 16 × 16" in err
    assert not (tmp_path / "runs").exists() or (RunStore(tmp_path / "runs").list() == []
                                                and SweepStore(RunStore(tmp_path / "runs"))
                                                .list() == [])


def test_lr_find_tries_the_chosen_data_set(capsys, tmp_path, shapes):
    code, out, err = run_cli(capsys, "lr-find", "--dataset", "shapes", "--data-dir",
                             tmp_path / "empty", "--batch-size", "6",
                             "--device", "cpu", "--steps", "8", "--json")
    assert code == 0, err
    assert json.loads(out)["kind"] == "lr_find"


def test_evaluate_a_network_of_a_data_set_not_registered_here(capsys, tmp_path,
                                                              in_tmp_and_signals_kept):
    import torch

    from cifar_core.training.checkpoint import save_checkpoint
    from cifar_core.training.models import model_spec

    torch.manual_seed(0)
    net = model_spec("tutorial").build(3, None, (1, 16, 16))
    path = save_checkpoint(tmp_path / "gone.pth", net, {}, SHAPES, {}, dataset="gone",
                           shape=(1, 16, 16))
    code, out, err = run_cli(capsys, "evaluate", path, "--data-dir", tmp_path)
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert "'gone'" in line and "not registered here" in line and "cifar10" in line


def test_a_folder_data_set_recorded_in_the_data_dir_given_is_found_by_every_command(
        tmp_path, in_tmp_and_signals_kept):
    """`datasets add` records a folder data set in one data folder; a fresh process given that
    folder with --data-dir (not the default one) trains on it, evaluates on it and finds a
    learning rate on it."""
    import subprocess
    import sys

    from cifar_core.data.folders import add_folder_dataset, remove_folder_dataset

    data_dir, runs_dir = tmp_path / "data", tmp_path / "runs"
    add_folder_dataset("mine", write_grey_shapes(tmp_path / "pictures"), data_dir,
                       title="Mine", size=16, grey=True)
    try:
        def cli(*argv) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "cifar_core", *map(str, argv)],
                                  capture_output=True, text=True, timeout=300,
                                  cwd=Path(__file__).resolve().parents[1])

        done = cli("train", "--dataset", "mine", "--data-dir", data_dir, "--runs-dir",
                   runs_dir, "--out", tmp_path / "mine.pth", *TRAIN)
        assert done.returncode == 0, done.stderr
        assert RunStore(runs_dir).list()[0].dataset == "mine"
        done = cli("evaluate", tmp_path / "mine.pth", "--dataset", "mine", "--data-dir",
                   data_dir, "--json")
        assert done.returncode == 0, done.stderr
        assert set(json.loads(done.stdout)["per_class"]) == set(SHAPES)
        done = cli("lr-find", "--dataset", "mine", "--data-dir", data_dir, "--steps", "5",
                   "--batch-size", "6", "--device", "cpu", "--json")
        assert done.returncode == 0, done.stderr
    finally:
        remove_folder_dataset("mine", data_dir)

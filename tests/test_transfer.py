"""Starting a training from a network trained before (Start from, Keep the earlier layers
fixed): issue 25's must-show tests of --start-from with and without --freeze."""

from __future__ import annotations

import re

import pytest
import torch

from cifar_core.errors import ConfigError
from cifar_core.runs.pipeline import execute_run
from cifar_core.runs.start import resolve_start
from cifar_core.runs.store import RunStore
from cifar_core.training.checkpoint import load_checkpoint
from cifar_core.training.config import TrainConfig, config_problems
from cifar_core.training.loop import build_model
from cifar_core.training.models import model_spec
from tests.conftest import write_image_folders


def _trained_on_cifar(runs_dir, data_dir, **settings) -> tuple[RunStore, str]:
    store = RunStore(runs_dir)
    config = TrainConfig(**{"epochs": 1, "batch_size": 10, "log_every": 2, "seed": 0,
                            "lr": 0.01, **settings})
    run = store.create(config.to_dict(), str(data_dir), origin="test", status="running")
    run = execute_run(store, run.id)
    assert run.status == "completed", run.message
    return store, run.id


@pytest.fixture
def three_classes(tmp_path, data_dir):
    """'fruit': a 3-class folder data set of 32 x 32 colour pictures, recorded in the data
    folder, for the test's length."""
    from cifar_core.data.folders import add_folder_dataset, remove_folder_dataset

    folder = write_image_folders(tmp_path / "fruit", classes=("apple", "kiwi", "plum"))
    add_folder_dataset("fruit", folder, data_dir)
    yield "fruit"
    remove_folder_dataset("fruit", data_dir)


def _body(model, model_name):
    head = model_spec(model_name).head
    return {k: v.clone() for k, v in model.state_dict().items()
            if not (k == head or k.startswith(head + "."))}


@pytest.mark.parametrize("model", ["tutorial", "fast"])
@pytest.mark.parametrize("freeze", [False, True])
def test_a_run_started_from_another_keeps_its_body_and_gets_a_new_last_layer(
        tmp_path, data_dir, three_classes, model, freeze):
    width = {"width": 8} if model == "fast" else {}
    store, start_id = _trained_on_cifar(tmp_path / "runs", data_dir, model=model, **width)
    start = load_checkpoint(store.checkpoint_path(start_id))
    config = TrainConfig(epochs=2, batch_size=10, log_every=2, seed=1, lr=0.05, model=model,
                         start_from=start_id, freeze=freeze, **width)
    run = store.create(config.to_dict(), str(data_dir), origin="test", status="running",
                       dataset=three_classes)
    run = execute_run(store, run.id)
    assert run.status == "completed", run.message
    after = load_checkpoint(store.checkpoint_path(run.id))
    head = getattr(after.model, model_spec(model).head)
    assert head.out_features == 3 and after.classes == ("apple", "kiwi", "plum")
    before_body, after_body = _body(start.model, model), _body(after.model, model)
    assert before_body.keys() == after_body.keys()
    unchanged = [k for k in before_body if torch.equal(before_body[k], after_body[k])]
    if freeze:  # bit for bit, the batch norms' running statistics included
        assert unchanged == list(before_body)
    else:  # every weight that learns has moved
        learning = {k for k, p in after.model.named_parameters() if p.requires_grad}
        assert learning and not learning & set(unchanged)
    assert after.config["start_from"] == start_id and after.config["freeze"] is freeze


def test_freezing_leaves_only_the_last_layer_learning(tiny_data):
    config = TrainConfig(seed=0, batch_size=10, epochs=1)
    start = build_model(config, 10)
    path_free = TrainConfig(seed=0, start_from="x", freeze=True)

    class Start:  # what resolve_start returns, for a network in memory
        model, model_name, shape = start, "tutorial", (3, 32, 32)

    model = build_model(path_free, 4, (3, 32, 32), Start)
    learning = [name for name, p in model.named_parameters() if p.requires_grad]
    assert learning == ["fc3.weight", "fc3.bias"]
    model.train()
    assert not model.conv1.training and model.fc3.training


def test_a_start_network_that_does_not_fit_is_refused_in_words(tmp_path, data_dir):
    store, start_id = _trained_on_cifar(tmp_path / "runs", data_dir)
    start = resolve_start(store, start_id)
    # Another model.
    with pytest.raises(ConfigError, match="start from.*tutorial network.*fast network") as err:
        build_model(TrainConfig(seed=0, model="fast", start_from=start_id), 10, (3, 32, 32),
                    start)
    assert err.value.field == "start_from"
    # Another picture size or kind (Fashion-MNIST's 28 x 28 grey).
    with pytest.raises(ConfigError, match="32 × 32 colour.*28 × 28 grey"):
        build_model(TrainConfig(seed=0, start_from=start_id), 10, (1, 28, 28), start)
    # Another width of the same model.
    fast_store, fast_id = _trained_on_cifar(tmp_path / "fast-runs", data_dir, model="fast",
                                            width=8)
    fast = resolve_start(fast_store, fast_id)
    with pytest.raises(ConfigError, match="Width to the start network's \\(8\\)"):
        build_model(TrainConfig(seed=0, model="fast", width=16, start_from=fast_id), 10,
                    (3, 32, 32), fast)
    # Neither a run nor a file.
    with pytest.raises(ConfigError, match="no run 'nothing-here'"):
        resolve_start(store, "nothing-here")
    # A file that is not a network.
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a network")
    with pytest.raises(ConfigError) as err:
        resolve_start(store, str(junk))
    assert err.value.field == "start_from"


def test_freezing_needs_a_network_to_start_from():
    problems = config_problems({"freeze": True})
    assert "start from" in problems["freeze"]
    assert "freeze" not in config_problems({"freeze": True, "start_from": "abc"})


# --- the command line: train --start-from RUN|FILE [--freeze] -----------------------------------

def _train_cli(capsys, runs_dir, data_dir, *flags):
    from tests.conftest import run_cli

    return run_cli(capsys, "train", "--data-dir", data_dir, "--runs-dir", runs_dir,
                   "--epochs", "1", "--batch-size", "10", "--log-every", "2", "--seed", "0",
                   "--lr", "0.05", "--device", "cpu", *flags)


def test_train_from_a_run_takes_its_model_and_width_and_says_so(
        capsys, tmp_path, data_dir, three_classes, in_tmp_and_signals_kept):
    store, start_id = _trained_on_cifar(tmp_path / "runs", data_dir, model="fast", width=8)
    code, out, err = _train_cli(capsys, tmp_path / "runs", data_dir, "--dataset",
                                three_classes, "--start-from", start_id, "--freeze")
    assert code == 0, err
    [line] = [ln for ln in (out + err).splitlines() if "start" in ln.lower()]
    assert "fast network" in line and "width 8" in line and start_id in line
    run = [r for r in store.list() if r.id != start_id][0]
    assert run.status == "completed", run.message
    assert (run.config["model"], run.config["width"]) == ("fast", 8)
    assert run.config["start_from"] == start_id and run.config["freeze"] is True
    # The network copied out is the new one: 3 classes, the start network's body.
    after = load_checkpoint(tmp_path / "cifar_net.pth")
    assert after.classes == ("apple", "kiwi", "plum")


def test_train_from_a_pth_file_with_the_model_given(
        capsys, tmp_path, data_dir, three_classes, in_tmp_and_signals_kept):
    store, start_id = _trained_on_cifar(tmp_path / "runs", data_dir)
    code, out, err = _train_cli(capsys, tmp_path / "new-runs", data_dir, "--dataset",
                                three_classes, "--model", "tutorial", "--start-from",
                                store.checkpoint_path(start_id))
    assert code == 0, err
    [run] = RunStore(tmp_path / "new-runs").list()
    assert run.status == "completed" and run.config["freeze"] is False


@pytest.mark.parametrize("case", ["other model", "other width", "not a network", "no network",
                                  "no such run", "freeze alone"])
def test_a_start_that_cannot_be_used_is_refused_before_a_run_is_made(
        capsys, tmp_path, data_dir, three_classes, in_tmp_and_signals_kept, case):
    store, start_id = _trained_on_cifar(tmp_path / "runs", data_dir, model="fast", width=8)
    failed = store.create(TrainConfig(seed=0).to_dict(), str(data_dir), origin="test",
                          status="running")
    store.finish(failed.id, "failed", "The training process never started.")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a network")
    flags, expected = {
        "other model": (["--start-from", start_id, "--model", "tutorial"],
                        "fast network.*tutorial network"),
        "other width": (["--start-from", start_id, "--model", "fast", "--width", "16"],
                        "Width to the start network's \\(8\\)"),
        "not a network": (["--start-from", junk], str(junk)),
        "no network": (["--start-from", failed.id], f"Run {failed.id} has no saved network"),
        "no such run": (["--start-from", "nothing-here"], "no run 'nothing-here'"),
        "freeze alone": (["--freeze"], "needs a network to start from"),
    }[case]
    before = {r.id for r in store.list()}
    code, out, err = _train_cli(capsys, tmp_path / "runs", data_dir, "--dataset",
                                three_classes, *flags)
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith("error: ") and re.search(expected, line), line
    assert "Traceback" not in err + out
    assert {r.id for r in store.list()} == before  # no run was recorded


# --- sweeps: every run of a sweep starts from the network ---------------------------------------

def test_a_local_sweeps_runs_start_from_the_network(tmp_path, data_dir, three_classes):
    from dataclasses import replace

    from cifar_core import scheduler
    from cifar_core.sweeps.engine import start_sweep
    from cifar_core.sweeps.space import SearchSpace
    from cifar_core.sweeps.store import SweepStore
    from tests.conftest import end_jobs_of

    store, start_id = _trained_on_cifar(tmp_path / "runs", data_dir, model="fast", width=8)
    start = load_checkpoint(store.checkpoint_path(start_id))
    space = SearchSpace.from_dict({"axes": {"epochs": {"values": [1]},
                                            "lr": {"values": [0.01, 0.1]}}})
    space = replace(space, base={"model": "fast", "width": 8, "batch_size": 10,
                                 "log_every": 2, "device": "cpu", "start_from": start_id,
                                 "freeze": True})
    sweep = start_sweep(store, space, data_dir, dataset=three_classes, parallel=2)
    try:
        runs = [scheduler.wait(store, r.id, timeout=180)
                for r in SweepStore(store).runs(sweep.id)]
    finally:
        end_jobs_of(store)
    assert len(runs) == 2 and {r.config["lr"] for r in runs} == {0.01, 0.1}
    for run in runs:
        assert run.status == "completed", run.message
        after = load_checkpoint(run.checkpoint)
        assert after.classes == ("apple", "kiwi", "plum")
        before_body, after_body = _body(start.model, "fast"), _body(after.model, "fast")
        assert all(torch.equal(before_body[k], after_body[k]) for k in before_body)


def test_a_run_on_a_ray_worker_starts_from_the_network_the_driver_read(tmp_path, data_dir):
    pytest.importorskip("ray")
    from cifar_core.data.load import load_data
    from cifar_core.sweeps import ray_engine
    from cifar_core.sweeps.space import SearchSpace
    from cifar_core.sweeps.store import SweepStore

    store, start_id = _trained_on_cifar(tmp_path / "runs", data_dir)
    space = SearchSpace.from_dict({"axes": {"lr": {"values": [0.01, 0.1]}}})
    from dataclasses import replace

    space = replace(space, base={"start_from": start_id, "freeze": True})
    sweep = SweepStore(store).create("s", space, str(data_dir), "test", "ray", "", 1, "cifar10")
    start = ray_engine.sweep_start(store, sweep)  # read on the driver's machine
    assert start is not None and start.model_name == "tutorial"
    config = {"epochs": 1, "batch_size": 10, "log_every": 2, "seed": 0, "device": "cpu",
              "start_from": start_id, "freeze": True}
    data = load_data("cifar10", data_dir, download=False)
    records = list(ray_engine.train_on_worker(config, data, board=None, run_id="r1",
                                              threads=1, start=start))
    assert records[-1]["kind"] == "result" and records[-1]["status"] == "completed", records[-1]
    (tmp_path / "net.pth").write_bytes(records[-1]["checkpoint"])
    after = load_checkpoint(tmp_path / "net.pth")
    assert torch.equal(after.model.conv1.weight, start.model.conv1.weight)
    # A sweep whose network is gone is refused by its driver in one sentence.
    gone = SweepStore(store).create("t", replace(space, base={"start_from": "nothing-here"}),
                                    str(data_dir), "test", "ray", "", 1, "cifar10")
    with pytest.raises(ConfigError, match="no run 'nothing-here'"):
        ray_engine.sweep_start(store, gone)


def test_the_teach_preset_on_the_command_line_takes_the_start_networks_model(
        capsys, tmp_path, data_dir, three_classes, in_tmp_and_signals_kept):
    store, start_id = _trained_on_cifar(tmp_path / "runs", data_dir)  # the tutorial's network
    code, out, err = _train_cli(capsys, tmp_path / "runs", data_dir, "--dataset",
                                three_classes, "--preset", "teach-1min", "--start-from",
                                start_id)
    assert code == 0, err
    run = next(r for r in store.list() if r.id != start_id)
    # The preset's fast network at width 32 gave way to the start network's.
    assert (run.config["model"], run.config["width"], run.config["freeze"]) == (
        "tutorial", None, False)  # the preset: every layer learns
    assert run.config["augment"] == "flip+translate" and run.status == "completed"


def test_a_start_network_of_these_very_classes_keeps_its_last_layer_too(tmp_path, data_dir):
    """Keep fixed first (seconds), then fine-tune everything: the second run starts from the
    first, whose last layer already knows these classes, and keeps it."""
    store, start_id = _trained_on_cifar(tmp_path / "runs", data_dir)
    start = resolve_start(store, start_id)
    config = TrainConfig(seed=5, start_from=start_id)
    same = build_model(config, 10, (3, 32, 32), start, classes=start.classes)
    assert torch.equal(same.fc3.weight, start.model.fc3.weight)
    other = build_model(config, 10, (3, 32, 32), start, classes=tuple("abcdefghij"))
    assert not torch.equal(other.fc3.weight, start.model.fc3.weight)
    assert torch.equal(other.fc2.weight, start.model.fc2.weight)

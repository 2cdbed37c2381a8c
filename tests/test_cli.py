"""cifar_core.cli: `python -m cifar_core train | evaluate | runs | data`.

Most commands run in this process through cli.main (fast: torch is already imported); a few
run as real `python -m cifar_core` processes to check what a user's shell sees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from cifar_core import cli
from cifar_core.data.dataset import OFFICIAL_CLASSES
from cifar_core.runs.store import RunStore
from cifar_core.training.checkpoint import load_checkpoint
from cifar_core.training.config import (
    TrainConfig,
    compared_settings,
    config_problems,
    defaults,
    preset_values,
    settings,
)
from cifar_core.training.evaluation import evaluate
from cifar_core.training.models import count_parameters, model_names, model_spec

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--epochs", "2", "--batch-size", "10", "--log-every", "3", "--lr", "0.002",
         "--seed", "0", "--device", "cpu"]
# 100 images in minibatches of 10: reports after minibatches 3, 6, 9 and 10 of each epoch.
REPORTS_PER_EPOCH = 4


@pytest.fixture(autouse=True)
def _in_tmp(in_tmp_and_signals_kept):
    """Every test here: see conftest.in_tmp_and_signals_kept."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_dir):
    """One `train --json` run in its own run store: (runs dir, summary, checkpoint copy)."""
    root = tmp_path_factory.mktemp("cli-trained")
    out = io.StringIO()
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = cli.main(["train", "--data-dir", str(synthetic_dir), "--runs-dir",
                             str(root / "runs"), "--out", str(root / "net.pth"), "--json",
                             *TRAIN])
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    assert code == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return root / "runs", lines, root / "net.pth"


# --- train --------------------------------------------------------------------------------

def test_train_json_prints_events_and_a_summary(trained, synthetic_dir, tiny_data):
    runs_dir, lines, checkpoint = trained
    kinds = [line["kind"] for line in lines]
    # The tiny data's one warning (its checksums are not the official ones) comes first.
    assert kinds == (["warning"] + (["stats"] * REPORTS_PER_EPOCH + ["epoch"]) * 2
                     + ["done", "summary"])
    stats = [line for line in lines if line["kind"] == "stats"]
    assert [s["minibatch"] for s in stats] == [3, 6, 9, 10] * 2
    assert all(s["loss"] > 0 for s in stats)

    summary = lines[-1]
    assert summary["status"] == "completed"
    assert set(summary["per_class"]) == set(OFFICIAL_CLASSES)
    assert all(0 <= v <= 100 for v in summary["per_class"].values())
    assert summary["images_per_s"] > 0 and summary["train_s"] > 0
    assert summary["accuracy"] == pytest.approx(
        evaluate(load_checkpoint(checkpoint).model, tiny_data).accuracy)
    run = RunStore(runs_dir).get(summary["run_id"])
    assert run.origin == "cli" and run.status == "completed"
    assert run.config["lr"] == 0.002 and run.config["batch_size"] == 10


def test_train_out_copies_the_runs_checkpoint(trained):
    _, lines, checkpoint = trained
    summary = lines[-1]
    assert checkpoint.read_bytes() == Path(summary["checkpoint"]).read_bytes()


def test_train_plain_output_reads_like_the_tutorial(capsys, synthetic_dir, tmp_path):
    code, out, err = run_cli(capsys, "train", "--data-dir", synthetic_dir,
                             "--runs-dir", tmp_path / "runs", *TRAIN)

    assert code == 0, err
    lines = out.splitlines()
    losses = [ln for ln in lines if re.match(r"\[\d+, +\d+\] loss: \d+\.\d{3}\b", ln)]
    assert len(losses) == 2 * REPORTS_PER_EPOCH
    assert losses[0].startswith("[1,     3] loss: ")
    assert losses[-1].startswith("[2,    10] loss: ")
    assert "Finished Training" in lines
    [total] = [ln for ln in lines if ln.startswith("Accuracy of the network")]
    assert re.fullmatch(r"Accuracy of the network on the 50 test images: \d+ %", total)
    per_class = [ln for ln in lines if ln.startswith("Accuracy for class")]
    assert len(per_class) == 10
    for name, line in zip(OFFICIAL_CLASSES, per_class, strict=True):
        assert re.fullmatch(rf"Accuracy for class {name} *is: \d+\.\d %", line)
    assert "Saved cifar_net.pth" in lines
    assert (tmp_path / "cifar_net.pth").is_file()  # the tutorial's file name, in the cwd
    assert re.search(r"Run \S+ on cpu", err)


def test_train_exit_status_is_1_when_it_diverges(capsys, synthetic_dir, tmp_path):
    code, out, _ = run_cli(capsys, "train", "--data-dir", synthetic_dir, "--runs-dir",
                           tmp_path / "runs", "--lr", "10", "--momentum", "0.99",
                           "--batch-size", "4", "--log-every", "1", "--seed", "0",
                           "--device", "cpu", "--out", tmp_path / "net.pth")
    assert code == 1
    assert "Lower it" in out
    assert not (tmp_path / "net.pth").exists()
    [run] = RunStore(tmp_path / "runs").list()
    assert run.status == "diverged" and run.checkpoint is None


def test_train_on_damaged_data_fails_the_run_with_one_error_line(capsys, make_cifar_batches,
                                                                 tmp_path):
    root = make_cifar_batches()
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()

    code, out, err = run_cli(capsys, "train", "--data-dir", root, "--runs-dir",
                             tmp_path / "runs", *TRAIN)

    assert code != 0
    [error] = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "'data_batch_3' is missing" in error
    assert "Traceback" not in err and "Accuracy" not in out
    [run] = RunStore(tmp_path / "runs").list()
    assert run.status == "failed" and "data_batch_3" in run.message


def test_train_help_lists_a_flag_for_every_setting(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    listed = set(re.findall(r"^\s+(--[a-z][a-z-]*)", out, re.MULTILINE))
    assert {spec.flag for spec in settings().values()} <= listed


def candidate_values(name: str) -> list:
    """Values of the setting `name` other than its default, from its declaration: its other
    choices or truth value, or numbers across its range (its ends, its middle, powers of two)."""
    spec, default = settings()[name], defaults()[name]
    if spec.kind is bool:
        values = [not default]
    elif spec.kind is str:  # its choices; a free text (Start from's run id or file) any word
        values = list(spec.allowed()) if spec.choices is not None else ["a-run-id"]
    else:
        low = spec.low if spec.low is not None else 0
        high = spec.high if spec.high is not None else low + 1000
        values = [high, low, (low + high) / 2]
        power = 1
        while power < high:
            values.append(power)
            power *= 2
        if spec.kind is int:
            values = [int(v) for v in values]
    return [v for v in values if v != default]


def companions(name: str, value) -> dict | None:
    """The other settings (at most one, changed from its default) that `value` of `name` needs
    to be valid: {} where it is valid alone; None where no single other setting makes it so."""
    if not config_problems({name: value}):
        return {}
    for other in settings():
        for other_value in candidate_values(other) if other != name else ():
            if not config_problems({name: value, other: other_value}):
                return {other: other_value}
    return None


def other_than_the_default(name: str) -> tuple[object, dict]:
    """A valid value for the setting `name` that is not its default, and the companion
    settings it needs (e.g. a width needs a model that has one)."""
    for value in candidate_values(name):
        needed = companions(name, value)
        if needed is not None:
            return value, needed
    raise AssertionError(f"no valid value other than the default for {name}")


def flag_args(name: str, value) -> list[str]:
    """The command line that gives the setting `name` this value."""
    flag = settings()[name].flag
    if settings()[name].kind is bool:  # --nesterov, --no-nesterov
        return [flag if value else f"--no-{flag[2:]}"]
    return [flag, str(value)]


@pytest.mark.parametrize("name", list(settings()))
def test_each_setting_flag_sets_its_setting_and_no_other(name):
    value, needed = other_than_the_default(name)
    argv = flag_args(name, value) + [a for k, v in needed.items() for a in flag_args(k, v)]
    args = cli.build_parser().parse_args(["train", *argv])
    assert cli.config_from_args(args).to_dict() == {**defaults(), name: value, **needed}


def test_a_width_is_given_with_a_model_that_has_one():
    value, needed = other_than_the_default("width")
    assert model_spec(needed["model"]).widths is not None
    assert config_problems({"width": value}) and not config_problems({"width": value, **needed})


@pytest.mark.parametrize("value", [True, False])
def test_an_on_off_setting_takes_its_flag_alone_or_with_no(value):
    names = [n for n, spec in settings().items() if spec.kind is bool]
    assert names
    for name in names:
        # (with the setting another one needs beside it: Keep fixed, a network to start from)
        needed = companions(name, value) or {}
        argv = flag_args(name, value) + [a for k, v in needed.items() for a in flag_args(k, v)]
        args = cli.build_parser().parse_args(["train", *argv])
        assert getattr(cli.config_from_args(args), name) is value
        args = cli.build_parser().parse_args(["train"])
        assert getattr(cli.config_from_args(args), name) is defaults()[name]


@pytest.mark.parametrize("order", ["preset first", "flag first"])
def test_a_preset_gives_its_settings_and_a_flag_beside_it_overrides_that_one(order):
    parser = cli.build_parser()
    quick = cli.config_from_args(parser.parse_args(["train", "--preset", "quick"]))
    assert quick == TrainConfig.from_dict(preset_values("quick"))
    assert quick != TrainConfig()  # (so that the preset's values are seen to arrive)

    epochs = quick.epochs + 1
    flags = ["--preset", "quick", "--epochs", str(epochs)]
    argv = flags if order == "preset first" else flags[2:] + flags[:2]
    overridden = cli.config_from_args(parser.parse_args(["train", *argv]))
    assert overridden == dataclasses.replace(quick, epochs=epochs)


def test_an_unknown_model_is_one_error_line_naming_the_models(capsys, tmp_path, synthetic_dir):
    runs_dir = tmp_path / "runs"
    code, out, err = run_cli(capsys, "train", "--runs-dir", runs_dir, "--data-dir",
                             synthetic_dir, "--model", "resnet50")
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("error:") and "resnet50" in line and "Traceback" not in err
    for name in model_names():
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", line), name
    assert not runs_dir.exists() or RunStore(runs_dir).list() == []


WIDE = "tutorial-wide"  # the second registered model


def test_the_second_model_trains_evaluates_and_is_listed_from_the_cli(capsys, tmp_path,
                                                                     synthetic_dir, tiny_data):
    assert WIDE in model_names()
    net = tmp_path / "net.pth"
    code, out, err = run_cli(capsys, "train", "--model", WIDE, "--epochs", "1",
                             "--batch-size", "8", "--data-dir", synthetic_dir,
                             "--runs-dir", tmp_path / "runs", "--out", net, "--json")
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["kind"] == "summary" and summary["status"] == "completed", summary

    checkpoint = load_checkpoint(net)
    assert checkpoint.model_name == WIDE and checkpoint.config["model"] == WIDE
    assert count_parameters(checkpoint.model) == model_spec(WIDE).parameter_count() \
        != model_spec(model_names()[0]).parameter_count()
    assert evaluate(checkpoint.model, tiny_data).accuracy == pytest.approx(summary["accuracy"])

    code, out, err = run_cli(capsys, "evaluate", net, "--data-dir", synthetic_dir, "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(summary["accuracy"])

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", tmp_path / "runs", "list")
    assert code == 0
    header, row = out.splitlines()
    columns, settings = header.split(), list(compared_settings())
    start = columns.index(settings[0])  # (after the run's id, accuracy, name and status)
    assert columns[start:start + len(settings)] == settings
    assert row.startswith(summary["run_id"]) and WIDE in row.split()


def test_the_fast_network_and_its_recipe_train_and_evaluate_from_the_cli(capsys, tmp_path,
                                                                         synthetic_dir,
                                                                         tiny_data):
    net = tmp_path / "net.pth"
    recipe = ["--model", "fast", "--width", "4", "--augment", "flip+translate",
              "--label-smoothing", "0.1", "--weight-decay", "0.001", "--nesterov",
              "--schedule", "one-cycle", "--tta", "flip", "--precision", "bf16"]
    code, out, err = run_cli(capsys, "train", *recipe, "--epochs", "1", "--batch-size", "10",
                             "--lr", "0.05", "--seed", "0", "--device", "cpu",
                             "--data-dir", synthetic_dir, "--runs-dir", tmp_path / "runs",
                             "--out", net, "--json")
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["status"] == "completed", summary

    checkpoint = load_checkpoint(net)
    assert checkpoint.model_name == "fast" and checkpoint.model.width == 4
    assert checkpoint.config["nesterov"] is True and checkpoint.config["schedule"] == "one-cycle"
    assert checkpoint.prediction_options() == {"tta": "flip", "precision": "bf16"}
    tested = evaluate(checkpoint.model, tiny_data, **checkpoint.prediction_options())
    assert tested.accuracy == pytest.approx(summary["accuracy"])

    code, out, err = run_cli(capsys, "evaluate", net, "--data-dir", synthetic_dir, "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(summary["accuracy"])
    [run] = RunStore(tmp_path / "runs").list()
    assert TrainConfig.from_dict(run.config) == TrainConfig.from_dict(checkpoint.config)
    assert run.config["width"] == 4 and run.config["nesterov"] is True


def test_the_gpu_preset_on_a_machine_without_cuda_is_one_error_line(capsys, tmp_path,
                                                                   synthetic_dir, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runs_dir = tmp_path / "runs"
    code, out, err = run_cli(capsys, "train", "--runs-dir", runs_dir, "--data-dir",
                             synthetic_dir, "--preset", "gpu")
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("error:") and "needs a GPU" in line and "cpu-2min" in line
    assert not runs_dir.exists() or RunStore(runs_dir).list() == []


# --- evaluate -----------------------------------------------------------------------------

def test_evaluate_prints_the_accuracy_of_a_checkpoint(capsys, trained, synthetic_dir):
    _, lines, checkpoint = trained
    summary = lines[-1]

    code, out, _ = run_cli(capsys, "evaluate", checkpoint, "--data-dir", synthetic_dir,
                           "--device", "cpu")
    assert code == 0
    assert f"on the 50 test images: {summary['accuracy']:.0f} %" in out
    assert len([ln for ln in out.splitlines() if ln.startswith("Accuracy for class")]) == 10

    code, out, _ = run_cli(capsys, "evaluate", checkpoint, "--data-dir", synthetic_dir,
                           "--json")
    assert code == 0
    result = json.loads(out)
    assert result["accuracy"] == pytest.approx(summary["accuracy"])
    assert result["per_class"] == pytest.approx(summary["per_class"])
    assert result["test_images"] == 50
    assert sum(map(sum, result["confusion"])) == 50


def test_evaluate_refuses_a_checkpoint_for_other_classes(capsys, trained, make_image_folders):
    _, _, checkpoint = trained
    folders = make_image_folders(classes=("cat", "dog", "frog"))
    code, out, err = run_cli(capsys, "evaluate", checkpoint, "--data-dir", folders)
    assert code == 2 and out == ""
    # Compared by class names (issue 24), not only counts.
    assert "trained on CIFAR-10 (10 classes: airplane" in err
    assert "(3 classes: cat, dog, frog)" in err
    assert err.strip().splitlines()[-1].startswith("error:")


# --- runs ---------------------------------------------------------------------------------

def test_runs_list_plain_and_json(capsys, trained):
    runs_dir, lines, _ = trained
    run_id = lines[-1]["run_id"]

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", runs_dir, "list")
    assert code == 0
    header, row = out.splitlines()
    # The name and accuracy right after the id (issue 26): off-screen at the end of a long line.
    assert header.split()[:6] == ["run", "accuracy", "name", "status", "dataset", "created"]
    assert row.startswith(run_id) and " completed " in row and " cifar10 " in row
    assert f"{lines[-1]['accuracy']:.1f} %" in row

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", runs_dir, "list", "--json")
    [listed] = [json.loads(line) for line in out.splitlines()]
    assert listed["id"] == run_id and listed["status"] == "completed"
    assert listed["dataset"] == "cifar10" and listed["classes"] == list(OFFICIAL_CLASSES)
    assert listed["metrics"]["accuracy"] == pytest.approx(lines[-1]["accuracy"])

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", runs_dir, "list", "--status",
                           "failed", "--json")
    assert code == 0 and out == ""


def test_runs_list_of_an_empty_store(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", tmp_path / "runs", "list")
    assert code == 0 and "No runs yet" in out


def test_runs_show_plain_and_json(capsys, trained):
    runs_dir, lines, _ = trained
    run_id = lines[-1]["run_id"]

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", runs_dir, "show", run_id)
    assert code == 0
    assert out.startswith(f"Run {run_id}: completed")
    [shown_settings] = [ln for ln in out.splitlines() if ln.strip().startswith("settings:")]
    assert {"model=tutorial", "epochs=2", "lr=0.002", "batch_size=10", "seed=0"} <= set(
        shown_settings.split(":", 1)[1].replace(",", " ").split())
    assert f"{2 * REPORTS_PER_EPOCH} loss reports" in out
    assert f"checkpoint: {lines[-1]['checkpoint']}" in out
    assert "Accuracy of the network on the 50 test images" in out

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", runs_dir, "show", run_id, "--json")
    shown = json.loads(out)
    assert shown["id"] == run_id
    # The store keeps the training's events; the data's warnings come with the data, not the run.
    assert [e["kind"] for e in shown["events"]] == [line["kind"] for line in lines[:-1]
                                                    if line["kind"] != "warning"]


def test_runs_stop_asks_a_running_run_to_stop(capsys, tmp_path):
    store = RunStore(tmp_path / "runs")
    # A running run whose process is alive (this one), so nothing reaps it as dead.
    run = store.create({"epochs": 1}, "/data", "dashboard", status="running", pid=os.getpid())

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", store.root, "stop", run.id)

    assert code == 0 and "stop requested" in out
    assert store.stop_requested(run.id) and store.get(run.id).status == "running"


def test_runs_delete_removes_a_finished_run_but_not_a_running_one(capsys, tmp_path):
    store = RunStore(tmp_path / "runs")
    done = store.create({"epochs": 1}, "/data", "cli", status="running", pid=1)
    store.finish(done.id, "completed")
    running = store.create({"epochs": 1}, "/data", "cli", status="running", pid=os.getpid())

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", store.root, "delete", done.id)
    assert code == 0 and f"Deleted run {done.id}" in out
    assert not store.run_dir(done.id).exists()

    code, out, err = run_cli(capsys, "runs", "--runs-dir", store.root, "delete", running.id)
    assert code == 2 and "still running" in err
    assert [r.id for r in store.list()] == [running.id]

    code, _, err = run_cli(capsys, "runs", "--runs-dir", store.root, "stop", done.id)
    assert code == 2 and "no run" in err


def test_runs_rename_note_and_tag_keep_what_a_person_writes(capsys, tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create({"epochs": 1, "lr": 0.02}, "/data", "cli", status="running", pid=1)
    store.finish(run.id, "completed", metrics={"accuracy": 31.0, "per_class": {},
                                               "test_images": 50})
    root = store.root

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", root, "rename", run.id, "lr  0.02\ttry")
    assert code == 0 and "'lr 0.02 try'" in out and run.id in out
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", root, "note", run.id, "Loss went flat.")
    assert code == 0 and run.id in out
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", root, "tag", run.id, "keep", "CPU")
    assert code == 0 and "cpu, keep" in out
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", root, "tag", run.id, "cpu", "--remove")
    assert code == 0 and "keep" in out and "cpu" not in out

    kept = store.get(run.id)
    assert (kept.name, kept.note, kept.tags) == ("lr 0.02 try", "Loss went flat.", ("keep",))
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", root, "show", run.id)
    assert "lr 0.02 try" in out and "Loss went flat." in out and "keep" in out

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", root, "rename", run.id, "")
    assert code == 0 and store.get(run.id).name is None and "tutorial" in out


@pytest.mark.parametrize(("argv", "words"), [
    (["rename", "20250101-000000-abcd", "x"], "There is no run '20250101-000000-abcd'"),
    (["rename", "RUN", "???"], "letter or digit"),
    (["tag", "RUN", "two words"], "not a plain word"),
    (["note", "RUN", "n" * 3000], "2,000 characters"),
])
def test_runs_rename_note_and_tag_refuse_in_one_line(capsys, tmp_path, argv, words):
    store = RunStore(tmp_path / "runs")
    run = store.create({"epochs": 1}, "/data", "cli", status="running", pid=1)
    store.finish(run.id, "completed")

    code, out, err = run_cli(capsys, "runs", "--runs-dir", store.root,
                             *[run.id if a == "RUN" else a for a in argv])

    assert code == 2 and words in err and "Traceback" not in err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    kept = store.get(run.id)
    assert (kept.name, kept.note, kept.tags) == (None, "", ())


def test_runs_list_shows_names_and_filters_by_tag_and_status(capsys, tmp_path):
    store = RunStore(tmp_path / "runs")
    ids = []
    for lr in (0.02, 0.002):
        run = store.create({"model": "fast", "epochs": 1, "lr": lr}, "/data", "cli",
                           status="running", pid=1)
        store.finish(run.id, "completed", metrics={"accuracy": 30.0, "per_class": {}})
        ids.append(run.id)
    store.set_name(ids[0], "the good one")
    store.tag(ids[0], ["keep"])
    root = store.root

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", root, "list")
    lines = out.splitlines()[1:]
    assert code == 0 and len(lines) == 2
    named = {ln.split()[0]: ln for ln in lines}
    assert named[ids[0]].split(" completed ")[0].rstrip().endswith("30.0 %  the good one")
    assert named[ids[1]].split(" completed ")[0].rstrip().endswith("30.0 %  fast · lr 0.002")

    code, out, _ = run_cli(capsys, "runs", "--runs-dir", root, "list", "--tag", "Keep")
    assert code == 0 and [ln.split()[0] for ln in out.splitlines()[1:]] == [ids[0]]
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", root, "list", "--tag", "nothing")
    assert code == 0 and "No runs" in out and "nothing" in out
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", root, "list", "--tag", "keep",
                           "--status", "failed")
    assert code == 0 and ids[0] not in out
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", root, "list", "--tag", "keep",
                           "--json")
    [listed] = [json.loads(line) for line in out.splitlines()]
    assert (listed["id"], listed["name"], listed["tags"]) == (ids[0], "the good one", ["keep"])


# --- data ---------------------------------------------------------------------------------

def test_data_describes_the_data_set(capsys, synthetic_dir):
    code, out, err = run_cli(capsys, "data", "--data-dir", synthetic_dir)
    assert code == 0
    assert "python batches" in out
    assert "100 training and 50 test images, 10 classes (airplane, automobile" in out
    assert "warning: The checksums" in err

    code, out, _ = run_cli(capsys, "data", "--data-dir", synthetic_dir, "--json")
    described = json.loads(out)
    assert described["classes"] == list(OFFICIAL_CLASSES)
    assert described["counts"] == {"train": [10] * 10, "test": [5] * 10}
    assert any("checksums" in w for w in described["warnings"])


# --- user mistakes ------------------------------------------------------------------------

MISTAKES = {
    "lr-not-a-number": (["train", "--lr", "abc"], "'abc' is not a number"),
    "lr-negative": (["train", "--lr", "-1"], "learning rate must be above 0"),
    "momentum-1": (["train", "--momentum", "1"], "Momentum must be at least 0 and below 1"),
    "epochs-0": (["train", "--epochs", "0"], "Epochs must be between 1"),
    "batch-size-fraction": (["train", "--batch-size", "2.5"], "'2.5' is not a whole number"),
    "device-tpu": (["train", "--device", "tpu"], "Device 'tpu' is not available"),
    "unknown-flag": (["train", "--learning-rate", "0.1"], "unrecognized arguments"),
    "unknown-preset": (["train", "--preset", "fastest"], "invalid choice: 'fastest'"),
    "width-with-the-tutorial": (["train", "--width", "8"], "has no width setting"),
    "width-too-narrow": (["train", "--model", "fast", "--width", "2"], "between 4 and 256"),
    "width-fraction": (["train", "--model", "fast", "--width", "8.5"], "not a whole number"),
    "augment-unknown": (["train", "--augment", "rotate"], "Augmentation must be one of"),
    "label-smoothing-1": (["train", "--label-smoothing", "1"], "at least 0 and below 1"),
    "label-smoothing-text": (["train", "--label-smoothing", "lots"], "'lots' is not a number"),
    "weight-decay-negative": (["train", "--weight-decay", "-0.1"], "between 0 and 1"),
    "nesterov-with-a-value": (["train", "--nesterov", "1"], "unrecognized arguments: 1"),
    "nesterov-equals": (["train", "--nesterov=yes"], "ignored explicit argument 'yes'"),
    "nesterov-without-momentum": (["train", "--nesterov", "--momentum", "0"],
                                  "needs a momentum above 0"),
    "schedule-unknown": (["train", "--schedule", "cosine"], "warmup-linear, one-cycle"),
    "tta-unknown": (["train", "--tta", "rotate"], "Test-time augmentation must be one of"),
    "precision-unknown": (["train", "--precision", "fp8"], "(got 'fp8')"),
    "fp16-on-a-cpu": (["train", "--precision", "fp16", "--device", "cpu"], "needs a GPU"),
    "unknown-run-show": (["runs", "show", "nope"], "There is no run 'nope'"),
    "unknown-run-stop": (["runs", "stop", "nope"], "There is no run 'nope'"),
    "unknown-status": (["runs", "list", "--status", "done"], "invalid choice: 'done'"),
    "missing-checkpoint": (["evaluate", "missing.pth"], "No checkpoint at missing.pth"),
}


@pytest.mark.parametrize(("argv", "words"), MISTAKES.values(), ids=MISTAKES.keys())
def test_a_mistake_is_one_error_line_and_exit_status_2(capsys, tmp_path, synthetic_dir,
                                                        argv, words):
    runs_dir = tmp_path / "runs"
    extra = ["--runs-dir", runs_dir] if argv[0] in ("train", "runs") else []
    extra += ["--data-dir", synthetic_dir] if argv[0] in ("train", "evaluate") else []
    argv = [argv[0], *extra, *argv[1:]]  # the folders go before a subcommand's own words

    code, out, err = run_cli(capsys, *argv)

    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error:")
    assert words in err
    assert "Traceback" not in err
    assert not runs_dir.exists() or RunStore(runs_dir).list() == []  # nothing was started
    assert not (tmp_path / "cifar_net.pth").exists()


@pytest.mark.parametrize("argv", [["train", "--lr", "abc"], ["train", "--device", "tpu"],
                                  ["evaluate", "missing.pth"]])
def test_a_mistake_in_a_real_process(tmp_path, argv):
    env = {**os.environ, "CIFAR_RUNS_DIR": str(tmp_path / "runs"), "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "cifar_core", *argv], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error:") and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() or RunStore(tmp_path / "runs").list() == []


def test_a_run_queued_meanwhile_starts_when_the_cli_s_own_training_ends(capsys, synthetic_dir,
                                                                        tmp_path):
    """The CLI's run takes a slot like any other: when it ends, the next queued run starts
    (the scheduler ticks), with no dashboard open."""
    from conftest import end_jobs_of

    from cifar_core.training.config import TrainConfig

    store = RunStore(tmp_path / "runs")
    waiting = store.create(TrainConfig(epochs=1, batch_size=10, log_every=5, seed=0,
                                       device="cpu").to_dict(), str(synthetic_dir), "dashboard")
    try:
        code, _, err = run_cli(capsys, "train", "--data-dir", synthetic_dir,
                               "--runs-dir", tmp_path / "runs", *TRAIN)
        assert code == 0, err
        assert store.get(waiting.id).status != "queued"
    finally:
        end_jobs_of(store)


def test_the_command_line_loads_the_chart_library_only_for_a_report():
    """Every command starts up without Altair (half a second on a 2-core CPU): only `report`
    draws charts, so only it loads them (cli/report.py imports share.report when run)."""
    code = "import sys, cifar_core.cli; print('altair' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"

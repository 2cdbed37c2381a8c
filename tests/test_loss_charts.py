"""The loss charts (share.charts) with the test loss, smoothing, a log scale and a choice of x
axis; the curves as CSV (share.curves_csv, `runs export --curves`); the controls on the pages."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from conftest import app_at, finish_run, no_traceback, run_cli, texts

from cifar_core.runs.curves import LossView, accuracy_marks, epoch_ends, loss_lines
from cifar_core.runs.store import Run, RunStore
from cifar_core.share import charts
from cifar_core.share.curves_csv import CURVE_COLUMNS, curves_csv
from cifar_core.training.events import EpochEvent, StatsEvent


def a_run(run_id: str = "r1") -> Run:
    return Run(id=run_id, created=0.0, config={"epochs": 2, "batch_size": 4}, data_dir="",
               origin="test", status="completed", pid=None, started=0.0, finished=1.0,
               message="", metrics={"accuracy": 40.0, "images_seen": 20}, checkpoint=None,
               stop_requested=False)


def lines_of(run: Run, test_loss: bool):
    """Two epochs of 10 images in minibatches of 4, a loss report every minibatch."""
    stats = [StatsEvent(epoch=e, minibatch=m, step=3 * (e - 1) + m,
                        images_seen=10 * (e - 1) + min(4 * m, 10), loss=2.3 - 0.1 * (3 * e + m),
                        images_per_s=1.0, elapsed_s=1.0, fraction_done=0.5, eta_s=1.0,
                        images_per_epoch=10) for e in (1, 2) for m in (1, 2, 3)]
    epochs = [EpochEvent(epoch=e, test_accuracy=30.0 + e, images_seen=10 * e, elapsed_s=1.0,
                         test_loss=(2.2 - 0.1 * e) if test_loss else None) for e in (1, 2)]
    return loss_lines(run, stats, epochs), epochs


def layers(spec: dict) -> list[dict]:
    """Every single-mark view inside a chart's spec (layers, facets, concatenations)."""
    found = []
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for part in spec.get(key, []):
            found += layers(part)
    if "spec" in spec:
        found += layers(spec["spec"])
    if "mark" in spec:
        found.append(spec)
    return found


def drawn_test_loss(spec: dict) -> list[dict]:
    return [la for la in layers(spec) if "test loss" in json.dumps(la.get("transform", []))]


def loss_layers(spec: dict) -> list[dict]:
    return [la for la in layers(spec)
            if la.get("encoding", {}).get("y", {}).get("field") in ("loss", "smoothed")]


def every_chart(lines, epochs, view: LossView, validate: bool = True) -> dict[str, dict]:
    """The spec of each loss chart (Altair's check of the spec takes most of the time)."""
    run = a_run()
    panels = lines.assign(title="trial 1", status="completed")
    made = {
        "runs": charts.loss_chart(lines, True, view),
        "single": charts.single_loss_chart(lines, view),
        "panels": charts.loss_panels_chart(panels, ["trial 1"], view),
        "train": charts.run_loss_chart(lines, accuracy_marks(run, epochs, 10),
                                       epoch_ends(run, 10), view, True),
    }
    return {name: chart.to_dict(validate=validate) for name, chart in made.items()}


def test_every_loss_chart_draws_the_test_loss_where_the_epochs_measured_it():
    lines, epochs = lines_of(a_run(), test_loss=True)
    for name, spec in every_chart(lines, epochs, LossView()).items():
        assert drawn_test_loss(spec), name
    old, epochs = lines_of(a_run(), test_loss=False)  # a run from before the test loss
    for name, spec in every_chart(old, epochs, LossView()).items():
        assert not drawn_test_loss(spec), name
        assert loss_layers(spec), name  # the training loss still drawn


def test_smoothing_draws_the_raw_loss_faint_behind_the_smoothed():
    lines, epochs = lines_of(a_run(), test_loss=True)
    for name, spec in every_chart(lines, epochs, LossView(smoothing=0.8)).items():
        fields = [la["encoding"]["y"]["field"] for la in loss_layers(spec)]
        assert "smoothed" in fields, name
        raw = [la for la in loss_layers(spec) if la["encoding"]["y"]["field"] == "loss"
               and not drawn_test_loss({"layer": [la]})]
        assert raw and all(la["mark"].get("opacity", 1) < 0.5 for la in raw), name
    for name, spec in every_chart(lines, epochs, LossView(smoothing=0)).items():
        assert "smoothed" not in [la["encoding"]["y"]["field"] for la in loss_layers(spec)], name


def test_the_log_scale_and_the_x_axis_change_every_loss_chart():
    lines, epochs = lines_of(a_run(), test_loss=True)
    fields = {"minibatches": "minibatches", "images": "images_seen", "epochs": "epochs"}
    for x, log in (("minibatches", True), ("images", False), ("epochs", True),
                   ("epochs", False)):
        view = LossView(log_scale=log, x=x)
        for name, spec in every_chart(lines, epochs, view, validate=False).items():
            for layer in loss_layers(spec):
                y = layer["encoding"]["y"]
                assert (y.get("scale", {}).get("type") == "log") == log, (name, view)
                assert layer["encoding"]["x"]["field"] == fields[x], (name, view)


# --- the pages: a row of controls above each loss chart -----------------------------------------

def drawn_specs(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def loss_specs(at) -> list[dict]:
    return [spec for spec in drawn_specs(at) if loss_layers(spec)]


def test_the_train_page_draws_the_test_loss_and_its_controls_change_the_chart(data_dir,
                                                                             runs_dir):
    finish_run(runs_dir, data_dir, epochs=2)
    at = app_at("pages/train.py")
    no_traceback(at)
    assert at.slider(key="train_loss_smoothing").value == LossView().smoothing
    assert not at.toggle(key="train_loss_log").value
    [spec] = loss_specs(at)
    assert drawn_test_loss(spec), "the test loss measured after each epoch is drawn"
    assert "the loss on the test images" in texts(at)

    at.toggle(key="train_loss_log").set_value(True)
    at.session_state["train_loss_x"] = "images"
    at.run()
    no_traceback(at)
    [spec] = loss_specs(at)
    for layer in loss_layers(spec):
        assert layer["encoding"]["y"]["scale"]["type"] == "log"
        assert layer["encoding"]["x"]["field"] == "images_seen"


# --- the curves as CSV ----------------------------------------------------------------------------

def test_a_runs_curves_csv_reads_back_with_a_row_per_loss_report_and_per_epoch(runs_dir,
                                                                               data_dir):
    run_id = finish_run(runs_dir, data_dir, epochs=2)
    store = RunStore(runs_dir)
    table = pd.read_csv(io.StringIO(curves_csv(store, store.get(run_id))))

    assert list(table.columns) == CURVE_COLUMNS
    assert set(table["run"]) == {run_id}
    events = [e for _, e in store.events(run_id)]
    stats = [e for e in events if isinstance(e, StatsEvent)]
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    reports = table[table["row"] == "loss report"]
    assert reports[["epoch", "minibatch", "minibatches", "images_seen"]].values.tolist() == [
        [e.epoch, e.minibatch, e.step, e.images_seen] for e in stats]
    assert reports["loss"].tolist() == pytest.approx([e.loss for e in stats])
    assert reports[["test_loss", "test_accuracy", "train_seconds"]].isna().all().all()
    ends = table[table["row"] == "epoch end"]
    assert ends["epoch"].tolist() == [1, 2] == [e.epoch for e in epochs]
    assert ends["images_seen"].tolist() == [e.images_seen for e in epochs]
    assert ends["test_loss"].tolist() == pytest.approx([e.test_loss for e in epochs])
    assert ends["test_accuracy"].tolist() == pytest.approx([e.test_accuracy for e in epochs])
    assert ends["train_seconds"].tolist() == pytest.approx([e.train_s for e in epochs])
    assert ends["loss"].isna().all()
    # Where each epoch ends in minibatches: 100 images in minibatches of 10.
    assert ends["minibatches"].tolist() == [10, 20]
    assert len(table) == len(stats) + len(epochs)


def test_runs_export_writes_the_curves_as_csv_and_says_what_went_wrong(capsys, runs_dir,
                                                                      data_dir, tmp_path):
    first = finish_run(runs_dir, data_dir)
    second = finish_run(runs_dir, data_dir, lr=0.02)
    out = tmp_path / "one.csv"
    code, printed, err = run_cli(capsys, "runs", "export", first, "--curves", out,
                                 "--runs-dir", runs_dir)
    assert code == 0, err
    assert str(out) in printed
    assert set(pd.read_csv(out)["run"]) == {first}

    folder = tmp_path / "several"
    code, printed, err = run_cli(capsys, "runs", "export", first, second, "--curves", folder,
                                 "--runs-dir", runs_dir)
    assert code == 0, err
    for run_id in (first, second):
        assert set(pd.read_csv(folder / f"{run_id}-curves.csv")["run"]) == {run_id}

    # Neither kind of file named: say which options there are, not argparse's traceback.
    code, _, err = run_cli(capsys, "runs", "export", first, "--runs-dir", runs_dir)
    assert code == 2 and "--curves" in err and "--tensorboard" in err
    # Several runs into one file.
    code, _, err = run_cli(capsys, "runs", "export", first, second, "--curves",
                           tmp_path / "both.csv", "--runs-dir", runs_dir)
    assert code == 2 and "folder" in err and not (tmp_path / "both.csv").exists()
    # A place that cannot be written.
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    code, _, err = run_cli(capsys, "runs", "export", first, "--curves", blocked / "x.csv",
                           "--runs-dir", runs_dir)
    assert code == 2 and err.startswith("error: The curves of run") and "Traceback" not in err


def test_the_runs_page_compares_losses_with_controls_and_offers_the_curves(data_dir, runs_dir):
    run_id = finish_run(runs_dir, data_dir, epochs=2)
    at = app_at("pages/runs.py")
    no_traceback(at)
    assert at.multiselect(key="compare_runs").value == [run_id]
    assert at.slider(key="compare_loss_smoothing").value == LossView().smoothing
    [spec] = loss_specs(at)
    assert drawn_test_loss(spec)
    at.session_state["compare_loss_x"] = "minibatches"
    at.slider(key="compare_loss_smoothing").set_value(0.0)
    at.run()
    no_traceback(at)
    [spec] = loss_specs(at)
    assert {la["encoding"]["y"]["field"] for la in loss_layers(spec)} == {"loss"}
    assert {la["encoding"]["x"]["field"] for la in loss_layers(spec)} == {"minibatches"}
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Curves (CSV)" in labels, labels

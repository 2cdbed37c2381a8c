"""What the dashboard shows about runs: tables, curves, progress, CSV, estimates."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from cifar_core.runs import RunStore
from cifar_core.summaries import (
    epoch_accuracies,
    estimate_seconds,
    format_duration,
    loss_curve,
    metrics_csv,
    per_class_comparison,
    run_progress,
    runs_table,
    runs_with_network,
)
from cifar_core.train import TrainConfig

CLASSES = ["cat", "dog"]


def stats(epoch, minibatch, seen, loss, per_epoch=100, fraction=0.5, ips=1000.0, eta=5.0):
    return {"kind": "stats", "epoch": epoch, "minibatch": minibatch, "step": minibatch,
            "images_seen": seen, "loss": loss, "images_per_s": ips, "elapsed_s": 1.0,
            "fraction_done": fraction, "eta_s": eta, "images_per_epoch": per_epoch}


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def finished(store, metrics, status="completed", **settings):
    run = store.create(TrainConfig(seed=0, **settings).to_dict(), "/data", "test",
                       status="running")
    store.finish(run.id, status, "done", metrics, None)
    return store.get(run.id)


@pytest.mark.parametrize("seconds, text", [(None, "-"), (-1, "-"), (float("nan"), "-"),
                                           (12.4, "12 s"), (185, "3 min 05 s"),
                                           (3720, "1 h 02 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_loss_curve_puts_reports_on_an_epoch_axis():
    events = [stats(1, 50, 200, 2.3), {"kind": "epoch", "epoch": 1, "test_accuracy": 40.0},
              stats(2, 50, 600, 1.9, per_epoch=400)]
    curve = loss_curve(events, run_id="r1")
    assert list(curve["epochs"]) == [2.0, 1.5]
    assert list(curve["loss"]) == [2.3, 1.9]
    assert set(curve["run"]) == {"r1"}
    assert loss_curve([]).empty
    accuracy = epoch_accuracies(events)
    assert accuracy.to_dict("records") == [{"epoch": 1, "test_accuracy": 40.0}]


def test_progress_of_queued_starting_running_and_finished_runs(store):
    run = store.create(TrainConfig(epochs=2).to_dict(), "/data", "test")
    assert "Waiting" in run_progress(run, []).text
    store.set_running(run.id, 123)
    running = store.get(run.id)
    assert "Starting" in run_progress(running, []).text
    progress = run_progress(running, [stats(1, 10, 40, 2.0, fraction=0.2, ips=800, eta=65)])
    assert progress.fraction == 0.2 and progress.last_loss == 2.0
    assert "Epoch 1 of 2" in progress.text and "800 images/s" in progress.text
    assert "1 min 05 s left" in progress.text
    store.finish(run.id, "completed", "ok")
    done = run_progress(store.get(run.id), [stats(2, 10, 80, 1.5, fraction=0.99)])
    assert done.fraction == 1.0 and done.text.startswith("Completed after 80 images")


def test_runs_table_and_per_class_comparison(store):
    metrics = {"accuracy": 55.0, "per_class": {"cat": 50.0, "dog": 60.0},
               "confusion": [[5, 5], [4, 6]], "images_per_s": 1234.0}
    a = finished(store, metrics, lr=0.01)
    b = finished(store, None, status="failed", lr=0.1)
    table = runs_table(store.list())
    assert list(table["run"]) == [b.id, a.id]
    assert table.set_index("run").loc[a.id, "accuracy"] == 55.0
    assert pd.isna(table.set_index("run").loc[b.id, "accuracy"])
    assert table.set_index("run").loc[b.id, "lr"] == 0.1
    long = per_class_comparison([a, b])
    assert long.to_dict("records") == [{"run": a.id, "class": "cat", "accuracy": 50.0},
                                       {"run": a.id, "class": "dog", "accuracy": 60.0}]


def test_metrics_csv_has_a_row_per_class_and_overall(store):
    run = finished(store, {"accuracy": 55.0, "per_class": {"cat": 50.0, "dog": 60.0},
                           "confusion": [[5, 5], [4, 6]]}, lr=0.02)
    frame = pd.read_csv(io.StringIO(metrics_csv(run)))
    assert list(frame["class"]) == ["cat", "dog", "overall"]
    assert list(frame["correct"]) == [5, 6, 11] and list(frame["total"]) == [10, 10, 20]
    assert list(frame["accuracy_percent"]) == [50.0, 60.0, 55.0]
    assert set(frame["run"]) == {run.id} and set(frame["lr"]) == {0.02}


def test_estimate_uses_earlier_runs_with_the_same_batch_and_device(store):
    finished(store, {"accuracy": 1, "per_class": {}, "images_per_s": 1000.0}, batch_size=4)
    finished(store, {"accuracy": 1, "per_class": {}, "images_per_s": 3000.0}, batch_size=4)
    finished(store, {"accuracy": 1, "per_class": {}, "images_per_s": 9e9}, batch_size=64)
    config = TrainConfig(epochs=2, batch_size=4).to_dict()
    assert estimate_seconds(store.list(), config, 3000) == pytest.approx(2.0)
    assert estimate_seconds(store.list(), {**config, "batch_size": 8}, 3000) is None


def test_runs_with_network_keeps_completed_and_stopped_runs_that_saved_one(store):
    metrics = {"accuracy": 1.0, "per_class": {}}
    done = finished(store, metrics)
    stopped = finished(store, metrics, status="stopped")
    failed = finished(store, None, status="failed")
    with_file = store.create({}, "/data", "test", status="running")
    store.finish(with_file.id, "completed", "ok", metrics, "/runs/x/cifar_net.pth")
    stopped_file = store.create({}, "/data", "test", status="running")
    store.finish(stopped_file.id, "stopped", "ok", metrics, "/runs/y/cifar_net.pth")
    kept = runs_with_network(store.list())
    assert {r.id for r in kept} == {with_file.id, stopped_file.id}
    assert not {done.id, stopped.id, failed.id} & {r.id for r in kept}

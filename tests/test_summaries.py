"""What the dashboard shows about runs: tables, curves, progress, CSV, estimates."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from cifar_core.runs.store import RunStore
from cifar_core.runs.views import (
    active_runs,
    epoch_accuracies,
    epoch_confusions,
    format_duration,
    how_it_trained,
    loss_curve,
    metrics_csv,
    per_class_by_epoch,
    per_class_comparison,
    run_label,
    run_progress,
    run_setting_text,
    runs_table,
    runs_with_network,
    setting_text,
)
from cifar_core.training.config import TrainConfig
from cifar_core.training.evaluation import confusion_rows
from cifar_core.training.events import DoneEvent, EpochEvent, StatsEvent

CLASSES = ["cat", "dog"]


def stats(epoch, minibatch, seen, loss, per_epoch=100, fraction=0.5, ips=1000.0, eta=5.0):
    return StatsEvent(epoch=epoch, minibatch=minibatch, step=minibatch, images_seen=seen,
                      loss=loss, images_per_s=ips, elapsed_s=1.0, fraction_done=fraction,
                      eta_s=eta, images_per_epoch=per_epoch)


def epoch_end(epoch, accuracy, seen=100):
    return EpochEvent(epoch=epoch, test_accuracy=accuracy, images_seen=seen, elapsed_s=2.0)


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
    done = DoneEvent(status="completed", message="Finished Training", epochs_done=2,
                     images_seen=800, train_s=1.0, images_per_s=800.0, elapsed_s=1.5)
    events = [stats(1, 50, 200, 2.3), epoch_end(1, 40.0),
              stats(2, 50, 600, 1.9, per_epoch=400), epoch_end(2, 55.0, seen=800), done]
    curve = loss_curve(events, run_id="r1")
    assert list(curve["epochs"]) == [2.0, 1.5]
    assert list(curve["loss"]) == [2.3, 1.9]
    assert set(curve["run"]) == {"r1"}
    assert loss_curve([]).empty
    accuracy = epoch_accuracies(events)
    assert accuracy.to_dict("records") == [{"epoch": 1, "test_accuracy": 40.0},
                                           {"epoch": 2, "test_accuracy": 55.0}]


def test_a_loss_report_without_images_per_epoch_sits_at_its_epoch():
    # Events stored before images_per_epoch existed have its default, 0.
    curve = loss_curve([stats(3, 10, 40, 1.2, per_epoch=0)])
    assert list(curve["epochs"]) == [3.0]


def test_setting_text_says_what_an_unset_setting_means():
    assert setting_text("train_size", None) == "all"
    assert setting_text("seed", None) == "random"
    assert setting_text("train_size", 12000) == "12,000"
    assert setting_text("model", "tutorial-wide") == "tutorial-wide"


def test_progress_of_queued_starting_running_and_finished_runs(store):
    run = store.create(TrainConfig(epochs=2, log_every=2000).to_dict(), "/data", "test")
    assert "Waiting" in run_progress(run, []).text
    store.set_running(run.id, 123)
    running = store.get(run.id)
    assert "Starting" in run_progress(running, []).text
    # A run that has not reported for long says so, and why that may be, not 'Starting'.
    later = run_progress(running, [], now=running.started + 125)
    assert later.text.startswith("Training, no loss report yet after 2 min 05 s")
    assert f"after {running.settings['log_every']:,} minibatches" in later.text
    # The latest loss report counts, whatever came after it.
    progress = run_progress(running, [stats(1, 5, 20, 2.2, fraction=0.1, ips=500, eta=90),
                                      stats(1, 10, 40, 2.0, fraction=0.2, ips=800, eta=65),
                                      epoch_end(1, 30.0)])
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


def test_runs_with_network_keeps_completed_and_stopped_runs_that_saved_one(store):
    metrics = {"accuracy": 1.0, "per_class": {}}
    done = finished(store, metrics)
    stopped = finished(store, metrics, status="stopped")
    failed = finished(store, None, status="failed")
    with_file = store.create({}, "/data", "test", status="running")
    store.finish(with_file.id, "completed", "ok", metrics,
                 str(store.run_dir(with_file.id) / "cifar_net.pth"))
    stopped_file = store.create({}, "/data", "test", status="running")
    store.finish(stopped_file.id, "stopped", "ok", metrics,
                 str(store.run_dir(stopped_file.id) / "cifar_net.pth"))
    kept = runs_with_network(store.list())
    assert {r.id for r in kept} == {with_file.id, stopped_file.id}
    assert not {done.id, stopped.id, failed.id} & {r.id for r in kept}


def test_how_it_trained_names_the_step_and_cores(store):
    run = finished(store, {"accuracy": 50.0, "training_step": "written-out step", "cores": 2})
    assert how_it_trained(run) == "Trained with the written-out step on 2 cores."
    one = finished(store, {"accuracy": 50.0, "training_step": "tutorial step", "cores": 1})
    assert how_it_trained(one) == "Trained with the tutorial step on 1 core."
    assert how_it_trained(finished(store, {"accuracy": 50.0})) is None  # an older run


def test_a_run_with_a_model_only_a_newer_version_knows_does_not_hide_the_others(store):
    finished(store, {"accuracy": 40.0})
    newer = store.create({**TrainConfig(seed=0).to_dict(), "model": "resnet-9000"}, "/data",
                         "test", status="running")
    store.finish(newer.id, "completed", "done", {"accuracy": 90.0}, None)
    table = runs_table(store.list())
    assert set(table["model"]) == {"tutorial", "resnet-9000"}
    assert "resnet-9000" in run_label(store.get(newer.id))
    assert "resnet-9000" in metrics_csv(store.get(newer.id))


def test_per_epoch_confusions_and_each_classs_accuracy_across_epochs():
    first = EpochEvent(epoch=1, test_accuracy=50.0, images_seen=4, elapsed_s=1.0,
                       confusion=[[1, 1], [1, 1]])
    second = EpochEvent(epoch=2, test_accuracy=75.0, images_seen=8, elapsed_s=2.0,
                        confusion=[[2, 0], [1, 1]])
    old = epoch_end(3, 80.0)  # from before confusions were kept: skipped
    events = [stats(1, 1, 4, 2.0), first, second, old]
    confusions = epoch_confusions(events)
    assert sorted(confusions) == [1, 2] and confusions[2].tolist() == [[2, 0], [1, 1]]
    lines = per_class_by_epoch(events, ("cat", "dog"))
    assert list(lines.itertuples(index=False, name=None)) == [
        (1, "cat", 50.0), (1, "dog", 50.0), (2, "cat", 100.0), (2, "dog", 50.0)]
    rows = confusion_rows(confusions[2], ("cat", "dog"))
    assert rows["images"].sum() == 4 and len(rows) == 4


def test_active_runs_put_the_training_ones_before_those_waiting(store):
    # Newest first, a queued run came before the one training: pages following the first
    # active run followed the waiting one ("Waiting for a free slot") (issue 16 walk).
    older = store.create({}, "/data", "test", status="running")
    done = store.create({}, "/data", "test", status="running")
    store.finish(done.id, "completed", "ok")
    waiting = store.create({}, "/data", "test")
    newer = store.create({}, "/data", "test", status="running")
    assert [r.id for r in active_runs(store.list())] == [newer.id, older.id, waiting.id]
    assert active_runs([]) == []


def test_runs_with_network_puts_runs_whose_file_is_gone_last(store):
    metrics = {"accuracy": 1.0, "per_class": {}}
    runs = []
    for _ in range(3):
        run = store.create({}, "/data", "test", status="running")
        path = store.run_dir(run.id) / "cifar_net.pth"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
        store.finish(run.id, "completed", "ok", metrics, str(path))
        runs.append(store.get(run.id))
    Path(runs[2].checkpoint).unlink()  # the newest run's network deleted: listed first
    listed = store.list()
    kept = runs_with_network(listed)
    assert listed[0].id == runs[2].id
    present = [r.id for r in listed if r.id != runs[2].id]
    assert [r.id for r in kept] == [*present, runs[2].id]  # the store's order kept otherwise


def test_a_setting_that_does_not_apply_to_the_run_s_network_reads_as_a_dash(store):
    tutorial = store.create(TrainConfig(model="tutorial").to_dict(), "/data", "test")
    fast = store.create(TrainConfig(model="fast").to_dict(), "/data", "test")
    sized = store.create(TrainConfig(model="fast", width=16).to_dict(), "/data", "test")
    assert run_setting_text(tutorial, "width") == "-"  # it has no width at all
    assert run_setting_text(fast, "width") == "standard"  # the model's own, for its device
    assert run_setting_text(sized, "width") == "16"
    assert run_setting_text(tutorial, "train_size") == "all"

"""runs.curves: which loss reports a chart of a long run draws, and a run's curve kept up to
date from its new events."""

from __future__ import annotations

import pandas as pd
import pytest

from cifar_core.runs.curves import (
    X_AXES,
    LossView,
    RunCurve,
    accuracy_marks,
    loss_lines,
    smoothed,
    smoothed_lines,
)
from cifar_core.runs.spread import spread_positions
from cifar_core.runs.store import Run, RunStore
from cifar_core.training.events import DoneEvent, EpochEvent, StatsEvent


def report(step: int) -> StatsEvent:
    return StatsEvent(epoch=1, minibatch=step, step=step, images_seen=4 * step,
                      loss=2.0 / step, images_per_s=100.0, elapsed_s=0.04 * step,
                      fraction_done=0.5, eta_s=1.0, images_per_epoch=10_000)


# --- spread_positions ---------------------------------------------------------------------------

def test_a_curve_that_fits_is_drawn_whole():
    assert spread_positions(0, 10) == []
    assert spread_positions(7, 10, recent=3) == list(range(7))
    assert spread_positions(10, 10) == list(range(10))


@pytest.mark.parametrize("count", [11, 12, 100, 1_001, 4_097, 100_000, 123_457])
@pytest.mark.parametrize(("limit", "recent"), [(10, 0), (10, 3), (2_000, 500), (2_000, 0),
                                               (2, 0), (5, 3)])
def test_a_long_curve_keeps_first_last_recent_and_an_even_spread_within_the_limit(count, limit,
                                                                                 recent):
    positions = spread_positions(count, limit, recent)

    if count <= limit:
        assert positions == list(range(count))
        return
    assert len(positions) <= limit
    assert positions == sorted(set(positions))  # ascending, no repeats
    assert positions[0] == 0 and positions[-1] == count - 1
    assert positions[len(positions) - recent:] == list(range(count - recent, count))
    older = [p for p in positions if p < count - recent]
    gaps = {b - a for a, b in zip(older, older[1:], strict=False)}
    if recent == 0:  # the last one closes the spread, wherever it falls
        gaps = {b - a for a, b in zip(older[:-1], older[1:-1], strict=False)}
    assert len(gaps) <= 1, "an even spread: one stride"
    stride = gaps.pop() if gaps else 1
    assert stride & (stride - 1) == 0, "a power of two"
    # Not needlessly sparse: half the stride would not have fitted.
    room = limit - recent - 1
    assert stride == 1 or -(-(count - recent) // (stride // 2)) > room


def test_a_longer_curve_keeps_nothing_a_shorter_one_dropped():
    # So a page can keep a spread and thin it as reports arrive, never needing one it dropped.
    for limit, recent in ((50, 10), (50, 0), (2_000, 500)):
        before = set(spread_positions(40, limit, recent))
        for count in range(41, 20_000, 37):
            now = set(spread_positions(count, limit, recent))
            assert now <= before | set(range(count - 37, count))
            before = now


def test_a_limit_without_room_for_the_first_and_last_is_refused():
    with pytest.raises(ValueError, match="first and the last"):
        spread_positions(100, 1)
    with pytest.raises(ValueError, match="first and the last"):
        spread_positions(100, 11, recent=10)


# --- RunCurve -----------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def add_reports(store: RunStore, run_id: str, steps: range) -> None:
    for step in steps:
        store.add_event(run_id, report(step))


def test_a_curve_read_at_once_is_the_spread_of_the_reports_with_every_epoch(store):
    run = store.create({"epochs": 2}, "/data", "test", status="running")
    add_reports(store, run.id, range(1, 301))
    store.add_event(run.id, EpochEvent(epoch=1, test_accuracy=40.0, images_seen=1200,
                                       elapsed_s=12.0))
    add_reports(store, run.id, range(301, 451))

    curve = RunCurve.read(store, run.id, limit=60, recent=10)

    assert curve.reports == 450 and curve.thinned
    assert [e.step - 1 for e in curve.stats] == spread_positions(450, 60, 10)
    assert curve.stats[-1] == report(450)
    assert [e.epoch for e in curve.epochs] == [1]


def test_a_curve_kept_up_to_date_reads_only_new_events_and_stays_the_spread(store,
                                                                           monkeypatch):
    run = store.create({"epochs": 2}, "/data", "test", status="running")
    curve = RunCurve.read(store, run.id, limit=60, recent=10)
    assert curve.reports == 0 and curve.stats == [] and not curve.thinned
    assert not curve.update(store)

    read = []
    original = RunStore.events
    monkeypatch.setattr(RunStore, "events", lambda self, *a, **k: read.append(
        len(result := original(self, *a, **k))) or result)
    step = 0
    for chunk in (5, 50, 1, 200, 3, 500):  # refreshes, each after this many new reports
        add_reports(store, run.id, range(step + 1, step + chunk + 1))
        step += chunk
        assert curve.update(store)
        assert read[-1] == chunk, "only the new events are read"
        assert len(curve.stats) <= 60
        assert [e.step - 1 for e in curve.stats] == spread_positions(step, 60, 10)
    store.add_event(run.id, EpochEvent(epoch=1, test_accuracy=40.0, images_seen=4 * step,
                                       elapsed_s=1.0))
    store.add_event(run.id, DoneEvent(status="completed", message="", epochs_done=1,
                                      images_seen=4 * step, train_s=1.0, images_per_s=1.0,
                                      elapsed_s=1.0))
    assert curve.update(store) and not curve.update(store)
    assert curve.reports == step and [e.epoch for e in curve.epochs] == [1]
    assert curve.stats == RunCurve.read(store, run.id, limit=60, recent=10).stats


# --- accuracy_marks -------------------------------------------------------------------------------

def ended_run(status: str, accuracy: float, images_seen: int) -> Run:
    return Run(id="r", created=0.0, config={"epochs": 2}, data_dir="", origin="test",
               status=status, pid=None, started=0.0, finished=1.0, message="",
               metrics={"accuracy": accuracy, "images_seen": images_seen}, checkpoint=None,
               stop_requested=False)


def test_a_run_stopped_between_epochs_adds_the_test_at_its_stop_after_the_epochs_tests():
    epochs = [EpochEvent(epoch=1, test_accuracy=46.3, images_seen=40_000, elapsed_s=1.0)]
    tests = accuracy_marks(ended_run("stopped", 48.8, 50_000), epochs, images_per_epoch=40_000)
    assert tests["test_accuracy"].tolist() == [46.3, 48.8]
    assert tests["epochs"].tolist() == [1.0, 1.25]  # where it stopped, in epochs
    assert "epoch 1" in tests["when"][0] and "stopped" in tests["when"][1]


def test_a_completed_run_or_one_stopped_at_an_epochs_end_shows_the_epochs_tests_only():
    epochs = [EpochEvent(epoch=e, test_accuracy=40.0 + e, images_seen=e * 100, elapsed_s=1.0)
              for e in (1, 2)]
    for run in (ended_run("completed", 42.0, 200), ended_run("stopped", 42.0, 200)):
        tests = accuracy_marks(run, epochs, images_per_epoch=100)
        assert tests["test_accuracy"].tolist() == [41.0, 42.0]
        assert tests["epochs"].tolist() == [1.0, 2.0]
    # A running run has no test at its end yet.
    running = ended_run("running", 42.0, 250)
    assert len(accuracy_marks(running, epochs, images_per_epoch=100)) == 2


# --- smoothing and the lines a loss chart draws ------------------------------------------------

def test_smoothing_is_tensorboards_debiased_moving_average():
    # By hand, weight 0.5: the average starts at 0 and is divided by 1 - 0.5^n (n points so far):
    # 0.5 * 1 = 0.5 -> 0.5 / 0.5 = 1; 0.25 + 0 = 0.25 -> 0.25 / 0.75 = 1/3;
    # 0.125 + 0.5 = 0.625 -> 0.625 / 0.875 = 5/7.
    assert smoothed([1.0, 0.0, 1.0], 0.5) == pytest.approx([1.0, 1 / 3, 5 / 7])
    assert smoothed([2.0, 1.0, 3.0], 0.0) == [2.0, 1.0, 3.0]  # no smoothing: the values
    # A point that is not a number stays as it is and leaves the average alone, as TensorBoard.
    values = smoothed([1.0, float("nan"), 0.0], 0.5)
    assert values[0] == 1.0 and values[1] != values[1] and values[2] == pytest.approx(1 / 3)
    assert smoothed([], 0.9) == []
    with pytest.raises(ValueError, match="between 0 and 0.99"):
        smoothed([1.0], 1.0)


def trained_run(batch_size: int = 4) -> Run:
    return Run(id="r1", created=0.0, config={"epochs": 2, "batch_size": batch_size},
               data_dir="", origin="test", status="completed", pid=None, started=0.0,
               finished=1.0, message="", metrics={}, checkpoint=None, stop_requested=False)


def two_epochs(test_loss: bool) -> tuple[list[StatsEvent], list[EpochEvent]]:
    """Loss reports every 2 minibatches of 4 images, 10 images (3 minibatches) an epoch."""
    stats = [StatsEvent(epoch=e, minibatch=m, step=3 * (e - 1) + m,
                        images_seen=10 * (e - 1) + 4 * m, loss=2.0 - 0.1 * (3 * e + m),
                        images_per_s=1.0, elapsed_s=1.0, fraction_done=0.5, eta_s=1.0,
                        images_per_epoch=10) for e in (1, 2) for m in (2,)]
    epochs = [EpochEvent(epoch=e, test_accuracy=30.0 + e, images_seen=10 * e, elapsed_s=1.0,
                         test_loss=(2.1 - 0.2 * e) if test_loss else None) for e in (1, 2)]
    return stats, epochs


def test_the_lines_hold_the_test_loss_after_each_epoch_on_every_x_axis():
    stats, epochs = two_epochs(test_loss=True)
    lines = loss_lines(trained_run(), stats, epochs)
    training = lines[lines["series"] == "training loss"]
    test = lines[lines["series"] == "test loss"]
    assert training["loss"].tolist() == [e.loss for e in stats]
    assert training["minibatches"].tolist() == [2, 5]
    assert test["loss"].tolist() == pytest.approx([1.9, 1.7])
    assert test["epochs"].tolist() == [1.0, 2.0]
    assert test["images_seen"].tolist() == [10, 20]
    # 10 images in minibatches of 4: 3 a epoch, the last one of 2 images.
    assert test["minibatches"].tolist() == [3, 6]
    assert set(lines["run"]) == {"r1"}


def test_runs_from_before_the_test_loss_have_no_test_line():
    stats, epochs = two_epochs(test_loss=False)
    lines = loss_lines(trained_run(), stats, epochs)
    assert set(lines["series"]) == {"training loss"} and len(lines) == 2
    assert loss_lines(trained_run(), [], epochs).empty  # no reports: nothing to draw


def test_smoothed_lines_smooth_each_runs_training_loss_and_leave_the_test_loss():
    stats, epochs = two_epochs(test_loss=True)
    lines = pd.concat([loss_lines(trained_run(), stats, epochs),
                       loss_lines(trained_run(), stats, epochs).assign(run="r2")])
    smooth = smoothed_lines(lines, 0.5)
    for run in ("r1", "r2"):  # each run's average starts afresh
        mine = smooth[smooth["run"] == run]
        training = mine[mine["series"] == "training loss"]
        assert training["smoothed"].tolist() == pytest.approx(
            smoothed(training["loss"].tolist(), 0.5))
        assert training["smoothed"].iloc[1] != training["loss"].iloc[1]
        test = mine[mine["series"] == "test loss"]
        assert test["smoothed"].tolist() == test["loss"].tolist()


def test_a_loss_view_refuses_what_a_chart_cannot_draw():
    assert LossView().x in X_AXES
    with pytest.raises(ValueError, match="x axis"):
        LossView(x="hours")
    with pytest.raises(ValueError, match="between 0 and 0.99"):
        LossView(smoothing=1.5)

"""How often a run reports its loss (cifar_core.training.reports): by default sized to the run
(about 20 reports), and a value set by hand that would give fewer than 2 raised, with a
message, so that every run's loss chart has points. Issue 26: short runs and every sweep run
drew a chart of a single dot."""

from __future__ import annotations

import re

from conftest import app_at, in_memory_data, no_traceback, run_cli

from cifar_core.runs.store import RunStore
from cifar_core.runs.views import run_progress
from cifar_core.training.config import PRESETS, TrainConfig, preset_values
from cifar_core.training.events import DoneEvent, StatsEvent
from cifar_core.training.loop import build_model, train
from cifar_core.training.reports import MIN_REPORTS, automatic_log_every, log_every_for


def run(config: TrainConfig, data):
    model = build_model(config, len(data.classes))
    return list(train(config, data, model))


def test_a_short_run_reports_about_20_times_by_default():
    data = in_memory_data(train_n=200, test_n=20)
    config = TrainConfig(epochs=1, batch_size=2, seed=0, device="cpu")  # 100 minibatches
    events = run(config, data)
    stats = [e for e in events if isinstance(e, StatsEvent)]
    assert MIN_REPORTS <= len(stats) <= 2 * MIN_REPORTS + 1
    assert events[-1].status == "completed" and "Log every" not in events[-1].message


def test_a_log_every_that_would_give_one_report_is_lowered_and_the_run_says_so():
    data = in_memory_data(train_n=200, test_n=20)
    config = TrainConfig(epochs=1, batch_size=2, log_every=2000, seed=0, device="cpu")
    events = run(config, data)
    stats = [e for e in events if isinstance(e, StatsEvent)]
    assert len(stats) >= 2
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == "completed"
    assert "Log every 2,000" in done.message and "single" in done.message


def test_the_automatic_value_is_a_round_number_giving_at_least_20_reports():
    for per_epoch, epochs in [(125, 1), (500, 1), (98, 8), (12_500, 2), (3, 1), (7, 300)]:
        every = automatic_log_every(per_epoch, epochs)
        assert every >= 1
        reports = epochs * -(-per_epoch // every)
        assert reports >= min(MIN_REPORTS, per_epoch * epochs)
        assert str(every).rstrip("0") in ("1", "2", "25", "5")  # 1, 2, 2.5 or 5 x 10^k
    assert automatic_log_every(125, 1) == 5  # 25 reports
    assert automatic_log_every(12_500, 2) == 1000  # 26 reports


def test_the_tutorial_preset_keeps_the_tutorials_2000_and_the_default_is_automatic():
    tutorial = TrainConfig(**preset_values("tutorial"))
    assert tutorial.log_every == 2000
    assert log_every_for(tutorial.log_every, 12_500, tutorial.epochs) == (2000, None)
    assert TrainConfig().log_every is None
    # A value set by hand that gives two reports or more is kept as it is.
    assert log_every_for(2000, 4_000, 1) == (2000, None)  # two reports
    assert log_every_for(2000, 2_000, 1)[1] is not None  # one
    every, note = log_every_for(250, 125, 1)
    assert every == automatic_log_every(125, 1) and "250" in note
    assert all("log_every" not in p.values or p.values["log_every"] is None
               or p.values["log_every"] >= 1 for p in PRESETS.values())


def test_the_command_line_says_when_log_every_is_lowered(capsys, synthetic_dir, tmp_path):
    # 100 training images in batches of 10: 10 minibatches, one epoch.
    code, out, err = run_cli(capsys, "train", "--data-dir", synthetic_dir, "--runs-dir",
                             tmp_path / "runs", "--out", tmp_path / "net.pth", "--epochs", "1",
                             "--batch-size", "10", "--log-every", "2000", "--seed", "0",
                             "--device", "cpu")
    assert code == 0, err
    assert "Log every 2,000 would give this run a single loss report" in err
    losses = [ln for ln in out.splitlines() if re.match(r"\[\d+, +\d+\] loss:", ln)]
    assert len(losses) == 10  # every minibatch: the automatic value for 10


def test_the_train_form_shows_the_automatic_number_and_says_when_a_value_is_lowered(
        data_dir, runs_dir):
    at = app_at("pages/train.py")
    at.selectbox(key="preset").set_value("quick").run()  # its Log every: automatic
    at.number_input(key="cfg_epochs").set_value(1).run()
    at.number_input(key="cfg_batch_size").set_value(1).run()  # 100 images: 100 minibatches
    box = at.checkbox(key="cfg_log_every_none")
    assert box.value and box.label == "Log every (minibatches): automatic (5)"
    box.uncheck().run()
    at.number_input(key="cfg_log_every").set_value(2000).run()
    no_traceback(at)
    [note] = [i.value for i in at.info if "Log every 2,000" in i.value]
    assert "100 minibatches" in note and "every 5 instead" in note


def test_how_often_a_run_reports_changes_no_weight():
    data = in_memory_data(train_n=100, test_n=10)
    weights = []
    for log_every in (None, 1, 2000):  # 5 (automatic), every minibatch, lowered to 5
        config = TrainConfig(epochs=1, batch_size=1, log_every=log_every, seed=3, device="cpu")
        model = build_model(config, len(data.classes))
        list(train(config, data, model))
        weights.append([t.clone() for t in model.state_dict().values()])
    for other in weights[1:]:
        assert all(a.equal(b) for a, b in zip(weights[0], other, strict=True))


def test_an_automatic_runs_progress_says_when_its_reports_come_and_when_they_stopped(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create(TrainConfig(epochs=2, batch_size=4).to_dict(), "/data", "test")
    store.set_running(run.id, 123)
    running = store.get(run.id)
    waiting = run_progress(running, [], now=running.started + 125)
    assert "Log every: automatic" in waiting.text
    # 100 images in batches of 4, 2 epochs: 50 minibatches, a report every 2 (automatic); the
    # last of 10 reports came 1 s into the run, a minute ago.
    last = StatsEvent(epoch=1, minibatch=20, step=20, images_seen=80, loss=2.0,
                      images_per_s=80.0, elapsed_s=1.0, fraction_done=0.4, eta_s=1.5,
                      images_per_epoch=100, reported_at=1000.0)
    assert "no loss report for 1 min" in run_progress(running, [last], now=1060.0).text
    assert "no loss report" not in run_progress(running, [last], now=1000.5).text

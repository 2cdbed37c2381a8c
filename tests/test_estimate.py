"""training/estimate.py: a training's time from earlier runs like it, else a short measurement."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch

from cifar_core.runs.store import RunStore
from cifar_core.sweeps.estimate import sweep_estimate
from cifar_core.sweeps.space import Axis, SearchSpace
from cifar_core.training.config import TrainConfig
from cifar_core.training.estimate import (
    STARTUP_S,
    TimeEstimate,
    earlier_speeds,
    estimate_run_time,
    estimate_training_time,
    measure_images_per_s,
    measure_test_images_per_s,
    rough_duration,
    speed_at_batch,
    speed_key,
)
from cifar_core.training.events import EpochEvent
from cifar_core.training.models import model_spec
from cifar_core.training.speed.cpu import THREADS_ENV

FAST = dict(model="fast", batch_size=256, device="cpu")


def finished(store: RunStore, images_per_s: float | None, origin: str = "cli",
             status: str = "completed", dataset: str = "cifar10", **settings) -> str:
    """A run in the store that ended with this speed (None: no metrics, e.g. a failed one)."""
    config = {**TrainConfig(**settings).to_dict(), **settings}
    run = store.create(config, "data", origin, status="running", dataset=dataset)
    store.finish(run.id, status, metrics=None if images_per_s is None
                 else {"accuracy": 50.0, "images_per_s": images_per_s})
    return run.id


def no_measure(config):
    raise AssertionError("runs like it are there: nothing should be measured")


def test_speed_key_ignores_what_does_not_change_the_speed():
    base = TrainConfig(**FAST)
    assert speed_key(base) == speed_key(TrainConfig(**FAST, epochs=9, lr=0.5, seed=3,
                                                    label_smoothing=0.2))
    # Width left empty means the model's standard width for the device: the same network.
    assert speed_key(base) == speed_key(TrainConfig(**FAST, width=model_spec("fast").cpu_width))
    for change in (dict(width=8), dict(batch_size=512), dict(precision="bf16"),
                   dict(augment="flip"), dict(model="resnet18")):
        assert speed_key(TrainConfig(**{**FAST, **change})) != speed_key(base), change
    # The tutorial's network trains through another step with any other recipe.
    assert speed_key(TrainConfig()) != speed_key(TrainConfig(nesterov=True))


def test_the_estimate_takes_the_median_speed_of_earlier_runs_like_it(tmp_path):
    store = RunStore(tmp_path / "runs")
    for speed in (1000.0, 4000.0, 2000.0):
        finished(store, speed, **FAST, epochs=3)
    # Not like it: another width, batch, precision or model; imported; no speed recorded.
    finished(store, 99.0, **FAST, width=8)
    finished(store, 99.0, **{**FAST, "batch_size": 512})
    finished(store, 99.0, **FAST, precision="bf16")
    finished(store, 99.0, model="tutorial", batch_size=256, device="cpu")
    finished(store, 99.0, origin="imported", **FAST)
    finished(store, None, status="failed", **FAST)

    config = TrainConfig(**FAST, epochs=2, lr=0.3)
    assert sorted(earlier_speeds(store.list(), config)) == [1000.0, 2000.0, 4000.0]
    estimate = estimate_training_time(config, 5000, store.list(), measure=no_measure)
    assert estimate == TimeEstimate(seconds=2 * 5000 / 2000.0, images_per_s=2000.0,
                                    source="runs", runs=3)
    assert estimate.sentence() == "about 5 s of training here (from 3 of your earlier runs)"


def test_only_runs_on_the_same_data_set_tell_its_speed(tmp_path):
    """28 x 28 grey pictures train at another speed than CIFAR-10's 32 x 32 colour ones."""
    store = RunStore(tmp_path / "runs")
    finished(store, 1000.0, **FAST)
    finished(store, 5000.0, dataset="fashion-mnist", **FAST)
    config = TrainConfig(**FAST)
    assert earlier_speeds(store.list(), config) == [1000.0]
    assert earlier_speeds(store.list(), config, dataset="fashion-mnist") == [5000.0]
    estimate = estimate_training_time(config, 5000, store.list(), measure=no_measure,
                                      dataset="fashion-mnist")
    assert (estimate.images_per_s, estimate.runs) == (5000.0, 1)


def test_a_run_this_version_cannot_read_is_passed_over(tmp_path):
    store = RunStore(tmp_path / "runs")
    finished(store, 1500.0, **FAST)
    # Stored by a newer version with a model this one does not know, or a GPU this lacks.
    odd = store.create({**TrainConfig(**FAST).to_dict(), "width": 5000}, "data", "cli",
                       status="running")
    store.finish(odd.id, "completed", metrics={"images_per_s": 9.0})
    assert earlier_speeds(store.list(), TrainConfig(**FAST)) == [1500.0]


def test_without_runs_like_it_the_estimate_is_measured_or_none(tmp_path):
    store = RunStore(tmp_path / "runs")
    finished(store, 1500.0, **FAST)
    config = TrainConfig(**FAST, width=8, epochs=4)
    asked = []

    def measure(c):
        asked.append(c)
        return 800.0

    estimate = estimate_training_time(config, 1000, store.list(), measure=measure)
    assert asked == [config]
    assert (estimate.source, estimate.seconds, estimate.runs) == ("measured", 5.0, 0)
    assert estimate.sentence() == "about 5 s of training here (measured just now)"
    assert estimate_training_time(config, 1000, store.list()) is None


@pytest.mark.parametrize("seconds, words", [
    (0.2, "1 s"), (42.4, "42 s"), (61, "1 min"), (4 * 60 + 29, "4 min"),
    (4 * 60 + 31, "5 min"), (3600 + 5 * 60, "1 h 05 min"), (3 * 3600, "3 h 00 min")])
def test_rough_duration(seconds, words):
    assert rough_duration(seconds) == words


@pytest.mark.parametrize("settings", [
    dict(batch_size=4),  # the tutorial's network and batch (the written-out step)
    dict(model="fast", width=4, batch_size=32, augment="flip+translate", nesterov=True,
         schedule="warmup-linear", label_smoothing=0.2),
])
def test_measuring_a_few_steps_gives_a_speed_and_leaves_the_process_as_it_was(settings,
                                                                              monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)

    speed = measure_images_per_s(TrainConfig(device="cpu", **settings), threads=1,
                                 budget_s=0.05)

    assert speed > 0 and speed == speed and speed != float("inf")
    assert THREADS_ENV not in os.environ  # the cap was for the measurement only
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.rand(3), expected_next), "the global random numbers were used"


def test_measuring_a_batch_larger_than_the_budget_allows_still_gives_a_speed(monkeypatch):
    # A budget so small that the probe's speed is taken for the whole batch.
    monkeypatch.setenv(THREADS_ENV, "1")
    speed = measure_images_per_s(TrainConfig(model="fast", width=4, batch_size=4096,
                                             device="cpu"), budget_s=1e-6)
    assert speed > 0
    assert os.environ[THREADS_ENV] == "1"


def test_measuring_with_a_thread_cap_leaves_the_environment_alone_while_it_runs(monkeypatch):
    """The dashboard's server is threaded: a job launched by another session while a speed is
    measured copies os.environ, and must not inherit the measurement's cap (issue 23)."""
    import cifar_core.training.estimate as estimate_module

    monkeypatch.delenv(THREADS_ENV, raising=False)
    seen = []
    real_open_step = estimate_module.open_step

    def watching_open_step(*args, **kwargs):
        seen.append(os.environ.get(THREADS_ENV))
        return real_open_step(*args, **kwargs)

    monkeypatch.setattr(estimate_module, "open_step", watching_open_step)
    measure_images_per_s(TrainConfig(device="cpu", batch_size=4), threads=1, budget_s=0.02)
    assert seen == [None]


def test_a_thread_cap_given_to_open_step_decides_the_cores_as_the_environment_did(monkeypatch):
    """open_step(threads=1) trains on one core, as CIFAR_CORE_THREADS=1 makes it."""
    from cifar_core.training.models import Net
    from cifar_core.training.speed import open_step

    monkeypatch.delenv(THREADS_ENV, raising=False)
    config = TrainConfig(device="cpu", batch_size=4)
    with open_step(Net(), config, torch.device("cpu"), threads=1) as step:
        capped = step.cores
    monkeypatch.setenv(THREADS_ENV, "1")
    with open_step(Net(), config, torch.device("cpu")) as step:
        by_environment = step.cores
    assert capped == by_environment == 1


# --- the whole run: start-up and tests counted (issue 26) --------------------------------------

def timed_run(store: RunStore, images_per_s: float, startup_s: float, test_s: float,
              epochs: int, images_per_epoch: int, **settings):
    """A completed run like FAST that spent `startup_s` starting (and saving), trained
    `epochs` epochs at `images_per_s` and took `test_s` for each test (one after each epoch,
    and the final one): its Run with those times, and its last epoch report."""
    train_s = epochs * images_per_epoch / images_per_s
    run_id = finished(store, images_per_s, **settings, epochs=epochs)
    run = store.get(run_id)
    run = replace(run, started=1000.0, finished=1000.0 + startup_s + train_s
                  + (epochs + 1) * test_s,
                  metrics={**run.metrics, "train_s": train_s, "epochs_done": epochs})
    last = EpochEvent(epoch=epochs, test_accuracy=50.0, images_seen=epochs * images_per_epoch,
                      elapsed_s=train_s + epochs * test_s, train_s=train_s)
    return run, last


def test_a_run_like_earlier_ones_is_estimated_with_their_start_up_and_tests(tmp_path):
    """Issue 26: 'about 7 s' for a run that took 24 s, the start-up and tests left out."""
    store = RunStore(tmp_path / "runs")
    runs, lasts = [], {}
    for startup_s, test_s in ((9.0, 2.0), (10.0, 3.0), (12.0, 4.0)):
        run, last = timed_run(store, 2000.0, startup_s, test_s, epochs=2,
                              images_per_epoch=4000, **FAST)
        runs.append(run)
        lasts[run.id] = last
    config = TrainConfig(**FAST, epochs=3)
    estimate = estimate_run_time(config, 5000, runs, test_images=1000, measure=no_measure,
                                 measure_test=no_measure, last_epoch=lambda r: lasts[r.id])
    assert estimate.training.seconds == pytest.approx(3 * 5000 / 2000)
    assert estimate.startup_s == pytest.approx(10.0)
    assert estimate.test_s == pytest.approx(3.0)
    # Start-up, training and a test after each of the 3 epochs and the final one.
    assert estimate.seconds == pytest.approx(10 + 7.5 + 4 * 3)
    assert estimate.low_s == pytest.approx(9 + 7.5 + 4 * 2)
    assert estimate.high_s == pytest.approx(12 + 7.5 + 4 * 4)
    assert estimate.sentence() == ("about 30 s here (24-36 s): 10 s to start, 8 s of training, "
                                   "12 s of tests (from 3 of your earlier runs)")


def test_without_runs_like_it_start_up_and_tests_are_measured_and_shown_as_a_range(tmp_path):
    config = TrainConfig(**FAST, epochs=2)
    estimate = estimate_run_time(config, 1000, [], test_images=5000, measure=lambda c: 500.0,
                                 measure_test=lambda c: 1000.0)
    assert estimate.training.seconds == pytest.approx(4.0)
    assert estimate.test_s == pytest.approx(5.0)
    assert estimate.startup_s == STARTUP_S
    assert estimate.seconds == pytest.approx(STARTUP_S + 4.0 + 3 * 5.0)
    assert estimate.low_s < estimate.seconds < estimate.high_s
    assert estimate.high_s / estimate.low_s <= 2.2  # a range, but one that still says something
    assert "measured just now" in estimate.sentence()
    assert estimate_run_time(config, 1000, [], test_images=5000) is None


def test_measuring_a_test_gives_its_speed_and_leaves_the_random_numbers_alone():
    state = torch.random.get_rng_state()
    speed = measure_test_images_per_s(TrainConfig(**FAST, width=8), threads=1)
    assert speed > 0
    assert torch.equal(torch.random.get_rng_state(), state)


def test_a_sweeps_estimate_counts_each_runs_start_up_and_tests():
    """Issue 26: 'about 9 s' for a sweep that took 32 s."""
    space = SearchSpace(axes=(Axis("lr", (0.002, 0.02)), Axis("momentum", (0.8, 0.9)),
                              Axis("epochs", (1,)), Axis("train_size", (1000,))))
    timed = []

    def measure_test(config):
        timed.append(config)
        return 2000.0

    estimate = sweep_estimate(space, 50_000, [], lambda c: 500.0, parallel=2,
                              test_images=4000, measure_test=measure_test, cores=4)
    # Each run: STARTUP_S, 1,000 images at 500/s, 2 tests of 4,000 images at 2,000/s; four
    # runs, two side by side.
    assert estimate.seconds == pytest.approx(4 * (STARTUP_S + 2.0 + 2 * 2.0) / 2)
    assert estimate.low_s < estimate.seconds < estimate.high_s
    assert len(timed) == 1  # once per speed setting
    assert "start-up and tests included" in estimate.sentence()
    # On 2 cores the two runs side by side start together (a start-up's imports and loading
    # keep one core busy: bench/RESULTS.md, "Issue 26: estimates", the quiet round); on one
    # core, one after the other.
    on_two = sweep_estimate(space, 50_000, [], lambda c: 500.0, parallel=2, test_images=4000,
                            measure_test=measure_test, cores=2)
    assert on_two.seconds == pytest.approx(estimate.seconds)
    on_one = sweep_estimate(space, 50_000, [], lambda c: 500.0, parallel=2, test_images=4000,
                            measure_test=measure_test, cores=1)
    assert on_one.seconds == pytest.approx(4 * STARTUP_S + 4 * (2.0 + 2 * 2.0) / 2)


def test_a_large_batchs_speed_is_told_from_two_smaller_steps():
    """A step costs a fixed time plus a time per image: 4 images in 0.05 s and 40 in 0.14 s
    are 0.04 s fixed and 1/400 s per image, so 512 images take 1.32 s (388 a second), not the
    40-image step's 286 a second (the 7x error of issue 26's fast network at batch 512 came
    from taking the smaller step's speed)."""
    assert speed_at_batch(512, (4, 0.05), (40, 0.14)) == pytest.approx(512 / 1.32)
    # Noise that makes the larger step look no slower: its own speed.
    assert speed_at_batch(512, (4, 0.2), (40, 0.1)) == pytest.approx(400.0)


def test_one_earlier_run_gives_a_range_not_a_single_figure(tmp_path):
    """One run's start-up says little about the next (3.0 s, then 7.8 s on the same settings:
    bench/RESULTS.md, "Issue 26: estimates")."""
    store = RunStore(tmp_path / "runs")
    run, last = timed_run(store, 2000.0, 5.0, 1.0, epochs=1, images_per_epoch=4000, **FAST)
    estimate = estimate_run_time(TrainConfig(**FAST, epochs=1), 4000, [run], test_images=1000,
                                 measure=no_measure, measure_test=no_measure,
                                 last_epoch=lambda r: last)
    assert estimate.seconds == pytest.approx(5 + 2 + 2 * 1)
    assert estimate.low_s < 0.8 * estimate.seconds and estimate.high_s > 1.2 * estimate.seconds

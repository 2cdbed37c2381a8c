"""sweeps.engine and sweeps.store: sweeps of real runs on the tiny synthetic data
through the local job runner, stopped, budgeted, pruned, deleted, and going on by themselves.

Each run is a real training process (`python -m cifar_core train --run-id ...`): seconds each.
"""

from __future__ import annotations

import os
import signal

import pytest
from conftest import end_jobs_of, wait_for

from cifar_core import scheduler
from cifar_core.errors import RunError
from cifar_core.runs.jobs import JobRunner
from cifar_core.runs.pipeline import execute_run
from cifar_core.runs.store import ACTIVE, FINISHED, Run, RunStore
from cifar_core.sweeps import smart as smart_search
from cifar_core.sweeps.engine import (
    advance_sweep,
    best_run,
    default_parallel,
    delete_sweep,
    judge,
    start_sweep,
    stop_early_message,
    stop_sweep,
    summary,
)
from cifar_core.sweeps.space import Axis, SearchSpace
from cifar_core.sweeps.store import SweepStore, optuna_journal, sweep_file
from cifar_core.training.checkpoint import load_checkpoint
from cifar_core.training.events import EpochEvent

TIMEOUT = 120  # a sweep of a few runs, each importing torch, on a busy 2-core machine
QUICK = (Axis("epochs", (1,)), Axis("batch_size", (20,)), Axis("log_every", (1,)),
         Axis("device", ("cpu",)))
# Long enough to be still training whenever the test acts on it.
LONG = (Axis("epochs", (1000,)), Axis("batch_size", (4,)), Axis("log_every", (5,)),
        Axis("device", ("cpu",)))




@pytest.fixture
def store(tmp_path) -> RunStore:
    store = RunStore(tmp_path / "runs")
    yield store
    # Whatever a failing test left training is ended here: only this store's jobs, by pid.
    end_jobs_of(store)


def ended(store: RunStore, sweep_id: str, schedule: bool = True):
    if schedule:
        scheduler.tick(store)
    sweep = SweepStore(store).get(sweep_id)
    return sweep if not sweep.is_active else None


def test_a_grid_sweep_trains_every_combination_side_by_side_and_names_the_best(
        store, synthetic_dir):
    space = SearchSpace(axes=(Axis("lr", (0.002, 0.02)), Axis("momentum", (0.5, 0.9)), *QUICK))
    sweep = start_sweep(store, space, synthetic_dir, name="first", parallel=2)
    most_active = 0

    def done():
        nonlocal most_active
        scheduler.tick(store)
        most_active = max(most_active, len([r for r in SweepStore(store).runs(sweep.id)
                                            if r.status == "running"]))
        return ended(store, sweep.id, schedule=False)

    finished = wait_for(done, TIMEOUT, "the sweep to end")
    runs = SweepStore(store).runs(sweep.id)
    assert finished.status == "completed" and finished.name == "first"
    assert [r.status for r in runs] == ["completed"] * 4
    assert {(r.config["lr"], r.config["momentum"]) for r in runs} == {
        (0.002, 0.5), (0.002, 0.9), (0.02, 0.5), (0.02, 0.9)}
    assert [r.trial for r in runs] == [0, 1, 2, 3]
    assert most_active <= 2
    # Every run has the same seed (drawn once for the sweep): they differ only in lr, momentum.
    assert len({r.config["seed"] for r in runs}) == 1
    assert all(store.events(r.id, kind="epoch") for r in runs)
    load_checkpoint(runs[0].checkpoint)  # a network to evaluate
    best = best_run(runs)
    assert best.accuracy == max(r.accuracy for r in runs)
    assert f"run {best.id}" in finished.message and "4 runs (4 completed)" in finished.message
    assert store.list(sweep_id=sweep.id) and not store.list(sweep_id="sweep-none")


def test_a_smart_sweep_asks_optuna_for_each_run_within_the_ranges(store, synthetic_dir):
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.05, log=True),
                              Axis("momentum", (0.5, 0.9)), *QUICK), strategy="smart", runs=4,
                        seed=1)
    sweep = start_sweep(store, space, synthetic_dir, parallel=2)
    finished = wait_for(lambda: ended(store, sweep.id), TIMEOUT, "the smart sweep to end")
    runs = SweepStore(store).runs(sweep.id)
    assert finished.status == "completed" and len(runs) == 4
    assert all(0.001 <= r.config["lr"] <= 0.05 and r.config["momentum"] in (0.5, 0.9)
               for r in runs)
    assert len({r.config["lr"] for r in runs}) == 4  # drawn, not repeated
    # The study knows how each ended: its trials carry the runs' accuracies.
    import optuna

    study = optuna.load_study(study_name=sweep.id,
                              storage=smart_search._storage(optuna_journal(store, sweep.id)))
    told = {t.number: t.value for t in study.trials}
    assert told == {r.trial: r.accuracy for r in runs}


def test_stopping_a_sweep_stops_its_runs_and_starts_no_more(store, synthetic_dir):
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.002, 0.003, 0.004)), *LONG))
    sweep = start_sweep(store, space, synthetic_dir, parallel=1)
    first = wait_for(lambda: [r for r in SweepStore(store).runs(sweep.id)
                              if store.events(r.id, kind="stats")], TIMEOUT,
                     "the first run to report")[0]
    stop_sweep(store, sweep.id)
    finished = wait_for(lambda: ended(store, sweep.id), 30, "the sweep to stop")
    runs = SweepStore(store).runs(sweep.id)
    assert finished.status == "stopped" and "Stopped on request" in finished.message
    assert [r.id for r in runs] == [first.id]  # no run started after the stop
    assert runs[0].status == "stopped" and runs[0].checkpoint  # what it learned is kept
    with pytest.raises(RunError, match="already ended"):
        stop_sweep(store, sweep.id)


def test_no_run_starts_after_the_time_budget(store, synthetic_dir):
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.002, 0.003)), *QUICK), minutes=0.001)
    sweep = start_sweep(store, space, synthetic_dir, parallel=1)
    finished = wait_for(lambda: ended(store, sweep.id), TIMEOUT, "the sweep to end")
    runs = SweepStore(store).runs(sweep.id)
    assert len(runs) == 1 and runs[0].status == "completed"  # the one started goes on
    assert finished.status == "completed"
    assert "budget was spent after 1 of 3 runs" in finished.message


def test_a_sweep_goes_on_by_itself_with_nobody_watching(store, synthetic_dir):
    """As after a server restart: nothing but the runs' own processes advance the sweep (each
    finishing job starts the next), and the store alone holds where it stands."""
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.002, 0.003)), *QUICK))
    sweep = start_sweep(store, space, synthetic_dir, parallel=1)
    later = RunStore(store.root)  # a fresh view, as a restarted server would open
    finished = wait_for(lambda: ended(later, sweep.id, schedule=False), TIMEOUT,
                        "the sweep to finish by itself")
    assert finished.status == "completed"
    assert [r.status for r in SweepStore(later).runs(sweep.id)] == ["completed"] * 3


def test_a_killed_run_is_marked_failed_and_the_sweep_goes_on(store, synthetic_dir):
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.002)), *LONG))
    sweep = start_sweep(store, space, synthetic_dir, parallel=1)
    first = wait_for(lambda: [r for r in SweepStore(store).runs(sweep.id)
                              if r.pid and store.events(r.id, kind="stats")], TIMEOUT,
                     "the first run to report")[0]
    os.kill(first.pid, signal.SIGKILL)
    second = wait_for(lambda: scheduler.tick(store) or [
        r for r in SweepStore(store).runs(sweep.id) if r.id != first.id], 60,
        "the next run to be made")[0]
    assert store.get(first.id).status == "failed" and "SIGKILL" in store.get(first.id).message
    stop_sweep(store, sweep.id)
    wait_for(lambda: ended(store, sweep.id), 30, "the sweep to stop")
    assert store.get(second.id).status in FINISHED


def test_delete_refuses_a_running_sweep_then_removes_it_with_its_runs(store, synthetic_dir):
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.002)), *LONG))
    sweep = start_sweep(store, space, synthetic_dir, parallel=1)
    run = wait_for(lambda: SweepStore(store).runs(sweep.id), 30, "a run")[0]
    with pytest.raises(RunError, match="stop it first"):
        delete_sweep(store, sweep.id)
    stop_sweep(store, sweep.id)
    wait_for(lambda: ended(store, sweep.id), 60, "the sweep to stop")
    folder = store.run_dir(run.id)
    assert folder.exists()
    assert sweep_file(store, sweep.id, "lock").exists()  # advancing it took the lock
    delete_sweep(store, sweep.id)
    assert not folder.exists() and store.list(sweep_id=sweep.id) == []
    assert not list((store.root / "sweeps").glob(f"{sweep.id}.*"))  # nor its files
    with pytest.raises(RunError, match="no sweep"):
        SweepStore(store).get(sweep.id)


# --- early stopping: Optuna's pruners judge a run after each epoch --------------------------

def _finished_trial(store: RunStore, sweep, accuracies: list[float]) -> Run:
    """Make the sweep's next run and let it 'train' as told: an epoch event per accuracy, each
    reported to the judge, then completed."""
    (run,) = advance_sweep(store, SweepStore(store).get(sweep.id))
    for epoch, accuracy in enumerate(accuracies, start=1):
        store.add_event(run.id, EpochEvent(epoch=epoch, test_accuracy=accuracy, images_seen=0,
                                           elapsed_s=0.0))
        assert stop_early_message(store, store.get(run.id), epoch, accuracy) is None
    store.set_running(run.id, os.getpid())
    store.finish(run.id, "completed", "done", {"accuracy": accuracies[-1]})
    return store.get(run.id)


@pytest.mark.parametrize("pruner", ["median", "halving"])
def test_a_run_behind_the_others_is_stopped_early_with_why(store, synthetic_dir, pruner):
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.002, 0.003, 0.004)), Axis("epochs", (3,)),
                              Axis("device", ("cpu",))), prune=pruner)
    sweeps = SweepStore(store)
    sweep = sweeps.create("judged", space.validate(), str(synthetic_dir), "cli", parallel=1)
    smart_search.create_study(optuna_journal(store, sweep.id), sweep.id)
    for accuracies in ([60.0, 70.0, 80.0], [62.0, 72.0, 82.0], [64.0, 74.0, 84.0]):
        _finished_trial(store, sweep, accuracies)
    (behind,) = advance_sweep(store, sweeps.get(sweep.id))
    message = stop_early_message(store, behind, 1, 20.0)
    assert message is not None and message.startswith("Stopped early: behind the others "
                                                      "after epoch 1")
    assert "20.0 %" in message and "62.0 %" in message  # its accuracy, the others' median


def test_a_run_ahead_of_the_others_goes_on(store, synthetic_dir):
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.002, 0.003)), Axis("epochs", (3,)),
                              Axis("device", ("cpu",))), prune="median")
    sweep = SweepStore(store).create("judged", space.validate(), str(synthetic_dir), "cli")
    smart_search.create_study(optuna_journal(store, sweep.id), sweep.id)
    _finished_trial(store, sweep, [30.0, 40.0, 50.0])
    _finished_trial(store, sweep, [32.0, 42.0, 52.0])
    (ahead,) = advance_sweep(store, SweepStore(store).get(sweep.id))
    assert stop_early_message(store, ahead, 1, 90.0) is None


def test_a_pruned_run_ends_as_pruned_keeping_its_events_and_network(store, synthetic_dir):
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.002, 0.003)), Axis("epochs", (5,)),
                              Axis("batch_size", (20,)), Axis("log_every", (1,)),
                              Axis("device", ("cpu",)), Axis("seed", (0,))), prune="median")
    sweep = SweepStore(store).create("judged", space.validate(), str(synthetic_dir), "cli")
    smart_search.create_study(optuna_journal(store, sweep.id), sweep.id)
    # Two runs that reached what no real run on this data reaches after one epoch.
    _finished_trial(store, sweep, [99.0, 99.5, 99.9, 100.0, 100.0])
    _finished_trial(store, sweep, [99.0, 99.5, 99.9, 100.0, 100.0])
    (run,) = advance_sweep(store, SweepStore(store).get(sweep.id))

    ended_run = execute_run(store, run.id, judge=judge(store))  # as its job process would

    assert ended_run.status == "pruned"
    assert ended_run.message.startswith("Stopped early: behind the others after epoch 1")
    epochs = store.events(run.id, kind="epoch")
    assert len(epochs) == 1  # stopped after the first epoch, not trained to the fifth
    assert ended_run.checkpoint and load_checkpoint(ended_run.checkpoint).model is not None
    assert ended_run.accuracy is not None
    # How it ended reaches the study when the sweep next advances: Optuna counts it pruned.
    advance_sweep(store, SweepStore(store).get(sweep.id))
    import optuna

    study = optuna.load_study(study_name=sweep.id,
                              storage=smart_search._storage(optuna_journal(store, sweep.id)))
    assert study.trials[run.trial].state == optuna.trial.TrialState.PRUNED


def test_runs_of_a_sweep_without_early_stopping_are_never_judged(store, synthetic_dir):
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.002)), Axis("epochs", (3,))))
    sweep = SweepStore(store).create("plain", space.validate(), str(synthetic_dir), "cli")
    (run,) = advance_sweep(store, SweepStore(store).get(sweep.id))[:1]
    assert stop_early_message(store, run, 1, 0.0) is None
    assert not optuna_journal(store, sweep.id).exists()


# --- the answer ----------------------------------------------------------------------------

def _ended_run(store: RunStore, status: str, accuracy: float | None, **config) -> Run:
    run = store.create({"lr": 0.01, **config}, "/data", "cli")
    store.set_running(run.id, os.getpid())
    store.finish(run.id, status, "", None if accuracy is None else {"accuracy": accuracy})
    return store.get(run.id)


def test_the_best_run_is_the_most_accurate_that_finished_its_training(store):
    runs = [_ended_run(store, "completed", 50.0), _ended_run(store, "pruned", 70.0),
            _ended_run(store, "completed", 60.0), _ended_run(store, "diverged", None)]
    assert best_run(runs) is runs[2]
    assert best_run(runs[1:2]) is runs[1]  # only pruned: the best of those
    assert best_run(runs[3:]) is None
    assert summary(runs) == (f"4 runs (2 completed, 1 pruned, 1 diverged). Best: run "
                             f"{runs[2].id}, 60.0 %.")


def test_parameter_importance_says_which_setting_mattered(store):
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1, log=True),
                              Axis("momentum", (0.8, 0.9))), strategy="random", runs=12)
    runs = []
    for i, config in enumerate(space.configs()):
        # The accuracy follows the learning rate; momentum only adds noise.
        runs.append(_ended_run(store, "completed", 100 * config["lr"] + (i % 2) * 0.01,
                               **config))
    importance = smart_search.parameter_importance(space, runs)
    assert set(importance) == {"lr", "momentum"}
    assert importance["lr"] > 0.8 > importance["momentum"]
    assert sum(importance.values()) == pytest.approx(1.0)
    assert smart_search.parameter_importance(space, runs[:2]) is None  # too few finished


def test_importance_of_a_small_grid_names_the_setting_that_made_more_difference(store):
    """Four runs: the learning rate moved the accuracy by ~16 points, momentum by ~10."""
    space = SearchSpace(axes=(Axis("lr", (0.002, 0.02)), Axis("momentum", (0.5, 0.9))))
    accuracy = {(0.002, 0.5): 9.9, (0.002, 0.9): 19.4, (0.02, 0.5): 25.7, (0.02, 0.9): 35.7}
    runs = [_ended_run(store, "completed", accuracy[c["lr"], c["momentum"]], **c)
            for c in space.configs()]
    importance = smart_search.parameter_importance(space, runs)
    assert importance["lr"] > importance["momentum"]


def test_a_cpu_sweep_runs_one_per_core_by_default():
    space = SearchSpace(axes=(Axis("device", ("cpu",)),))
    assert default_parallel(space, cores=2) == 2
    assert default_parallel(space, cores=8) == 8


def test_the_job_runner_makes_room_for_a_running_sweep_s_parallel_runs(store, synthetic_dir):
    runner = JobRunner(store)
    assert runner.max_parallel == 1
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.002, 0.003)), *LONG))
    sweep = start_sweep(store, space, synthetic_dir, parallel=3)
    assert runner.max_parallel == 3
    assert len([r for r in SweepStore(store).runs(sweep.id) if r.status in ACTIVE]) == 3
    stop_sweep(store, sweep.id)
    wait_for(lambda: ended(store, sweep.id), 60, "the sweep to stop")
    assert runner.max_parallel == 1

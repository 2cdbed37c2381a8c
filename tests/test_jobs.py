"""cifar_core.runs.jobs: real background training processes, started, stopped, killed and queued.

Each job is `python -m cifar_core train --run-id ...` (it imports torch: a few seconds), on
the tiny synthetic data folder that the session fixture has already decoded and cached.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from conftest import end_jobs_of, wait_for

from cifar_core import scheduler
from cifar_core.errors import ConfigError, DeviceError, RunError
from cifar_core.runs import jobs
from cifar_core.runs.jobs import JobRunner, job_environment
from cifar_core.runs.store import FINISHED, RunStore
from cifar_core.training.checkpoint import load_checkpoint
from cifar_core.training.config import TrainConfig
from cifar_core.training.evaluation import evaluate
from cifar_core.training.events import StatsEvent
from cifar_core.training.speed.cpu import THREADS_ENV

START_TIMEOUT = 60  # a job imports torch and reads the data: seconds on a busy machine
QUICK = dict(epochs=1, batch_size=20, log_every=1, lr=0.002, seed=0, device="cpu")
# Long enough to be still training whenever the test acts on it (it is stopped or killed).
LONG = dict(epochs=1000, batch_size=4, log_every=5, lr=0.002, seed=0, device="cpu")




def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


@pytest.fixture
def store(tmp_path) -> RunStore:
    store = RunStore(tmp_path / "runs")
    yield store
    # Whatever a failing test left training is ended here: only our own jobs, by pid.
    for run in store.list("running"):
        if run.pid and run.pid != os.getpid() and run.id in _cmdline(run.pid):
            os.kill(run.pid, signal.SIGKILL)
    end_jobs_of(store)


def started(store: RunStore, run_id: str) -> bool:
    return store.get(run_id).status != "queued"


def finished(store: RunStore, run_id: str):
    run = store.get(run_id)
    return run if run.status in FINISHED else None


def stats_events(store: RunStore, run_id: str) -> list[StatsEvent]:
    return [e for _, e in store.events(run_id, kind="stats")]


def test_a_job_reports_events_and_completes_with_a_usable_checkpoint(store, synthetic_dir,
                                                                     tiny_data):
    runner = JobRunner(store, max_parallel=1)
    config = TrainConfig(epochs=20, batch_size=4, log_every=5, lr=0.002, seed=0, device="cpu")

    run = runner.start(config, synthetic_dir)

    assert run.status == "running" and run.pid and run.origin == "dashboard"
    assert run.data_dir == str(synthetic_dir.resolve())
    # Events arrive while the job is still training, not only at the end.
    wait_for(lambda: stats_events(store, run.id) and store.get(run.id).status == "running",
             START_TIMEOUT, "the first loss report of a running job")

    run = scheduler.wait(runner.store, run.id, timeout=START_TIMEOUT)

    assert run.status == "completed", run.message
    events = [e for _, e in store.events(run.id)]
    kinds = [e.kind for e in events]
    assert kinds.count("stats") == 20 * 5 and kinds.count("epoch") == 20
    assert kinds[-1] == "done"
    assert run.finished >= run.started
    checkpoint = load_checkpoint(run.checkpoint)
    assert Path(run.checkpoint).parent == store.run_dir(run.id)
    assert checkpoint.config["seed"] == 0 and checkpoint.classes == tiny_data.classes
    assert evaluate(checkpoint.model, tiny_data).accuracy == pytest.approx(run.accuracy)
    assert run.metrics["images_seen"] == 20 * 100 and run.metrics["images_per_s"] > 0
    # Which step trained it, on how many cores: no more than the job was given.
    done = events[-1]
    assert run.metrics["training_step"] and run.metrics["training_step"] == done.training_step
    assert run.metrics["cores"] == done.cores
    assert 1 <= run.metrics["cores"] <= int(job_environment(1)[THREADS_ENV])
    assert "Finished Training" in (store.run_dir(run.id) / jobs.LOG_NAME).read_text()


def test_stop_ends_a_running_job_within_2_seconds_with_a_checkpoint(store, synthetic_dir,
                                                                   tiny_data):
    runner = JobRunner(store, max_parallel=1)
    run = runner.start(TrainConfig(**LONG), synthetic_dir)
    wait_for(lambda: stats_events(store, run.id), START_TIMEOUT, "the job to train")

    asked = time.monotonic()
    assert runner.stop(run.id).stop_requested
    wait_for(lambda: store.get(run.id).status in FINISHED, 10, "the job to stop",
             interval=0.02)
    took = time.monotonic() - asked

    run = store.get(run.id)
    assert run.status == "stopped", run.message
    assert took < 2.0
    assert "Stopped on request" in run.message
    assert store.events(run.id, kind="done")[-1][1].status == "stopped"
    checkpoint = load_checkpoint(run.checkpoint)
    assert evaluate(checkpoint.model, tiny_data).accuracy == pytest.approx(run.accuracy)


def test_a_killed_job_is_reaped_as_failed_with_its_events_kept(store, synthetic_dir):
    runner = JobRunner(store, max_parallel=1)
    run = runner.start(TrainConfig(**LONG), synthetic_dir)
    wait_for(lambda: len(stats_events(store, run.id)) >= 2, START_TIMEOUT, "the job to train")

    os.kill(run.pid, signal.SIGKILL)
    reported = len(stats_events(store, run.id))
    wait_for(lambda: run.id in runner.reap(), 10, "the dead job to be reaped")

    run = store.get(run.id)
    assert run.status == "failed"
    assert "SIGKILL" in run.message and "events up to then are kept" in run.message
    assert len(stats_events(store, run.id)) >= reported >= 2
    assert store.events(run.id, kind="done") == []
    assert run.checkpoint is None


def test_queued_runs_start_one_after_another_by_themselves(store, synthetic_dir):
    runner = JobRunner(store, max_parallel=1)
    ids = [runner.start(TrainConfig(**{**QUICK, "seed": s}), synthetic_dir).id
           for s in range(3)]
    assert [store.get(i).status for i in ids] == ["running", "queued", "queued"]

    # No tick from here on: each finishing job starts the next one itself.
    runs = []
    for run_id in ids:
        # The ending job claims the next run before it exits, so it leaves the queue at once.
        wait_for(partial(started, store, run_id), 15, f"{run_id} to start")
        runs.append(wait_for(partial(finished, store, run_id), START_TIMEOUT,
                             f"{run_id} to finish", interval=0.1))

    assert [r.status for r in runs] == ["completed"] * 3, [r.message for r in runs]
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert later.started >= earlier.finished  # never two at once
    assert len({r.pid for r in runs}) == 3


def test_max_parallel_is_stored_and_must_be_at_least_1(store):
    assert JobRunner(store).max_parallel == 1
    assert JobRunner(store, max_parallel=3).max_parallel == 3
    assert JobRunner(store).max_parallel == 3  # every process agrees
    with pytest.raises(RunError, match="at least 1"):
        JobRunner(store, max_parallel=0)
    assert JobRunner(store).max_parallel == 3


def test_bad_requests_are_refused_and_change_nothing(store, synthetic_dir):
    runner = JobRunner(store, max_parallel=1)
    finished = store.create(QUICK, str(synthetic_dir), "cli", status="running", pid=1)
    store.finish(finished.id, "completed", "Finished")
    running = store.create(QUICK, str(synthetic_dir), "cli", status="running", pid=os.getpid())
    before = store.list()

    with pytest.raises(RunError, match="no run 'nope'"):
        runner.stop("nope")
    with pytest.raises(RunError, match="already ended"):
        runner.stop(finished.id)
    with pytest.raises(RunError, match="still running"):
        runner.delete(running.id)
    with pytest.raises(RunError):
        runner.delete("nope")
    with pytest.raises(ConfigError) as err:
        runner.start(TrainConfig(**{**QUICK, "lr": -1}), synthetic_dir)
    assert err.value.field == "lr"
    with pytest.raises(DeviceError):
        runner.start(TrainConfig(**{**QUICK, "device": "tpu"}), synthetic_dir)

    assert store.list() == before
    assert not store.stop_requested(finished.id)
    assert store.run_dir(running.id).is_dir()


def test_stopping_a_queued_run_ends_it_at_once(store, synthetic_dir):
    queued = store.create(QUICK, str(synthetic_dir), "dashboard")
    run = JobRunner(store).stop(queued.id)
    assert run.status == "stopped" and "before it started" in run.message
    assert scheduler.tick(store) == []  # nothing left to launch
    JobRunner(store).delete(queued.id)
    assert store.list() == []


def test_reap_fails_runs_whose_process_is_gone(store):
    runner = JobRunner(store)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = store.create(QUICK, "/data", "cli", status="running", pid=gone.pid)
    alive = store.create(QUICK, "/data", "cli", status="running", pid=os.getpid())
    # A pid now used by some other program (not a cifar_core job) means the job is gone.
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        reused = store.create(QUICK, "/data", "cli", status="running", pid=stranger.pid)
        failed = runner.reap()
    finally:
        stranger.kill()
        stranger.wait()

    assert sorted(failed) == sorted([dead.id, reused.id])
    assert store.get(alive.id).status == "running"
    assert store.get(dead.id).status == "failed"
    assert "ended without finishing" in store.get(dead.id).message


def test_reap_fails_a_claimed_run_whose_process_never_reported(store, monkeypatch):
    run = store.create(QUICK, "/data", "dashboard")
    [claimed] = store.claim_queued(1)
    assert claimed.id == run.id and claimed.pid is None
    assert JobRunner(store).reap() == []  # still within its grace period
    monkeypatch.setattr(jobs, "START_GRACE_S", 0.0)
    time.sleep(0.01)
    assert JobRunner(store).reap() == [run.id]
    assert "never started" in store.get(run.id).message


def test_a_job_gets_our_environment_with_its_share_of_the_cores(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setenv("CIFAR_TEST_PASSED_ON", "yes")
    env = job_environment(1, cores=2)
    assert env["CIFAR_TEST_PASSED_ON"] == "yes" and env["PATH"] == os.environ["PATH"]
    # Two cores: a run leaves one to the dashboard and the browser that watch it.
    assert env[THREADS_ENV] == "1"
    # More cores: a lone run is not held to one.
    assert int(job_environment(1, cores=8)[THREADS_ENV]) > 1


@pytest.mark.parametrize("cap", [None, "64"])
def test_runs_side_by_side_never_take_more_threads_than_the_cores(monkeypatch, cap):
    if cap is None:
        monkeypatch.delenv(THREADS_ENV, raising=False)
    else:  # a cap above the machine's cores does not raise a run's share
        monkeypatch.setenv(THREADS_ENV, cap)
    for cores in range(1, 17):
        for side_by_side in range(1, cores + 1):
            threads = int(job_environment(side_by_side, cores=cores)[THREADS_ENV])
            assert threads >= 1
            assert threads * side_by_side <= cores, (cores, side_by_side, threads)
    # More runs than cores: each still gets a thread.
    assert job_environment(3, cores=2)[THREADS_ENV] == "1"


def test_a_lower_thread_cap_already_set_stays(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "1")  # e.g. the dashboard was started with it
    assert job_environment(1, cores=8)[THREADS_ENV] == "1"
    monkeypatch.setenv(THREADS_ENV, "3")
    assert job_environment(1, cores=16)[THREADS_ENV] == "3"
    assert int(job_environment(2, cores=16)[THREADS_ENV]) <= 3

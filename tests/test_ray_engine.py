"""cifar_core.sweeps.ray_engine: sweeps on a real Ray cluster of this machine (`ray start --head` on
the loopback, 2 CPUs), driven by their own driver process as start_sweep launches it: events,
metrics and checkpoints come back to the run store; a stop reaches a remote run; a killed
worker fails its run and the sweep goes on; a killed driver is replaced; the sweep's pruner
stops a run behind the others. Without Ray, the engine names the command that installs it.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.util
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import end_jobs_of, run_cli, wait_for

from cifar_core import scheduler
from cifar_core.data.dataset import OFFICIAL_CLASSES
from cifar_core.processes import pid_alive
from cifar_core.runs import jobs
from cifar_core.runs.jobs import LOG_NAME, JobRunner
from cifar_core.runs.store import ACTIVE, RunStore
from cifar_core.sweeps import ray_engine
from cifar_core.sweeps import smart as smart_search
from cifar_core.sweeps.engine import advance_sweep, launch_driver, start_sweep, stop_early_message
from cifar_core.sweeps.space import Axis, SearchSpace
from cifar_core.sweeps.store import SweepStore, optuna_journal, sweep_file
from cifar_core.training.checkpoint import load_checkpoint
from cifar_core.training.events import EpochEvent

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed (pip install -r requirements-ray.txt)")

TIMEOUT = 120  # a sweep of a few runs, each Ray worker importing torch, on a busy 2-core machine
CLUSTER_CPUS = 2
QUICK = (Axis("batch_size", (20,)), Axis("log_every", (1,)), Axis("device", ("cpu",)))
# Long enough to be still training whenever the test acts on it.
LONG = (Axis("batch_size", (4,)), Axis("log_every", (5,)), Axis("device", ("cpu",)))
# What a local run keeps as its metrics (cifar_core.runs.pipeline.final_metrics): a Ray run keeps
# the same.
METRIC_KEYS = {"accuracy", "per_class", "confusion", "test_images", "images_per_s", "train_s",
               "images_seen", "epochs_done", "classes", "training_step", "cores"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_head():
    """A Ray head node of this machine alone, with token authentication (as README advises),
    started for these tests and ended by its process group (never `ray stop`, which would end
    every cluster of the machine): (its address, its token)."""
    pytest.importorskip("ray")
    token = secrets.token_hex(32)
    ray_bin = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    folder = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths are long
    port = free_port()
    ports = {flag: free_port() for flag in (
        "--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")}
    cmd = [ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
           f"--num-cpus={CLUSTER_CPUS}", "--num-gpus=0", "--include-dashboard=false",
           "--disable-usage-stats", "--block", f"--temp-dir={folder}",
           f"--object-store-memory={200 << 20}", *(f"{k}={v}" for k, v in ports.items())]
    log = open(os.path.join(folder, "head.log"), "wb")  # noqa: SIM115 (the head's, for its life)
    head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
                                 "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    try:
        deadline = time.monotonic() + 60
        while True:
            if head.poll() is not None:
                pytest.fail(f"'ray start --head' ended ({head.returncode}): "
                            + Path(folder, "head.log").read_text(errors="replace")[-2000:])
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                pytest.fail("the Ray head node did not accept connections within 60 s")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", token
    finally:
        for sig, wait in ((signal.SIGTERM, 2), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                head.wait(wait)
                # The group's other processes (raylet, GCS, workers) may outlive `ray start`.
                if sig == signal.SIGKILL or not _group_alive(head.pid):
                    break
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ray_cluster(ray_head, monkeypatch) -> str:
    """The test cluster's address, its token in the environment that sweep drivers inherit
    (as a user would export it before starting the dashboard)."""
    address, token = ray_head
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    return address


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture
def store(tmp_path) -> RunStore:
    store = RunStore(tmp_path / "runs")
    yield store
    # A driver a failing test left running is ended here: only this store's, by pid (Ray then
    # ends its tasks).
    end_jobs_of(store)




def ended(store: RunStore, sweep_id: str, schedule: bool = False):
    if schedule:
        scheduler.tick(store)
    sweep = SweepStore(store).get(sweep_id)
    return sweep if not sweep.is_active else None


def driver_log(store: RunStore, sweep_id: str) -> str:
    with contextlib.suppress(OSError):
        return sweep_file(store, sweep_id, "driver.log").read_text(errors="replace")
    return ""


def worker_pid(store: RunStore, run_id: str) -> int | None:
    """The pid of the Ray worker training a run, once its log says it."""
    with contextlib.suppress(OSError):
        found = re.search(r"Ray worker pid (\d+)",
                          (store.run_dir(run_id) / LOG_NAME).read_text())
        return int(found.group(1)) if found else None
    return None


def first_run(store: RunStore, sweep_id: str):
    runs = SweepStore(store).runs(sweep_id)
    return runs[0] if runs else None


# --- without Ray -------------------------------------------------------------------------------


@pytest.fixture
def ray_missing(monkeypatch):
    """`import ray` fails as where it is not installed."""
    real_import = builtins.__import__

    def refuse_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError("No module named 'ray'", name="ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setattr(builtins, "__import__", refuse_ray)


def test_without_ray_the_engine_names_the_command_that_installs_it(
        ray_missing, capsys, synthetic_dir, tmp_path, in_tmp_and_signals_kept):
    problem = ray_engine.ray_problem()
    assert problem and "pip install -r requirements-ray.txt" in problem

    code, _, err = run_cli(capsys, "sweep", "--data-dir", synthetic_dir, "--runs-dir",
                           tmp_path / "runs", "--engine", "ray", "--lr", "0.01,0.1")
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "pip install -r requirements-ray.txt" in err
    assert SweepStore(RunStore(tmp_path / "runs")).list() == []

    # A driver started where Ray is gone fails its sweep and the runs waiting for it, saying why.
    store = RunStore(tmp_path / "runs")
    sweep = SweepStore(store).create("", SearchSpace(axes=(Axis("lr", (0.01, 0.1)),)),
                                     str(synthetic_dir), "cli", engine="ray")
    queued = SweepStore(store).add_run(sweep, {"lr": 0.01}, 0)
    assert ray_engine.drive(store, sweep.id) == 2
    sweep = SweepStore(store).get(sweep.id)
    assert sweep.status == "failed" and "requirements-ray.txt" in sweep.message
    assert store.get(queued.id).status == "failed"


# --- on a real cluster -------------------------------------------------------------------------


@needs_ray
def test_a_ray_sweep_brings_its_runs_events_metrics_and_checkpoints_home(
        ray_cluster, store, synthetic_dir):
    space = SearchSpace(axes=(Axis("lr", (0.002, 0.02)), Axis("epochs", (2,)), *QUICK))
    sweep = start_sweep(store, space, synthetic_dir, engine="ray", address=ray_cluster)
    assert sweep.engine == "ray" and sweep.pid is not None
    sweep = wait_for(lambda: ended(store, sweep.id), TIMEOUT, "the sweep to end")
    assert sweep.status == "completed", (sweep.message, driver_log(store, sweep.id))
    assert sweep.parallel == CLUSTER_CPUS  # one run per CPU of the cluster
    runs = SweepStore(store).runs(sweep.id)
    assert [r.config["lr"] for r in runs] == [0.002, 0.02]
    for run in runs:
        assert run.status == "completed", run.message
        assert run.pid == sweep.pid  # held by the driver: the job runner reaps it with it
        assert set(run.metrics) == METRIC_KEYS and run.metrics["epochs_done"] == 2
        kinds = [event.kind for _, event in store.events(run.id)]
        assert kinds.count("epoch") == 2 and kinds[-1] == "done" and "stats" in kinds
        saved = load_checkpoint(run.checkpoint)
        assert saved.config["lr"] == run.config["lr"] and saved.metrics == run.metrics
        # Issue 24: the run and its network say which data set and classes they are of.
        assert run.dataset == saved.dataset == sweep.dataset == "cifar10"
        assert run.classes == saved.classes == OFFICIAL_CLASSES
        assert worker_pid(store, run.id) not in (None, os.getpid(), sweep.pid)
    wait_for(lambda: not pid_alive(sweep.pid) or jobs._exit_code(sweep.pid) is not None, 30,
             "the driver to exit")


@needs_ray
def test_stop_reaches_a_remote_run_within_two_seconds(ray_cluster, store, synthetic_dir):
    # (One run of two: a space that varies nothing is refused, issue 29 item 14.)
    space = SearchSpace(axes=(Axis("epochs", (1000, 999)), *LONG), runs=1)
    sweep = start_sweep(store, space, synthetic_dir, engine="ray", address=ray_cluster)
    run = wait_for(lambda: first_run(store, sweep.id), TIMEOUT, "the run")
    wait_for(lambda: store.latest_event(run.id, "stats"), TIMEOUT,
             f"the run to train ({driver_log(store, sweep.id)[-500:]})")
    asked = time.monotonic()
    JobRunner(store).stop(run.id)
    wait_for(lambda: store.latest_event(run.id, "done"), 30, "the run to stop", interval=0.02)
    latency = time.monotonic() - asked
    print(f"stop request to the remote run's stop: {latency:.2f} s")
    assert latency < 5  # 2 s is the aim (about 0.5 s here); slack for a busy machine
    sweep = wait_for(lambda: ended(store, sweep.id), TIMEOUT, "the sweep to end")
    run = store.get(run.id)
    assert run.status == "stopped" and run.message.startswith("Stopped on request")
    assert load_checkpoint(run.checkpoint).metrics == run.metrics  # it keeps its network


@needs_ray
def test_a_killed_worker_fails_its_run_and_the_sweep_goes_on(ray_cluster, store,
                                                             synthetic_dir):
    space = SearchSpace(axes=(Axis("epochs", (1000, 1)), *LONG))
    sweep = start_sweep(store, space, synthetic_dir, engine="ray", address=ray_cluster,
                        parallel=1)
    doomed = wait_for(lambda: first_run(store, sweep.id), TIMEOUT, "the first run")
    pid = wait_for(lambda: worker_pid(store, doomed.id), TIMEOUT, "the run's worker")
    wait_for(lambda: store.latest_event(doomed.id, "stats"), TIMEOUT, "the run to train")
    os.kill(pid, signal.SIGKILL)
    sweep = wait_for(lambda: ended(store, sweep.id), TIMEOUT, "the sweep to end")
    doomed, after = SweepStore(store).runs(sweep.id)
    assert doomed.status == "failed" and doomed.message.startswith(
        "The Ray worker training it died") and "events up to then are kept" in doomed.message
    assert store.events(doomed.id, kind="stats")
    assert after.status == "completed", after.message
    assert sweep.status == "completed" and not store.list(ACTIVE)


@needs_ray
def test_a_killed_driver_is_replaced_and_the_queued_run_still_trains(ray_cluster, store,
                                                                    synthetic_dir):
    space = SearchSpace(axes=(Axis("epochs", (1000, 1)), *LONG))
    sweep = start_sweep(store, space, synthetic_dir, engine="ray", address=ray_cluster,
                        parallel=1)
    orphan = wait_for(lambda: first_run(store, sweep.id), TIMEOUT, "the first run")
    its_worker = wait_for(lambda: worker_pid(store, orphan.id), TIMEOUT, "the run's worker")
    wait_for(lambda: store.latest_event(orphan.id, "stats"), TIMEOUT, "the run to train")
    os.kill(sweep.pid, signal.SIGKILL)
    # Ray ends the dead driver's task: nothing trains on for a run the store calls failed.
    wait_for(lambda: not pid_alive(its_worker), 30, "Ray to end the dead driver's task")
    sweep = wait_for(lambda: ended(store, sweep.id, schedule=True), TIMEOUT,
                     "the sweep to end under a new driver", interval=0.5)
    orphan, queued = SweepStore(store).runs(sweep.id)
    assert orphan.status == "failed" and "SIGKILL" in orphan.message
    assert queued.status == "completed", (queued.message, driver_log(store, sweep.id))
    assert sweep.status == "completed" and not store.list(ACTIVE)


@needs_ray
def test_a_run_behind_the_others_is_pruned_by_the_driver_keeping_its_network(
        ray_cluster, store, synthetic_dir):
    # Long epochs: the stop reaches the task a few minibatches after the judged epoch.
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.002, 0.003)), Axis("epochs", (1000,)),
                              *LONG, Axis("seed", (0,))), prune="median").validate()
    sweeps = SweepStore(store)
    sweep = sweeps.create("judged", space, str(synthetic_dir), "cli", engine="ray",
                          address=ray_cluster, parallel=1)
    smart_search.create_study(optuna_journal(store, sweep.id), sweep.id)
    # Two runs that reached what no real run on this data reaches after one epoch.
    for _ in range(2):
        (done,) = advance_sweep(store, sweeps.get(sweep.id))
        for epoch, accuracy in enumerate([99.0, 99.5, 99.9], start=1):
            store.add_event(done.id, EpochEvent(epoch=epoch, test_accuracy=accuracy,
                                                images_seen=0, elapsed_s=0.0))
            assert stop_early_message(store, store.get(done.id), epoch, accuracy) is None
        store.set_running(done.id, os.getpid())
        store.finish(done.id, "completed", "done", {"accuracy": 100.0})

    launch_driver(store, sweeps.get(sweep.id))  # it makes the third run and trains it
    sweep = wait_for(lambda: ended(store, sweep.id), TIMEOUT, "the sweep to end")
    judged = sweeps.runs(sweep.id)[-1]
    assert judged.status == "pruned", (judged.message, driver_log(store, sweep.id))
    assert judged.message.startswith("Stopped early: behind the others after epoch 1")
    # Stopped within about half a second of its first epoch (of 1000; 0.1 s each here).
    assert len(store.events(judged.id, kind="epoch")) < 50
    assert load_checkpoint(judged.checkpoint).metrics == judged.metrics


@needs_ray
def test_a_run_on_a_ray_worker_caps_its_threads_without_setting_the_environment(monkeypatch):
    """The worker's cap goes to the training itself; os.environ stays as it was (issue 23)."""
    from conftest import in_memory_data

    import cifar_core.training.loop as loop

    monkeypatch.delenv("CIFAR_CORE_THREADS", raising=False)
    seen = []
    real_train = loop.train

    def watching_train(*args, **kwargs):
        seen.append((os.environ.get("CIFAR_CORE_THREADS"), kwargs.get("threads")))
        yield from real_train(*args, **kwargs)

    monkeypatch.setattr(loop, "train", watching_train)
    config = {"epochs": 1, "batch_size": 10, "log_every": 5, "seed": 0, "device": "cpu"}
    records = list(ray_engine.train_on_worker(config, in_memory_data(60, 20), board=None,
                                              run_id="r1", threads=1))
    assert records[-1]["kind"] == "result" and records[-1]["status"] == "completed"
    assert seen == [(None, 1)]


# --- one data set per sweep (issue 24) ----------------------------------------------------------

@needs_ray
def test_a_run_on_a_ray_worker_is_built_and_saved_for_its_data_sets_pictures(tmp_path):
    import torch

    from cifar_core.data.dataset import ImageData

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 1, 16, 16), dtype=torch.uint8, generator=generator)
    labels = torch.arange(12) % 3
    data = ImageData(train_images=images, train_labels=labels, test_images=images[:6],
                     test_labels=labels[:6], classes=("a", "b", "c"), source="in memory",
                     dataset="shapes", title="Shapes")
    config = {"epochs": 1, "batch_size": 6, "log_every": 1, "seed": 0, "device": "cpu",
              "model": "tutorial-wide"}
    records = list(ray_engine.train_on_worker(config, data, board=None, run_id="r1", threads=1))
    assert records[-1]["kind"] == "result" and records[-1]["status"] == "completed", records[-1]
    (tmp_path / "net.pth").write_bytes(records[-1]["checkpoint"])
    saved = load_checkpoint(tmp_path / "net.pth")
    assert (saved.dataset, saved.shape, saved.classes) == ("shapes", (1, 16, 16), ("a", "b", "c"))


@needs_ray
def test_the_driver_loads_the_sweeps_own_data_set(store, synthetic_dir, monkeypatch):
    """A sweep of a data set not registered here fails saying so, before any cluster."""
    monkeypatch.setattr(ray_engine, "OWN_CLUSTER_ENV", {})

    def no_cluster(*_):
        raise ConnectionError("no cluster in this test")

    monkeypatch.setattr(ray_engine, "_connect", no_cluster)
    space = SearchSpace(axes=(Axis("lr", (0.01,)),))
    sweep = SweepStore(store).create("", space, str(synthetic_dir), "cli", engine="ray",
                                     dataset="gone")
    assert ray_engine.drive(store, sweep.id) == 2
    ended = SweepStore(store).get(sweep.id)
    assert ended.status == "failed" and "There is no data set 'gone'" in ended.message

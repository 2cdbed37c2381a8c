"""Sweeps on a Ray cluster: the driver process of a sweep whose engine is 'ray'.

start_sweep launches `python -m cifar_core sweep drive ID` (cifar_core.sweeps.engine.launch_driver);
`drive` is that process. It is the cluster's Ray driver and the only writer of the sweep's
runs: it advances the sweep, claims its queued runs and submits each as a Ray task that asks
for its CPUs (and a GPU for a CUDA run). The task trains with this package's own pieces and
streams its events back, then its metrics and its checkpoint as bytes; the driver writes them to
the run store, which stays on this machine (the cluster's machines need no shared disk).

- Code: shipped to the cluster with the job (Ray's py_modules: once per driver, unpacked once
  per machine), so the other machines need the same Python packages (requirements-ray.txt)
  but not this repository. A cluster the driver starts itself shares this machine's disk, so
  nothing is shipped to it.
- Data: loaded once by the driver from the sweep's data folder and put in Ray's object store
  once; every task reads it from there (each machine fetches it once), never downloading it.
  Ray keeps a worker process for the next task, so only a machine's first runs import torch.
- Stop: every STOP_POLL_S the driver reads the store's stop requests and posts them on a
  StopBoard actor that each task reads as often, so a stop reaches a remote run well inside
  2 s and it ends 'stopped' after its minibatch, keeping its network. Early stopping (the
  sweep's pruner) is judged by the driver on each epoch event and stops a task the same way.
- Failures: a task whose worker process or machine dies is not retried (max_retries=0): its
  run is marked failed, saying so, its events up to then kept, and the sweep goes on. A retry
  would train the run again from its first minibatch, silently doubling its cost; the failure
  in the table lets the user decide. If the driver itself dies, Ray ends its tasks, the job
  runner marks its runs failed (their pid is the driver's) and starts a new driver
  (cifar_core.sweeps.engine.revive_drivers), which goes on with the sweep's queued runs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import re
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from cifar_core.errors import CifarError
from cifar_core.runs.store import Run, RunStore
from cifar_core.sweeps.store import Sweep, SweepStore
from cifar_core.training.events import EVENT_TYPES, event_from_dict

INSTALL_COMMAND = "pip install -r requirements-ray.txt"
# How often the driver reads stop requests and the tasks read the stop board: a stop reaches a
# run in about twice this, plus the minibatch under way.
STOP_POLL_S = 0.2
# How often the driver advances its sweep when no run has ended (the time budget, a stop).
ADVANCE_EVERY_S = 1.0
# CPUs one run asks for; each trains on that many threads, as the local engine's runs side by
# side do on one each (cifar_core.sweeps.engine.default_parallel).
CPUS_PER_RUN_ENV = "CIFAR_RAY_CPUS_PER_RUN"
# What the driver's own cluster (no address given) keeps in its object store besides the data.
OWN_CLUSTER_STORE_SPARE = 128 << 20
WORKER_DIED = "The Ray worker training it died ({why}). Its events up to then are kept."
# A cluster of this machine alone (no address given) must not be reachable from elsewhere. Ray's
# servers (GCS, raylet, object manager, workers) bind to the node's address, and with this
# switch off Ray takes 127.0.0.1 for it, as it does on macOS and Windows: all of them listen on
# the loopback only. Token authentication on top. Ray reads the switch when it is imported, so
# the driver sets these before it imports Ray.
OWN_CLUSTER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
# How long the driver tries to reach a named cluster before it fails the sweep, saying why
# (Ray's own ray.init retries for many minutes).
REACH_TIMEOUT_S = 5.0
CLIENT_PREFIX = "ray://"
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")  # a host's name or IPv4 address
ADDRESS_EXAMPLE = "head-node:6379"


def ray_problem() -> str | None:
    """Why sweeps cannot run on Ray here (Ray is not installed), with the command that fixes
    it; None when they can."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        return (f"Sweeps on a Ray cluster need Ray, which is not installed here ({exc}). "
                f"Install it with: {INSTALL_COMMAND}")
    return None


def address_problem(address: str) -> str | None:
    """What is wrong with a cluster address as written, in words; None when it can be tried.
    Empty is a cluster of this machine alone; 'auto' the one `ray start` began here."""
    address = address.strip()
    if address in ("", "auto"):
        return None
    if address.startswith(CLIENT_PREFIX) and importlib.util.find_spec("grpc") is None:
        # Ray's client (a ray:// address) needs the grpcio package, which plain Ray lacks.
        return (f"An address that starts with {CLIENT_PREFIX} needs Ray's client, which is not "
                f"installed here (pip install \"ray[client]\"). Give the address that 'ray "
                f"start --head' printed instead, e.g. {ADDRESS_EXAMPLE}.")
    if _host_and_port(address) is None:  # not echoed: messages are shown as Markdown
        return (f"The cluster address is not of the form HOST:PORT: write it as, e.g., "
                f"{ADDRESS_EXAMPLE} (the address that 'ray start --head' printed).")
    return None


def unreachable(address: str, timeout_s: float = REACH_TIMEOUT_S) -> str | None:
    """Why the cluster at `address` cannot be used, within `timeout_s` seconds: a badly written
    address, or nothing answering there; None when its port answers (or there is nothing to
    reach: a cluster of this machine alone, or 'auto')."""
    problem = address_problem(address)
    if problem or address.strip() in ("", "auto"):
        return problem
    host, port = _host_and_port(address.strip())
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        why = f"no answer within {timeout_s:g} s" if isinstance(exc, TimeoutError) else \
            (exc.strerror or type(exc).__name__).lower()
        return (f"The Ray cluster at {address.strip()} cannot be reached ({why}). Check "
                "that it runs ('ray status' on its head) and that this machine can reach that "
                "address and port.")
    return None


def _host_and_port(address: str) -> tuple[str, int] | None:
    """(host, port) of HOST:PORT, [IPv6]:PORT or ray://HOST:PORT; None if it is not one."""
    address = address.removeprefix(CLIENT_PREFIX)
    host, _, port = address.rpartition(":")
    host = host.strip("[]") if host.startswith("[") else host
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if ":" in host:  # only an IPv6 address may hold colons
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    elif not _HOST_NAME.fullmatch(host):
        return None
    return host, int(port)


def cpus_per_run() -> int:
    """CPUs (and threads) one run asks for: $CIFAR_RAY_CPUS_PER_RUN, else 1."""
    value = os.environ.get(CPUS_PER_RUN_ENV, "").strip()
    return max(1, int(value)) if value.isdigit() else 1


def wants_gpu(config: dict, cluster_gpus: float) -> bool:
    """Whether a run asks the cluster for a GPU: one set to CUDA does, and so does 'auto' on a
    cluster that has GPUs (else a worker could take a GPU that Ray gave another task)."""
    device = str(config.get("device") or "auto")
    return device.startswith("cuda") or (device == "auto" and cluster_gpus > 0)


def cluster_slots(resources: dict, gpu: bool, cpus: int) -> int:
    """How many runs the cluster trains side by side: its GPUs for GPU runs, else its CPUs
    over the CPUs a run asks for (from 1 to 64, the limit of the sweep's parallel)."""
    count = resources.get("GPU", 0) if gpu else resources.get("CPU", 0) // cpus
    return int(min(64, max(1, count)))


class StopBoard:
    """The runs asked to stop: the driver posts them, each task looks (a Ray actor)."""

    def __init__(self):
        self.stopped: set[str] = set()

    def stop(self, run_id: str) -> None:
        self.stopped.add(run_id)

    def is_stopped(self, run_id: str) -> bool:
        return run_id in self.stopped


def train_on_worker(config: dict, data, board, run_id: str, threads: int, start=None):
    """A run on a cluster worker (the body of the Ray task): yields a 'log' record saying where
    it trains, each training event's dict, then a 'result' record (status, message, metrics
    and the checkpoint's bytes) or an 'error' record for a user error. `start`: the network
    the config's Start from names, read by the driver (sweep_start), for the worker's disk
    has no run store."""
    import ray  # on the worker: imported there in any case

    from cifar_core.runs.pipeline import final_metrics
    from cifar_core.training.config import TrainConfig
    from cifar_core.training.loop import build_model, train
    from cifar_core.training.speed import cpu

    yield {"kind": "log", "message": f"Training on {socket.gethostname()} "
                                     f"({ray.util.get_node_ip_address()}), Ray worker pid "
                                     f"{os.getpid()}, {threads} thread(s)."}
    stop, finished = threading.Event(), threading.Event()
    threading.Thread(target=_watch_board, args=(board, run_id, stop, finished),
                     daemon=True).start()
    try:
        # The run's cores: its training's cap, and this worker's threads for the tests (a
        # worker runs task after task; os.environ is left alone).
        with cpu.settings(threads, onednn=True):
            config = TrainConfig.from_dict(config).with_seed()
            model = build_model(config, len(data.classes), data.shape, start, data.classes)
            done = None
            for event in train(config, data, model, stop, threads=threads):
                yield event.to_dict()
                done = event if event.kind == "done" else done
            result = {"kind": "result", "status": done.status, "message": done.message,
                      "metrics": None, "checkpoint": None}
            if done.status != "diverged":
                metrics = final_metrics(model, data, config, done)
                result.update(metrics=metrics, checkpoint=_checkpoint_bytes(
                    model, config, data, metrics))
        yield result
    except CifarError as exc:
        yield {"kind": "error", "message": str(exc)}
    finally:
        finished.set()


def sweep_start(store: RunStore, sweep: Sweep):
    """The network every run of the sweep starts from (its setting Start from, which a sweep
    keeps the same for all its runs), read here on the driver's machine; None for none.
    ConfigError('start_from', ...) in one sentence if it cannot be read."""
    from cifar_core.runs.start import resolve_start

    return resolve_start(store, sweep.space.fixed.get("start_from"))


def _watch_board(board, run_id: str, stop: threading.Event, finished: threading.Event) -> None:
    import ray

    while not finished.is_set():
        with contextlib.suppress(Exception):  # a slow answer: ask again; a gone driver: Ray
            if ray.get(board.is_stopped.remote(run_id), timeout=10):  # ends this task anyway
                stop.set()
                return
        finished.wait(STOP_POLL_S)


def _checkpoint_bytes(model, config, data, metrics: dict) -> bytes:
    """The checkpoint save_checkpoint writes (with the data set it trained on: `data`'s name,
    class names and shape), as bytes (the worker's disk keeps nothing)."""
    import tempfile

    from cifar_core.training.checkpoint import DEFAULT_NAME, save_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        path = save_checkpoint(Path(folder) / DEFAULT_NAME, model, config.to_dict(),
                               data.classes, metrics, dataset=data.dataset, shape=data.shape)
        return path.read_bytes()


# --- the driver -------------------------------------------------------------------------------


def drive(store: RunStore, sweep_id: str) -> int:
    """Drive a Ray sweep until it has ended and none of its runs trains (the process that
    start_sweep launches); returns the exit status. A sweep that cannot go on (no Ray, its
    data unreadable, the cluster unreachable) is marked failed, saying why, with its queued
    runs."""
    sweeps = SweepStore(store)
    sweep = sweeps.get(sweep_id)
    if not sweep.is_active:
        print(f"Sweep {sweep.id} has already ended ({sweep.status}).", flush=True)
        return 0
    sweeps.set_pid(sweep.id, os.getpid())
    if not sweep.address:
        os.environ.update(OWN_CLUSTER_ENV)  # before Ray is imported (ray_problem imports it)
    problem = ray_problem() or unreachable(sweep.address)
    if problem:
        return _give_up(store, sweep, problem)
    from cifar_core.data.load import load_data

    try:  # the sweep's own data set: every run of it trains on that one
        data = load_data(sweep.dataset, sweep.data_dir,
                         progress=lambda msg: print(msg, flush=True))
    except CifarError as exc:
        return _give_up(store, sweep, f"The sweep's data could not be loaded: {exc}")
    try:
        start = sweep_start(store, sweep)
    except CifarError as exc:
        return _give_up(store, sweep, f"The sweep's network to start from could not be read: "
                                      f"{exc}")
    import ray

    started = time.monotonic()
    try:
        _connect(ray, sweep.address, data)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError ...
        where = f"the Ray cluster at {sweep.address}" if sweep.address else "a Ray cluster here"
        return _give_up(store, sweep, (
            f"Could not connect to {where} ({type(exc).__name__}: {_first_line(exc)}). Start "
            "it with 'ray start --head' on its first machine, or give the address its 'ray "
            "start' printed. A cluster with token authentication also needs RAY_AUTH_MODE=token "
            "and its RAY_AUTH_TOKEN where the dashboard runs."))
    print(f"Connected to Ray in {time.monotonic() - started:.1f} s: "
          f"{ray.cluster_resources()}", flush=True)
    try:
        return _Driver(store, sweep, ray, data, start).run()
    except Exception as exc:  # a bug: say so in the sweep, so no new driver is started for it
        traceback.print_exc()
        return _give_up(store, sweep, f"The sweep's Ray driver crashed: "
                                      f"{type(exc).__name__}: {exc}", exit_code=1)
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()


def _connect(ray, address: str, data) -> None:
    """Join the cluster at `address`, shipping this package with the job; with no address,
    start a cluster of this machine alone (same disk: nothing shipped) whose object store
    holds the data and a little more."""
    if address:
        package = Path(__file__).resolve().parents[1]
        ray.init(address=address, logging_level="WARNING", runtime_env={
            "py_modules": [str(package)], "excludes": ["__pycache__", "*.pyc"]})
        return
    data_bytes = sum(t.numel() * t.element_size() for t in (
        data.train_images, data.train_labels, data.test_images, data.test_labels))
    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
             logging_level="WARNING", _node_ip_address="127.0.0.1",
             object_store_memory=max(100 << 20, 2 * data_bytes + OWN_CLUSTER_STORE_SPARE))
    if not ipaddress.ip_address(ray.util.get_node_ip_address()).is_loopback:
        # Ray was imported before OWN_CLUSTER_ENV was set: its servers listen on every
        # interface. Never go on like that.
        ray.shutdown()
        raise RuntimeError("Ray's own cluster would listen beyond this machine "
                           "(start the sweep again, or give a cluster's address)")


def _give_up(store: RunStore, sweep: Sweep, message: str, exit_code: int = 2) -> int:
    """Mark the sweep failed with `message`, and its runs that this process holds or that
    wait for it."""
    print(message, flush=True)
    for run in SweepStore(store).runs(sweep.id):
        if run.status == "queued" or (run.status == "running" and run.pid == os.getpid()):
            store.finish(run.id, "failed", message)
    SweepStore(store).finish(sweep.id, "failed", message)
    return exit_code


@dataclass
class _Training:
    """One run the driver has submitted, as it follows it."""

    run: Run
    stream: object  # the task's ray.ObjectRefGenerator
    early: str | None = None  # why the sweep's pruner stopped it, once it did
    stop_sent: bool = False
    ended: bool = False


class _Driver:
    """The driver's loop: advance the sweep, submit its runs, pass stops on, take events in."""

    def __init__(self, store: RunStore, sweep: Sweep, ray, data, start=None):
        self.store, self.sweeps, self.sweep_id, self.ray = store, SweepStore(store), sweep.id, ray
        # A parallel the user did not choose (start_sweep stores 0) follows the cluster's size.
        self.auto_parallel = sweep.parallel == 0
        self.cpus = cpus_per_run()
        self.data_ref = ray.put(data)  # once: every task reads it from the object store
        self.start_ref = ray.put(start) if start is not None else None  # the same
        self.classes = tuple(data.classes)  # recorded with each run, as a local run's are
        # On the driver's own machine: a board on a machine that died could stop nothing.
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                              soft=False)
        self.board = ray.remote(num_cpus=0)(StopBoard).options(
            scheduling_strategy=here).remote()
        self.task = ray.remote(train_on_worker)
        self.trainings: dict[str, _Training] = {}

    def run(self) -> int:
        last_advance, changed, last_poll = 0.0, True, 0.0
        while True:
            if changed or time.monotonic() - last_advance >= ADVANCE_EVERY_S:
                self._advance()
                last_advance, changed = time.monotonic(), False
                if not self.sweeps.get(self.sweep_id).is_active and not self.trainings:
                    return 0
            if time.monotonic() - last_poll >= STOP_POLL_S:
                self._pass_stops_on()
                last_poll = time.monotonic()
            if not self.trainings:
                time.sleep(STOP_POLL_S)
                continue
            streams = [t.stream for t in self.trainings.values()]
            ready, _ = self.ray.wait(streams, num_returns=1, timeout=STOP_POLL_S)
            for training in list(self.trainings.values()):
                if training.stream in ready:
                    self._take_next(training)
                if training.ended:
                    del self.trainings[training.run.id]
                    changed = True

    def _advance(self) -> None:
        from cifar_core.sweeps.engine import advance_sweep

        sweep = self.sweeps.get(self.sweep_id)
        resources = self.ray.cluster_resources()
        if self.auto_parallel and sweep.is_active:
            slots = cluster_slots(resources, wants_gpu(sweep.space.fixed, resources.get(
                "GPU", 0)), self.cpus)
            if slots != sweep.parallel:
                self.sweeps.set_parallel(sweep.id, slots)
                sweep = self.sweeps.get(sweep.id)
        advance_sweep(self.store, sweep)
        for run in self.sweeps.claim_queued(self.sweep_id, os.getpid()):
            self._submit(run, resources)

    def _submit(self, run: Run, resources: dict) -> None:
        gpus = resources.get("GPU", 0)
        gpu = wants_gpu(run.config, gpus)
        if gpu and not gpus:
            self._finish(run, "failed", f"The run asks for a GPU (device "
                                        f"{run.config.get('device')}) but the Ray cluster "
                                        "has none.")
            return
        self.store.record_classes(run.id, self.classes)
        stream = self.task.options(num_cpus=self.cpus, num_gpus=1 if gpu else 0,
                                   max_retries=0, name=f"cifar run {run.id}").remote(
            run.config, self.data_ref, self.board, run.id, self.cpus, self.start_ref)
        self.trainings[run.id] = _Training(run, stream)
        self._log(run, f"Submitted to the Ray cluster ({self.cpus} CPU"
                       f"{', 1 GPU' if gpu else ''}).")

    def _pass_stops_on(self) -> None:
        """Post on the board the runs the store asks to stop (or no longer has running)."""
        if not self.trainings:
            return
        running = {r.id: r for r in self.store.list("running", sweep_id=self.sweep_id)}
        for training in self.trainings.values():
            run = running.get(training.run.id)
            if not training.stop_sent and (run is None or run.stop_requested):
                self._send_stop(training)

    def _send_stop(self, training: _Training) -> None:
        training.stop_sent = True
        self.board.stop.remote(training.run.id)

    def _take_next(self, training: _Training) -> None:
        """Take the task's next record (or its end, or its failure) into the store."""
        run, errors = training.run, self.ray.exceptions
        try:
            record = self.ray.get(next(training.stream))
        except StopIteration:
            record = _error("Its Ray task ended without a result.")
        except errors.RayTaskError as exc:  # raised by the task's own code
            cause = exc.cause if exc.cause is not None else exc
            record = _error(f"Training crashed on the Ray cluster: {type(cause).__name__}: "
                            f"{cause}")
        except errors.RuntimeEnvSetupError as exc:
            record = _error(f"The Ray cluster could not set up this package for it: "
                            f"{_first_line(exc)}")
        except errors.RayError as exc:  # its worker or its machine died, its output was lost
            record = _error(WORKER_DIED.format(why=f"{type(exc).__name__}: "
                                                   f"{_first_line(exc)}"))
        kind = record.get("kind")
        if kind == "log":
            self._log(run, record["message"])
        elif kind in EVENT_TYPES:
            self.store.add_event(run.id, record)
            if kind == "epoch" and training.early is None and not training.stop_sent:
                self._judge(training, record)
        elif kind == "result":
            training.ended = True
            self._record_result(training, record)
        elif kind == "error":
            training.ended = True
            self._finish(run, "failed", record["message"])

    def _judge(self, training: _Training, record: dict) -> None:
        """Ask the sweep's pruner about the run after an epoch; stop it if it gives up on it.
        A pruner that cannot be asked (its study unreadable) lets the run go on, and the
        driver's log says why."""
        from cifar_core.sweeps.engine import stop_early_message

        event = event_from_dict(record)
        try:
            training.early = stop_early_message(self.store, training.run, event.epoch,
                                                event.test_accuracy)
        except Exception as exc:  # the training matters more than the judging
            self._log(training.run, f"Early stopping could not judge this run "
                                    f"({type(exc).__name__}: {exc}).")
        if training.early:
            self._send_stop(training)

    def _record_result(self, training: _Training, record: dict) -> None:
        from cifar_core.training.checkpoint import DEFAULT_NAME

        run, checkpoint = training.run, None
        status, message = record["status"], record["message"]
        if record["checkpoint"] is not None:
            path = self.store.run_dir(run.id) / DEFAULT_NAME
            partial = path.with_name(f".{path.name}.tmp{os.getpid()}")
            try:
                partial.write_bytes(record["checkpoint"])
                os.replace(partial, path)
                checkpoint = str(path)
            except OSError as exc:
                self._finish(run, "failed", f"The run's folder could not hold its network "
                                            f"({exc.strerror or exc}): {path}.",
                             record["metrics"])
                return
        if training.early and status == "stopped":
            status, message = "pruned", training.early
        self._finish(run, status, message, record["metrics"], checkpoint)

    def _finish(self, run: Run, status: str, message: str, metrics: dict | None = None,
                checkpoint: str | None = None) -> None:
        """Record how a run ended, in the store and its log."""
        self.store.finish(run.id, status, message, metrics, checkpoint)
        self._log(run, f"Ended {status}: {message}")

    def _log(self, run: Run, message: str) -> None:
        """A line in the run's log (as a local run's process writes) and the driver's."""
        from cifar_core.runs.jobs import LOG_NAME

        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(f"run {run.id}: {line}", flush=True)
        with contextlib.suppress(OSError), open(self.store.run_dir(run.id) / LOG_NAME, "a") as f:
            f.write(line + "\n")


def _error(message: str) -> dict:
    """The record of a task that ended in failure."""
    return {"kind": "error", "message": message}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


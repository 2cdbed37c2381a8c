"""Background training: each run is its own OS process (the CLI entry) writing to the run store.

A job outlives the web server's reruns and restarts, and does not share its interpreter lock.
Stopping is a flag in the store that the job polls; queued runs are started by whoever frees a
slot (the finishing job itself, or any later call to `schedule`), so they start with no browser
open. A job that dies without finishing is found by `reap` and marked failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from cifar_core.checkpoint import DEFAULT_NAME, save_checkpoint
from cifar_core.data import DOWNLOAD_LOG, DOWNLOAD_MARKER, default_data_dir, load_cifar10
from cifar_core.errors import CifarError, RunError
from cifar_core.evaluate import evaluate
from cifar_core.model import resolve_device
from cifar_core.procs import command_line, pid_alive
from cifar_core.runs import FINISHED, Run, RunStore
from cifar_core.runtime import THREADS_ENV, thread_limit
from cifar_core.train import TrainConfig, build_model, train

LOG_NAME = "log.txt"
# How often a job looks for a stop request: well inside the 2 s a stop may take.
STOP_POLL_S = 0.2
# A claimed run whose process has not reported its pid by then is taken as failed to start.
START_GRACE_S = 60.0


def job_environment(max_parallel: int, cores: int | None = None) -> dict[str, str]:
    """The environment of a training process: ours, with the cores shared out between the runs
    that may go side by side, so that they do not fight over them (CIFAR_CORE_THREADS; a cap
    already set for the dashboard stays if it is lower). On a machine with two cores one of
    them is left to the dashboard and the browser that watch the run: a run that took both
    (minibatches in two halves, cifar_core.halves) trained about 25 % slower from the Train page
    than one on one core, as the page's redraws kept taking the second core back
    (bench/RESULTS.md)."""
    cores = cores or os.cpu_count() or 1
    usable = cores - 1 if cores == 2 else cores
    share = max(1, usable // max(1, max_parallel))
    return {**os.environ, THREADS_ENV: str(min(share, thread_limit() or share))}


class JobRunner:
    """Starts, stops and watches background runs in one run store."""

    def __init__(self, store: RunStore, max_parallel: int | None = None):
        self.store = store
        if max_parallel is not None:
            if max_parallel < 1:
                raise RunError("max_parallel must be at least 1.")
            store.set_setting("max_parallel", str(max_parallel))

    @property
    def max_parallel(self) -> int:
        """How many runs may train at once (stored, so every process agrees); default 1."""
        try:
            return max(1, int(self.store.get_setting("max_parallel", "1")))
        except ValueError:
            return 1

    def start(self, config: TrainConfig, data_dir: Path | str | None = None,
              origin: str = "dashboard") -> Run:
        """Queue a run and start it at once if a slot is free. Refuses bad configs up front."""
        config = config.with_seed()
        resolve_device(config.device)  # an unavailable device is refused now, not in the job
        data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        run = self.store.create(config.to_dict(), str(data_dir.resolve()), origin)
        self.schedule()
        return self.store.get(run.id)

    def schedule(self) -> list[Run]:
        """Mark dead jobs failed, then launch queued runs into free slots; returns the launched."""
        self.reap()
        launched = []
        for run in self.store.claim_queued(self.max_parallel):
            self._launch(run)
            launched.append(run)
        return launched

    def _launch(self, run: Run) -> None:
        log = open(self.store.run_dir(run.id) / LOG_NAME, "ab")  # noqa: SIM115 (child keeps it)
        cmd = [sys.executable, "-m", "cifar_core", "train", "--run-id", run.id,
               "--runs-dir", str(self.store.root.resolve()), "--data-dir", run.data_dir]
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    cwd=str(Path(__file__).resolve().parent.parent),
                                    env=job_environment(self.max_parallel))
        except OSError as exc:
            self.store.finish(run.id, "failed", f"The training process could not start: {exc}")
            return
        finally:
            log.close()
        _children[proc.pid] = proc
        _exit_codes.pop(proc.pid, None)  # a reused pid: forget the old process
        self.store.set_running(run.id, proc.pid)

    def stop(self, run_id: str) -> Run:
        """Ask a run to stop: a queued one ends at once, a running one after its minibatch."""
        run = self.store.get(run_id)
        if run.status in FINISHED:
            raise RunError(f"Run {run_id} has already ended ({run.status}); nothing to stop.")
        self.store.request_stop(run_id)
        if run.status == "queued":
            self.store.finish(run_id, "stopped", "Stopped before it started.")
        return self.store.get(run_id)

    def delete(self, run_id: str) -> None:
        """Delete a run that is not running (a queued one is cancelled)."""
        self.store.delete(run_id)

    def reap(self) -> list[str]:
        """Mark runs whose process is gone as failed; returns their ids."""
        _collect_exited_children()
        failed = []
        for run in self.store.list("running"):
            if run.pid is None:
                if time.time() - (run.started or run.created) > START_GRACE_S:
                    self.store.finish(run.id, "failed", "The training process never started.")
                    failed.append(run.id)
                continue
            if not _process_alive(run.pid, run.id):
                self.store.finish(run.id, "failed", self._death_reason(run))
                failed.append(run.id)
        return failed

    def _death_reason(self, run: Run) -> str:
        code = _exit_code(run.pid)
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            why = (" (out of memory, or killed from outside)" if name == "SIGKILL" else "")
            return (f"The training process was killed by {name}{why}. "
                    "Its events up to then are kept.")
        tail = _last_line(self.store.run_dir(run.id) / LOG_NAME)
        detail = f" Last output: {tail}" if tail else ""
        return (f"The training process (pid {run.pid}) ended without finishing "
                f"(exit code {code if code is not None else 'unknown'}).{detail}")

    def wait(self, run_id: str, timeout: float = 60.0, poll: float = 0.25) -> Run:
        """Block until the run has ended (for the CLI and tests)."""
        deadline = time.monotonic() + timeout
        while True:
            self.schedule()
            run = self.store.get(run_id)
            if run.status in FINISHED or time.monotonic() > deadline:
                return run
            time.sleep(poll)


def start_data_download(data_dir: Path | str | None = None) -> int:
    """Download and decode CIFAR-10 in a background process (`python -m cifar_core data`);
    follow it with data.data_status(). Returns the process id."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / DOWNLOAD_LOG, "wb") as log:  # a fresh log: only this try's errors
        proc = subprocess.Popen(
            [sys.executable, "-m", "cifar_core", "data", "--data-dir", str(data_dir.resolve())],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=str(Path(__file__).resolve().parent.parent))
    _children[proc.pid] = proc
    _exit_codes.pop(proc.pid, None)  # a reused pid: forget the old process
    # Written here too (the child rewrites it), so the status says "downloading" at once.
    (data_dir / DOWNLOAD_MARKER).write_text(str(proc.pid))
    return proc.pid


# Popen objects of the processes this process launched and has not yet seen exit; and the exit
# codes of those that have (for the failure reason), so that no finished job stays a zombie.
_children: dict[int, subprocess.Popen] = {}
_exit_codes: dict[int, int] = {}


def _collect_exited_children() -> None:
    for pid, proc in list(_children.items()):
        code = proc.poll()
        if code is not None:
            _exit_codes[pid] = code
            del _children[pid]


def _exit_code(pid: int) -> int | None:
    _collect_exited_children()
    return _exit_codes.get(pid)


def _process_alive(pid: int, run_id: str) -> bool:
    """Is the job for run_id still running as pid? Guards against a reused pid and zombies."""
    _collect_exited_children()
    if pid in _exit_codes:
        return False
    if pid in _children:
        return True
    if not pid_alive(pid):
        return False
    cmdline = command_line(pid)
    # A reused pid belongs to some other program: then the job is gone.
    return cmdline is None or pid == os.getpid() or run_id in cmdline or "cifar_core" in cmdline


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def execute_run(store: RunStore, run_id: str, on_event=lambda event: None,
                stop: threading.Event | None = None) -> Run:
    """Train one stored run in this process: events go to the store (and to on_event), then
    evaluate, save the checkpoint and record how it ended. Never raises for user errors."""
    stop = stop or threading.Event()
    finished = threading.Event()
    if not store.set_running(run_id, os.getpid()):
        return store.get(run_id)  # ended before this process got going (stopped, given up)
    run = store.get(run_id)
    watcher = threading.Thread(target=_forward_stop, args=(store, run_id, stop, finished),
                               daemon=True)
    watcher.start()
    try:
        config = TrainConfig.from_dict(run.config)
        data = load_cifar10(run.data_dir, progress=lambda msg: on_event({"kind": "log",
                                                                           "message": msg}))
        model = build_model(config, len(data.classes))
        done = None
        for event in train(config, data, model, stop):
            record = event.to_dict()
            store.add_event(run_id, record)
            on_event(record)
            done = event if event.kind == "done" else done
        metrics, checkpoint = None, None
        if done.status != "diverged":
            evaluation = evaluate(model, data, resolve_device(config.device))
            metrics = {**evaluation.metrics(), "images_per_s": done.images_per_s,
                       "train_s": done.train_s, "images_seen": done.images_seen,
                       "epochs_done": done.epochs_done, "classes": list(data.classes)}
            checkpoint = str(save_checkpoint(store.run_dir(run_id) / DEFAULT_NAME, model,
                                             config.to_dict(), data.classes, metrics))
        store.finish(run_id, done.status, done.message, metrics, checkpoint)
    except CifarError as exc:
        store.finish(run_id, "failed", str(exc))
    except Exception as exc:  # an unexpected bug: keep the run, say what broke
        store.finish(run_id, "failed", f"Training crashed: {type(exc).__name__}: {exc}")
        raise
    finally:
        finished.set()
        with contextlib.suppress(Exception):
            JobRunner(store).schedule()  # free slot: start the next queued run
    return store.get(run_id)


def _forward_stop(store: RunStore, run_id: str, stop: threading.Event,
                  finished: threading.Event) -> None:
    while not finished.is_set() and not stop.is_set():
        try:
            if store.stop_requested(run_id):
                stop.set()
                return
        except Exception:
            pass  # a busy database must not kill the job; try again
        finished.wait(STOP_POLL_S)

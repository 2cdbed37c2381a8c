"""Background training: each run is its own OS process (the CLI entry) writing to the run store.

A job outlives the web server's reruns and restarts, and does not share its interpreter lock.
Stopping is a flag in the store that the job polls; queued runs are started by
cifar_core.scheduler's tick (in the job that frees a slot, or the dashboard's heartbeat), so
they start with no browser open. A job that dies without finishing is found by `reap` and
marked failed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cifar_core.data.dataset import default_data_dir
from cifar_core.data.registry import DEFAULT_DATASET, dataset_spec
from cifar_core.errors import RunError
from cifar_core.processes import command_line, pid_alive
from cifar_core.runs.store import FINISHED, Run, RunStore
from cifar_core.training.config import TrainConfig
from cifar_core.training.devices import resolve_device
from cifar_core.training.speed import threads_for_background_runs
from cifar_core.training.speed.cpu import THREADS_ENV

LOG_NAME = "log.txt"
# A claimed run whose process has not reported its pid by then is taken as failed to start.
START_GRACE_S = 60.0


def job_environment(max_parallel: int, cores: int | None = None) -> dict[str, str]:
    """The environment of a training process: ours, with CIFAR_CORE_THREADS set as
    cifar_core.training.speed shares the cores out between runs side by side."""
    threads = threads_for_background_runs(max_parallel, cores)
    return {**os.environ, THREADS_ENV: str(threads)}


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
        """How many runs may train at once: the stored setting (so every process agrees;
        default 1), or more while a sweep on this machine runs more side by side."""
        try:
            stored = max(1, int(self.store.get_setting("max_parallel", "1")))
        except ValueError:
            stored = 1
        return max(stored, self.store.sweep_parallel())

    def start(self, config: TrainConfig, data_dir: Path | str | None = None,
              origin: str = "dashboard", dataset: str = DEFAULT_DATASET) -> Run:
        """Queue a run on the registered data set `dataset` and start it at once if a slot is
        free. Refuses bad configs and unknown data sets up front."""
        config = config.with_seed()
        dataset_spec(dataset)  # an unknown data set is refused now, not in the job
        resolve_device(config.device)  # an unavailable device is refused now, not in the job
        data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        run = self.store.create(config.to_dict(), str(data_dir.resolve()), origin,
                                dataset=dataset)
        self.launch_queued()
        return self.store.get(run.id)

    def launch_queued(self) -> list[Run]:
        """Mark dead jobs failed, then launch queued runs into the free slots; returns the
        launched. When, and which sweeps make runs first, is cifar_core.scheduler's (its tick
        calls this)."""
        if self.store.read_only:
            return []
        self.reap()
        launched = []
        for run in self.store.claim_queued(self.max_parallel):
            self._launch(run)
            launched.append(run)
        return launched

    def _launch(self, run: Run) -> None:
        try:
            log = open(self.store.run_dir(run.id) / LOG_NAME, "ab")  # noqa: SIM115 (child keeps it)
        except OSError as exc:  # a run that cannot write its folder could not save either
            self.store.finish(run.id, "failed", f"The run's folder cannot be written "
                              f"({exc.strerror or exc}): {self.store.run_dir(run.id)}.")
            return
        cmd = [sys.executable, "-m", "cifar_core", "train", "--run-id", run.id,
               "--runs-dir", str(self.store.root.resolve()), "--data-dir", run.data_dir]
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    cwd=str(Path(__file__).resolve().parents[2]),
                                    env=job_environment(self.max_parallel))
        except OSError as exc:
            self.store.finish(run.id, "failed", f"The training process could not start: {exc}")
            return
        finally:
            log.close()
        remember_child(proc)  # (a reused pid: the old process is forgotten)
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
        if self.store.read_only:
            return []
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


# Popen objects of the processes this process launched and has not yet seen exit; and the exit
# codes of those that have (for the failure reason), so that no finished job stays a zombie.
_children: dict[int, subprocess.Popen] = {}
_exit_codes: dict[int, int] = {}


def remember_child(proc: subprocess.Popen) -> None:
    """Watch a process this process started (a sweep's driver) so that it is waited for."""
    _children[proc.pid] = proc
    _exit_codes.pop(proc.pid, None)


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

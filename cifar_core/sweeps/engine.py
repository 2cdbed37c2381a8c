"""Sweeps: many runs over a search space, started, advanced, judged and stopped together.

A sweep makes its runs as it goes, at most `parallel` of them queued or running at a time:
grid and random take the next settings of their list, smart asks Optuna (sweeps.smart). On
this machine (the local engine) the job runner trains them like any other run, and every tick
of cifar_core.scheduler first advances the sweeps (`advance`): so a sweep goes on with no
browser open and after a server restart, as its queued runs do. A sweep on a Ray cluster
is advanced by its own driver process instead (cifar_core.sweeps.ray_engine).
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from cifar_core.data.registry import dataset_spec
from cifar_core.errors import CifarError, DeviceError, RunError, StoreError
from cifar_core.processes import pid_alive
from cifar_core.runs.jobs import JobRunner, remember_child
from cifar_core.runs.store import ACTIVE, SAVED, Run, RunStore
from cifar_core.sweeps import smart
from cifar_core.sweeps.space import SearchSpace, SweepError, seed_problem
from cifar_core.sweeps.store import Sweep, SweepStore, optuna_journal, sweep_file
from cifar_core.training.devices import resolve_device
from cifar_core.training.models import MODELS, model_spec

# How long a process waits for a sweep's lock before leaving that sweep to a later tick: a
# process stopped or hung while advancing it must not freeze every page, command and job.
LOCK_WAIT_S = 2.0

# Per process: how many ended runs each sweep's study was last told about. Telling it again
# reads its journal for nothing, and advance_sweep runs on every scheduler tick (the dashboard's
# heartbeat, every 2 s).
_ended_told: dict[str, int] = {}


def default_parallel(space: SearchSpace, cores: int | None = None) -> int:
    """How many of a sweep's runs train side by side on this machine by default: one per core
    on a CPU, each on one thread (small networks use one core poorly: bench/RESULTS.md,
    'Sweeps'); one at a time on a GPU."""
    with contextlib.suppress(Exception):
        if resolve_device(space.fixed.get("device", "auto")).type == "cuda":
            return 1
    return max(1, cores or os.cpu_count() or 1)


def start_sweep(store: RunStore, space: SearchSpace, data_dir: Path | str, name: str = "",
                origin: str = "cli", engine: str = "local", address: str = "",
                parallel: int | None = None, dataset: str = "cifar10") -> Sweep:
    """Check the space, record the sweep (every run of it on the registered data set
    `dataset`) and start its first runs. Unless the space sets the
    seed, every run of the sweep gets the same one (drawn now), so that runs differ only in
    the settings the sweep varies."""
    # An unknown data set (neither built in nor recorded in the data folder) is refused here.
    shape = dataset_spec(dataset, data_dir).shape
    space = space.validate()
    check_shapes(space, shape)
    if space.axis("seed") is None and space.base.get("seed") is None:
        # (low enough that the last repeat's seed is still a seed)
        space = replace(space, base={**space.base,
                                     "seed": random.randrange(2**31 - space.repeats + 1)})
    if engine == "local":
        check_devices(space)  # refused now, not in every run
    if parallel is not None and (isinstance(parallel, bool) or not isinstance(parallel, int)
                                 or not 1 <= parallel <= 64):
        raise SweepError("parallel", f"Runs side by side must be from 1 to 64 (got {parallel!r}).")
    sweeps = SweepStore(store)
    # A Ray sweep given no number follows its cluster's size (0: the driver decides).
    chosen = parallel or (0 if engine == "ray" else default_parallel(space))
    sweep = sweeps.create(name, space, str(Path(data_dir).resolve()), origin, engine, address,
                          chosen, dataset)
    if smart.uses_optuna(space):
        smart.create_study(optuna_journal(store, sweep.id), sweep.id)
    if engine == "local":  # its first runs start at once (the scheduler's ticks do the rest)
        advance_sweep(store, sweeps.get(sweep.id))
        JobRunner(store).launch_queued()
    else:
        launch_driver(store, sweep)
    return sweeps.get(sweep.id)


def check_shapes(space: SearchSpace, shape: tuple[int, int, int]) -> None:
    """SweepError naming the first network of the space (fixed, or in its list) that cannot
    take pictures of `shape` (the sweep's data set's)."""
    axis = space.axis("model")
    models = axis.points() if axis is not None and axis.kind != "range" else ()
    for model in (*models, space.fixed.get("model")):
        problem = model_spec(model).shape_problem(shape) if model in MODELS else None
        if problem:
            raise SweepError("model", problem)


def check_devices(space: SearchSpace) -> None:
    """SweepError naming the first device of the space (fixed, or in its list) that this
    machine does not have."""
    axis = space.axis("device")
    wanted = axis.points() if axis is not None and axis.kind != "range" else ()
    for device in (*wanted, space.fixed.get("device", "auto")):
        try:
            resolve_device(device)
        except DeviceError as exc:
            raise SweepError("device", f"Device: {exc} Take {device!r} out of the sweep's "
                                       "devices, or run the sweep where it is.") from None


def advance(store: RunStore) -> list[Run]:
    """Advance every running sweep of the local engine (the job runner calls this before it
    starts queued runs); returns the runs made."""
    made = []
    for sweep in SweepStore(store).list("running"):
        if sweep.engine == "local":
            made += advance_sweep(store, sweep)
    return made


def advance_sweep(store: RunStore, sweep: Sweep) -> list[Run]:
    """One sweep's next step: tell Optuna how runs ended, stop it if asked, make runs up to
    `parallel` queued or running (not after its time budget), and record its end once nothing
    is left to do. Returns the runs made. Safe to call from several processes at once: one
    advances the sweep, another that cannot take its lock within LOCK_WAIT_S leaves it to a
    later call. Never raises for this sweep's own trouble (a space an older version let in,
    a damaged study, a bug): the sweep ends as failed, saying why, and the caller goes on with
    the others. (A run store that cannot be used is everyone's trouble: StoreError.)"""
    with _sweep_lock(store, sweep.id) as taken:
        if not taken:
            return []
        try:
            return _advance_locked(store, sweep.id)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 (one sweep's trouble must not stop the others)
            why = str(exc) if isinstance(exc, CifarError) else f"{type(exc).__name__}: {exc}"
            fail_sweep(store, sweep.id, f"The sweep could not go on: {why.strip() or '?'}")
            return []


def fail_sweep(store: RunStore, sweep_id: str, why: str) -> None:
    """End a sweep as failed, saying why: its queued runs end unstarted, running ones finish
    (keeping what they learn)."""
    sweeps = SweepStore(store)
    runs = sweeps.runs(sweep_id)
    _stop_runs(store, [r for r in runs if r.status == "queued"])
    ending = why if why.endswith(".") else why + "."
    sweeps.finish(sweep_id, "failed", f"{ending} {summary(sweeps.runs(sweep_id))}")


def _advance_locked(store: RunStore, sweep_id: str) -> list[Run]:
    sweeps, made = SweepStore(store), []
    sweep = sweeps.get(sweep_id)
    if not sweep.is_active:
        return []
    # A seed an older version let in (1.5) would break every draw. (Not the checks added since
    # that the sweep's runs can live with, e.g. a list's length: it goes on.)
    if seed_problem(sweep.space):
        raise SweepError("seed", seed_problem(sweep.space))
    runs = sweeps.runs(sweep.id)
    ended = sum(not r.is_active for r in runs)
    if smart.uses_optuna(sweep.space) and _ended_told.get(sweep.id) != ended:
        smart.tell(optuna_journal(store, sweep.id), sweep.id, sweep.space, runs)
        _ended_told[sweep.id] = ended
    active = [r for r in runs if r.status in ACTIVE]
    if sweep.stop_requested:
        _stop_runs(store, active)
        if not any(r.status in ACTIVE for r in sweeps.runs(sweep.id)):
            sweeps.finish(sweep.id, "stopped", "Stopped on request. " + summary(sweeps.runs(
                sweep.id)))
        return []
    planned = sweep.space.size()
    # Runs made so far, also those deleted since: a deleted run's trial number stays taken.
    count = max(len(runs), 1 + max((r.trial for r in runs if r.trial is not None), default=-1))
    out_of_time = sweep.deadline is not None and time.time() >= sweep.deadline
    while len(active) < sweep.parallel and count < planned and not out_of_time:
        run = _make_run(store, sweep, count)
        if run is None:
            break
        count = max(count + 1, 1 + (run.trial if run.trial is not None else -1))
        runs.append(run)
        active.append(run)
        made.append(run)
    if not active and (count >= planned or out_of_time):
        why = (f"Its {sweep.space.minutes:g}-minute budget was spent after {len(runs)} of "
               f"{planned} runs. " if out_of_time and count < planned else "")
        sweeps.finish(sweep.id, "completed", why + summary(runs))
    return made


def _make_run(store: RunStore, sweep: Sweep, index: int) -> Run | None:
    """The sweep's next run, queued: the index-th of a grid or random list, or the smart
    strategy's next trial. With repeats, the smart strategy asks Optuna for a setting at its
    first repeat; the others take that run's values (each its own trial of them, so the
    study hears every seed's accuracy) and their own seeds."""
    space = sweep.space
    fixed = space.fixed
    if space.strategy == "smart":
        first, repeat = index - index % space.repeats, index % space.repeats
        # (trial numbers follow the runs made: each run asks one trial, one at a time)
        earlier = next((r for r in SweepStore(store).runs(sweep.id) if r.trial == first),
                       None) if repeat else None
        given = ({a.name: earlier.settings.get(a.name) for a in space.varied}
                 if earlier is not None else None)  # (its first repeat deleted: a new ask)
        number, params = smart.ask(optuna_journal(store, sweep.id), sweep.id, space,
                                   fixed_params=given)
        config = space.repeated({**fixed, **params}, repeat)
    else:
        config = space.run_config(index)
        number = index
        if smart.uses_optuna(space):  # early stopping: each run is a trial too
            params = {a.name: config[a.name] for a in space.varied}
            number, _ = smart.ask(optuna_journal(store, sweep.id), sweep.id, space,
                                         fixed_params=params)
    return SweepStore(store).add_run(sweep, config, number)


def _stop_runs(store: RunStore, runs: list[Run]) -> None:
    runner = JobRunner(store)
    for run in runs:
        with contextlib.suppress(RunError):
            runner.stop(run.id)


def stop_sweep(store: RunStore, sweep_id: str) -> Sweep:
    """Stop a whole sweep: no run starts any more, queued ones end at once, running ones after
    their minibatch (keeping what they learned)."""
    sweeps = SweepStore(store)
    sweep = sweeps.get(sweep_id)
    if not sweep.is_active:
        raise RunError(f"Sweep {sweep_id} has already ended ({sweep.status}); nothing to stop.")
    sweeps.request_stop(sweep_id)
    _stop_runs(store, [r for r in sweeps.runs(sweep_id) if r.status in ACTIVE])
    if sweep.engine == "local":
        advance_sweep(store, sweeps.get(sweep_id))
    return sweeps.get(sweep_id)


def delete_sweep(store: RunStore, sweep_id: str) -> None:
    """Delete a sweep that has ended, with all its runs and their files."""
    SweepStore(store).delete(sweep_id)


def stop_early_message(store: RunStore, run: Run, epoch: int, accuracy: float) -> str | None:
    """For a run of a sweep with early stopping: report its accuracy after an epoch and say
    why it stops early if its sweep's pruner finds it hopeless (else None). None for other
    runs."""
    if run.sweep_id is None or run.trial is None:
        return None
    try:
        sweep = SweepStore(store).get(run.sweep_id)
    except RunError:
        return None
    if sweep.space.prune == "none":
        return None
    return smart.stop_early_message(optuna_journal(store, sweep.id), sweep.id,
                                    sweep.space, run.trial, epoch, accuracy)


def judge(store: RunStore):
    """The early-stopping judge a run's pipeline asks after each epoch
    (cifar_core.runs.pipeline.execute_run): its sweep's pruner, through stop_early_message."""
    return lambda run, event: stop_early_message(store, run, event.epoch, event.test_accuracy)


def best_run(runs: list[Run]) -> Run | None:
    """The run with the highest test accuracy among those that finished their training (a
    run stopped early or by hand only if none did)."""
    for statuses in (("completed",), SAVED):
        done = [r for r in runs if r.status in statuses and r.accuracy is not None]
        if done:
            return max(done, key=lambda r: (r.accuracy, -r.created))
    return None


def summary(runs: list[Run]) -> str:
    """How the sweep's runs ended and the best of them, in a sentence."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    ended = ", ".join(f"{n} {status}" for status, n in counts.items())
    best = best_run(runs)
    tail = f" Best: run {best.id}, {best.accuracy:.1f} %." if best else ""
    return f"{len(runs)} run{'s' * (len(runs) != 1)} ({ended or 'none'}).{tail}"


@contextlib.contextmanager
def _sweep_lock(store: RunStore, sweep_id: str, wait_s: float = LOCK_WAIT_S) -> Iterator[bool]:
    """One process at a time advances a sweep (the web server and a finishing job may try
    together): an exclusive lock on a file beside the run store. Gives False when another
    process keeps it past wait_s (the system frees the lock of a process that has ended)."""
    try:
        import fcntl
    except ImportError:  # not on this system: the store's trial numbers still keep runs unique
        yield True
        return
    path = sweep_file(store, sweep_id, "lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")  # noqa: SIM115 (held for the block)
    except OSError:  # a read-only folder: nothing will be written anyway
        yield True
        return
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        yield True
    finally:
        handle.close()


def launch_driver(store: RunStore, sweep: Sweep) -> int | None:
    """Start the process that drives a sweep on a Ray cluster (cifar_core.sweeps.ray_engine), its
    output in the sweep's log; returns its pid."""
    log_file = sweep_file(store, sweep.id, "driver.log")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cifar_core", "sweep", "drive", sweep.id,
             "--runs-dir", str(store.root.resolve())],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=str(Path(__file__).resolve().parents[2]))
    SweepStore(store).set_pid(sweep.id, proc.pid)
    remember_child(proc)
    return proc.pid


def revive_drivers(store: RunStore) -> list[str]:
    """Start again the driver of every running Ray sweep whose driver is gone (a restart of
    the machine, a killed process), so its queued runs still start; returns their ids."""
    revived = []
    for sweep in SweepStore(store).list("running"):
        if sweep.engine == "local" or (sweep.pid is not None and pid_alive(sweep.pid)):
            continue
        launch_driver(store, sweep)
        revived.append(sweep.id)
    return revived

"""One stored run from start to end in this process: data, network, training, test, checkpoint.

The job runner starts `python -m cifar_core train --run-id ID` for a queued run, and the CLI's
own `train` records its run first; both then call `execute_run`, which writes every event to
the run store and records how the run ended. Process supervision (starting, reaping, queueing)
is cifar_core.runs.jobs'.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cifar_core.data.load import load_data
from cifar_core.data.own_sets import watch_runs_folder
from cifar_core.errors import CifarError, StoreError
from cifar_core.runs.start import resolve_start
from cifar_core.runs.store import Run, RunStore
from cifar_core.training.checkpoint import DEFAULT_NAME, save_checkpoint
from cifar_core.training.config import TrainConfig
from cifar_core.training.devices import resolve_device
from cifar_core.training.evaluation import evaluate
from cifar_core.training.events import EpochEvent
from cifar_core.training.loop import build_model, train
from cifar_core.training.memory import out_of_memory_message
from cifar_core.training.reports import planned_log_every

# Asked after each epoch (the run, its EpochEvent): why the run stops early, or None.
Judge = Callable[[Run, EpochEvent], "str | None"]
# How often a job looks for a stop request: well inside the 2 s a stop may take.
STOP_POLL_S = 0.2
# What a run store that stopped taking writes (read-only folder, full disk) raises.
STORE_FAULTS = (StoreError, sqlite3.Error, OSError)


def execute_run(store: RunStore, run_id: str, on_event=lambda event: None,
                stop: threading.Event | None = None, out: Path | None = None,
                judge: Judge | None = None) -> Run:
    """Train one stored run in this process: events go to the store (and, as dicts, to
    on_event), then evaluate, save the checkpoint and record how it ended, with which training
    step on how many cores. Never raises for user errors.

    If the store stops taking writes (its folder turned read-only, the disk filled up), the
    training stops after its minibatch, what it learned is saved wherever it still can be (the
    run's folder, else `out`, else a file in the temporary folder), and the run is marked
    failed, saying all of that, if the store can still be written; the Run returned says it
    either way.

    `judge`, if given, is asked after each epoch whether the run stops early (a sweep's early
    stopping: cifar_core.sweeps.engine.judge): a sentence saying why ends it as pruned."""
    stop = stop or threading.Event()
    finished = threading.Event()
    if not store.set_running(run_id, os.getpid()):
        return store.get(run_id)  # ended before this process got going (stopped, given up)
    run = store.get(run_id)
    watcher = threading.Thread(target=_forward_stop, args=(store, run_id, stop, finished),
                               daemon=True)
    watcher.start()
    try:
        config = TrainConfig.from_dict(run.config).with_seed()
        watch_runs_folder(store.root)  # the sets made on the Teach page are kept there
        data = load_data(run.dataset, run.data_dir, progress=lambda msg: _tell(on_event, {
            "kind": "log", "message": msg}))
        store.record_classes(run.id, data.classes)
        _tell_log_every(config, data, on_event)
        start = resolve_start(store, config.start_from)
        model = build_model(config, len(data.classes), data.shape, start, data.classes)
        done, fault, early = _train_recording(store, run, config, data, model, stop, on_event,
                                              judge)
        return _record_ending(store, run, config, data, model, out, done, fault, early,
                              stop.is_set())
    except CifarError as exc:
        return _record_end(store, run, "failed", str(exc))
    except Exception as exc:  # an unexpected bug: keep the run, say what broke
        plain = out_of_memory_message(exc, run.config.get("batch_size"))
        if plain is not None:  # no bug: a setting asked too much (issue 29)
            return _record_end(store, run, "failed", plain)
        _record_end(store, run, "failed", f"Training crashed: {type(exc).__name__}: {exc}")
        raise
    finally:
        finished.set()


def _tell_log_every(config: TrainConfig, data, on_event) -> None:
    """Say before the training where a Log every set would give a single loss report, and what
    the run reports every instead (the run's message says it again at the end)."""
    available = len(data.train_labels)
    _, note = planned_log_every(config.to_dict(), min(config.train_size or available, available))
    if note:
        _tell(on_event, {"kind": "log", "message": note})


def _train_recording(store: RunStore, run: Run, config: TrainConfig, data, model,
                     stop: threading.Event, on_event, judge: Judge | None):
    """The training, each event written to the store and passed on: (the DoneEvent, what
    stopped the store taking writes or None, why the judge stopped it early or None)."""
    done, fault, early = None, None, None
    for event in train(config, data, model, stop):
        record = event.to_dict()
        if fault is None:
            try:
                store.add_event(run.id, record)
            except STORE_FAULTS as exc:
                fault = _fault_text(exc)
                stop.set()  # the loop ends after this minibatch, with a done event
                _tell(on_event, {"kind": "log", "message": (
                    f"The run store stopped taking writes: {fault} Stopping the training "
                    "to save what it has learned.")})
        _tell(on_event, record)
        done = event if event.kind == "done" else done
        if event.kind == "epoch" and judge and early is None and not stop.is_set():
            early = _judged(judge, run, event, on_event)
            if early:
                stop.set()  # the loop ends at the next minibatch, keeping what it learned
    return done, fault, early


def _record_ending(store: RunStore, run: Run, config: TrainConfig, data, model,
                   out: Path | None, done, fault: str | None, early: str | None,
                   stopped: bool) -> Run:
    """Test and save what the training learned (unless it diverged), then record how the run
    ended: failed where the store or the run's folder gave out (`stopped`: the training was
    asked to stop), pruned where the judge stopped it, else as the training says."""
    metrics, checkpoint, saved = None, None, ""
    if done.status != "diverged":
        metrics = final_metrics(model, data, config, done)
        checkpoint, saved = _save_somewhere(store, run.id, out, model, config, data, metrics)
        if checkpoint is None:  # saved elsewhere, or nowhere: the run cannot be complete
            fault = fault or "The run's folder could not hold its network."
    if fault:
        ended = "stopped" if stopped else "ended"
        return _record_end(store, run, "failed", f"{fault} Training {ended} after "
                           f"{done.images_seen:,} images. {saved}".strip(), metrics, checkpoint)
    if early and done.status == "stopped":
        return _record_end(store, run, "pruned", early, metrics, checkpoint)
    return _record_end(store, run, done.status, done.message, metrics, checkpoint)


def final_metrics(model, data, config: TrainConfig, done) -> dict:
    """What a run keeps once its training is done (the DoneEvent): the test's metrics, with
    how fast, how long and how it trained. The Ray engine's runs keep the same."""
    evaluation = evaluate(model, data, resolve_device(config.device), tta=config.tta,
                          precision=config.precision, tta_unsure_below=config.tta_unsure_below)
    return {**evaluation.metrics(), "images_per_s": done.images_per_s,
            "train_s": done.train_s, "images_seen": done.images_seen,
            "epochs_done": done.epochs_done, "classes": list(data.classes),
            "training_step": done.training_step, "cores": done.cores}


def _judged(judge: Judge, run: Run, event, on_event) -> str | None:
    """Whether the judge stops the run early after this epoch (why, in words), else None. A
    judge that cannot answer (a sweep's study unreadable) lets the run go on, and its log says
    why."""
    try:
        return judge(run, event)
    except Exception as exc:  # the training matters more than the judging
        _tell(on_event, {"kind": "log", "message": f"Early stopping could not judge this run "
                                                   f"({type(exc).__name__}: {exc})."})
        return None


def _tell(on_event, record: dict) -> None:
    """Pass an event on; a full disk under the job's log must not end the training."""
    with contextlib.suppress(OSError):
        on_event(record)


def _fault_text(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
    return text if text.endswith(".") else text + "."


def _save_somewhere(store: RunStore, run_id: str, out: Path | None, model, config: TrainConfig,
                    data, metrics: dict) -> tuple[str | None, str]:
    """Save the network in the run's folder, else at `out`, else in the temporary folder:
    (the checkpoint path if it is in the run's folder, a sentence saying where it is)."""
    in_folder = store.run_dir(run_id) / DEFAULT_NAME
    targets = [in_folder, *([Path(out)] if out is not None else []),
               Path(tempfile.gettempdir()) / f"cifar_net-{run_id}.pth"]
    problems = []
    for target in targets:
        try:
            save_checkpoint(target, model, config.to_dict(), data.classes, metrics,
                            data.dataset, data.shape)
        except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
            problems.append(f"{target}: {getattr(exc, 'strerror', None) or exc}")
            continue
        if target == in_folder:
            return str(target), f"What it learned is saved in {target}."
        return None, (f"What it learned is saved in {target} (not in the run's folder: "
                      f"{'; '.join(problems)}).")
    return None, f"What it learned could not be saved anywhere ({'; '.join(problems)})."


def _record_end(store: RunStore, run: Run, status: str, message: str,
                metrics: dict | None = None, checkpoint: str | None = None) -> Run:
    """Record how the run ended; if the store cannot be written, the Run returned still says
    it (and that the store does not know)."""
    try:
        store.finish(run.id, status, message, metrics, checkpoint)
        return store.get(run.id)
    except STORE_FAULTS as exc:
        message = (f"{message} The run could not be marked {status} in the run store "
                   f"({_fault_text(exc)}) It shows as running until its process is found gone "
                   "(any page of the dashboard, or 'python -m cifar_core runs list').")
        return dataclasses.replace(run, status=status, message=message, metrics=metrics,
                                   checkpoint=checkpoint, finished=time.time())


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

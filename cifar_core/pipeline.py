"""One stored run from start to end in this process: data, network, training, test, checkpoint.

The job runner starts `python -m cifar_core train --run-id ID` for a queued run, and the CLI's
own `train` records its run first; both then call `execute_run`, which writes every event to
the run store and records how the run ended. Process supervision (starting, reaping, queueing)
is cifar_core.jobs'.
"""

from __future__ import annotations

import contextlib
import os
import threading

from cifar_core.checkpoint import DEFAULT_NAME, save_checkpoint
from cifar_core.config import TrainConfig
from cifar_core.data import load_cifar10
from cifar_core.devices import resolve_device
from cifar_core.errors import CifarError
from cifar_core.evaluate import evaluate
from cifar_core.jobs import JobRunner
from cifar_core.runs import Run, RunStore
from cifar_core.train import build_model, train

# How often a job looks for a stop request: well inside the 2 s a stop may take.
STOP_POLL_S = 0.2


def execute_run(store: RunStore, run_id: str, on_event=lambda event: None,
                stop: threading.Event | None = None) -> Run:
    """Train one stored run in this process: events go to the store (and, as dicts, to
    on_event), then evaluate, save the checkpoint and record how it ended, with which training
    step on how many cores. Never raises for user errors."""
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
                       "epochs_done": done.epochs_done, "classes": list(data.classes),
                       "training_step": done.training_step, "cores": done.cores}
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

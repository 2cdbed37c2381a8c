"""`train`, `lr-find` and `evaluate`: train the network (recorded as a run), find a learning
rate for its settings, test a saved network."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from cifar_core.cli.common import (
    USER_ERROR,
    chosen_dataset,
    config_from_args,
    data_flag,
    dataset_flag,
    emit,
    json_flag,
    number,
    open_store,
    preset_flag,
    print_accuracy,
    runs_flag,
    setting_flags,
    tick_scheduler,
)
from cifar_core.data.dataset import WARNING_PREFIX, default_data_dir
from cifar_core.data.load import load_data
from cifar_core.data.registry import dataset_names, dataset_spec
from cifar_core.errors import CheckpointError, ConfigError
from cifar_core.runs.pipeline import execute_run
from cifar_core.runs.start import fit_problem, resolve_start, start_in_words, start_settings
from cifar_core.runs.store import Run, RunStore
from cifar_core.sweeps.engine import judge
from cifar_core.training.checkpoint import DEFAULT_NAME, classes_in_words, load_checkpoint
from cifar_core.training.config import TrainConfig
from cifar_core.training.devices import resolve_device
from cifar_core.training.evaluation import Evaluation, evaluate
from cifar_core.training.lr_find import (
    DEFAULT_END_LR,
    DEFAULT_START_LR,
    DEFAULT_STEPS,
    LrFinding,
    check_range,
    find_learning_rate,
    rounded_lr,
)
from cifar_core.training.models import model_spec

# The plain output's table of the loss has about this many lines.
LR_TABLE_LINES = 10


def _out_file(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("give a file for the trained network, e.g. "
                                         f"{DEFAULT_NAME}")
    return Path(text)


def add_train_parser(sub) -> None:
    """`train` and its flags: a flag per setting, --preset, --out."""
    t = sub.add_parser("train", help="train the network (recorded as a run)")
    data_flag(t)
    dataset_flag(t)
    runs_flag(t)
    preset_flag(t)
    setting_flags(t)
    t.add_argument("--out", type=_out_file, default=Path(DEFAULT_NAME),
                   help=f"where to copy the trained network (default: {DEFAULT_NAME})")
    json_flag(t)
    t.add_argument("--run-id", help=argparse.SUPPRESS)  # a queued run, started by the job runner


def add_lr_find_parser(sub) -> None:
    """`lr-find` and its flags: the settings, and the range of learning rates tried."""
    f = sub.add_parser("lr-find", help="find a learning rate for these settings (a short "
                                       "test run; nothing is recorded)")
    data_flag(f)
    dataset_flag(f)
    preset_flag(f)
    setting_flags(f)
    f.add_argument("--start-lr", type=number(float), default=DEFAULT_START_LR,
                   help=f"the first learning rate tried (default: {DEFAULT_START_LR:g})")
    f.add_argument("--end-lr", type=number(float), default=DEFAULT_END_LR,
                   help=f"the last learning rate tried (default: {DEFAULT_END_LR:g})")
    f.add_argument("--steps", type=number(int), default=DEFAULT_STEPS,
                   help=f"minibatches in the test, one learning rate each (default: "
                        f"{DEFAULT_STEPS})")
    json_flag(f)


def add_evaluate_parser(sub) -> None:
    """`evaluate CHECKPOINT`."""
    e = sub.add_parser("evaluate", help="test a saved network on the test images")
    e.add_argument("checkpoint", type=Path)
    data_flag(e)
    dataset_flag(e, "the one the network was trained on")
    e.add_argument("--device", default="auto")
    json_flag(e)


def _out_problem(out: Path) -> str | None:
    """Why --out could not take the trained network, found before any training; or None."""
    if out.is_dir():
        return f"--out {out} is a folder: give a file in it, e.g. {out / DEFAULT_NAME}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        existed = out.exists()
        with open(out, "ab"):  # appending nothing changes nothing, but needs the right to write
            pass
        if not existed:
            out.unlink()
    except OSError as exc:
        return (f"--out {out} cannot be written ({exc.strerror or exc}): give a file in a "
                "folder you can write to")
    return None


def _print_event(event: dict) -> None:
    kind = event["kind"]
    if kind == "log":
        print(event["message"], file=sys.stderr, flush=True)
    elif kind == "stats":
        print(f"[{event['epoch']}, {event['minibatch']:5d}] loss: {event['loss']:.3f}"
              f"   ({event['images_per_s']:,.0f} images/s)", flush=True)
    elif kind == "epoch":
        print(f"Epoch {event['epoch']}: {event['test_accuracy']:.1f} % of the test images "
              "right", flush=True)
    elif kind == "done":
        print("Finished Training" if event["status"] == "completed" else event["message"],
              flush=True)


def _emit_event(event: dict) -> None:
    """An event as a JSON line; the data's warnings, which arrive as progress lines, as
    warnings."""
    if event["kind"] == "log" and event["message"].startswith(WARNING_PREFIX):
        event = {"kind": "warning", "message": event["message"][len(WARNING_PREFIX):]}
    emit(event)


def _summary(run: Run) -> dict:
    metrics = run.metrics or {}
    return {"kind": "summary", "run_id": run.id, "dataset": run.dataset, "status": run.status,
            "message": run.message,
            "accuracy": metrics.get("accuracy"), "per_class": metrics.get("per_class"),
            "images_per_s": metrics.get("images_per_s"), "train_s": metrics.get("train_s"),
            "checkpoint": run.checkpoint}


def _train_queued_run(store: RunStore, run_id: str) -> int:
    """A queued run, launched by the job runner: its settings are in the store."""
    try:
        run = execute_run(store, run_id, on_event=_print_event, judge=judge(store))
    finally:
        _slot_freed(store)
    if run.status == "failed":
        print(f"error: {run.message}", file=sys.stderr)
    return 0 if run.status in ("completed", "stopped") else 1


def _train_here(store: RunStore, args) -> Run:
    """Record a run of the settings the flags ask for and train it in this process."""
    config = config_from_args(args).with_seed()
    device = resolve_device(config.device)
    data_dir = (args.data_dir or default_data_dir()).resolve()
    dataset = chosen_dataset(args)
    # A network that cannot take the data set's pictures is refused before a run is recorded.
    shape = dataset_spec(dataset, data_dir).shape
    problem = model_spec(config.model).shape_problem(shape)
    if problem:
        raise ConfigError("model", problem)
    config = _with_start(store, args, config, shape)
    run = store.create(config.to_dict(), str(data_dir), origin="cli", status="running",
                       pid=os.getpid(), dataset=dataset)
    stop = threading.Event()
    # Ctrl-C stops like the dashboard's Stop button: the network learned so far is kept.
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if not args.json:
        print(f"Run {run.id} on {device} (data: {dataset_spec(dataset, data_dir).title} in "
              f"{data_dir})",
              file=sys.stderr, flush=True)
    try:
        return execute_run(store, run.id, on_event=_emit_event if args.json else _print_event,
                           stop=stop, out=args.out)
    finally:
        _slot_freed(store)


def _with_start(store: RunStore, args, config: TrainConfig,
                shape: tuple[int, int, int]) -> TrainConfig:
    """The config of a training that starts from a network (--start-from): the model and width
    not given as flags are the start network's (said in one line); ConfigError('start_from',
    ...) in one sentence, before any run is recorded, if the network cannot be read or does not
    fit this training."""
    if config.start_from is None:
        return config
    start = resolve_start(store, config.start_from)
    taken = {name: value for name, value in start_settings(start).items()
             if getattr(args, name, None) is None}
    if config.model != start.model_name and "model" not in taken:
        taken.pop("width", None)  # another model: the refusal below names it, not the width
    if taken:
        config = replace(config, **taken)
        print(f"Starting from {config.start_from}: {start_in_words(start)} (its "
              f"{' and '.join(taken)}, as --{' and --'.join(taken)} "
              f"{'were' if len(taken) > 1 else 'was'} not given).", file=sys.stderr, flush=True)
    problem = fit_problem(start, config, shape)
    if problem:
        raise ConfigError("start_from", problem)
    return config


def _slot_freed(store: RunStore) -> None:
    """A run trained here has ended, so a slot is free: the next queued run starts (no
    browser need be open). Its own trouble is not the ended run's."""
    with contextlib.suppress(Exception):
        tick_scheduler(store)


def cmd_train(args) -> int:
    if not args.run_id:  # checked before anything is recorded or trained: no run is made
        problem = _out_problem(args.out)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return USER_ERROR
    store = open_store(args.runs_dir)
    if args.run_id:
        return _train_queued_run(store, args.run_id)
    run = _train_here(store, args)
    if run.checkpoint:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run.checkpoint, args.out)
        except OSError as exc:
            print(f"error: the network could not be copied to {args.out} "
                  f"({exc.strerror or exc}); it is saved in {run.checkpoint}", file=sys.stderr)
            return 1
        if not args.json:
            print(f"Saved {args.out}")
    if args.json:
        emit(_summary(run))
    if run.status == "failed":
        print(f"error: {run.message}", file=sys.stderr)
        return USER_ERROR
    if run.metrics and not args.json:
        print_accuracy(run.metrics["accuracy"], run.metrics["per_class"],
                       run.metrics["test_images"])
    return 0 if run.status in ("completed", "stopped") else 1


def _print_finding(finding: LrFinding) -> None:
    every = max(1, len(finding.lrs) // LR_TABLE_LINES)
    print(f"{'learning rate':>13}  smoothed loss")
    for i, (lr, loss) in enumerate(zip(finding.lrs, finding.smoothed, strict=True)):
        if i % every == 0 or i == len(finding.lrs) - 1:
            print(f"{lr:13.2e}  {loss:13.3f}")
    print(finding.message)
    if finding.suggestion is None:  # the message says why and what to try
        print(f"Suggested learning rate: none (see above why); minimum loss at "
              f"{rounded_lr(finding.min_loss_lr):g}")
        return
    print(f"Suggested learning rate: {rounded_lr(finding.suggestion):g} "
          f"({finding.suggestion_kind}); minimum loss at {rounded_lr(finding.min_loss_lr):g}, "
          f"/ 10 = {rounded_lr(finding.tenth_of_min_loss_lr):g}")


def cmd_lr_find(args) -> int:
    config = config_from_args(args)
    check_range(args.start_lr, args.end_lr, args.steps)  # before the data takes its time
    data = load_data(chosen_dataset(args), args.data_dir,
                     progress=lambda m: print(m, file=sys.stderr, flush=True))
    finding = find_learning_rate(config, data, args.start_lr, args.end_lr, args.steps)
    if args.json:
        emit({"kind": "lr_find", **finding.to_dict()})
    else:
        _print_finding(finding)
    return 0


def cmd_evaluate(args) -> int:
    """Test a saved network on its own data set (the one its file records), or on --dataset
    where that is the same one; another data set is refused before its data is read."""
    asked = chosen_dataset(args, None)  # an unknown name is refused before the file is read
    checkpoint = load_checkpoint(args.checkpoint)
    device = resolve_device(args.device)
    if asked is not None and asked != checkpoint.dataset:
        chosen = dataset_spec(asked, args.data_dir).title
        raise CheckpointError(
            f"{args.checkpoint} holds a network trained on {checkpoint.title} "
            f"({classes_in_words(checkpoint.classes)}), not on {chosen}: test it on "
            f"{checkpoint.title} (leave out --dataset), or give a network trained on {chosen}.")
    if checkpoint.dataset not in dataset_names(args.data_dir):
        raise CheckpointError(
            f"{args.checkpoint} holds a network trained on the data set '{checkpoint.dataset}', "
            f"which is not registered here (these are: "
            f"{', '.join(dataset_names(args.data_dir))}): register it here first, then evaluate "
            "again.")
    data = load_data(checkpoint.dataset, args.data_dir,
                     progress=lambda m: print(m, file=sys.stderr))
    misfit = checkpoint.misfit(data)
    if misfit:
        raise CheckpointError(f"{args.checkpoint}: {misfit}")
    start = time.perf_counter()
    result: Evaluation = evaluate(checkpoint.model, data, device,
                                  **checkpoint.prediction_options())
    seconds = time.perf_counter() - start
    metrics = result.metrics()
    if args.json:
        emit({"kind": "summary", "checkpoint": str(args.checkpoint),
              "dataset": checkpoint.dataset, "accuracy": result.accuracy,
              "per_class": metrics["per_class"], "confusion": metrics["confusion"],
              "test_images": metrics["test_images"], "eval_s": seconds})
    else:
        print_accuracy(result.accuracy, metrics["per_class"], metrics["test_images"])
    return 0

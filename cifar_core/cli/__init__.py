"""Command line: `python -m cifar_core train | lr-find | evaluate | runs | data`.

Plain output reads like the tutorial; `--json` prints one JSON object per line instead.
A user mistake prints one line starting with 'error:' and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from cifar_core import scheduler
from cifar_core.data.dataset import default_data_dir
from cifar_core.data.load import load_cifar10
from cifar_core.errors import CheckpointError, CifarError, StoreError
from cifar_core.runs.jobs import JobRunner
from cifar_core.runs.pipeline import execute_run
from cifar_core.runs.store import STATUSES, Run, RunStore
from cifar_core.runs.views import (
    IMPORTED,
    how_it_trained,
    is_import,
    run_setting_text,
    setting_text,
)
from cifar_core.sweeps.engine import best_run, delete_sweep, judge, start_sweep, stop_sweep
from cifar_core.sweeps.space import (
    PRUNERS,
    STRATEGIES,
    SearchSpace,
    SweepError,
    parse_axis,
    space_from_toml,
    with_axis,
)
from cifar_core.sweeps.store import ENGINES, Sweep, SweepStore
from cifar_core.training.checkpoint import DEFAULT_NAME, load_checkpoint
from cifar_core.training.config import (
    PRESETS,
    TrainConfig,
    compared_settings,
    defaults,
    preset_values,
    settings,
)
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

USER_ERROR = 2
# Flags that may come before or after the command, and before or after the runs action (e.g.
# `runs --runs-dir D list` and `runs list --runs-dir D`). Each level accepts them with no
# default of its own, so a later level cannot undo an earlier one; parse_args then gives those
# not given anywhere these defaults.
SHARED_DEFAULTS = {"data_dir": None, "runs_dir": None, "json": False}


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line, not a usage dump."""

    def error(self, message: str):
        self.exit(USER_ERROR, f"error: {message} (see '{self.prog} --help')\n")


def _number(kind):
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
    parse.__name__ = kind.__name__
    return parse


def setting_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every TrainConfig setting, from its declaration (cifar_core.training.config). The
    default is None (not given): the preset's value or the setting's default is used."""
    for name, spec in settings().items():
        choices = f" Choices: {', '.join(spec.allowed())}." if spec.choices else ""
        default = defaults()[name]
        shown = spec.none_means if default is None else default
        # argparse expands %-formats in help; a help text such as '100 % sure' broke --help.
        text = spec.help.replace("%", "%%")
        if spec.kind is bool:  # --nesterov / --no-nesterov
            parser.add_argument(spec.flag, dest=name, action=argparse.BooleanOptionalAction,
                                default=None, help=f"{text} Default: "
                                                   f"{'on' if default else 'off'}.")
            continue
        kind = spec.kind if spec.kind is str else _number(spec.kind)
        parser.add_argument(spec.flag, dest=name, type=kind, default=None,
                            help=f"{text}{choices} Default: {shown}.")


def config_from_args(args) -> TrainConfig:
    """The TrainConfig the flags ask for: the preset's settings (or the defaults), with each
    flag given replacing its setting."""
    values = preset_values(args.preset) if args.preset else {}
    given = {name: getattr(args, name) for name in settings()
             if getattr(args, name, None) is not None}
    return TrainConfig.from_dict({**values, **given})


def _out_file(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("give a file for the trained network, e.g. "
                                         f"{DEFAULT_NAME}")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m cifar_core",
                     description="Train and inspect the PyTorch CIFAR-10 tutorial network.")

    def data_flag(p):
        p.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                       help="data folder (default: $CIFAR_DATA_DIR or ./data)")

    def runs_flag(p):
        p.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS,
                       help="run store folder (default: $CIFAR_RUNS_DIR or ./runs)")

    def json_flag(p):
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="one JSON object per line")

    for flag in (data_flag, runs_flag, json_flag):  # also accepted before the command
        flag(parser)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def preset_flag(p):
        p.add_argument("--preset", choices=list(PRESETS), default=None,
                       help="start from a preset's settings (flags given beside it override "
                            "it): " + "; ".join(f"{k} = {preset.title}"
                                                for k, preset in PRESETS.items())
                       .replace("%", "%%"))  # (argparse expands %-formats in help)

    t = sub.add_parser("train", help="train the network (recorded as a run)")
    data_flag(t)
    runs_flag(t)
    preset_flag(t)
    setting_flags(t)
    t.add_argument("--out", type=_out_file, default=Path(DEFAULT_NAME),
                   help=f"where to copy the trained network (default: {DEFAULT_NAME})")
    json_flag(t)
    t.add_argument("--run-id", help=argparse.SUPPRESS)  # a queued run, started by the job runner

    f = sub.add_parser("lr-find", help="find a learning rate for these settings (a short "
                                       "test run; nothing is recorded)")
    data_flag(f)
    preset_flag(f)
    setting_flags(f)
    f.add_argument("--start-lr", type=_number(float), default=DEFAULT_START_LR,
                   help=f"the first learning rate tried (default: {DEFAULT_START_LR:g})")
    f.add_argument("--end-lr", type=_number(float), default=DEFAULT_END_LR,
                   help=f"the last learning rate tried (default: {DEFAULT_END_LR:g})")
    f.add_argument("--steps", type=_number(int), default=DEFAULT_STEPS,
                   help=f"minibatches in the test, one learning rate each (default: "
                        f"{DEFAULT_STEPS})")
    json_flag(f)

    e = sub.add_parser("evaluate", help="test a saved network on the test images")
    e.add_argument("checkpoint", type=Path)
    data_flag(e)
    e.add_argument("--device", default="auto")
    json_flag(e)

    r = sub.add_parser("runs", help="list, show, stop or delete runs")
    runs_flag(r)
    json_flag(r)
    rsub = r.add_subparsers(dest="action", required=True, parser_class=_Parser)
    rl = rsub.add_parser("list", help="all runs, newest first")
    rl.add_argument("--status", choices=STATUSES)
    rs = rsub.add_parser("show", help="one run in detail")
    rs.add_argument("run_id")
    rst = rsub.add_parser("stop", help="stop a queued or running run")
    rst.add_argument("run_id")
    rd = rsub.add_parser("delete", help="delete a finished run and its files")
    rd.add_argument("run_id")
    for action in (rl, rs, rst, rd):
        runs_flag(action)
        json_flag(action)

    sweep_parser(sub, data_flag, runs_flag, json_flag)

    d = sub.add_parser("data", help="download or decode the data set and describe it")
    data_flag(d)
    json_flag(d)
    return parser


def sweep_parser(sub, data_flag, runs_flag, json_flag) -> None:
    """`sweep`: a flag per setting taking a value, a list or a range; and its actions."""
    w = sub.add_parser(
        "sweep", help="train many runs over a search space (list, show, stop, delete sweeps)",
        description="Vary settings over many runs: give a setting one value (--epochs 1), a "
                    "list (--lr 0.001,0.01,0.1) or a range (--lr 0.0001:0.1:4:log = 4 points "
                    "on a log scale; LOW:HIGH for the random and smart strategies), or a space "
                    "file (--space sweep.toml). Then: sweep list | show ID | stop ID | "
                    "delete ID.")
    data_flag(w)
    runs_flag(w)
    json_flag(w)
    w.add_argument("--space", type=Path, help="a TOML file with the space (see README)")
    w.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="start from a preset's settings; the flags given vary or replace them")
    w.add_argument("--strategy", choices=list(STRATEGIES), default=None,
                   help="grid (every combination, the default), random (--runs draws) or "
                        "smart (Optuna's TPE: --runs trials, each learning from the others)")
    w.add_argument("--runs", type=_number(int), default=None, dest="max_runs",
                   help="at most this many runs (random and smart: how many)")
    w.add_argument("--minutes", type=_number(float), default=None,
                   help="time budget: no run starts after this many minutes")
    w.add_argument("--prune", nargs="?", const="median", choices=list(PRUNERS[1:]),
                   default=None, help="stop hopeless runs after an epoch (Optuna's median "
                                      "pruner, or successive halving)")
    w.add_argument("--engine", choices=list(ENGINES), default="local",
                   help="local (this machine, the default) or ray (a Ray cluster)")
    w.add_argument("--ray-address", default=None,
                   help="the Ray cluster's address (default: $CIFAR_RAY_ADDRESS; none: a "
                        "cluster of this machine alone)")
    w.add_argument("--parallel", type=_number(int), default=None,
                   help="runs side by side on this machine (default: one per core on a CPU)")
    w.add_argument("--name", default="", help="a name to find the sweep by")
    w.add_argument("--no-wait", action="store_true",
                   help="start the sweep and return; it goes on in the background")
    for name, spec in settings().items():
        w.add_argument(spec.flag, dest=f"vary_{name}", default=None, metavar="VALUES",
                       help=f"{spec.label}: a value, a list or a range".replace("%", "%%"))
    actions = w.add_subparsers(dest="action", required=False, parser_class=_Parser,
                               metavar="{list,show,stop,delete}")
    actions.add_parser("list", help="all sweeps, newest first")
    for action, text in (("show", "one sweep and its runs"),
                         ("stop", "stop a sweep: no more runs start, running ones stop"),
                         ("delete", "delete a sweep that has ended, with its runs")):
        a = actions.add_parser(action, help=text)
        a.add_argument("sweep_id")
    drive = actions.add_parser("drive")  # a Ray sweep's driver process (cifar_core.sweeps.engine)
    drive.add_argument("sweep_id")
    for a in actions.choices.values():
        runs_flag(a)
        json_flag(a)


def _chosen_parser(parser: argparse.ArgumentParser,
                   args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost command's parser the arguments chose (e.g. that of `runs list`)."""
    for action in parser._actions:  # (argparse keeps its sub-commands there only)
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _chosen_parser(chosen, args)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line's arguments, the shared flags wherever they were given. A flag its
    command does not know is refused pointing to that command's --help."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    for name, default in SHARED_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


def _open_store(runs_dir: Path | None) -> RunStore:
    """The run store, with a warning on stderr for what opening it had to do (a damaged file
    moved aside, a read-only folder)."""
    store = RunStore(runs_dir)
    for notice in store.notices:
        print(f"warning: {notice}", file=sys.stderr, flush=True)
    return store


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


def _emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


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


def _print_accuracy(accuracy: float, per_class: dict, total: int) -> None:
    print(f"Accuracy of the network on the {total} test images: {accuracy:.0f} %")
    for name, value in per_class.items():
        shown = "n/a" if value is None else f"{value:.1f} %"
        print(f"Accuracy for class {name:5s} is: {shown}")


def _summary(run: Run) -> dict:
    metrics = run.metrics or {}
    return {"kind": "summary", "run_id": run.id, "status": run.status, "message": run.message,
            "accuracy": metrics.get("accuracy"), "per_class": metrics.get("per_class"),
            "images_per_s": metrics.get("images_per_s"), "train_s": metrics.get("train_s"),
            "checkpoint": run.checkpoint}


def cmd_train(args) -> int:
    if not args.run_id:  # checked before anything is recorded or trained: no run is made
        problem = _out_problem(args.out)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return USER_ERROR
    store = _open_store(args.runs_dir)
    if args.run_id:  # launched by the job runner: the run's settings are in the store
        try:
            run = execute_run(store, args.run_id, on_event=_print_event, judge=judge(store))
        finally:  # a slot is free: the next queued run starts (no browser need be open)
            with contextlib.suppress(Exception):
                scheduler.tick(store)
        if run.status == "failed":
            print(f"error: {run.message}", file=sys.stderr)
        return 0 if run.status in ("completed", "stopped") else 1
    config = config_from_args(args).with_seed()
    device = resolve_device(config.device)
    data_dir = (args.data_dir or default_data_dir()).resolve()
    run = store.create(config.to_dict(), str(data_dir), origin="cli", status="running",
                       pid=os.getpid())
    stop = threading.Event()
    # Ctrl-C stops like the dashboard's Stop button: the network learned so far is kept.
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if not args.json:
        print(f"Run {run.id} on {device} (data: {data_dir})", file=sys.stderr, flush=True)
    from cifar_core.data.dataset import WARNING_PREFIX

    def emit_json(event: dict) -> None:  # the data's warnings arrive as progress lines
        if event["kind"] == "log" and event["message"].startswith(WARNING_PREFIX):
            event = {"kind": "warning", "message": event["message"][len(WARNING_PREFIX):]}
        _emit(event)

    run = execute_run(store, run.id, on_event=emit_json if args.json else _print_event, stop=stop,
                      out=args.out)
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
        _emit(_summary(run))
    if run.status == "failed":
        print(f"error: {run.message}", file=sys.stderr)
        return USER_ERROR
    if run.metrics and not args.json:
        _print_accuracy(run.metrics["accuracy"], run.metrics["per_class"],
                        run.metrics["test_images"])
    return 0 if run.status in ("completed", "stopped") else 1


# The plain output's table of the loss has about this many lines.
LR_TABLE_LINES = 10


def _print_finding(finding: LrFinding) -> None:
    every = max(1, len(finding.lrs) // LR_TABLE_LINES)
    print(f"{'learning rate':>13}  smoothed loss")
    for i, (lr, loss) in enumerate(zip(finding.lrs, finding.smoothed, strict=True)):
        if i % every == 0 or i == len(finding.lrs) - 1:
            print(f"{lr:13.2e}  {loss:13.3f}")
    print(finding.message)
    print(f"Suggested learning rate: {rounded_lr(finding.suggestion):g} "
          f"({finding.suggestion_kind}); minimum loss at {rounded_lr(finding.min_loss_lr):g}, "
          f"/ 10 = {rounded_lr(finding.tenth_of_min_loss_lr):g}")


def cmd_lr_find(args) -> int:
    config = config_from_args(args)
    check_range(args.start_lr, args.end_lr, args.steps)  # before the data takes its time
    data = load_cifar10(args.data_dir, progress=lambda m: print(m, file=sys.stderr, flush=True))
    finding = find_learning_rate(config, data, args.start_lr, args.end_lr, args.steps)
    if args.json:
        _emit({"kind": "lr_find", **finding.to_dict()})
    else:
        _print_finding(finding)
    return 0


def cmd_evaluate(args) -> int:
    checkpoint = load_checkpoint(args.checkpoint)
    device = resolve_device(args.device)
    data = load_cifar10(args.data_dir, progress=lambda m: print(m, file=sys.stderr))
    if len(checkpoint.classes) != len(data.classes):
        raise CheckpointError(f"{args.checkpoint} was trained on {len(checkpoint.classes)} "
                              f"classes but the data has {len(data.classes)}.")
    start = time.perf_counter()
    result: Evaluation = evaluate(checkpoint.model, data, device,
                                  **checkpoint.prediction_options())
    seconds = time.perf_counter() - start
    metrics = result.metrics()
    if args.json:
        _emit({"kind": "summary", "checkpoint": str(args.checkpoint), "accuracy": result.accuracy,
               "per_class": metrics["per_class"], "confusion": metrics["confusion"],
               "test_images": metrics["test_images"], "eval_s": seconds})
    else:
        _print_accuracy(result.accuracy, metrics["per_class"], metrics["test_images"])
    return 0


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def cmd_runs(args) -> int:
    store = _open_store(args.runs_dir)
    runner = JobRunner(store)
    try:
        scheduler.tick(store)  # reap dead jobs and start queued ones: what we show is current
    except StoreError as exc:  # what is there can still be shown
        print(f"warning: {exc}", file=sys.stderr)
    if args.action == "list":
        runs = store.list(args.status)
        for warning in store.damaged_runs():
            print(f"warning: {warning}", file=sys.stderr)
        if args.json:
            for run in runs:
                _emit(run.to_dict())
            return 0
        if not runs:
            print("No runs yet. Start one with: python -m cifar_core train")
            return 0
        # A column per compared setting (cifar_core.training.config), then the results.
        rows = [(run, {name: run_setting_text(run, name) for name in compared_settings()})
                for run in runs]
        widths = {name: max(len(name), *(len(shown[name]) for _, shown in rows))
                  for name in compared_settings()}
        print(f"{'run':22} {'status':10} {'created':16} "
              + " ".join(f"{name:>{width}}" for name, width in widths.items())
              + f" {'accuracy':>8} {'images/s':>9}")
        for run, shown in rows:
            m = run.metrics or {}
            acc = f"{m['accuracy']:.1f} %" if m.get("accuracy") is not None else "-"
            ips = f"{m['images_per_s']:,.0f}" if m.get("images_per_s") else "-"
            values = " ".join(f"{shown[name]:>{width}}" for name, width in widths.items())
            status = IMPORTED if is_import(run) else run.status  # no settings, no speed
            print(f"{run.id:22} {status:10} {_when(run.created):16} {values} {acc:>8} "
                  f"{ips:>9}")
        return 0
    if args.action == "show":
        run = store.get(args.run_id)
        if args.json:
            _emit({**run.to_dict(), "events": [e.to_dict() for _, e in store.events(run.id)]})
            return 0
        print(f"Run {run.id}: {run.status}" + (f" - {run.message}" if run.message else ""))
        print(f"  created {_when(run.created)}, origin {run.origin}, data {run.data_dir}")
        print("  settings: " + ", ".join(f"{k}={v}" for k, v in run.config.items()))
        stats = store.events(run.id, kind="stats")
        if stats:
            last = stats[-1][1]
            print(f"  {len(stats)} loss reports; last: epoch {last.epoch}, "
                  f"loss {last.loss:.3f}, {last.images_per_s:,.0f} images/s")
        note = how_it_trained(run)
        if note:
            print(f"  {note}")
        if run.checkpoint:
            print(f"  checkpoint: {run.checkpoint}")
        if run.metrics:
            _print_accuracy(run.metrics["accuracy"], run.metrics["per_class"],
                            run.metrics["test_images"])
        return 0
    if args.action == "stop":
        run = runner.stop(args.run_id)
        if args.json:
            _emit({"run_id": run.id, "status": run.status, "stop_requested": True})
            return 0
        print(f"Run {run.id}: " + ("stopped." if run.status == "stopped" else
                                   "stop requested; it ends after its current minibatch."))
        return 0
    runner.delete(args.run_id)
    if args.json:
        _emit({"run_id": args.run_id, "deleted": True})
        return 0
    print(f"Deleted run {args.run_id} and its files.")
    return 0


def space_from_args(args) -> SearchSpace:
    """The search space the flags (or the space file, which flags given beside it extend) ask
    for. SweepError names what is wrong."""
    base = preset_values(args.preset) if args.preset else {}
    if args.space is not None:
        try:
            text = args.space.read_text(encoding="utf-8")
        except OSError as exc:
            raise SweepError("space", f"The space file {args.space} cannot be read "
                                      f"({exc.strerror or exc}).") from None
        space = space_from_toml(text, base=base)
    else:
        space = SearchSpace(base=base)
    for name in settings():
        text = getattr(args, f"vary_{name}", None)
        if text is not None:
            space = with_axis(space, parse_axis(name, text))
    changes = {key: value for key, value in (
        ("strategy", args.strategy), ("runs", args.max_runs), ("minutes", args.minutes),
        ("prune", args.prune)) if value is not None}
    return dataclasses.replace(space, **changes).validate()


def _run_line(run: Run, varied: list[str]) -> str:
    shown = ", ".join(f"{name}={setting_text(name, run.settings.get(name))}" for name in varied)
    result = f"{run.accuracy:.1f} %" if run.accuracy is not None else "-"
    tail = f" - {run.message}" if run.status not in ("completed",) and run.message else ""
    return f"{run.id}  {run.status:9} {result:>7}  {shown}{tail}"


def _wait_for_sweep(store: RunStore, sweep_id: str, as_json: bool, varied: list[str]) -> Sweep:
    """Follow a sweep until it ends, a line per run as it finishes; Ctrl-C stops the sweep
    (its running runs keep what they learned)."""
    sweeps, shown = SweepStore(store), set()
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    while True:
        if stopping.is_set() and sweeps.get(sweep_id).is_active:
            stopping.clear()
            print("Stopping the sweep: running runs end after their minibatch.",
                  file=sys.stderr, flush=True)
            stop_sweep(store, sweep_id)
        scheduler.tick(store)
        sweep = sweeps.get(sweep_id)
        for run in sweeps.runs(sweep_id):
            if run.id in shown or run.is_active:
                continue
            shown.add(run.id)
            if as_json:
                _emit({"kind": "run", "run_id": run.id, "status": run.status,
                       "accuracy": run.accuracy, "message": run.message,
                       "settings": {n: run.settings.get(n) for n in varied}})
            else:
                print(_run_line(run, varied), flush=True)
        if not sweep.is_active:
            return sweep
        time.sleep(0.5)


def _best_lines(store: RunStore, sweep: Sweep) -> list[str]:
    best = best_run(SweepStore(store).runs(sweep.id))
    if best is None:
        return ["No run of the sweep finished with an accuracy."]
    changed = {k: v for k, v in best.settings.items() if v != defaults().get(k)}
    flags = " ".join(f"{settings()[k].flag} {v}" if settings()[k].kind is not bool
                     else (settings()[k].flag if v else f"--no-{settings()[k].flag[2:]}")
                     for k, v in changed.items() if k in settings() and v is not None)
    return [f"Best: run {best.id}, {best.accuracy:.1f} % of the test images right.",
            f"  to train it again: python -m cifar_core train {flags}"]


def cmd_sweep(args) -> int:
    store = _open_store(args.runs_dir)
    sweeps = SweepStore(store)
    if args.action == "drive":
        from cifar_core.sweeps.ray_engine import drive

        return drive(store, args.sweep_id)
    if args.action is None:
        space = space_from_args(args)
        data_dir = (args.data_dir or default_data_dir()).resolve()
        address = (args.ray_address if args.ray_address is not None
                   else os.environ.get("CIFAR_RAY_ADDRESS", ""))
        if args.engine == "ray":
            from cifar_core.sweeps.ray_engine import ray_problem

            problem = ray_problem()
            if problem:
                raise SweepError("engine", problem)
        sweep = start_sweep(store, space, data_dir, name=args.name, origin="cli",
                            engine=args.engine, address=address, parallel=args.parallel)
        varied = [a.name for a in sweep.space.varied]
        planned = sweep.space.size()
        if args.json:
            _emit({"kind": "sweep", "sweep_id": sweep.id, "runs": planned,
                   "engine": sweep.engine, "parallel": sweep.parallel})
        else:
            print(f"Sweep {sweep.id}: {planned} run{'s' * (planned != 1)}, {sweep.parallel} "
                  f"side by side ({sweep.engine}; data: {data_dir})", file=sys.stderr,
                  flush=True)
        if args.no_wait:
            return 0
        sweep = _wait_for_sweep(store, sweep.id, args.json, varied)
        best = best_run(sweeps.runs(sweep.id))
        if args.json:
            _emit({"kind": "summary", "sweep_id": sweep.id, "status": sweep.status,
                   "message": sweep.message, "best_run": best.id if best else None,
                   "best_accuracy": best.accuracy if best else None,
                   "best_settings": best.settings if best else None})
        else:
            print(f"Sweep {sweep.id} {sweep.status}: {sweep.message.split(' Best: ')[0]}")
            print("\n".join(_best_lines(store, sweep)))
        return 0 if sweep.status == "completed" else 1
    scheduler.tick(store)  # so that what is shown is current
    if args.action == "list":
        found = sweeps.list()
        for damaged in sweeps.damaged_sweeps():
            print(f"warning: {damaged.message} 'python -m cifar_core sweep delete {damaged.id}' "
                  "does it.", file=sys.stderr)
        if args.json:
            for sweep in found:
                _emit(sweep.to_dict())
            return 0
        if not found:
            print("No sweeps yet. Start one with e.g.: python -m cifar_core sweep --lr "
                  "0.001,0.01,0.1 --epochs 1")
            return 0
        for sweep in found:
            runs = sweeps.runs(sweep.id)
            best = best_run(runs)
            print(f"{sweep.id:30} {sweep.status:9} {_when(sweep.created):16} "
                  f"{len(runs):>3}/{sweep.space.size():<3} runs  "
                  f"best {f'{best.accuracy:.1f} %' if best else '-':>7}  {sweep.name}")
        return 0
    if args.action == "delete":  # (also a sweep whose row cannot be read)
        delete_sweep(store, args.sweep_id)
        if args.json:
            _emit({"sweep_id": args.sweep_id, "deleted": True})
            return 0
        print(f"Deleted sweep {args.sweep_id} and its runs.")
        return 0
    sweep = sweeps.get(args.sweep_id)
    if args.action == "show":
        runs = sweeps.runs(sweep.id)
        if args.json:
            _emit({**sweep.to_dict(), "runs": [r.to_dict() for r in runs]})
            return 0
        varied = [a.name for a in sweep.space.varied]
        print(f"Sweep {sweep.id} ({sweep.name}): {sweep.status}"
              + (f" - {sweep.message}" if sweep.message else ""))
        print(f"  {sweep.space.strategy}, {len(runs)} of {sweep.space.size()} runs, "
              f"{sweep.parallel} side by side on {sweep.engine}; varies "
              f"{', '.join(varied) or 'nothing'}")
        for run in runs:
            print("  " + _run_line(run, varied))
        print("\n".join(_best_lines(store, sweep)))
        return 0
    if args.action == "stop":
        sweep = stop_sweep(store, sweep.id)
        if args.json:
            _emit({"sweep_id": sweep.id, "status": sweep.status, "stop_requested": True})
            return 0
        print(f"Sweep {sweep.id}: " + ("stopped." if sweep.status == "stopped" else
                                       "stop requested; its runs end after their minibatch."))
        return 0
    raise AssertionError(f"unknown sweep action {args.action!r}")


def cmd_data(args) -> int:
    data = load_cifar10(args.data_dir, progress=lambda m: print(m, file=sys.stderr, flush=True))
    counts = data.class_counts()
    if args.json:
        _emit({"source": data.source, "classes": list(data.classes), "counts": counts,
               "warnings": list(data.warnings)})
        return 0
    # Its warnings were printed on stderr as it loaded (load_cifar10 passes them to progress).
    print(f"{data.source}: {len(data.train_labels):,} training and "
          f"{len(data.test_labels):,} test images, {len(data.classes)} classes "
          f"({', '.join(data.classes)})")
    return 0


COMMANDS = {"train": cmd_train, "lr-find": cmd_lr_find, "evaluate": cmd_evaluate,
            "runs": cmd_runs, "sweep": cmd_sweep, "data": cmd_data}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # here, where a reader gone is caught, not at the exit
        return code
    except BrokenPipeError:
        # The reader went away (`runs list | head -1`): what it did not read is not wanted.
        # Later writes (the exit's flush) go nowhere, not into a second traceback.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a program ended by SIGPIPE
    except CifarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130

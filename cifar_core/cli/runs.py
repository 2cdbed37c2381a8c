"""`runs list | show | stop | delete | export`: the runs in the run store, one function per
action."""

from __future__ import annotations

import sys
from pathlib import Path

from cifar_core.cli.common import (
    CommandParser,
    emit,
    json_flag,
    open_store,
    print_accuracy,
    runs_flag,
    shown_time,
    tick_scheduler,
)
from cifar_core.errors import CifarError, StoreError
from cifar_core.runs.jobs import JobRunner
from cifar_core.runs.store import STATUSES, Run, RunStore
from cifar_core.runs.views import IMPORTED, how_it_trained, is_import, run_setting_text
from cifar_core.share.curves_csv import write_curves_csv
from cifar_core.share.tensorboard import write_tensorboard
from cifar_core.training.config import compared_settings


def add_runs_parser(sub) -> None:
    """`runs` and its actions, each taking the store and --json before or after it."""
    r = sub.add_parser("runs", help="list, show, stop or delete runs")
    runs_flag(r)
    json_flag(r)
    rsub = r.add_subparsers(dest="action", required=True, parser_class=CommandParser)
    rl = rsub.add_parser("list", help="all runs, newest first")
    rl.add_argument("--status", choices=STATUSES)
    rs = rsub.add_parser("show", help="one run in detail")
    rs.add_argument("run_id")
    rst = rsub.add_parser("stop", help="stop a queued or running run")
    rst.add_argument("run_id")
    rd = rsub.add_parser("delete", help="delete a finished run and its files")
    rd.add_argument("run_id")
    re_ = rsub.add_parser("export", help="runs' curves as a CSV file, or curves and settings "
                                         "as TensorBoard files")
    re_.add_argument("run_ids", nargs="+", metavar="RUN")
    re_.add_argument("--curves", type=Path, metavar="FILE.csv|DIR",
                     help="the CSV file to write each loss report and each epoch's test into "
                          "(for several runs a folder: a file per run)")
    re_.add_argument("--tensorboard", type=Path, metavar="DIR",
                     help="the folder to write TensorBoard files into (a folder per run; needs "
                          "the tensorboard package)")
    for action in (rl, rs, rst, rd, re_):
        runs_flag(action)
        json_flag(action)


def _print_runs_table(runs: list[Run]) -> None:
    """A line per run: its data set (by the name --dataset takes), a column per compared
    setting (cifar_core.training.config), then the results."""
    rows = [(run, {name: run_setting_text(run, name) for name in compared_settings()})
            for run in runs]
    widths = {name: max(len(name), *(len(shown[name]) for _, shown in rows))
              for name in compared_settings()}
    named = max(len("dataset"), *(len(run.dataset) for run in runs))
    print(f"{'run':22} {'status':10} {'dataset':{named}} {'created':16} "
          + " ".join(f"{name:>{width}}" for name, width in widths.items())
          + f" {'accuracy':>8} {'images/s':>9}")
    for run, shown in rows:
        m = run.metrics or {}
        acc = f"{m['accuracy']:.1f} %" if m.get("accuracy") is not None else "-"
        ips = f"{m['images_per_s']:,.0f}" if m.get("images_per_s") else "-"
        values = " ".join(f"{shown[name]:>{width}}" for name, width in widths.items())
        status = IMPORTED if is_import(run) else run.status  # no settings, no speed
        print(f"{run.id:22} {status:10} {run.dataset:{named}} {shown_time(run.created):16} "
              f"{values} {acc:>8} {ips:>9}")


def list_runs(store: RunStore, args) -> int:
    runs = store.list(args.status)
    for warning in store.damaged_runs():
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        for run in runs:
            emit(run.to_dict())
        return 0
    if not runs:
        print("No runs yet. Start one with: python -m cifar_core train")
        return 0
    _print_runs_table(runs)
    return 0


def show_run(store: RunStore, args) -> int:
    run = store.get(args.run_id)
    if args.json:
        emit({**run.to_dict(), "events": [e.to_dict() for _, e in store.events(run.id)]})
        return 0
    print(f"Run {run.id}: {run.status}" + (f" - {run.message}" if run.message else ""))
    print(f"  created {shown_time(run.created)}, origin {run.origin}, data set {run.dataset} "
          f"in {run.data_dir}")
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
        print_accuracy(run.metrics["accuracy"], run.metrics["per_class"],
                       run.metrics["test_images"])
    return 0


def stop_run(store: RunStore, args) -> int:
    run = JobRunner(store).stop(args.run_id)
    if args.json:
        emit({"run_id": run.id, "status": run.status, "stop_requested": True})
        return 0
    print(f"Run {run.id}: " + ("stopped." if run.status == "stopped" else
                               "stop requested; it ends after its current minibatch."))
    return 0


def delete_run(store: RunStore, args) -> int:
    JobRunner(store).delete(args.run_id)
    if args.json:
        emit({"run_id": args.run_id, "deleted": True})
        return 0
    print(f"Deleted run {args.run_id} and its files.")
    return 0


def export_runs(store: RunStore, args) -> int:
    if args.curves is None and args.tensorboard is None:
        raise CifarError("Say what to export: --curves FILE.csv (the loss and the tests after "
                         "each epoch as a CSV file; a folder for several runs) or "
                         "--tensorboard DIR (TensorBoard files), or both.")
    if args.curves is not None:
        export_curves(store, args)
    if args.tensorboard is not None:
        export_tensorboard(store, args)
    return 0


def export_curves(store: RunStore, args) -> None:
    files = write_curves_csv(store, args.run_ids, args.curves)
    if args.json:
        for run_id, path in zip(args.run_ids, files, strict=True):
            emit({"run_id": run_id, "curves": str(path)})
        return
    print(f"Wrote the curves of {len(files)} run{'s' * (len(files) != 1)} as CSV: "
          + ", ".join(map(str, files)))


def export_tensorboard(store: RunStore, args) -> None:
    written = write_tensorboard(store, args.run_ids, args.tensorboard)
    if args.json:
        for folder in written:
            emit({"run_id": folder.name, "tensorboard": str(folder)})
        return
    print(f"Wrote the TensorBoard files of {len(written)} run{'s' * (len(written) != 1)} into "
          f"{args.tensorboard}. See them with: tensorboard --logdir {args.tensorboard}")


RUN_ACTIONS = {"list": list_runs, "show": show_run, "stop": stop_run, "delete": delete_run,
               "export": export_runs}


def cmd_runs(args) -> int:
    store = open_store(args.runs_dir)
    try:
        tick_scheduler(store)  # reap dead jobs and start queued ones: what we show is current
    except StoreError as exc:  # what is there can still be shown
        print(f"warning: {exc}", file=sys.stderr)
    return RUN_ACTIONS[args.action](store, args)

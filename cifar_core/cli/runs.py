"""`runs list | show | stop | delete | export | rename | note | tag`: the runs in the run store,
one function per action."""

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
from cifar_core.runs.naming import display_names
from cifar_core.runs.store import STATUSES, Run, RunStore
from cifar_core.runs.views import (
    IMPORTED,
    TAG,
    filter_runs,
    how_it_trained,
    is_import,
    run_setting_text,
)
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
    rl.add_argument("--tag", action="append", default=[], metavar="TAG",
                    help="only the runs with this tag (give it again for any of several)")
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
    rn = rsub.add_parser("rename", help="give a run a name (\"\" for the one made from "
                                        "its settings)")
    rn.add_argument("run_id", metavar="RUN")
    rn.add_argument("name", metavar="NAME")
    rno = rsub.add_parser("note", help="keep a note with a run (\"\" to remove it)")
    rno.add_argument("run_id", metavar="RUN")
    rno.add_argument("text", metavar="TEXT")
    rt = rsub.add_parser("tag", help="add tags to a run, or take them off with --remove")
    rt.add_argument("run_id", metavar="RUN")
    rt.add_argument("tags", nargs="+", metavar="TAG")
    rt.add_argument("--remove", action="store_true", help="take these tags off")
    for action in (rl, rs, rst, rd, re_, rn, rno, rt):
        runs_flag(action)
        json_flag(action)


def _print_runs_table(runs: list[Run], names: dict[str, str]) -> None:
    """A line per run: its id, test accuracy and name (naming), status, data set (by the name
    --dataset takes), a column per compared setting (cifar_core.training.config), speed."""
    rows = [(run, {name: run_setting_text(run, name) for name in compared_settings()})
            for run in runs]
    widths = {name: max(len(name), *(len(shown[name]) for _, shown in rows))
              for name in compared_settings()}
    named = max(len("dataset"), *(len(run.dataset) for run in runs))
    called = max(len("name"), *(len(names[run.id]) for run in runs))
    print(f"{'run':22} {'accuracy':>8}  {'name':{called}} {'status':10} {'dataset':{named}} "
          f"{'created':16} " + " ".join(f"{name:>{width}}" for name, width in widths.items())
          + f" {'images/s':>9}")
    for run, shown in rows:
        m = run.metrics or {}
        acc = f"{m['accuracy']:.1f} %" if m.get("accuracy") is not None else "-"
        ips = f"{m['images_per_s']:,.0f}" if m.get("images_per_s") else "-"
        values = " ".join(f"{shown[name]:>{width}}" for name, width in widths.items())
        status = IMPORTED if is_import(run) else run.status  # no settings, no speed
        print(f"{run.id:22} {acc:>8}  {names[run.id]:{called}} {status:10} "
              f"{run.dataset:{named}} {shown_time(run.created):16} {values} {ips:>9}")


def list_runs(store: RunStore, args) -> int:
    every = store.list()
    names = display_names(every)  # made among all runs: a run reads as it does everywhere
    tags = [t.strip().lower() for t in args.tag]  # as tags are kept (annotations.clean_tag)
    runs = filter_runs(store.list(args.status) if args.status else every, TAG, tags)
    for warning in store.damaged_runs():
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        for run in runs:
            emit({**run.to_dict(), "display_name": names[run.id]})
        return 0
    if not runs:
        if args.status or args.tag:
            print("No runs " + " and ".join(
                ([f"with status {args.status}"] if args.status else [])
                + ([f"tagged {' or '.join(args.tag)}"] if args.tag else [])) + ".")
        else:
            print("No runs yet. Start one with: python -m cifar_core train")
        return 0
    _print_runs_table(runs, names)
    return 0


def show_run(store: RunStore, args) -> int:
    run = store.get(args.run_id)
    if args.json:
        emit({**run.to_dict(), "events": [e.to_dict() for _, e in store.events(run.id)]})
        return 0
    print(f"Run {run.id}: {run.status}" + (f" - {run.message}" if run.message else ""))
    print(f"  name: {display_names(store.list()).get(run.id, run.id)}"
          + ("" if run.name else " (made from its settings; set one with 'runs rename')"))
    if run.tags:
        print(f"  tags: {', '.join(run.tags)}")
    if run.note:
        print("  note: " + run.note.replace("\n", "\n        "))
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


def rename_run(store: RunStore, args) -> int:
    run = store.set_name(args.run_id, args.name)
    shown = display_names(store.list()).get(run.id, run.id)
    if args.json:
        emit({"run_id": run.id, "name": run.name, "display_name": shown})
        return 0
    print(f"Run {run.id} is now called '{run.name}'." if run.name else
          f"Run {run.id} has no name of its own now: it shows as '{shown}'.")
    return 0


def note_run(store: RunStore, args) -> int:
    run = store.set_note(args.run_id, args.text)
    if args.json:
        emit({"run_id": run.id, "note": run.note})
        return 0
    print(f"Kept the note with run {run.id}." if run.note else f"Run {run.id} has no note now.")
    return 0


def tag_run(store: RunStore, args) -> int:
    run = store.tag(args.run_id, args.tags, remove=args.remove)
    if args.json:
        emit({"run_id": run.id, "tags": list(run.tags)})
        return 0
    print(f"Run {run.id}'s tags: {', '.join(run.tags)}." if run.tags else
          f"Run {run.id} has no tags now.")
    return 0


RUN_ACTIONS = {"list": list_runs, "show": show_run, "stop": stop_run, "delete": delete_run,
               "export": export_runs, "rename": rename_run, "note": note_run, "tag": tag_run}


def cmd_runs(args) -> int:
    store = open_store(args.runs_dir)
    try:
        tick_scheduler(store)  # reap dead jobs and start queued ones: what we show is current
    except StoreError as exc:  # what is there can still be shown
        print(f"warning: {exc}", file=sys.stderr)
    return RUN_ACTIONS[args.action](store, args)

"""`sweep`: train many runs over a search space and follow them; `sweep list | show | stop |
delete` the sweeps there are; `sweep drive` is a Ray sweep's driver process."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
from pathlib import Path

from cifar_core.cli.common import (
    CommandParser,
    chosen_dataset,
    data_flag,
    dataset_flag,
    emit,
    json_flag,
    number,
    open_store,
    runs_flag,
    shown_time,
    tick_scheduler,
)
from cifar_core.data.dataset import default_data_dir
from cifar_core.runs.store import Run, RunStore
from cifar_core.runs.views import dataset_title, setting_text
from cifar_core.sweeps.engine import best_run, delete_sweep, start_sweep, stop_sweep
from cifar_core.sweeps.groups import best_setting_text, best_two_answer
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
from cifar_core.training.config import PRESETS, defaults, preset_values, settings


def add_sweep_parser(sub) -> None:
    """`sweep`: a flag per setting taking a value, a list or a range; and its actions."""
    w = sub.add_parser(
        "sweep", help="train many runs over a search space (list, show, stop, delete sweeps)",
        description="Vary settings over many runs: give a setting one value (--epochs 1), a "
                    "list (--lr 0.001,0.01,0.1) or a range (--lr 0.0001:0.1:4:log = 4 points "
                    "on a log scale; LOW:HIGH for the random and smart strategies), or a space "
                    "file (--space sweep.toml). Then: sweep list | show ID | stop ID | "
                    "delete ID.")
    data_flag(w)
    dataset_flag(w)
    runs_flag(w)
    json_flag(w)
    _search_flags(w)
    _engine_flags(w)
    w.add_argument("--name", default="", help="a name to find the sweep by")
    w.add_argument("--no-wait", action="store_true",
                   help="start the sweep and return; it goes on in the background")
    for name, spec in settings().items():
        w.add_argument(spec.flag, dest=f"vary_{name}", default=None, metavar="VALUES",
                       help=f"{spec.label}: a value, a list or a range".replace("%", "%%"))
    _add_sweep_actions(w)


def _search_flags(w) -> None:
    """How the space is searched: its file, the preset, the strategy and its budget."""
    w.add_argument("--space", type=Path, help="a TOML file with the space (see README)")
    w.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="start from a preset's settings; the flags given vary or replace them")
    w.add_argument("--strategy", choices=list(STRATEGIES), default=None,
                   help="grid (every combination, the default), random (--runs draws) or "
                        "smart (Optuna's TPE: --runs trials, each learning from the others)")
    w.add_argument("--runs", type=number(int), default=None, dest="max_runs",
                   help="at most this many runs (random and smart: how many)")
    w.add_argument("--minutes", type=number(float), default=None,
                   help="time budget: no run starts after this many minutes")
    w.add_argument("--repeats", type=number(int), default=None,
                   help="run each setting this many times, with the seeds seed, seed+1, ... "
                        "(the answer then gives each setting's mean and spread)")
    w.add_argument("--prune", nargs="?", const="median", choices=list(PRUNERS[1:]),
                   default=None, help="stop hopeless runs after an epoch (Optuna's median "
                                      "pruner, or successive halving)")


def _engine_flags(w) -> None:
    """Where the runs train: this machine or a Ray cluster, and how many side by side."""
    w.add_argument("--engine", choices=list(ENGINES), default="local",
                   help="local (this machine, the default) or ray (a Ray cluster)")
    w.add_argument("--ray-address", default=None,
                   help="the Ray cluster's address (default: $CIFAR_RAY_ADDRESS; none: a "
                        "cluster of this machine alone)")
    w.add_argument("--parallel", type=number(int), default=None,
                   help="runs side by side on this machine (default: one per core on a CPU)")


def _add_sweep_actions(w) -> None:
    """`sweep list | show ID | stop ID | delete ID`, and the hidden `drive ID`."""
    actions = w.add_subparsers(dest="action", required=False, parser_class=CommandParser,
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
        ("prune", args.prune), ("repeats", args.repeats)) if value is not None}
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
        tick_scheduler(store)
        sweep = sweeps.get(sweep_id)
        for run in sweeps.runs(sweep_id):
            if run.id in shown or run.is_active:
                continue
            shown.add(run.id)
            if as_json:
                emit({"kind": "run", "run_id": run.id, "status": run.status,
                      "accuracy": run.accuracy, "message": run.message,
                      "settings": {n: run.settings.get(n) for n in varied}})
            else:
                print(_run_line(run, varied), flush=True)
        if not sweep.is_active:
            return sweep
        time.sleep(0.5)


def _best_lines(store: RunStore, sweep: Sweep) -> list[str]:
    runs = SweepStore(store).runs(sweep.id)
    best = best_run(runs)
    if best is None:
        return ["No run of the sweep finished with an accuracy."]
    changed = {k: v for k, v in best.settings.items() if v != defaults().get(k)}
    flags = " ".join(f"{settings()[k].flag} {v}" if settings()[k].kind is not bool
                     else (settings()[k].flag if v else f"--no-{settings()[k].flag[2:]}")
                     for k, v in changed.items() if k in settings() and v is not None)
    setting = best_setting_text(sweep.space, runs)  # (with repeats: the best mean)
    noise = best_two_answer(sweep.space, runs)
    return [*([setting.replace("**", "") + "."] if setting else []),
            f"Best: run {best.id}, {best.accuracy:.1f} % of the test images right.",
            f"  to train it again: python -m cifar_core train {flags}",
            *([noise] if noise else [])]


def _started_sweep(store: RunStore, args) -> tuple[Sweep, Path]:
    """The sweep the flags ask for, started; and the data folder its runs read."""
    dataset = chosen_dataset(args)  # an unknown data set is named first
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
                        engine=args.engine, address=address, parallel=args.parallel,
                        dataset=dataset)
    return sweep, data_dir


def _print_outcome(store: RunStore, sweep: Sweep, as_json: bool) -> None:
    """How the sweep ended and its best run."""
    best = best_run(SweepStore(store).runs(sweep.id))
    if as_json:
        emit({"kind": "summary", "sweep_id": sweep.id, "status": sweep.status,
              "message": sweep.message, "best_run": best.id if best else None,
              "best_accuracy": best.accuracy if best else None,
              "best_settings": best.settings if best else None})
    else:
        print(f"Sweep {sweep.id} {sweep.status}: {sweep.message.split(' Best: ')[0]}")
        print("\n".join(_best_lines(store, sweep)))


def start_and_follow(store: RunStore, args) -> int:
    """`sweep --lr ...`: start a sweep and, unless --no-wait, follow it until it ends."""
    sweep, data_dir = _started_sweep(store, args)
    varied = [a.name for a in sweep.space.varied]
    planned = sweep.space.size()
    if args.json:
        emit({"kind": "sweep", "sweep_id": sweep.id, "runs": planned,
              "engine": sweep.engine, "parallel": sweep.parallel})
    else:
        print(f"Sweep {sweep.id}: {planned} run{'s' * (planned != 1)}, {sweep.parallel} "
              f"side by side ({sweep.engine}; data: {data_dir})", file=sys.stderr,
              flush=True)
    if args.no_wait:
        return 0
    sweep = _wait_for_sweep(store, sweep.id, args.json, varied)
    _print_outcome(store, sweep, args.json)
    return 0 if sweep.status == "completed" else 1


def drive_ray_sweep(store: RunStore, args) -> int:
    """`sweep drive ID`: a Ray sweep's driver process, started by cifar_core.sweeps.engine."""
    from cifar_core.sweeps.ray_engine import drive

    return drive(store, args.sweep_id)


def list_sweeps(store: RunStore, args) -> int:
    sweeps = SweepStore(store)
    found = sweeps.list()
    for damaged in sweeps.damaged_sweeps():
        print(f"warning: {damaged.message} 'python -m cifar_core sweep delete {damaged.id}' "
              "does it.", file=sys.stderr)
    if args.json:
        for sweep in found:
            emit(sweep.to_dict())
        return 0
    if not found:
        print("No sweeps yet. Start one with e.g.: python -m cifar_core sweep --lr "
              "0.001,0.01,0.1 --epochs 1")
        return 0
    for sweep in found:
        runs = sweeps.runs(sweep.id)
        best = best_run(runs)
        print(f"{sweep.id:30} {sweep.status:9} {shown_time(sweep.created):16} "
              f"{len(runs):>3}/{sweep.space.size():<3} runs  "
              f"best {f'{best.accuracy:.1f} %' if best else '-':>7}  {sweep.name}")
    return 0


def show_sweep(store: RunStore, args) -> int:
    sweeps = SweepStore(store)
    sweep = sweeps.get(args.sweep_id)
    runs = sweeps.runs(sweep.id)
    if args.json:
        emit({**sweep.to_dict(), "runs": [r.to_dict() for r in runs]})
        return 0
    varied = [a.name for a in sweep.space.varied]
    print(f"Sweep {sweep.id} ({sweep.name}): {sweep.status}"
          + (f" - {sweep.message}" if sweep.message else ""))
    repeats = f" (each setting {sweep.space.repeats} times)" if sweep.space.repeats > 1 else ""
    print(f"  {sweep.space.strategy}, {len(runs)} of {sweep.space.size()} runs{repeats}, "
          f"{sweep.parallel} side by side on {sweep.engine}; varies "
          f"{', '.join(varied) or 'nothing'}")
    print(f"  on {dataset_title(sweep.dataset)} (data: {sweep.data_dir})")
    for run in runs:
        print("  " + _run_line(run, varied))
    print("\n".join(_best_lines(store, sweep)))
    return 0


def stop_one_sweep(store: RunStore, args) -> int:
    sweep = SweepStore(store).get(args.sweep_id)  # an unknown id is refused by name
    sweep = stop_sweep(store, sweep.id)
    if args.json:
        emit({"sweep_id": sweep.id, "status": sweep.status, "stop_requested": True})
        return 0
    print(f"Sweep {sweep.id}: " + ("stopped." if sweep.status == "stopped" else
                                   "stop requested; its runs end after their minibatch."))
    return 0


def delete_one_sweep(store: RunStore, args) -> int:
    """(Also a sweep whose row cannot be read.)"""
    delete_sweep(store, args.sweep_id)
    if args.json:
        emit({"sweep_id": args.sweep_id, "deleted": True})
        return 0
    print(f"Deleted sweep {args.sweep_id} and its runs.")
    return 0


SWEEP_ACTIONS = {None: start_and_follow, "drive": drive_ray_sweep, "list": list_sweeps,
                 "show": show_sweep, "stop": stop_one_sweep, "delete": delete_one_sweep}
# These show or change the sweeps there are: a tick first, so that what is shown is current.
# (Starting one ticks in the wait that follows it.)
SHOWN_AFTER_A_TICK = ("list", "show", "stop", "delete")


def cmd_sweep(args) -> int:
    store = open_store(args.runs_dir)
    if args.action in SHOWN_AFTER_A_TICK:
        tick_scheduler(store)
    return SWEEP_ACTIONS[args.action](store, args)

"""What the command groups share: the parser that refuses in one line, the flags every group
takes, the flags made from the settings registry, the run store and the scheduler's tick, and
the output (a JSON object per line, or lines that read like the tutorial)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from cifar_core import scheduler
from cifar_core.data.registry import DEFAULT_DATASET, dataset_names, dataset_spec
from cifar_core.runs.store import RunStore
from cifar_core.training.config import PRESETS, TrainConfig, defaults, preset_values, settings

USER_ERROR = 2


class CommandParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line, not a usage dump."""

    def error(self, message: str):
        self.exit(USER_ERROR, f"error: {message} (see '{self.prog} --help')\n")


def number(kind):
    """An argparse type for `kind` (int or float) whose refusal says what was expected."""
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
    parse.__name__ = kind.__name__
    return parse


# The flags below may come before or after the command, and before or after an action (e.g.
# `runs --runs-dir D list` and `runs list --runs-dir D`). Each level accepts them with no
# default of its own (SUPPRESS), so a later level cannot undo an earlier one; parse_args
# (cifar_core/cli/__init__.py) then gives those not given anywhere their defaults.

def data_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                        help="data folder (default: $CIFAR_DATA_DIR or ./data)")


def dataset_flag(parser: argparse.ArgumentParser, default_text: str = DEFAULT_DATASET) -> None:
    """--dataset NAME: the data set a command works on (None when not given: the command's
    default, `default_text` in its help). Checked by the command (chosen_dataset) once
    --data-dir is known: a data folder records its own folder data sets."""
    parser.add_argument("--dataset", default=None, metavar="NAME",
                        help=f"the data set: {', '.join(dataset_names())} or one you added "
                             f"(default: {default_text}; python -m cifar_core datasets lists "
                             "them)")


def chosen_dataset(args, default: str | None = DEFAULT_DATASET) -> str | None:
    """The data set --dataset names (`default` where it is not given), built in or recorded in
    the --data-dir folder; DataError in one sentence naming the choices for an unknown one."""
    if args.dataset is None:
        return default
    return dataset_spec(args.dataset, args.data_dir).name


def runs_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS,
                        help="run store folder (default: $CIFAR_RUNS_DIR or ./runs)")


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="one JSON object per line")


def preset_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=list(PRESETS), default=None,
                        help="start from a preset's settings (flags given beside it override "
                             "it): " + "; ".join(f"{k} = {preset.title}"
                                                 + (f" ({preset.measured})" if preset.measured
                                                    else "")
                                                 for k, preset in PRESETS.items())
                        .replace("%", "%%"))  # (argparse expands %-formats in help)


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
        kind = spec.kind if spec.kind is str else number(spec.kind)
        parser.add_argument(spec.flag, dest=name, type=kind, default=None,
                            help=f"{text}{choices} Default: {shown}.")


def config_from_args(args) -> TrainConfig:
    """The TrainConfig the flags ask for: the preset's settings (or the defaults), with each
    flag given replacing its setting."""
    values = preset_values(args.preset) if args.preset else {}
    given = {name: getattr(args, name) for name in settings()
             if getattr(args, name, None) is not None}
    return TrainConfig.from_dict({**values, **given})


def open_store(runs_dir: Path | None) -> RunStore:
    """The run store, with a warning on stderr for what opening it had to do (a damaged file
    moved aside, a read-only folder)."""
    store = RunStore(runs_dir)
    for notice in store.notices:
        print(f"warning: {notice}", file=sys.stderr, flush=True)
    return store


def tick_scheduler(store: RunStore) -> None:
    """One tick of the scheduler (cifar_core.scheduler): dead jobs reaped, running sweeps
    advanced, queued runs started. The command line ticks only through here: when a run it
    trained ends, before it shows runs or sweeps, and in the wait for a sweep."""
    scheduler.tick(store)


def emit(obj: dict) -> None:
    """One JSON object on its own line (the --json output)."""
    print(json.dumps(obj), flush=True)


def print_accuracy(accuracy: float, per_class: dict, total: int) -> None:
    """The accuracy as the tutorial prints it: overall, then a line per class."""
    print(f"Accuracy of the network on the {total} test images: {accuracy:.0f} %")
    for name, value in per_class.items():
        shown = "n/a" if value is None else f"{value:.1f} %"
        print(f"Accuracy for class {name:5s} is: {shown}")


def shown_time(ts: float | None) -> str:
    """A time stamp as the tables show it (local time, to the minute), or '-'."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"

"""Command line: `python -m cifar_core train | lr-find | evaluate | runs | sweep | data | datasets
| export | report`.

A module per command group: train.py (train, lr-find, evaluate), runs.py, sweep.py, data.py,
export.py, report.py;
common.py holds what they share. Each group adds its parser and has a function per command
(and per action), found through a table.

Plain output reads like the tutorial; `--json` prints one JSON object per line instead.
A user mistake prints one line starting with 'error:' and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from cifar_core.cli import data, export, report, runs, sweep, train
from cifar_core.cli.common import (
    USER_ERROR,
    CommandParser,
    config_from_args,
    data_flag,
    json_flag,
    runs_flag,
)
from cifar_core.errors import CifarError

__all__ = ["COMMANDS", "build_parser", "config_from_args", "main", "parse_args"]

# The flags every level accepts (cifar_core/cli/common.py), for those given nowhere.
SHARED_DEFAULTS = {"data_dir": None, "runs_dir": None, "json": False}

# Each command's parser, in the order --help lists them, and the function that runs it.
PARSERS = (train.add_train_parser, train.add_lr_find_parser, train.add_evaluate_parser,
           runs.add_runs_parser, sweep.add_sweep_parser, data.add_data_parser,
           data.add_datasets_parser, export.add_export_parser, report.add_report_parser)
COMMANDS = {"train": train.cmd_train, "lr-find": train.cmd_lr_find,
            "evaluate": train.cmd_evaluate, "runs": runs.cmd_runs, "sweep": sweep.cmd_sweep,
            "data": data.cmd_data, "datasets": data.cmd_datasets,
            "export": export.cmd_export, "report": report.cmd_report}


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="python -m cifar_core",
                           description="Train and inspect the PyTorch CIFAR-10 tutorial network.")
    for flag in (data_flag, runs_flag, json_flag):  # also accepted before the command
        flag(parser)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    for add_parser in PARSERS:
        add_parser(sub)
    return parser


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

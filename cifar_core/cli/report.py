"""`report RUN|SWEEP --out FILE.html`: a run or a sweep as one HTML file that opens offline
(cifar_core/share/report.py)."""

from __future__ import annotations

from pathlib import Path

from cifar_core.cli.common import data_flag, json_flag, runs_flag
from cifar_core.errors import CifarError


def add_report_parser(sub) -> None:
    r = sub.add_parser("report", help="a run or a sweep as one HTML file that opens offline")
    r.add_argument("target", metavar="RUN|SWEEP", help="a run's id or a sweep's id")
    r.add_argument("--out", type=Path, default=None,
                   help="the HTML file to write (default: <id>.html here)")
    data_flag(r)
    runs_flag(r)
    json_flag(r)


def cmd_report(args) -> int:
    raise CifarError("report is being built (issue 27).")  # replaced by the report's helper

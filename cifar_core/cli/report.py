"""`report RUN|SWEEP --out FILE.html`: a run or a sweep as one HTML file that opens offline
(cifar_core/share/report.py)."""

from __future__ import annotations

from pathlib import Path

from cifar_core.cli.common import data_flag, emit, json_flag, open_store, runs_flag


def add_report_parser(sub) -> None:
    r = sub.add_parser("report", help="a run or a sweep as one HTML file that opens offline")
    r.add_argument("target", metavar="RUN|SWEEP", help="a run's id or a sweep's id")
    r.add_argument("--out", type=Path, default=None,
                   help="the HTML file to write (default: <id>.html here)")
    data_flag(r)
    runs_flag(r)
    json_flag(r)


def cmd_report(args) -> int:
    """Make the report of a run or a sweep and write it whole to --out (a temporary file
    first, then moved into place); one line says where and how big."""
    # Here, not at the top: the chart library it loads would slow every command's start.
    from cifar_core.share.report import report_for, size_text, write_report

    store = open_store(args.runs_dir)
    kind, page = report_for(store, args.target, args.data_dir)
    out = args.out if args.out is not None else Path(f"{args.target}.html")
    size = write_report(page, out)
    if args.json:
        emit({"kind": "report", "of": kind, "id": args.target, "path": str(out),
              "bytes": size})
    else:
        print(f"Wrote the {kind}'s report to {out} ({size_text(size)}): open it in any browser, "
              "no server needed.")
    return 0

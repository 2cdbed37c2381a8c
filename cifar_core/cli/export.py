"""`export RUN|FILE --format onnx|torchscript [--out PATH]`: a trained network as a zip to use
elsewhere (cifar_core/share/network.py)."""

from __future__ import annotations

from pathlib import Path

from cifar_core.cli.common import json_flag, runs_flag
from cifar_core.errors import CifarError

FORMATS = ("onnx", "torchscript")


def add_export_parser(sub) -> None:
    e = sub.add_parser("export", help="a trained network as a zip: ONNX or TorchScript, with a "
                                      "model card and a predict.py")
    e.add_argument("network", metavar="RUN|FILE", help="a finished run's id, or a .pth file")
    e.add_argument("--format", choices=FORMATS, default="onnx")
    e.add_argument("--out", type=Path, default=None,
                   help="the zip to write (default: <run>-<format>.zip here)")
    runs_flag(e)
    json_flag(e)


def cmd_export(args) -> int:
    raise CifarError("export is being built (issue 27).")  # replaced by the export's helper

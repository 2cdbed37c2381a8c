"""`export RUN|FILE --format onnx|torchscript [--out PATH]`: a trained network as a zip to use
elsewhere (cifar_core/share/network.py)."""

from __future__ import annotations

from pathlib import Path

from cifar_core.cli.common import data_flag, emit, json_flag, open_store, runs_flag
from cifar_core.share.network import FORMATS, export_network


def add_export_parser(sub) -> None:
    e = sub.add_parser("export", help="a trained network as a zip: ONNX or TorchScript, with a "
                                      "model card and a predict.py")
    e.add_argument("network", metavar="RUN|FILE", help="a finished run's id, or a .pth file")
    e.add_argument("--format", choices=list(FORMATS), default="onnx")
    e.add_argument("--out", type=Path, default=None,
                   help="the zip to write, or a folder for it (default: <run>-<format>.zip "
                        "here)")
    runs_flag(e)
    data_flag(e)  # where the check's test pictures come from (default: the run's data folder)
    json_flag(e)


def cmd_export(args) -> int:
    store = open_store(args.runs_dir)
    done = export_network(store, args.network, args.format, args.out, data_dir=args.data_dir)
    if args.json:
        emit(done.to_dict())
        return 0
    size = done.path.stat().st_size
    print(f"Exported {args.network} as {FORMATS[done.format].title}: {done.path} "
          f"({size / 1024:,.0f} KB).")
    print(done.check.in_words())
    print(f"Unzip it and run: python predict.py your-picture.jpg (needs "
          f"{FORMATS[done.format].needs.replace(' ', ', ')}).")
    return 0

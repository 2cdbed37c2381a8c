"""`data`: download or decode the data set and describe it."""

from __future__ import annotations

import sys

from cifar_core.cli.common import data_flag, emit, json_flag
from cifar_core.data.load import load_cifar10


def add_data_parser(sub) -> None:
    d = sub.add_parser("data", help="download or decode the data set and describe it")
    data_flag(d)
    json_flag(d)


def cmd_data(args) -> int:
    data = load_cifar10(args.data_dir, progress=lambda m: print(m, file=sys.stderr, flush=True))
    counts = data.class_counts()
    if args.json:
        emit({"source": data.source, "classes": list(data.classes), "counts": counts,
              "warnings": list(data.warnings)})
        return 0
    # Its warnings were printed on stderr as it loaded (load_cifar10 passes them to progress).
    print(f"{data.source}: {len(data.train_labels):,} training and "
          f"{len(data.test_labels):,} test images, {len(data.classes)} classes "
          f"({', '.join(data.classes)})")
    return 0

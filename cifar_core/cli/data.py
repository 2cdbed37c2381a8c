"""`data` (download or decode a data set and describe it) and `datasets [list | add | remove]`
(every data set and its state here; your own picture folders as data sets, by name)."""

from __future__ import annotations

import sys

from cifar_core.cli.common import CommandParser, data_flag, emit, json_flag
from cifar_core.data.dataset import WARNING_PREFIX
from cifar_core.data.download import dataset_state
from cifar_core.data.folders import (
    add_folder_dataset,
    folder_class_names,
    recorded_folders,
    remove_folder_dataset,
)
from cifar_core.data.load import load_data
from cifar_core.data.registry import dataset_names, dataset_spec
from cifar_core.errors import DataError


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_data_parser(sub) -> None:
    d = sub.add_parser("data", help="download or decode a data set and describe it")
    data_flag(d)
    json_flag(d)
    # Checked by the command, not by argparse: a folder data set is known once the data folder
    # it is recorded in is (--data-dir may come after --dataset).
    d.add_argument("--dataset", default=None, metavar="NAME",
                   help=f"the data set: {', '.join(dataset_names())} or one you added "
                        "(default: cifar10; python -m cifar_core datasets lists them)")


def cmd_data(args) -> int:
    spec = dataset_spec(args.dataset, args.data_dir)  # an unknown name: one sentence, status 2
    data = load_data(spec.name, args.data_dir, progress=_to_stderr)
    counts = data.class_counts()
    if args.json:
        emit({"dataset": data.dataset, "title": data.title, "shape": list(data.shape),
              "source": data.source, "classes": list(data.classes), "counts": counts,
              "warnings": list(data.warnings)})
        return 0
    # Its warnings were printed on stderr as it loaded (load_data passes them to progress).
    print(f"{data.source}: {len(data.train_labels):,} training and "
          f"{len(data.test_labels):,} test images, {len(data.classes)} classes "
          f"({', '.join(data.classes)})")
    return 0


def add_datasets_parser(sub) -> None:
    """`datasets` (the list), `datasets list`, `datasets add`, `datasets remove`."""
    d = sub.add_parser("datasets", help="list the data sets; add or remove your own folders")
    data_flag(d)
    json_flag(d)
    dsub = d.add_subparsers(dest="action", required=False, parser_class=CommandParser)
    listed = dsub.add_parser("list", help="every data set and its state here (the default)")
    added = dsub.add_parser("add", help="record a folder of pictures as a data set of its own")
    added.add_argument("name", help="the name to choose it by (--dataset NAME)")
    added.add_argument("folder", help="the folder holding train/<class>/ and test/<class>/")
    added.add_argument("--title", help="its name for people (default: NAME)")
    added.add_argument("--size", type=int, default=32,
                       help="the pictures are read as SIZE x SIZE pixels (default: 32)")
    added.add_argument("--grey", action="store_true",
                       help="read the pictures as grey (default: colour)")
    removed = dsub.add_parser("remove", help="forget a folder data set (its pictures stay)")
    removed.add_argument("name")
    for action in (listed, added, removed):
        data_flag(action)
        json_flag(action)


def add_dataset(args) -> int:
    added = add_folder_dataset(args.name, args.folder, args.data_dir, title=args.title,
                               size=args.size, grey=args.grey, progress=_to_stderr)
    spec = added.spec
    if args.json:
        emit({"name": spec.name, "title": spec.title, "folder": str(added.folder),
              "classes": list(added.classes), "shape": list(spec.shape),
              "train": added.train, "test": added.test, "warnings": list(added.warnings)})
        return 0
    # The warnings were printed on stderr as it was checked and decoded.
    print(f"Added '{spec.name}' ({spec.title}): {len(added.classes)} classes "
          f"({', '.join(added.classes)}), {added.train:,} training and {added.test:,} test "
          f"pictures from {added.folder}, read as {spec.describe_shape()}.\n"
          f"Train on it with: python -m cifar_core train --dataset {spec.name}")
    return 0


def remove_dataset(args) -> int:
    removed = remove_folder_dataset(args.name, args.data_dir)
    if args.json:
        emit({"removed": removed.name, "folder": str(removed.folder)})
        return 0
    print(f"Removed '{removed.name}' ({removed.title}); its pictures stay in {removed.folder}. "
          "Runs trained on it keep their record: add it again to test them.")
    return 0


def _state_word(status) -> str:
    return "downloadable" if status.state == "missing" and status.downloadable else status.state


def _what_to_do(spec, status) -> str:
    """The status line, and for a data set not here, how to get it."""
    if status.state != "missing":
        return status.message
    fetch = (f" It is downloaded on first use, or now with: python -m cifar_core data --dataset "
             f"{spec.name}." if status.downloadable else "")
    return f"{status.message}{fetch} {spec.offline_help}".strip()


def list_datasets(args) -> int:
    try:
        recorded_folders(args.data_dir)
    except DataError as exc:  # the built-in ones are listed all the same
        _to_stderr(f"{WARNING_PREFIX}{exc}")
    rows = []
    for name in dataset_names(args.data_dir):
        spec = dataset_spec(name, args.data_dir)
        classes = spec.classes or folder_class_names(spec)
        rows.append((spec, classes, dataset_state(spec, args.data_dir)))
    if args.json:
        for spec, classes, status in rows:
            emit({"name": spec.name, "title": spec.title, "classes": list(classes),
                  "shape": list(spec.shape), "state": status.state, "message": status.message,
                  "downloadable": status.downloadable, "source_line": spec.source_line,
                  "about": spec.about})
        return 0
    table = [("name", "title", "classes", "pictures", "state")] + [
        (spec.name, spec.title, str(len(classes)), spec.describe_shape(), _state_word(status))
        for spec, classes, status in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(f"{cell:{width}}" for cell, width in zip(row, widths, strict=False))
              + "  " + row[4])
    print()
    for spec, _, status in rows:
        print(f"{spec.name}: {_what_to_do(spec, status)}")
    return 0


ACTIONS = {None: list_datasets, "list": list_datasets, "add": add_dataset,
           "remove": remove_dataset}


def cmd_datasets(args) -> int:
    return ACTIONS[args.action](args)

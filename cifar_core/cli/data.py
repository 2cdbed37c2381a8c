"""`data` (download or decode a data set and describe it) and `datasets [list | create | add |
show | delete | remove]` (every data set and its state here; your own sets of pictures, kept in
the runs folder; your own picture folders as data sets, by name)."""

from __future__ import annotations

import sys
from pathlib import Path

from cifar_core.cli.common import CommandParser, data_flag, emit, json_flag, runs_flag
from cifar_core.data import own_sets
from cifar_core.data.dataset import WARNING_PREFIX
from cifar_core.data.download import dataset_state
from cifar_core.data.folders import (
    add_folder_dataset,
    folder_class_names,
    read_record,
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
    """`datasets` (the list), `datasets list | create | add | show | delete | remove`."""
    d = sub.add_parser("datasets", help="list the data sets; make sets of your own pictures; "
                                        "add or remove your own folders")
    data_flag(d)
    runs_flag(d)
    json_flag(d)
    dsub = d.add_subparsers(dest="action", required=False, parser_class=CommandParser)
    listed = dsub.add_parser("list", help="every data set and its state here (the default)")
    created = dsub.add_parser("create", help="make a set of your own pictures, kept in the runs "
                                             "folder (as the Teach page does)")
    created.add_argument("name", help="the name to choose it by (--dataset NAME)")
    created.add_argument("--title", help="its name for people (default: NAME)")
    created.add_argument("--classes", metavar="A,B,C", help="its classes, by name (pictures are "
                         "added with: datasets add NAME CLASS FILE...)")
    created.add_argument("--from-folder", type=Path, metavar="DIR",
                         help="copy the pictures of DIR in, one folder per class (or train/ and "
                              "test/ of them); each is shrunk to 32 x 32")
    added = dsub.add_parser("add", help="add pictures to a class of your set (NAME CLASS "
                                        "FILE...), or record a folder of pictures as a data "
                                        "set of its own (NAME FOLDER)")
    added.add_argument("name", help="the set, or the name to choose the folder by")
    added.add_argument("what", metavar="CLASS|FOLDER",
                       help="a class of the set (made if it has none of that name), or the "
                            "folder holding train/<class>/ and test/<class>/")
    added.add_argument("files", nargs="*", metavar="FILE",
                       help="the picture files to add to the class (none for a folder)")
    added.add_argument("--title", help="a folder's name for people (default: NAME)")
    added.add_argument("--size", type=int, default=None,
                       help="a folder's pictures are read as SIZE x SIZE pixels (default: 32)")
    added.add_argument("--grey", action="store_true",
                       help="read a folder's pictures as grey (default: colour)")
    shown = dsub.add_parser("show", help="a set of yours: its classes, pictures, those held out "
                                         "for testing, its folder, whether it can train")
    shown.add_argument("name")
    deleted = dsub.add_parser("delete", help="delete a set of yours, its pictures with it")
    deleted.add_argument("name")
    removed = dsub.add_parser("remove", help="forget a folder data set (its pictures stay)")
    removed.add_argument("name")
    for action in (listed, created, added, shown, deleted, removed):
        data_flag(action)
        runs_flag(action)
        json_flag(action)


def _watch(args) -> None:
    """Make the sets of --runs-dir data sets too (the default runs folder's always are)."""
    if args.runs_dir is not None:
        own_sets.watch_runs_folder(args.runs_dir)


def _is_set_here(args, name: str) -> bool:
    try:
        folder = own_sets.sets_folder(args.runs_dir) / own_sets.check_name(name)
    except DataError:
        return False
    return own_sets.read_set_record(folder) is not None


def _is_folder_dataset(args, name: str) -> bool:
    try:
        return name in read_record(args.data_dir)
    except DataError:
        return False


def _held_out(own, class_name: str) -> str:
    [pictures] = [c for c in own.classes if c.name == class_name]
    return (f"{class_name} now has {len(pictures.pictures)} "
            f"({pictures.test} held out for testing)")


def _readiness(own) -> str:
    problem = own.problem()
    if problem is None:
        return f"It can train: python -m cifar_core train --dataset {own.name}"
    return f"It cannot train yet. {problem}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' * (n != 1)}"


def _classes(n: int) -> str:
    return f"{n} class{'es' * (n != 1)}"


def _warn_skipped(skipped) -> None:
    for sentence in skipped:
        _to_stderr(f"{WARNING_PREFIX}{sentence}")


def create_set(args) -> int:
    _watch(args)
    if args.from_folder is not None:
        if args.classes:
            raise DataError("Give --classes or --from-folder, not both: a folder's classes are "
                            "its class folders.")
        made = own_sets.create_from_folder(args.name, args.from_folder, args.title,
                                           runs_dir=args.runs_dir)
        own = made.set
        _warn_skipped(made.skipped)
    else:
        classes = [c for c in (args.classes or "").split(",") if c.strip()]
        own = own_sets.create_set(args.name, args.title, classes, runs_dir=args.runs_dir)
    if args.json:
        emit(_set_json(own))
        return 0
    names = ", ".join(c.name for c in own.classes) or "none yet"
    if args.from_folder is not None:
        held = sum(c.test for c in own.classes)
        print(f"Made the set '{own.name}' ({own.title}) in {own.folder} from "
              f"{args.from_folder}: {_plural(own.picture_count, 'picture')} of "
              f"{_classes(len(own.classes))} ({names}), {held} held out for testing.")
    else:
        print(f"Made the set '{own.name}' ({own.title}) in {own.folder}; classes: {names}.\n"
              f"Add pictures with: python -m cifar_core datasets add {own.name} CLASS FILE...")
    print(_readiness(own))
    return 0


def add_dataset(args) -> int:
    """`datasets add NAME CLASS FILE...` (pictures into a set) or `datasets add NAME FOLDER`."""
    _watch(args)
    if not args.files:
        if _is_set_here(args, args.name):
            raise DataError(f"'{args.name}' is one of your sets: give the pictures to add after "
                            f"the class, python -m cifar_core datasets add {args.name} "
                            f"{args.what} FILE...")
        return add_folder(args)
    if not _is_set_here(args, args.name) and _is_folder_dataset(args, args.name):
        raise DataError(f"'{args.name}' is a folder data set, whose pictures are those in its "
                        "folder: to add pictures one by one, make a set of your own with "
                        "python -m cifar_core datasets create NAME.")
    if args.title is not None or args.size is not None or args.grey:
        raise DataError("--title, --size and --grey are for recording a folder: a set's pictures "
                        "are shrunk to its size as they are added (rename it on the Teach page).")
    class_name, files = args.what, args.files
    added = own_sets.add_pictures(args.name, class_name, [Path(f) for f in files],
                                  runs_dir=args.runs_dir)
    _warn_skipped(added.skipped)
    if not added.added:
        raise DataError(f"None of the {len(files)} files could be added to '{args.name}': see "
                        "why above.")
    own, class_name = added.set, added.added[0].class_name
    if args.json:
        emit({**_set_json(own), "added": [p.id for p in added.added],
              "skipped": list(added.skipped)})
        return 0
    print(f"Added {_plural(len(added.added), 'picture')} of {class_name} to '{own.name}': "
          f"{_held_out(own, class_name)}.")
    print(_readiness(own))
    return 0


def _set_json(own) -> dict:
    return {"name": own.name, "title": own.title, "folder": str(own.folder),
            "shape": list(own.shape), "problem": own.problem(),
            "classes": [{"name": c.name, "pictures": len(c.pictures), "train": c.train,
                         "test": c.test} for c in own.classes]}


def _not_a_set(args, name: str, verb: str) -> DataError:
    """Why `name` is not a set here, saying which command fits it."""
    if _is_folder_dataset(args, name):
        what = ("forget it with python -m cifar_core datasets remove " + name if verb == "delete"
                else "python -m cifar_core datasets lists it")
        return DataError(f"'{name}' is a folder data set, not one of your sets: {what}.")
    dataset_names(args.data_dir)
    if name in own_sets.DATASETS and not own_sets.is_own_set(name):
        return DataError(f"'{name}' is built in, not one of your sets: it cannot be {verb}d"
                         if verb == "delete" else
                         f"'{name}' is built in, not one of your sets: python -m cifar_core "
                         "datasets lists every data set.")
    return DataError(f"There is no set of yours named '{name}' in "
                     f"{own_sets.sets_folder(args.runs_dir)}: python -m cifar_core datasets "
                     "lists them.")


def show_set(args) -> int:
    _watch(args)
    if not _is_set_here(args, args.name):
        raise _not_a_set(args, args.name, "show")
    own = own_sets.get_set(args.name, runs_dir=args.runs_dir)
    if args.json:
        emit(_set_json(own))
        return 0
    spec = dataset_spec(own.name, args.data_dir)
    print(f"{own.name} ({own.title}): {_classes(len(own.classes))}, "
          f"{_plural(own.picture_count, 'picture')} of "
          f"{spec.describe_shape()}, kept in {own.folder}")
    table = [("class", "pictures", "to-learn", "held-out")] + [
        (c.name, str(len(c.pictures)), str(c.train), str(c.test)) for c in own.classes]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(f"{cell:{width}}" for cell, width in zip(row, widths, strict=True)))
    print(_readiness(own))
    return 0


def delete_set(args) -> int:
    _watch(args)
    if not _is_set_here(args, args.name):
        raise _not_a_set(args, args.name, "delete")
    own = own_sets.get_set(args.name, runs_dir=args.runs_dir)
    own_sets.delete_set(args.name, runs_dir=args.runs_dir)
    if args.json:
        emit({"deleted": own.name, "folder": str(own.folder)})
        return 0
    print(f"Deleted the set '{own.name}' ({own.title}) and its "
          f"{_plural(own.picture_count, 'picture')} from {own.folder}. Runs trained on it keep "
          "their record.")
    return 0


def add_folder(args) -> int:
    added = add_folder_dataset(args.name, args.what, args.data_dir, title=args.title,
                               size=32 if args.size is None else args.size, grey=args.grey,
                               progress=_to_stderr)
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
    _watch(args)
    if _is_set_here(args, args.name) and not _is_folder_dataset(args, args.name):
        raise DataError(f"'{args.name}' is one of your sets, not a folder data set: delete it "
                        f"with python -m cifar_core datasets delete {args.name} (its pictures "
                        "go with it).")
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


def _own_sets_by_name(args) -> dict:
    """The sets of the watched runs folders (--runs-dir's too), by name."""
    _watch(args)
    folders = {None, args.runs_dir}
    return {own.name: own for runs_dir in folders for own in own_sets.list_sets(runs_dir=runs_dir)}


def list_datasets(args) -> int:
    sets = _own_sets_by_name(args)
    try:
        recorded_folders(args.data_dir)
    except DataError as exc:  # the built-in ones are listed all the same
        _to_stderr(f"{WARNING_PREFIX}{exc}")
    rows = []
    for name in dataset_names(args.data_dir):
        spec = dataset_spec(name, args.data_dir)
        own = sets.get(name) if own_sets.is_own_set(name) else None
        classes = spec.classes or (tuple(c.name for c in own.classes) if own is not None
                                   else folder_class_names(spec))
        rows.append((spec, classes, dataset_state(spec, args.data_dir)))
    if args.json:
        for spec, classes, status in rows:
            emit({"name": spec.name, "title": spec.title, "classes": list(classes),
                  "shape": list(spec.shape), "state": status.state, "message": status.message,
                  "downloadable": status.downloadable, "source_line": spec.source_line,
                  "about": spec.about, **({"own_set": _set_json(sets[spec.name])}
                                          if spec.name in sets else {})})
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
        own = sets.get(spec.name)
        if own is not None and own_sets.is_own_set(spec.name):
            print(f"{spec.name}: Your own set, kept in {own.folder}: "
                  f"{_plural(own.picture_count, 'picture')}. {_readiness(own)}")
        else:
            print(f"{spec.name}: {_what_to_do(spec, status)}")
    return 0


ACTIONS = {None: list_datasets, "list": list_datasets, "create": create_set,
           "add": add_dataset, "show": show_set, "delete": delete_set, "remove": remove_dataset}


def cmd_datasets(args) -> int:
    return ACTIONS[args.action](args)

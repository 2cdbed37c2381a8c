"""Your own picture folders as data sets of their own, by name, recorded in the data folder.

`add_folder_dataset` (`python -m cifar_core datasets add NAME FOLDER`) checks the folder
(train/<class>/ and test/<class>/ with the same classes, two pictures or more of each class to
train on), decodes it once into the cache, and only then records it in the data folder's
RECORD_FILE: a refused folder leaves nothing behind. Every process that uses that data folder,
a job's included, registers what is recorded there when it lists or looks up data sets
(data.registry.read_records). `remove_folder_dataset` forgets one; its pictures stay.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cifar_core.data.cache import drop_caches
from cifar_core.data.catalog import folder_dataset
from cifar_core.data.dataset import SPLITS, WARNING_PREFIX, Counted, Progress, default_data_dir
from cifar_core.data.load import load_data
from cifar_core.data.registry import (
    DATASETS,
    DatasetSpec,
    check_name,
    read_records_with,
    register,
    unregister,
)
from cifar_core.data.sources import IMAGE_SUFFIXES
from cifar_core.errors import DataError, ImageFolderError

RECORD_FILE = "cifar_core_datasets.json"
RECORD_VERSION = 1
# Pictures are read at a square size in this range: the registry refuses pictures under 8 × 8
# (data.registry.register), and above 128 × 128, 50,000 colour pictures no longer fit in a
# laptop's memory (3 × 128 × 128 bytes each: 2.5 GB).
MIN_SIDE, MAX_SIDE = 8, 128

# The folder data sets this process registered, and the data folder each was recorded in.
_registered_from: dict[str, Path] = {}
# The spec registered under each of those names: a name registered anew by someone else (code,
# a test) is no longer one of ours.
_registered_spec: dict[str, DatasetSpec] = {}


def _forget_replaced() -> None:
    """Drop the names whose registered spec is no longer the one registered here."""
    for name in list(_registered_from):
        if DATASETS.get(name) is not _registered_spec.get(name):
            _registered_from.pop(name, None)
            _registered_spec.pop(name, None)
# Per data folder, the record file's (modified time, size) when it was last read.
_last_read: dict[Path, tuple[int, int] | None] = {}


@dataclass(frozen=True)
class FolderRecord:
    """One recorded folder data set, as the record says it."""

    name: str
    title: str
    folder: Path
    shape: tuple[int, int, int]


@dataclass(frozen=True)
class AddedDataset:
    """What `add_folder_dataset` recorded: the data set, its pictures' counts, its warnings."""

    spec: DatasetSpec
    folder: Path
    classes: tuple[str, ...]
    train: int
    test: int
    warnings: tuple[str, ...]


def record_file(root: Path | str | None = None) -> Path:
    """The file in the data folder that records its folder data sets."""
    return (Path(root) if root is not None else default_data_dir()) / RECORD_FILE


def read_record(root: Path | str | None = None) -> dict[str, dict]:
    """The recorded folder data sets by name: {'folder', 'title', 'shape'} each. None recorded:
    {}. DataError if the file is damaged (it is not rewritten then)."""
    path = record_file(root)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DataError(
            f"The record of your own data sets, {path}, cannot be read ({exc}): repair it, or "
            "delete it and add your folders again (your pictures are not in it)."
        ) from None
    datasets = record.get("datasets") if isinstance(record, dict) else None
    if not isinstance(datasets, dict):
        raise DataError(f"The record of your own data sets, {path}, is not one this program "
                        "wrote: delete it and add your folders again (your pictures are not "
                        "in it).")
    return {name: entry for name, entry in datasets.items() if _entry_ok(name, entry)}


def _entry_ok(name: str, entry: object) -> bool:
    try:
        check_name(name)
        channels, height, width = entry["shape"]
        return (isinstance(entry["folder"], str) and isinstance(entry["title"], str)
                and channels in (1, 3) and MIN_SIDE <= height <= MAX_SIDE
                and MIN_SIDE <= width <= MAX_SIDE)
    except (DataError, KeyError, TypeError, ValueError):
        return False  # a hand-edited entry that cannot be used: left out, not fatal


def _write_record(root: Path, entries: dict[str, dict]) -> None:
    path = record_file(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:  # replaced in one step: a reader never sees half a record
        tmp.write_text(json.dumps({"version": RECORD_VERSION, "datasets": entries}, indent=2))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _folder_record(name: str, entry: dict) -> FolderRecord:
    return FolderRecord(name, entry["title"], Path(entry["folder"]), tuple(entry["shape"]))


def recorded_folders(root: Path | str | None = None) -> list[FolderRecord]:
    """The folder data sets recorded in the data folder `root` (None: the default one)."""
    return [_folder_record(name, entry) for name, entry in read_record(root).items()]


def _spec(name: str, entry: dict) -> DatasetSpec:
    return folder_dataset(name, Path(entry["folder"]), entry["title"], tuple(entry["shape"]))


def _is_built_in(name: str) -> bool:
    return name in DATASETS and name not in _registered_from


def register_recorded(root: Path | None = None) -> set[str]:
    """Make the registry hold the folder data sets recorded in the data folder `root` (None: the
    default one) as the record says now; returns the names registered from other data folders.
    A damaged record registers none (listing data sets says so); a recorded name that is built
    in is passed over."""
    _forget_replaced()
    root = Path(root) if root is not None else default_data_dir()
    path = record_file(root)
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    key = root.resolve()
    if _last_read.get(key, False) != stamp:  # (asked on every look-up: read when changed)
        _last_read[key] = stamp
        _register_entries(root, key, stamp)
    return {name for name, where in _registered_from.items() if where != key}


def _register_entries(root: Path, key: Path, stamp: tuple[int, int] | None) -> None:
    try:
        entries = read_record(root) if stamp is not None else {}
    except DataError:
        entries = {}
    for name, entry in entries.items():
        if not _is_built_in(name):
            _registered_spec[name] = register(_spec(name, entry), replace=True)
            _registered_from[name] = key
    for name, where in list(_registered_from.items()):
        if where == key and name not in entries:
            unregister(name)
            del _registered_from[name]
            _registered_spec.pop(name, None)


read_records_with(register_recorded)


def _class_pictures(folder: Path) -> dict[str, dict[str, int]]:
    """Pictures per class folder, per split (class folders with no picture left out)."""
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        counts[split] = {}
        for class_dir in sorted(p for p in (folder / split).iterdir() if p.is_dir()):
            n = sum(1 for f in class_dir.iterdir()
                    if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if n:
                counts[split][class_dir.name] = n
    return counts


def folder_class_names(spec: DatasetSpec) -> tuple[str, ...]:
    """The classes of a folder data set, by its train/ folder's class folders with pictures
    (the names loading it gives); () for another data set or a folder that is gone."""
    _forget_replaced()
    for name, where in _registered_from.items():
        if name == spec.name:
            with contextlib.suppress(OSError, KeyError, DataError):
                folder = Path(read_record(where)[name]["folder"])
                return tuple(_class_pictures(folder)["train"])
    return ()


def check_folder(folder: Path) -> list[str]:
    """ImageFolderError, in one sentence, unless `folder` is a tree of pictures a data set can
    be made of; the warnings it deserves (a class with one test picture)."""
    if not folder.exists():
        raise ImageFolderError(f"There is no folder {folder}: give the folder that holds your "
                               "pictures' train/ and test/ folders.")
    if not folder.is_dir():
        raise ImageFolderError(f"{folder} is a file, not a folder: give the folder that holds "
                               "your pictures' train/ and test/ folders.")
    if not all((folder / split).is_dir() for split in SPLITS):
        raise ImageFolderError(
            f"{folder} needs a train/ and a test/ folder, one folder per class in each: lay out "
            f"your pictures as {folder}/train/<class>/ and {folder}/test/<class>/.")
    counts = _class_pictures(folder)
    train, test = set(counts["train"]), set(counts["test"])
    if train != test:
        differences = [f"{split}/ has {', '.join(sorted(extra))}, which {other}/ lacks"
                       for split, extra, other in (("train", train - test, "test"),
                                                   ("test", test - train, "train")) if extra]
        raise ImageFolderError(
            f"train/ and test/ need the same class folders, with pictures in each, but "
            f"{' and '.join(differences)}: add the missing folders or remove the extra ones.")
    if len(train) < 2:
        raise ImageFolderError(
            f"{folder} has pictures of {len(train)} class{'es' * (len(train) != 1)}: a "
            "classifier needs two classes or more to tell apart, each in a folder of its own "
            "in train/ and in test/.")
    # One picture to learn a class from is learnt by heart, not learnt: refused, as it is most
    # often a stray folder, and a run on it would measure nothing.
    single = [name for name, n in counts["train"].items() if n == 1]
    if single:
        raise ImageFolderError(
            f"{', '.join(single)} {'has' if len(single) == 1 else 'have'} only one picture in "
            "train/: a class needs several pictures to learn from, so add more, or remove the "
            "class from both train/ and test/.")
    single_test = [name for name, n in counts["test"].items() if n == 1]
    if single_test:
        one = len(single_test) == 1
        return [f"{', '.join(single_test)} {'has' if one else 'have'} only one test picture"
                f"{'' if one else ' each'}: {'its' if one else 'their'} accuracy can only be 0 "
                "or 100 %; more pictures in test/ measure it better."]
    return []


def add_folder_dataset(name: str, folder: Path | str, root: Path | str | None = None,
                       title: str | None = None, size: int = 32, grey: bool = False,
                       progress: Progress = lambda _msg: None,
                       counted: Counted | None = None) -> AddedDataset:
    """Record the picture tree at `folder` as the data set `name` in the data folder `root`
    (None: the default one), its pictures read as `size` × `size`, grey or colour; decoded once
    now. DataError (one sentence saying what to do) and nothing recorded if it cannot be."""
    root = Path(root) if root is not None else default_data_dir()
    check_name(name)
    entries = read_record(root)  # a damaged record is refused here, not overwritten
    register_recorded(root)
    if _is_built_in(name) or name in entries:
        raise DataError(f"There is already a data set named '{name}': choose another name "
                        "(python -m cifar_core datasets lists them).")
    if not isinstance(size, int) or not MIN_SIDE <= size <= MAX_SIDE:
        raise DataError(f"The picture size must be {MIN_SIDE} to {MAX_SIDE} pixels, not {size}: "
                        "choose --size in that range (32 is CIFAR-10's).")
    folder = Path(folder).expanduser().resolve()
    warnings = check_folder(folder)
    for warning in warnings:
        progress(WARNING_PREFIX + warning)
    entry = {"folder": str(folder), "title": (title or "").strip() or name,
             "shape": [1 if grey else 3, size, size]}
    spec = register(_spec(name, entry))
    try:
        data = load_data(name, root, download=False, progress=progress, counted=counted)
    except BaseException:
        unregister(name)
        raise
    entries = read_record(root)  # as it is now: another process may have added one meanwhile
    if name in entries:
        unregister(name)
        raise DataError(f"There is already a data set named '{name}': choose another name "
                        "(python -m cifar_core datasets lists them).")
    _write_record(root, {**entries, name: entry})
    _registered_from[name] = root.resolve()
    _registered_spec[name] = spec
    return AddedDataset(spec, folder, data.classes, len(data.train_labels),
                        len(data.test_labels), (*warnings, *data.warnings))


def remove_folder_dataset(name: str, root: Path | str | None = None) -> FolderRecord:
    """Forget the folder data set `name` recorded in the data folder `root` (None: the default
    one), and its cache; its pictures stay where they are. DataError if there is none."""
    root = Path(root) if root is not None else default_data_dir()
    entries = read_record(root)
    register_recorded(root)
    if name not in entries:
        if _is_built_in(name):
            raise DataError(f"'{name}' is built in and cannot be removed: only the data sets "
                            "you added with python -m cifar_core datasets add can be.")
        raise DataError(f"There is no data set of yours named '{name}' in {root}: python -m "
                        "cifar_core datasets lists them.")
    removed = _folder_record(name, entries.pop(name))
    _write_record(root, entries)
    unregister(name)
    _registered_from.pop(name, None)
    _registered_spec.pop(name, None)
    drop_caches(root, name)
    return removed

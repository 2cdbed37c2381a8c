"""Your own sets of pictures (the Teach page, `python -m cifar_core datasets create`): classes you
name, pictures from a camera, files or a zip, kept in the runs folder as image-folder data sets.

Each set is a folder `<runs folder>/datasets/<name>/` holding SET_FILE (its title and picture
shape) and one folder per class in train/ and in test/, its pictures as PNG files of the set's
shape (a picture is shrunk to it as it is added: the originals are not kept). A set is a data
set like any other: registered under its name (data.registry) for every process that watches
its runs folder (watch_runs_folder; the default runs folder always), so that runs, sweeps,
Evaluate, Try it and the CLI use it by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cifar_core.data.catalog import folder_dataset
from cifar_core.data.dataset import CIFAR_SHAPE
from cifar_core.data.registry import DATASETS, DatasetSpec, check_name, read_records_with
from cifar_core.data.registry import register as register_spec
from cifar_core.data.registry import unregister as unregister_spec
from cifar_core.errors import DataError

SETS_FOLDER = "datasets"  # inside the runs folder
SET_FILE = "set.json"
SET_VERSION = 1


@dataclass(frozen=True)
class SetRecord:
    """One set as its folder describes it."""

    name: str
    title: str
    folder: Path
    shape: tuple[int, int, int] = CIFAR_SHAPE


def sets_folder(runs_dir: Path | str | None = None) -> Path:
    """The folder of the sets kept in the runs folder `runs_dir` (None: the default one)."""
    from cifar_core.runs.store import default_runs_dir  # the runs layer sits above the data's

    return (Path(runs_dir) if runs_dir is not None else default_runs_dir()) / SETS_FOLDER


def read_set_record(folder: Path) -> SetRecord | None:
    """The set kept in `folder`, as its SET_FILE says; None if it is not one (or damaged)."""
    try:
        record = json.loads((folder / SET_FILE).read_text())
        name = check_name(folder.name)
        channels, height, width = (int(n) for n in record["shape"])
        title = record.get("title")
        if channels not in (1, 3) or min(height, width) < 8 or max(height, width) > 128:
            return None
        return SetRecord(name, title if isinstance(title, str) and title.strip() else name,
                         folder, (channels, height, width))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, DataError):
        return None  # not a set's folder, or its record damaged: not a set


def recorded_sets(runs_dir: Path | str | None = None) -> list[SetRecord]:
    """The sets kept in the runs folder `runs_dir` (None: the default one), by name."""
    root = sets_folder(runs_dir)
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    return [record for record in map(read_set_record, folders) if record is not None]


def set_spec(record: SetRecord) -> DatasetSpec:
    """The data set a set is: an image-folder data set of its folder."""
    return folder_dataset(record.name, record.folder, record.title, record.shape)


# The runs folders whose sets this process registers (the default one is always among them),
# and the spec registered for each set name (a name registered anew by someone else is no
# longer ours).
_watched: set[Path] = set()
_registered: dict[str, DatasetSpec] = {}


def watch_runs_folder(runs_dir: Path | str) -> None:
    """Register the sets of the runs folder `runs_dir` too, whenever data sets are looked up."""
    _watched.add(Path(runs_dir).resolve())
    register_sets()


def register_sets(_root: Path | None = None) -> set[str]:
    """Make the registry hold the sets of the watched runs folders as their folders say now.
    A name that is built in, or a folder data set's, is passed over. Returns no names: a set
    belongs to every data folder (data.registry.read_records)."""
    found: dict[str, SetRecord] = {}
    for runs_dir in sorted({*_watched, sets_folder().parent.resolve()}):
        for record in recorded_sets(runs_dir):
            found.setdefault(record.name, record)
    for name, spec in list(_registered.items()):
        if DATASETS.get(name) is not spec:  # replaced by someone else: not ours any more
            del _registered[name]
        elif name not in found or _changed(spec, found[name]):
            unregister_spec(name)
            del _registered[name]
    for name, record in found.items():
        if name not in DATASETS:
            _registered[name] = register_spec(set_spec(record))
    return set()


def _changed(spec: DatasetSpec, record: SetRecord) -> bool:
    return (spec.title, spec.shape, spec.source_line) != (
        record.title, record.shape, set_spec(record).source_line)


def is_own_set(name: str) -> bool:
    """Whether `name` is one of the sets registered from a runs folder."""
    register_sets()
    return name in _registered


read_records_with(register_sets)

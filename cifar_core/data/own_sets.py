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

import contextlib
import io
import json
import os
import re
import secrets
import shutil
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from cifar_core.data.catalog import folder_dataset
from cifar_core.data.dataset import CIFAR_SHAPE
from cifar_core.data.registry import (
    DATASETS,
    DatasetSpec,
    check_name,
    dataset_names,
    read_records_with,
)
from cifar_core.data.registry import register as register_spec
from cifar_core.data.registry import unregister as unregister_spec
from cifar_core.data.staging import STAGING_PREFIX, FolderChange, disk_error, locked
from cifar_core.data.zips import (  # noqa: F401 (the caps, named here with the others)
    MAX_UNZIPPED_BYTES,
    MAX_ZIP_BYTES,
    MAX_ZIP_ENTRIES,
    zip_pictures,
)
from cifar_core.errors import DataError, ImageError
from cifar_core.places import default_runs_dir

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


# --- Making and changing sets ------------------------------------------------------------------

MIN_PICTURES = 3  # per class before the set can train (2 to learn from, 1 to test on)
MAX_CLASSES = 20
MAX_PICTURES = 3000  # per set
MAX_SET_BYTES = 64 * 2**20  # on disk, per set (PNG files of 32 x 32 are ~3 KB)
MAX_FILE_BYTES = 20 * 2**20  # one uploaded picture file
MAX_CLASS_NAME = 40
NAME_LENGTH = 40  # a set's name (data.registry.NAME_PATTERN)
MAX_TITLE = 80
SHOWN_SKIPS = 5  # sentences about skipped zip entries, before "and N more"
SPLITS = ("train", "test")
_PICTURE_ID = re.compile(r"\d{8}-\d{6}-\d{9}")


@dataclass(frozen=True)
class Picture:
    """One picture of a set, as kept: a PNG of the set's shape."""

    id: str  # the file's stem, unique in the set (its time of adding: the oldest sorts first)
    class_name: str
    split: str  # 'train' or 'test' (held out automatically)
    path: Path


def picture_pixels(picture: Picture):
    """A picture of a set as uint8 numpy (C, H, W) in colour, as the Teach page draws it."""
    import numpy as np

    with Image.open(picture.path) as image:
        return np.asarray(image.convert("RGB")).transpose(2, 0, 1)


def name_from_title(title: str, taken) -> str:
    """The set name a title gives: its letters without accents, lower-case, and digits joined
    by '-' ('Café crème': 'cafe-creme'); 'set' where none are left (a title in other letters);
    numbered past the names `taken`. Empty for a title without a letter or digit."""
    plain = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:NAME_LENGTH - 4].strip("-")
    if not name:
        if not any(c.isalnum() for c in title):
            return ""
        name = "set"
    number, unique = 2, name
    while unique in taken:
        unique, number = f"{name}-{number}", number + 1
    return unique


@dataclass(frozen=True)
class ClassPictures:
    """A class of a set and its pictures, oldest first."""

    name: str
    pictures: tuple[Picture, ...]

    @property
    def train(self) -> int:
        return sum(1 for p in self.pictures if p.split == "train")

    @property
    def test(self) -> int:
        return sum(1 for p in self.pictures if p.split == "test")


@dataclass(frozen=True)
class OwnSet:
    """A set as its folder holds it now."""

    name: str
    title: str
    folder: Path
    shape: tuple[int, int, int]
    classes: tuple[ClassPictures, ...]  # sorted by name (the order loading gives)

    @property
    def picture_count(self) -> int:
        return sum(len(c.pictures) for c in self.classes)

    def problem(self) -> str | None:
        """Why the set cannot train yet, in one sentence; None when it can."""
        if not self.classes:
            return "Name two classes or more: a network learns to tell classes apart."
        if len(self.classes) == 1:
            return (f"Name a second class beside {self.classes[0].name}: a network learns to "
                    "tell two classes or more apart.")
        short = [(c.name, MIN_PICTURES - len(c.pictures)) for c in self.classes
                 if len(c.pictures) < MIN_PICTURES]
        if not short:
            return None
        wanted = " and ".join(f"{n} more picture{'s' * (n != 1)} of {name}"
                              for name, n in short[:3])
        more = f" (and pictures of {len(short) - 3} more classes)" if len(short) > 3 else ""
        return f"Add {wanted}{more}: each class needs at least {MIN_PICTURES}."


@dataclass(frozen=True)
class Added:
    """What adding pictures did: the set after it, the pictures added, and a sentence for
    each file skipped."""

    set: OwnSet
    added: tuple[Picture, ...]
    skipped: tuple[str, ...]


def test_count(pictures: int) -> int:
    """How many of a class's `pictures` are held out for testing: none below MIN_PICTURES,
    else a fifth of them (at least one)."""
    return 0 if pictures < MIN_PICTURES else max(1, round(pictures / 5))


test_count.__test__ = False  # (not a test, for pytest, where a test module imports it)


def check_class_name(name: str) -> str:
    """The class name stripped; DataError in one sentence if it cannot name a class folder."""
    stripped = name.strip() if isinstance(name, str) else ""
    if not stripped:
        raise DataError("A class needs a name: type one, such as 'mug'.")
    if len(stripped) > MAX_CLASS_NAME:
        raise DataError(f"'{stripped[:MAX_CLASS_NAME]}…' is too long for a class name: use at "
                        f"most {MAX_CLASS_NAME} characters.")
    if re.search(r"[\x00-\x1f\x7f]", stripped):
        raise DataError("A class name cannot hold control characters (such as a line break): "
                        "use letters, digits, spaces or '-'.")
    if "/" in stripped or "\\" in stripped:
        raise DataError(f"'{stripped}' cannot name a class: a class name cannot hold '/' or "
                        "'\\'.")
    if stripped.startswith("."):
        raise DataError(f"'{stripped}' cannot name a class: a class name cannot start with "
                        "'.'.")
    return stripped


def _set_folder(name: str, runs_dir) -> Path:
    check_name(name, "set")
    if runs_dir is not None:
        watch_runs_folder(runs_dir)
    return sets_folder(runs_dir) / name


def _read_set(folder: Path) -> OwnSet:
    record = read_set_record(folder)
    if record is None:
        raise DataError(_missing(folder))
    found: dict[str, list[Picture]] = {}
    for split in SPLITS:
        with contextlib.suppress(OSError):
            for class_dir in (folder / split).iterdir():
                if not class_dir.is_dir() or class_dir.name.startswith("."):
                    continue
                pictures = found.setdefault(class_dir.name, [])
                pictures.extend(Picture(f.stem, class_dir.name, split, f)
                                for f in class_dir.iterdir()
                                if f.suffix == ".png" and _PICTURE_ID.fullmatch(f.stem))
    classes = tuple(ClassPictures(name, tuple(sorted(pictures, key=lambda p: p.id)))
                    for name, pictures in sorted(found.items()))
    return OwnSet(record.name, record.title, folder, record.shape, classes)


def get_set(name: str, *, runs_dir: Path | str | None = None) -> OwnSet:
    """The set `name` as its folder holds it now; DataError if there is none."""
    return _read_set(_set_folder(name, runs_dir))


def list_sets(*, runs_dir: Path | str | None = None) -> list[OwnSet]:
    """The sets kept in the runs folder, by name."""
    if runs_dir is not None:
        watch_runs_folder(runs_dir)
    sets = []
    for record in recorded_sets(runs_dir):
        with contextlib.suppress(DataError):  # deleted meanwhile
            sets.append(_read_set(record.folder))
    return sets


def _missing(folder: Path) -> str:
    return (f"There is no set of yours named '{folder.name}' in {folder.parent}: python -m "
            "cifar_core datasets lists them.")


@contextlib.contextmanager
def _locked(folder: Path):
    """The set's folder, held against changes by other tabs and processes."""
    with locked(folder, _missing(folder)):
        if read_set_record(folder) is None:  # deleted while we waited
            raise DataError(_missing(folder))
        for stale in folder.glob(f"{STAGING_PREFIX}*"):  # left by a change that was killed
            shutil.rmtree(stale, ignore_errors=True)
        yield folder


def _title(title: str | None, name: str) -> str:
    title = re.sub(r"[\x00-\x1f\x7f]", " ", title or "").strip()
    if len(title) > MAX_TITLE:
        raise DataError(f"A set's title can have at most {MAX_TITLE} characters: shorten it.")
    return title or name


def _set_json(title: str, shape: tuple[int, int, int]) -> bytes:
    return json.dumps({"version": SET_VERSION, "title": title, "shape": list(shape)},
                      indent=2).encode()


def _name_taken(name: str, folder: Path) -> bool:
    dataset_names()  # registers the folder data sets recorded in the default data folder
    register_sets()
    return name in DATASETS or folder.exists()


def create_set(name: str, title: str | None = None, classes=(), *,
               runs_dir: Path | str | None = None,
               shape: tuple[int, int, int] = CIFAR_SHAPE) -> OwnSet:
    """A new, empty set `name` (its classes named, no pictures yet); DataError if the name
    cannot be one or is taken by a data set or another set."""
    folder = _set_folder(name, runs_dir)
    if _name_taken(name, folder):
        raise DataError(f"There is already a data set named '{name}': choose another name "
                        "(python -m cifar_core datasets lists them).")
    channels, height, width = shape
    if channels not in (1, 3) or min(height, width) < 8 or max(height, width) > 128:
        raise DataError(f"A set's pictures must be grey or colour, 8 to 128 pixels a side, not "
                        f"{shape}: choose another size.")
    names = _checked_new_classes([], list(classes))
    title = _title(title, name)
    staging = folder.parent / f".staging-{name}-{secrets.token_hex(6)}"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        (staging / SET_FILE).write_bytes(_set_json(title, tuple(shape)))
        for split in SPLITS:
            for class_name in names:
                (staging / split / class_name).mkdir(parents=True)
        os.rename(staging, folder)  # refused if the set appeared meanwhile (not empty)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if folder.exists():
            raise DataError(f"There is already a set named '{name}': choose another name."
                            ) from None
        raise disk_error(exc, folder) from None
    register_sets()
    return _read_set(folder)


class _TooManyClasses(DataError):
    """A change would make a set of more than MAX_CLASSES classes (a zip is refused whole)."""


def _checked_new_classes(existing: list[str], new: list[str]) -> list[str]:
    """The new class names checked: none twice (in any case), none beside an existing one,
    no more than MAX_CLASSES in all."""
    seen = {n.lower(): n for n in existing}
    names = []
    for raw in new:
        class_name = check_class_name(raw)
        if class_name.lower() in seen:
            raise DataError(f"There is already a class named '{seen[class_name.lower()]}': "
                            "give each class a name of its own.")
        seen[class_name.lower()] = class_name
        names.append(class_name)
    if len(seen) > MAX_CLASSES:
        raise _TooManyClasses(f"A set can have at most {MAX_CLASSES} classes: delete one before "
                        "adding another.")
    return names


def rename_set(name: str, title: str, *, runs_dir: Path | str | None = None) -> OwnSet:
    """The set with a new title (its name stays: runs record it)."""
    with _locked(_set_folder(name, runs_dir)) as folder:
        own = _read_set(folder)
        with FolderChange(folder) as change:
            staged = change.stage(_set_json(_title(title, name), own.shape), SET_FILE)
            os.replace(staged, folder / SET_FILE)
    register_sets()
    return _read_set(folder)


def delete_set(name: str, *, runs_dir: Path | str | None = None) -> None:
    """Delete the set `name`, its pictures with it."""
    with _locked(_set_folder(name, runs_dir)) as folder:
        gone = folder.parent / f".deleted-{name}-{secrets.token_hex(6)}"
        try:
            os.rename(folder, gone)  # gone at once for every reader, then removed
        except OSError as exc:
            raise disk_error(exc, folder) from None
    shutil.rmtree(gone, ignore_errors=True)
    register_sets()


def add_class(name: str, class_name: str, *, runs_dir: Path | str | None = None) -> OwnSet:
    """The set with a new class, with no pictures yet."""
    with _locked(_set_folder(name, runs_dir)) as folder:
        own = _read_set(folder)
        [class_name] = _checked_new_classes([c.name for c in own.classes], [class_name])
        with FolderChange(folder) as change:
            _make_class(change, folder, class_name)
    return _read_set(folder)


def _make_class(change: FolderChange, folder: Path, class_name: str) -> None:
    for split in SPLITS:
        change.make_folder(folder / split)
        change.make_folder(folder / split / class_name)


def _class_of(own: OwnSet, class_name: str) -> ClassPictures:
    for c in own.classes:
        if c.name == class_name:
            return c
    raise DataError(f"The set '{own.name}' has no class named '{class_name}': choose one of "
                    f"{', '.join(c.name for c in own.classes) or 'its classes (none yet)'}.")


def rename_class(name: str, old: str, new: str, *,
                 runs_dir: Path | str | None = None) -> OwnSet:
    """The set with its class `old` named `new`, its pictures kept."""
    with _locked(_set_folder(name, runs_dir)) as folder:
        own = _read_set(folder)
        _class_of(own, old)
        others = [c.name for c in own.classes if c.name != old]
        [new] = _checked_new_classes(others, [new])
        if new != old:
            with FolderChange(folder) as change:
                for split in SPLITS:
                    if (folder / split / old).is_dir():
                        change.move(folder / split / old, folder / split / new)
                    else:
                        change.make_folder(folder / split / new)
    return _read_set(folder)


def delete_class(name: str, class_name: str, *, runs_dir: Path | str | None = None) -> OwnSet:
    """The set without its class `class_name` and that class's pictures."""
    with _locked(_set_folder(name, runs_dir)) as folder:
        _class_of(_read_set(folder), class_name)
        with FolderChange(folder) as change:
            for split in SPLITS:
                if (folder / split / class_name).is_dir():
                    change.move(folder / split / class_name, change.staging / split)
    return _read_set(folder)


def remove_picture(name: str, picture_id: str, *,
                   runs_dir: Path | str | None = None) -> OwnSet:
    """The set without the picture `picture_id`; the held-out split kept."""
    with _locked(_set_folder(name, runs_dir)) as folder:
        own = _read_set(folder)
        found = [p for c in own.classes for p in c.pictures if p.id == picture_id]
        if not found:
            raise DataError(f"The set '{name}' has no picture '{picture_id}': it may have been "
                            "removed already.")
        with FolderChange(folder) as change:
            change.move(found[0].path, change.staging / found[0].path.name)
            _keep_split(change, _read_set(folder), {found[0].class_name})
    return _read_set(folder)


def _keep_split(change: FolderChange, own: OwnSet, class_names: set[str]) -> None:
    """Move pictures between train/ and test/ so that each class named holds test_count of
    its pictures in test/: the newest train pictures go to test/, the newest test ones back."""
    for c in own.classes:
        if c.name not in class_names:
            continue
        train = [p for p in c.pictures if p.split == "train"]
        test = [p for p in c.pictures if p.split == "test"]
        wanted = test_count(len(c.pictures))
        _make_class(change, own.folder, c.name)  # (a folder removed by hand made again)
        while len(test) < wanted and train:
            moved = train.pop()
            change.move(moved.path, own.folder / "test" / c.name / moved.path.name)
            test.append(moved)
        while len(test) > wanted:
            moved = max(test, key=lambda p: p.id)
            test.remove(moved)
            change.move(moved.path, own.folder / "train" / c.name / moved.path.name)


def _set_bytes(folder: Path) -> int:
    total = 0
    for split in SPLITS:
        for dirpath, _dirs, files in os.walk(folder / split):
            for f in files:
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(dirpath, f)).st_size
    return total


class _NewPictures:
    """Pictures read and staged for one change, each under an id of ours, with the caps of
    the set checked as they come."""

    def __init__(self, change: FolderChange, own: OwnSet):
        self.change, self.own = change, own
        self.pictures: list[tuple[str, str, Path]] = []  # (class, id, staged file)
        self.skipped: list[str] = []
        self.existing_bytes = _set_bytes(own.folder)
        self.last_id = max((p.id for c in own.classes for p in c.pictures), default="")

    def add(self, class_name: str, file, name: str | None = None) -> None:
        try:
            # explain sits above data (it imports runs, which import this module).
            from cifar_core.explain.photos import read_photo

            photo = read_photo(file, name, max_bytes=MAX_FILE_BYTES, shape=self.own.shape,
                               shown=False)  # only its network input is kept
        except ImageError as exc:
            self.skipped.append(str(exc))
            return
        if self.own.picture_count + len(self.pictures) >= MAX_PICTURES:
            raise DataError(f"A set can hold at most {MAX_PICTURES:,} pictures, so none of "
                            "these were added: remove some pictures, or make another set.")
        picture_id = self._new_id()
        staged = self.change.stage(_png(photo.network_input), f"{picture_id}.png")
        if self.existing_bytes + self.change.staged_bytes > MAX_SET_BYTES:
            raise DataError(f"A set can take at most {MAX_SET_BYTES // 2**20} MB on disk, so "
                            "none of these were added: remove some pictures, or make another "
                            "set.")
        self.pictures.append((class_name, picture_id, staged))

    def add_file(self, class_name: str, file) -> None:
        """add() a file given as bytes, a path, a binary file or an upload."""
        if not isinstance(file, (str, Path)):
            self.add(class_name, file)
            return
        path = Path(file)
        try:
            with path.open("rb") as handle:
                content = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            self.skipped.append(f"{path.name} cannot be read ({exc.strerror or exc}): skipped.")
            return
        self.add(class_name, content, path.name)

    def _new_id(self) -> str:
        """An id from the time now, after every id already used (ids sort as added)."""
        ns = time.time_ns()
        while True:
            seconds, rest = divmod(ns, 10**9)
            picture_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime(seconds)) + f"-{rest:09d}"
            if picture_id > self.last_id:
                self.last_id = picture_id
                return picture_id
            ns += 1000

    def put_in_place(self) -> tuple[Picture, ...]:
        """Move the staged pictures into their classes' train/ folders, then keep the split."""
        for class_name, _, staged in self.pictures:
            self.change.move(staged, self.own.folder / "train" / class_name / staged.name)
        now = _read_set(self.own.folder)
        _keep_split(self.change, now, {c for c, _, _ in self.pictures})
        ids = {picture_id for _, picture_id, _ in self.pictures}
        return tuple(p for c in _read_set(self.own.folder).classes for p in c.pictures
                     if p.id in ids)


def _png(network_input) -> bytes:
    pixels = network_input.permute(1, 2, 0).numpy()
    picture = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def add_pictures(name: str, class_name: str, files, *,
                 runs_dir: Path | str | None = None) -> Added:
    """Add the pictures `files` (bytes, paths, binary files or uploads) to the class
    `class_name` of the set `name` (made if the set has none of that name), each made what the
    network sees (explain.photos.read_photo) and kept as a PNG; files that are not usable
    pictures are skipped with a sentence each. All or nothing: a cap passed or a full disk
    adds none (DataError)."""
    with _locked(_set_folder(name, runs_dir)) as folder:
        own = _read_set(folder)
        with FolderChange(folder) as change:
            class_name = _class_for(change, own, class_name)
            new = _NewPictures(change, own)
            for file in files:
                new.add_file(class_name, file)
            added = new.put_in_place()
    return Added(_read_set(folder), added, tuple(new.skipped))


def _class_for(change: FolderChange, own: OwnSet, class_name: str) -> str:
    """The set's class called `class_name` (in any case), made in `change` if it has none."""
    class_name = check_class_name(class_name)
    for c in own.classes:
        if c.name.lower() == class_name.lower():
            return c.name
    made = [n for n in change.made if n.parent.name == "train"]
    for path in made:
        if path.name.lower() == class_name.lower():
            return path.name
    _checked_new_classes([c.name for c in own.classes] + [p.name for p in made], [class_name])
    _make_class(change, own.folder, class_name)
    return class_name


def add_zip(name: str, file, *, runs_dir: Path | str | None = None) -> Added:
    """Add the pictures of a zip of class folders to the set `name`: an entry's class is the
    folder it sits in (classes made as needed). Entries that are not pictures, lead out of the
    zip's folder, are links or sit in no folder are skipped with a sentence (the first few,
    then how many more); a zip bomb, too many entries or a damaged zip are refused whole."""
    with _locked(_set_folder(name, runs_dir)) as folder:
        own = _read_set(folder)
        with FolderChange(folder) as change:
            new = _NewPictures(change, own)
            for entry in zip_pictures(file, MAX_FILE_BYTES):
                if isinstance(entry, str):
                    new.skipped.append(entry)
                    continue
                try:
                    class_name = _class_for(change, own, entry.folder)
                except _TooManyClasses:
                    raise
                except DataError as exc:  # a folder name that cannot name a class
                    new.skipped.append(f"{entry.name}: {exc}")
                    continue
                new.add(class_name, entry.data, entry.name)
            added = new.put_in_place()
    return Added(_read_set(folder), added, _few(new.skipped))


def _few(skipped: list[str]) -> tuple[str, ...]:
    if len(skipped) <= SHOWN_SKIPS + 1:
        return tuple(skipped)
    return (*skipped[:SHOWN_SKIPS], f"And {len(skipped) - SHOWN_SKIPS} more files were skipped.")


def _pictures_in(source: Path) -> list[tuple[str, Path]]:
    """(class, file) for each file in the class folders of `source` (or of its train/ and
    test/); DataError past MAX_PICTURES, before any is read."""
    trees = [source / s for s in SPLITS if (source / s).is_dir()] or [source]
    files: list[tuple[str, Path]] = []
    for tree in trees:
        for class_dir in sorted(p for p in tree.iterdir()
                                if p.is_dir() and not p.name.startswith(".")):
            files.extend((class_dir.name, f) for f in sorted(class_dir.iterdir())
                         if f.is_file() and not f.name.startswith("."))
            if len(files) > MAX_PICTURES:
                raise DataError(f"{source} holds over {MAX_PICTURES:,} files, more than a set "
                                "can hold: make a set of fewer pictures.")
    return files


def create_from_folder(name: str, folder: Path | str, title: str | None = None, *,
                       runs_dir: Path | str | None = None) -> Added:
    """A new set `name` of the pictures in `folder`: one folder per class (or train/ and
    test/ of them), each picture shrunk to the set's shape. Nothing is made if it fails."""
    source = Path(folder).expanduser()
    if not source.is_dir():
        raise DataError(f"There is no folder {source}: give the folder that holds one folder "
                        "per class.")
    try:
        files = _pictures_in(source)
    except OSError as exc:
        raise DataError(f"{source} cannot be read ({exc.strerror or exc}): check that the "
                        "folder and its class folders can be opened.") from None
    if not files:
        raise DataError(f"{source} has no class folders with pictures: put each class's "
                        "pictures in a folder named after the class.")
    classes = sorted({class_name for class_name, _ in files})
    own = create_set(name, title, classes, runs_dir=runs_dir)
    try:
        with _locked(own.folder) as set_folder, FolderChange(set_folder) as change:
            new = _NewPictures(change, own)
            for class_name, path in files:
                new.add_file(check_class_name(class_name), path)
            added = new.put_in_place()
    except BaseException:
        delete_set(name, runs_dir=runs_dir)
        raise
    return Added(_read_set(own.folder), added, _few(new.skipped))

"""Where CIFAR-10 is in the data folder, and how each layout there is read into arrays.

Sources, looked for in the data folder in this order:
1. `cifar-10-batches-py/` (the official "python version"), also with non-official checksums;
2. `cifar-10-python.tar.gz` (the official archive, as downloaded);
3. an image-folder tree `train/<class>/*` + `test/<class>/*`;
4. any other `.tar.gz`/`.tgz` holding layout 1 or 3 (e.g. the offline JPEG copy).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_core.data.dataset import (
    BATCH_DIR,
    CIFAR100_ARCHIVE,
    CIFAR_SHAPE,
    DOWNLOAD_MARKER,
    OFFICIAL_ARCHIVE,
    OFFICIAL_CLASSES,
    SPLITS,
    TEST_BATCH,
    TRAIN_BATCHES,
    Counted,
)
from cifar_core.data.safe_pickle import load_cifar_pickle
from cifar_core.errors import CorruptDataError, ImageFolderError

# Pictures of an image tree decoded between two counts told, at most (about a tenth of a
# second's work); a small tree is counted every hundredth.
COUNT_EVERY = 500
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff"}


@dataclass(frozen=True)
class Source:
    """Where the data is: kind is one of KINDS (batches-dir, folder-dir, ...)."""

    kind: str
    path: Path
    # The files it is read from, where `path` is a folder holding others too (the data folder
    # itself): the cache's fingerprint looks at these only. Empty: all of `path`.
    files: tuple[Path, ...] = ()

    def describe(self) -> str:
        what = KINDS.get(self.kind, self.kind)
        return f"{what} at {self.path}"


# What each kind of source is, in words (other data sets' readers add theirs: data.catalog).
KINDS = {
    "batches-dir": "CIFAR-10 python batches",
    "batches-archive": "CIFAR-10 python archive",
    "folder-dir": "image folders",
    "folder-archive": "archive of image folders",
    "fashion-mnist-idx": "Fashion-MNIST's official idx files",
    "mnist-idx": "MNIST's official idx files",
    "cifar100-dir": "CIFAR-100 python version",
    "cifar100-archive": "CIFAR-100 python archive",
    "svhn-mat": "SVHN's .mat files",
}


def _archive_layout(path: Path) -> str | None:
    """'batches' or 'folder' if this archive holds one of our layouts (first entries only)."""
    try:
        with tarfile.open(path, "r|*") as tar:
            for i, member in enumerate(tar):
                parts = Path(member.name).parts
                if BATCH_DIR in parts:
                    return "batches"
                if member.isfile() and len(parts) >= 3 and parts[-3] in SPLITS:
                    return "folder"
                if i > 50:
                    break
    except (OSError, tarfile.TarError, EOFError):
        return None
    return None


def find_source(root: Path) -> Source | None:
    """The first usable source in the data folder, or None if there is none."""
    root = Path(root)
    if (root / BATCH_DIR).is_dir():
        return Source("batches-dir", root / BATCH_DIR)
    if (root / OFFICIAL_ARCHIVE).is_file() and not (root / DOWNLOAD_MARKER).exists():
        return Source("batches-archive", root / OFFICIAL_ARCHIVE)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return Source("folder-dir", root)
    if root.is_dir():
        for archive in sorted([*root.glob("*.tar.gz"), *root.glob("*.tgz")]):
            if archive.name in (OFFICIAL_ARCHIVE, CIFAR100_ARCHIVE):
                continue  # (the one has a place of its own, the other is not CIFAR-10)
            layout = _archive_layout(archive)
            if layout:
                return Source(f"{layout}-archive", archive)
    return None


# --- decoding ---------------------------------------------------------------------------------

# The official python version's files and their MD5 checksums, as torchvision's CIFAR10 lists
# them (a test keeps the two equal): importing torchvision for them took seconds of a decode.
OFFICIAL_MD5S = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}


def _official_md5s() -> dict[str, str]:
    return OFFICIAL_MD5S


def unpickle_split(name: str, raw: bytes, where: str, title: str = "CIFAR-10",
                   labels_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels of one pickled file of the python version of CIFAR-10
    or CIFAR-100 (`title`; its labels under `labels_key`). CorruptDataError naming the file if
    it is damaged, or if it asks to run code (data.safe_pickle)."""
    try:
        entry = load_cifar_pickle(raw, f"'{name}' in {where}", title)
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry.get(labels_key, entry.get("fine_labels")), dtype=np.int64)
        if len(labels) != len(data) or len(data) == 0:
            raise ValueError("labels and images differ in number")
    except CorruptDataError:
        raise  # it asked to run code: say so, not "damaged"
    except Exception as exc:
        raise CorruptDataError(
            f"The {title} file '{name}' is truncated or damaged ({type(exc).__name__}), in "
            f"{where}. Delete it (or its whole folder) to download it again, or copy a good one "
            "in its place."
        ) from None
    return data, labels


def _ignore(done: int, total: int, what: str) -> None:
    pass


def _count_every(total: int) -> int:
    """How many pictures between two counts told: every hundredth, at most COUNT_EVERY."""
    return max(1, min(COUNT_EVERY, total // 100))


def _decode_batches(files: dict[str, bytes], where: str, counted: Counted = _ignore) -> dict:
    """The official python layout, given each file's bytes by name."""
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if n not in files]
    if missing:
        raise CorruptDataError(
            f"The CIFAR-10 file '{missing[0]}' is missing from {where}. The python version has "
            f"{', '.join(TRAIN_BATCHES)} and {TEST_BATCH}: copy the missing file back, or delete "
            "the folder to download it again."
        )
    batches = (*TRAIN_BATCHES, TEST_BATCH)
    counted(0, len(batches), "files decoded")
    decoded = []
    for i, name in enumerate(batches, start=1):
        decoded.append(unpickle_split(name, files[name], where))
        counted(i, len(batches), "files decoded")
    *train, (test_x, test_y) = decoded
    classes, warnings = OFFICIAL_CLASSES, []
    if "batches.meta" in files:
        try:
            meta = load_cifar_pickle(files["batches.meta"], f"'batches.meta' in {where}")
            classes = tuple(meta["label_names"])
        except CorruptDataError:
            raise  # it asked to run code: refused, not merely unreadable
        except Exception:
            warnings.append("batches.meta is unreadable: using the official class names.")
    labels = {**{n: y for n, (_, y) in zip(TRAIN_BATCHES, train, strict=True)}, TEST_BATCH: test_y}
    warnings += _check_labels_against_names(labels, classes, where)
    md5s = _official_md5s()
    changed = [n for n in (*TRAIN_BATCHES, TEST_BATCH)
               if hashlib.md5(files[n]).hexdigest() != md5s.get(n)]
    if changed:
        warnings.append(
            f"The checksums of {', '.join(changed)} differ from the official CIFAR-10 release "
            "(a re-encoded copy?). It is used anyway; accuracies may differ slightly."
        )
    return {
        "train_images": np.concatenate([x for x, _ in train]),
        "train_labels": np.concatenate([y for _, y in train]),
        "test_images": test_x, "test_labels": test_y,
        "classes": list(classes), "warnings": warnings,
    }


def _check_labels_against_names(labels: dict[str, np.ndarray], classes: tuple[str, ...],
                                where: str) -> list[str]:
    """CorruptDataError naming the file when a label has no class name (training would crash on
    it); a warning for names that no image has. Labels are positions in batches.meta's list."""
    names = (f"{len(classes)} class names ({', '.join(map(str, classes[:12]))}"
             f"{', ...' if len(classes) > 12 else ''}), so labels can only be 0 to "
             f"{len(classes) - 1}" if classes else "no class names")
    for name, ys in labels.items():
        low, high = int(ys.min()), int(ys.max())
        if low < 0 or high >= len(classes):
            raise CorruptDataError(
                f"The labels in '{name}' in {where} go from {low} to {high}, but there are "
                f"{names}. The names come from batches.meta (the official ten when it is "
                "missing or unreadable): give it one name per label, in label order, or delete "
                "it to use the official names."
            )
    used = set(np.unique(np.concatenate(list(labels.values()))).tolist())
    unused = [f"{c} ({i})" for i, c in enumerate(classes) if i not in used]
    if unused:
        return [f"No image in {where} is labelled {', '.join(unused[:5])}"
                f"{', ...' if len(unused) > 5 else ''}: of the {len(classes)} class names, these "
                "get an output of the network that nothing trains."]
    return []


def _read_batches_dir(path: Path, counted: Counted) -> dict:
    files = {}
    for name in (*TRAIN_BATCHES, TEST_BATCH, "batches.meta"):
        if (path / name).is_file():
            files[name] = (path / name).read_bytes()
    return _decode_batches(files, str(path), counted)


def iter_archive(path: Path) -> Iterable[tuple[tarfile.TarInfo, bytes]]:
    """Each file in the .tar(.gz) at `path` with its bytes; CorruptDataError if it is damaged."""
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                if member.isfile():
                    yield member, tar.extractfile(member).read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise CorruptDataError(
            f"The archive {path} is truncated or damaged ({exc}). Delete it to download it "
            "again, or replace it with a complete copy."
        ) from None


def _read_batches_archive(path: Path, counted: Counted) -> dict:
    wanted = {*TRAIN_BATCHES, TEST_BATCH, "batches.meta"}
    files = {Path(m.name).name: raw for m, raw in iter_archive(path)
             if Path(m.name).name in wanted and BATCH_DIR in Path(m.name).parts}
    return _decode_batches(files, str(path), counted)


# A picture whose bands are among these is grey (with or without transparency); any other,
# a palette's included, is colour.
GREY_BANDS = {"1", "L", "LA", "La", "A", "I", "F"}


def _is_grey(img) -> bool:
    """Whether a PIL picture is grey (by its bands, without decoding its pixels)."""
    return set(img.getbands()) <= GREY_BANDS


def _decode_picture(raw: bytes, shape: tuple[int, int, int] = CIFAR_SHAPE
                    ) -> tuple[np.ndarray | None, bool]:
    """One picture as uint8 (C, H, W) of `shape` (grey for 1 channel, else colour), resized to
    it where it differs, and whether it was of the other kind (grey read as colour or colour as
    grey); (None, False) if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    try:
        with Image.open(io.BytesIO(raw)) as img:
            converted = _is_grey(img) != (channels == 1)
            img = img.convert("L" if channels == 1 else "RGB")
            if img.size != (width, height):
                img = img.resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8).reshape(height, width, channels
                                                           ).transpose(2, 0, 1), converted
    except (UnidentifiedImageError, OSError, ValueError):
        return None, False


def converted_warning(count: int, channels: int) -> str:
    """The warning for `count` pictures read as the other kind (the data set has `channels`)."""
    was, now = ("colour", "grey") if channels == 1 else ("grey", "colour")
    how = "without" if channels == 1 else "with"
    return (f"Read {count} {was} picture{'s' * (count != 1)} as {now}, as this data set's "
            f"pictures are {now} (a data set of {was} pictures is added {how} --grey: python -m "
            "cifar_core datasets add).")


def _assemble_folders(items: dict[str, dict[str, list[tuple[str, bytes]]]], where: str,
                      counted: Counted = _ignore, shape: tuple[int, int, int] = CIFAR_SHAPE
                      ) -> dict:
    """items[split][class] = [(name, raw bytes)] -> tensors; classes sorted by name."""
    for split in SPLITS:
        if not items.get(split):
            raise ImageFolderError(
                f"No '{split}/<class>/' folders with images in {where}. Lay it out as "
                "train/<class>/ and test/<class>/, the pictures in them (one folder per class)."
            )
    classes = sorted(items["train"])
    extra = sorted(set(items["test"]) - set(classes))
    if extra:
        raise ImageFolderError(
            f"test/ has classes that train/ lacks ({', '.join(extra)}) in {where}: "
            "train/ and test/ need the same class folders."
        )
    out, bad, converted = {}, [], 0
    total = sum(len(items[split].get(cls, [])) for split in SPLITS for cls in classes)
    done, every = 0, _count_every(total)
    counted(done, total, "pictures decoded")
    for split in SPLITS:
        images, labels = [], []
        for label, cls in enumerate(classes):
            for name, raw in sorted(items[split].get(cls, [])):
                done += 1
                if done % every == 0 or done == total:
                    counted(done, total, "pictures decoded")
                pixels, other_kind = _decode_picture(raw, shape)
                converted += other_kind
                if pixels is None:
                    bad.append(name)
                    continue
                images.append(pixels)
                labels.append(label)
        if not images:
            raise ImageFolderError(
                f"None of the images in {where}/{split} could be read. Use PNG or JPEG files."
            )
        # Each image is a transposed view; stacking them keeps that layout unless told not to.
        out[f"{split}_images"] = np.ascontiguousarray(np.stack(images))
        out[f"{split}_labels"] = np.asarray(labels, dtype=np.int64)
    warnings = []
    if bad:
        warnings.append(f"Skipped {len(bad)} unreadable image{'s' * (len(bad) != 1)}, "
                        f"e.g. {', '.join(bad[:3])}.")
    if converted:
        warnings.append(converted_warning(converted, shape[0]))
    out.update(classes=classes, warnings=warnings)
    return out


def _read_folder_dir(root: Path, counted: Counted, shape: tuple[int, int, int] = CIFAR_SHAPE
                     ) -> dict:
    found: dict[str, dict[str, list[Path]]] = {}
    for split in SPLITS:
        found[split] = {}
        for cls_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            files = [f for f in sorted(cls_dir.iterdir())
                     if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
            if files:
                found[split][cls_dir.name] = files
    # Reading 60,000 small files takes as long as decoding them: counted too.
    total = sum(len(files) for classes in found.values() for files in classes.values())
    done, every = 0, _count_every(total)
    counted(done, total, "files read")
    items: dict[str, dict[str, list[tuple[str, bytes]]]] = {}
    for split, classes in found.items():
        items[split] = {}
        for name, files in classes.items():
            items[split][name] = []
            for f in files:
                items[split][name].append((str(f), f.read_bytes()))
                done += 1
                if done % every == 0 or done == total:
                    counted(done, total, "files read")
    return _assemble_folders(items, str(root), counted, shape)


def _read_folder_archive(path: Path, counted: Counted,
                         shape: tuple[int, int, int] = CIFAR_SHAPE) -> dict:
    items: dict[str, dict[str, list[tuple[str, bytes]]]] = {s: {} for s in SPLITS}
    for member, raw in iter_archive(path):
        parts = Path(member.name).parts
        if (len(parts) >= 3 and parts[-3] in SPLITS
                and Path(member.name).suffix.lower() in IMAGE_SUFFIXES):
            items[parts[-3]].setdefault(parts[-2], []).append((member.name, raw))
    return _assemble_folders(items, str(path), counted, shape)


READERS = {
    "batches-dir": _read_batches_dir,
    "batches-archive": _read_batches_archive,
    "folder-dir": _read_folder_dir,
    "folder-archive": _read_folder_archive,
}


def decode_source(source: Source, counted: Counted = _ignore,
                  shape: tuple[int, int, int] = CIFAR_SHAPE) -> dict:
    """Decode a source into numpy arrays + class names + warnings (slow: seconds, tens of
    seconds for 60,000 pictures). `counted` is told how far it has got, from 0 to the end: the
    python version's files, or an image tree's pictures (read as `shape`)."""
    if source.kind.startswith("folder"):
        return READERS[source.kind](source.path, counted, shape)
    return READERS[source.kind](source.path, counted)

"""CIFAR-10 in memory as uint8 tensors: find it, download it, decode it once, cache it.

Sources, looked for in the data folder in this order:
1. `cifar-10-batches-py/` (the official "python version"), also with non-official checksums;
2. `cifar-10-python.tar.gz` (the official archive, as downloaded);
3. an image-folder tree `train/<class>/*` + `test/<class>/*`;
4. any other `.tar.gz`/`.tgz` holding layout 1 or 3 (e.g. the offline JPEG copy).
With none of these, `torchvision.datasets.CIFAR10(root, download=True)` downloads it, exactly
as the tutorial does. The decoded tensors are cached next to the data (or in
`~/.cache/cifar_core` when that folder is read-only), keyed by the source's file sizes and times.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cifar_core.errors import CorruptDataError, DataError, DataNotFoundError, ImageFolderError
from cifar_core.procs import pid_alive

OFFICIAL_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                    "dog", "frog", "horse", "ship", "truck")
BATCH_DIR = "cifar-10-batches-py"
OFFICIAL_ARCHIVE = "cifar-10-python.tar.gz"
OFFICIAL_ARCHIVE_BYTES = 170_498_071
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
DOWNLOAD_MARKER = ".cifar_core_downloading"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff"}
SPLITS = ("train", "test")
# Bump when the cache's contents change meaning, so old caches are decoded again.
CACHE_VERSION = 1

OFFLINE_HELP = (
    "To work offline, put one of these into the data folder: the official "
    f"'{OFFICIAL_ARCHIVE}' or its unpacked '{BATCH_DIR}/' folder; an image-folder tree "
    "'train/<class>/*.png|jpg' + 'test/<class>/*'; or a .tar.gz of either. "
    "Or set CIFAR_DATA_DIR (or --data-dir) to a folder that has one."
)

Progress = Callable[[str], None]


def default_data_dir() -> Path:
    """The data folder: $CIFAR_DATA_DIR, else ./data (the tutorial's root)."""
    return Path(os.environ.get("CIFAR_DATA_DIR") or "./data")


def normalize(images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (N,3,H,W) -> float in [-1, 1], bit for bit the tutorial's
    ToTensor() + Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)). With `out` (a float tensor of
    the same shape) the result is written there and no memory is allocated."""
    result = images.float() if out is None else out.copy_(images)
    return result.div_(255).sub_(0.5).div_(0.5)


@dataclass(frozen=True)
class Batch:
    """Some images of one split with their labels and their indices in that split."""

    images: torch.Tensor  # (n, 3, 32, 32) uint8
    labels: torch.Tensor  # (n,) int64
    indices: torch.Tensor  # (n,) int64, positions in the split
    classes: tuple[str, ...]

    @property
    def label_names(self) -> list[str]:
        return [self.classes[i] for i in self.labels.tolist()]


@dataclass(frozen=True)
class CifarData:
    """Both splits of CIFAR-10 (or an image-folder data set shaped like it), decoded."""

    train_images: torch.Tensor  # (50000, 3, 32, 32) uint8
    train_labels: torch.Tensor  # (50000,) int64
    test_images: torch.Tensor  # (10000, 3, 32, 32) uint8
    test_labels: torch.Tensor  # (10000,) int64
    classes: tuple[str, ...]
    source: str
    warnings: tuple[str, ...] = field(default=())

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of 'train' or 'test'."""
        if name == "train":
            return self.train_images, self.train_labels
        if name == "test":
            return self.test_images, self.test_labels
        raise DataError(f"Unknown split '{name}': use 'train' or 'test'.")

    def random_batch(self, split: str, n: int, seed: int | None = None,
                     classes: Sequence[str | int] | None = None) -> Batch:
        """n random images of a split (only of `classes` if given); same seed, same batch."""
        images, labels = self.split(split)
        pool = torch.arange(len(labels))
        if classes:
            wanted = torch.tensor([self.class_index(c) for c in classes])
            pool = pool[torch.isin(labels, wanted)]
        if len(pool) == 0:
            raise DataError("No images match that class filter: choose at least one class.")
        generator = torch.Generator()
        generator.manual_seed(seed if seed is not None else int(torch.randint(2**31, ())))
        picked = pool[torch.randperm(len(pool), generator=generator)[: max(1, n)]]
        return Batch(images[picked], labels[picked], picked, self.classes)

    def images_at(self, split: str, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """The images of a split at these positions (any list or array of ints)."""
        return self.split(split)[0][torch.tensor(np.asarray(indices, dtype=np.int64))]

    def examples_per_class(self, split: str = "train", seed: int = 0) -> Batch:
        """One image of each class (that has any), in class order; the seed picks which."""
        images, labels = self.split(split)
        generator = torch.Generator().manual_seed(seed)
        picked = []
        for c in range(len(self.classes)):
            idx = torch.nonzero(labels == c).flatten()
            if len(idx):
                picked.append(int(idx[torch.randint(len(idx), (1,), generator=generator)]))
        chosen = torch.tensor(picked, dtype=torch.long)
        return Batch(images[chosen], labels[chosen], chosen, self.classes)

    def class_index(self, name_or_index: str | int) -> int:
        """Position of a class given by name or index, with a clear error if unknown."""
        if isinstance(name_or_index, int) and 0 <= name_or_index < len(self.classes):
            return name_or_index
        if name_or_index in self.classes:
            return self.classes.index(name_or_index)
        raise DataError(f"Unknown class '{name_or_index}'. Classes: {', '.join(self.classes)}.")

    def class_counts(self) -> dict[str, list[int]]:
        """Images per class in each split: {'train': [...], 'test': [...]} in class order."""
        k = len(self.classes)
        return {s: torch.bincount(self.split(s)[1], minlength=k).tolist() for s in SPLITS}

    def class_counts_table(self):
        """The same as rows class, split, images (a pandas DataFrame, for a chart)."""
        import pandas as pd

        counts = self.class_counts()
        return pd.DataFrame([{"class": c, "split": s, "images": counts[s][i]}
                             for s in SPLITS for i, c in enumerate(self.classes)])


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """uint8 (N,3,H,W) -> one HWC uint8 picture, as torchvision.utils.make_grid lays it out."""
    from torchvision.utils import make_grid

    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=255)
    return grid.permute(1, 2, 0).contiguous().numpy()


# --- finding a source -------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """Where the data is: kind is batches-dir, batches-archive, folder-dir or folder-archive."""

    kind: str
    path: Path

    def describe(self) -> str:
        what = {
            "batches-dir": "CIFAR-10 python batches",
            "batches-archive": "CIFAR-10 python archive",
            "folder-dir": "image folders",
            "folder-archive": "archive of image folders",
        }[self.kind]
        return f"{what} at {self.path}"

    def fingerprint(self) -> str:
        """Changes when any file of the source is added, removed, resized or touched."""
        h = hashlib.sha1(f"{CACHE_VERSION}|{self.kind}|{self.path.resolve()}".encode())
        if self.kind == "folder-dir":  # only the image trees: the cache lives beside them
            files = [f for split in SPLITS for f in _walk_files(self.path / split)]
        else:
            files = [self.path] if self.path.is_file() else _walk_files(self.path)
        for f in files:
            st = f.stat()
            h.update(f"|{f.relative_to(self.path.parent)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]


def _walk_files(top: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        out.extend(Path(dirpath) / f for f in sorted(filenames))
    return out


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
            if archive.name == OFFICIAL_ARCHIVE:
                continue
            layout = _archive_layout(archive)
            if layout:
                return Source(f"{layout}-archive", archive)
    return None


# --- decoding ---------------------------------------------------------------------------------

def _official_md5s() -> dict[str, str]:
    from torchvision.datasets import CIFAR10

    return dict(CIFAR10.train_list + CIFAR10.test_list)


def _unpickle_batch(name: str, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        entry = pickle.loads(raw, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
        if len(labels) != len(data) or len(data) == 0:
            raise ValueError("labels and images differ in number")
    except Exception as exc:
        raise CorruptDataError(
            f"The CIFAR-10 file '{name}' is truncated or damaged ({type(exc).__name__}). "
            "Delete it (or its whole folder) to download it again, or copy a good one in its place."
        ) from None
    return data, labels


def _decode_batches(files: dict[str, bytes], where: str) -> dict:
    """The official python layout, given each file's bytes by name."""
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if n not in files]
    if missing:
        raise CorruptDataError(
            f"The CIFAR-10 file '{missing[0]}' is missing from {where}. The python version has "
            f"{', '.join(TRAIN_BATCHES)} and {TEST_BATCH}: copy the missing file back, or delete "
            "the folder to download it again."
        )
    train = [_unpickle_batch(n, files[n]) for n in TRAIN_BATCHES]
    test_x, test_y = _unpickle_batch(TEST_BATCH, files[TEST_BATCH])
    classes, warnings = OFFICIAL_CLASSES, []
    if "batches.meta" in files:
        try:
            classes = tuple(pickle.loads(files["batches.meta"], encoding="latin1")["label_names"])
        except Exception:
            warnings.append("batches.meta is unreadable: using the official class names.")
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


def _read_batches_dir(path: Path) -> dict:
    files = {}
    for name in (*TRAIN_BATCHES, TEST_BATCH, "batches.meta"):
        if (path / name).is_file():
            files[name] = (path / name).read_bytes()
    return _decode_batches(files, str(path))


def _iter_archive(path: Path) -> Iterable[tuple[tarfile.TarInfo, bytes]]:
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


def _read_batches_archive(path: Path) -> dict:
    wanted = {*TRAIN_BATCHES, TEST_BATCH, "batches.meta"}
    files = {Path(m.name).name: raw for m, raw in _iter_archive(path)
             if Path(m.name).name in wanted and BATCH_DIR in Path(m.name).parts}
    return _decode_batches(files, str(path))


def _decode_image(raw: bytes, name: str) -> np.ndarray | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as img:
            img = img.convert("RGB")
            if img.size != (32, 32):
                img = img.resize((32, 32), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _assemble_folders(items: dict[str, dict[str, list[tuple[str, bytes]]]], where: str) -> dict:
    """items[split][class] = [(name, raw bytes)] -> tensors; classes sorted by name."""
    for split in SPLITS:
        if not items.get(split):
            raise ImageFolderError(
                f"No '{split}/<class>/' folders with images in {where}. Lay it out as "
                "train/<class>/*.png and test/<class>/*.png (one folder per class)."
            )
    classes = sorted(items["train"])
    extra = sorted(set(items["test"]) - set(classes))
    if extra:
        raise ImageFolderError(
            f"test/ has classes that train/ lacks ({', '.join(extra)}) in {where}: "
            "train/ and test/ need the same class folders."
        )
    out, bad = {}, []
    for split in SPLITS:
        images, labels = [], []
        for label, cls in enumerate(classes):
            for name, raw in sorted(items[split].get(cls, [])):
                pixels = _decode_image(raw, name)
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
        warnings.append(f"Skipped {len(bad)} unreadable image(s), e.g. {', '.join(bad[:3])}.")
    out.update(classes=classes, warnings=warnings)
    return out


def _read_folder_dir(root: Path) -> dict:
    items: dict[str, dict[str, list[tuple[str, bytes]]]] = {}
    for split in SPLITS:
        items[split] = {}
        for cls_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            files = [f for f in sorted(cls_dir.iterdir())
                     if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
            if files:
                items[split][cls_dir.name] = [(str(f), f.read_bytes()) for f in files]
    return _assemble_folders(items, str(root))


def _read_folder_archive(path: Path) -> dict:
    items: dict[str, dict[str, list[tuple[str, bytes]]]] = {s: {} for s in SPLITS}
    for member, raw in _iter_archive(path):
        parts = Path(member.name).parts
        if (len(parts) >= 3 and parts[-3] in SPLITS
                and Path(member.name).suffix.lower() in IMAGE_SUFFIXES):
            items[parts[-3]].setdefault(parts[-2], []).append((member.name, raw))
    return _assemble_folders(items, str(path))


READERS = {
    "batches-dir": _read_batches_dir,
    "batches-archive": _read_batches_archive,
    "folder-dir": _read_folder_dir,
    "folder-archive": _read_folder_archive,
}


def decode_source(source: Source) -> dict:
    """Decode a source into numpy arrays + class names + warnings (slow: seconds)."""
    return READERS[source.kind](source.path)


# --- cache ------------------------------------------------------------------------------------

def cache_dir(root: Path) -> Path:
    """Where decoded tensors are kept: next to the data, or in ~/.cache if that is read-only."""
    root = Path(root)
    # os.access alone says yes to root (uid 0) even where the owner made the folder read-only.
    if os.access(root, os.W_OK) and root.stat().st_mode & 0o222:
        return root / ".cifar_core_cache"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cifar_core" / hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]


def _cache_file(root: Path, source: Source) -> Path:
    return cache_dir(root) / f"cifar10-{source.fingerprint()}.pt"


def _write_cache(path: Path, decoded: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                    for k, v in decoded.items()}, tmp)
        os.replace(tmp, path)
        for old in path.parent.glob("cifar10-*.pt"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a cache we cannot write only costs time on the next start


def _read_cache(path: Path) -> dict | None:
    try:
        return torch.load(path, weights_only=True)
    except Exception:
        return None  # damaged or foreign: decode again


# --- loading ----------------------------------------------------------------------------------

def _download(root: Path, progress: Progress) -> None:
    """The tutorial's own download: torchvision.datasets.CIFAR10(root, download=True)."""
    from torchvision.datasets import CIFAR10

    root.mkdir(parents=True, exist_ok=True)
    marker = root / DOWNLOAD_MARKER
    progress(f"Downloading CIFAR-10 (170 MB) into {root} ...")
    try:
        marker.write_text(str(os.getpid()))
        CIFAR10(root=str(root), train=True, download=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        partial = root / OFFICIAL_ARCHIVE
        if partial.is_file() and partial.stat().st_size < OFFICIAL_ARCHIVE_BYTES:
            partial.unlink(missing_ok=True)
        raise DataNotFoundError(
            f"No CIFAR-10 data in {root.resolve()} and the download failed ({exc}). "
            + OFFLINE_HELP
        ) from None
    finally:
        marker.unlink(missing_ok=True)


DOWNLOAD_LOG = ".cifar_core_download.log"


def download_status(root: Path) -> float | None:
    """Fraction of the official archive downloaded so far, or None if no download is running."""
    root = Path(root)
    marker = root / DOWNLOAD_MARKER
    try:
        pid = int(marker.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    archive = root / OFFICIAL_ARCHIVE
    if pid and not pid_alive(pid):
        # The downloader died: drop what it left half done, so the user can simply try again.
        marker.unlink(missing_ok=True)
        if archive.is_file() and archive.stat().st_size < OFFICIAL_ARCHIVE_BYTES:
            archive.unlink(missing_ok=True)
        return None
    size = archive.stat().st_size if archive.exists() else 0
    return min(1.0, size / OFFICIAL_ARCHIVE_BYTES)


@dataclass(frozen=True)
class DataStatus:
    """What the data folder holds, in words: ready, found, downloading or missing."""

    state: str
    message: str
    fraction: float | None = None  # of the download, while downloading


def data_status(root: Path | str | None = None) -> DataStatus:
    """Cheap look at the data folder (no decoding), for a status line."""
    root = Path(root) if root is not None else default_data_dir()
    fraction = download_status(root)
    if fraction is not None:
        return DataStatus("downloading", f"Downloading CIFAR-10 into {root}: {fraction:.0%} "
                                         f"of 170 MB.", fraction)
    source = find_source(root)
    if source is None:
        last = ""
        log = root / DOWNLOAD_LOG
        if log.is_file():
            errors = [ln for ln in log.read_text(errors="replace").splitlines()
                      if ln.startswith("error:")]
            last = f" The last download failed: {errors[-1][7:]}" if errors else ""
        return DataStatus("missing", f"No CIFAR-10 data in {root.resolve()}.{last}")
    if _cache_file(root, source).is_file():
        return DataStatus("ready", f"Ready: {source.describe()}.")
    return DataStatus("found", f"Found {source.describe()}; it is decoded once on first use "
                               "(about 10 s).")


def is_cached(root: Path | None = None) -> bool:
    """True when the data is decoded and cached, so loading takes well under a second."""
    root = Path(root) if root is not None else default_data_dir()
    source = find_source(root)
    return source is not None and _cache_file(root, source).is_file()


def load_cifar10(root: Path | str | None = None, download: bool = True,
                 progress: Progress = lambda _msg: None) -> CifarData:
    """Both splits from the data folder: cached, decoded from an offline source, or downloaded."""
    root = Path(root) if root is not None else default_data_dir()
    source = find_source(root)
    if source is None:
        if root.exists() and not root.is_dir():
            raise DataNotFoundError(f"The data folder {root} is a file: point it at a folder.")
        if not download:
            raise DataNotFoundError(f"No CIFAR-10 data in {root.resolve()}. " + OFFLINE_HELP)
        _download(root, progress)
        source = find_source(root)
        if source is None:
            raise DataNotFoundError(f"The download left no data in {root}. " + OFFLINE_HELP)
    cache = _cache_file(root, source)
    decoded = _read_cache(cache) if cache.is_file() else None
    if decoded is None:
        progress(f"Decoding {source.describe()} (once; later starts use a cache) ...")
        decoded = decode_source(source)
        decoded = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                   for k, v in decoded.items()}
        _write_cache(cache, decoded)
    # Contiguous (N,3,32,32) whatever the cache holds (earlier caches kept image folders'
    # pixels channels-last, which sends every convolution down a slower path).
    return CifarData(
        train_images=decoded["train_images"].contiguous(), train_labels=decoded["train_labels"],
        test_images=decoded["test_images"].contiguous(), test_labels=decoded["test_labels"],
        classes=tuple(decoded["classes"]), source=source.describe(),
        warnings=tuple(decoded["warnings"]),
    )

"""MNIST's official file format (idx), shared by MNIST and Fashion-MNIST: where the four files
sit and how they are read into arrays.

The four files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
`t10k-labels-idx1-ubyte`, each plain or `.gz`) are looked for in torchvision's layout
(`<data folder>/<FashionMNIST|MNIST>/raw/`, what its download leaves) and then in a system
folder (Debian's `dataset-fashion-mnist` package puts them in /usr/share/datasets/fashion-mnist).

The format is read here rather than with torchvision.datasets.mnist.read_image_file, which
takes a plain file's path only (no .gz, as Debian ships them) and checks it with `assert`s; a
test keeps the two readers equal on the same file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from cifar_core.data.dataset import Counted
from cifar_core.data.sources import Source
from cifar_core.errors import CorruptDataError

# (split, what) -> the official file name, without .gz.
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
# The idx header's third byte: the type of the numbers that follow. MNIST's are all 0x08.
UNSIGNED_BYTE = 0x08


def idx_file(folder: Path, name: str) -> Path | None:
    """The file `name` in `folder`, plain (preferred: no unpacking) or .gz; None if neither."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def has_idx_files(folder: Path) -> bool:
    """Whether all four official files are in `folder` (each plain or .gz)."""
    return folder.is_dir() and all(idx_file(folder, name) for name in IDX_FILES.values())


def find_idx(kind: str, folders: tuple[Path, ...]) -> Source | None:
    """A source of `kind` at the first of `folders` holding all four files, or None."""
    for folder in folders:
        if has_idx_files(folder):
            return Source(kind, folder)
    return None


def parse_idx(raw: bytes, where: str) -> np.ndarray:
    """The unsigned-byte array an idx file's bytes hold: (N,) labels or (N, H, W) images.
    CorruptDataError naming `where` if the bytes are not such a file."""
    if len(raw) < 4 or raw[:3] != bytes([0, 0, UNSIGNED_BYTE]) or not 1 <= raw[3] <= 3:
        raise CorruptDataError(
            f"{where} is not an idx file of bytes (MNIST's official format): replace it with the "
            "official file, or delete it to download it again."
        )
    dims = raw[3]
    header = 4 + 4 * dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    if len(raw) < header or len(raw) - header != int(np.prod(shape)):
        raise CorruptDataError(
            f"{where} is truncated or damaged: its header announces {' × '.join(map(str, shape))} "
            f"bytes of data, it holds {max(0, len(raw) - header):,}. Replace it with the official "
            "file, or delete it to download it again."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_file(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptDataError(
            f"{path} cannot be read ({type(exc).__name__}: {exc}). Replace it with the official "
            "file, or delete it to download it again."
        ) from None


def read_idx(source: Source, counted: Counted, classes: tuple[str, ...]) -> dict:
    """Both splits of the four idx files in `source.path` as (N, 1, H, W) uint8 images and int64
    labels, with `classes` (the files hold numbers only)."""
    out: dict = {}
    counted(0, len(IDX_FILES), "files decoded")
    for done, ((split, what), name) in enumerate(IDX_FILES.items(), start=1):
        path = idx_file(source.path, name)
        if path is None:
            raise CorruptDataError(f"{name} (or {name}.gz) is missing from {source.path}: copy "
                                   "it back, or delete the folder to download it again.")
        array = parse_idx(_read_file(path), str(path))
        wanted_dims = 3 if what == "images" else 1
        if array.ndim != wanted_dims:
            raise CorruptDataError(
                f"{path} holds {array.ndim}-dimensional data where the {split} {what} should be "
                f"{wanted_dims}-dimensional: is it another of the four files, renamed? Put the "
                "official file there."
            )
        out[f"{split}_{what}"] = (array[:, None].copy() if what == "images"
                                  else array.astype(np.int64))
        counted(done, len(IDX_FILES), "files decoded")
    for split in ("train", "test"):
        images, labels = out[f"{split}_images"], out[f"{split}_labels"]
        if len(images) != len(labels):
            raise CorruptDataError(
                f"The {split} files in {source.path} hold {len(images):,} images but "
                f"{len(labels):,} labels: one of them is from another release. Replace both "
                "with the official files."
            )
    out.update(classes=list(classes), warnings=[])
    return out

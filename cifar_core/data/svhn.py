"""SVHN's official files (`train_32x32.mat`, `test_32x32.mat`, in the data folder itself, where
torchvision's download puts them): where they sit and how they are read.

Each file holds X, the pictures as (32, 32, 3, N), and y, the digits 1-10 as (N, 1), where 10
means the digit 0: read as torchvision's SVHN reads them (label 10 becomes 0, so label i is the
digit i). They are MATLAB files: scipy.io.loadmat reads them, imported only when SVHN is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cifar_core.data.dataset import SPLITS, Counted
from cifar_core.data.sources import Source
from cifar_core.errors import CorruptDataError, DataError

SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
SVHN_CLASSES = tuple("0123456789")
NEEDS_SCIPY = ("Reading SVHN's .mat files needs scipy, which is not installed: pip install scipy "
               "(it is in requirements.txt), then try again.")


def find_svhn(root: Path) -> Source | None:
    """Both .mat files in the data folder, or None."""
    files = tuple(Path(root) / SVHN_FILES[split] for split in SPLITS)
    if all(f.is_file() for f in files):
        return Source("svhn-mat", Path(root), files)
    return None


def loadmat():
    """scipy.io.loadmat; DataError saying what to install if scipy is missing."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError(NEEDS_SCIPY) from None
    return loadmat


def read_svhn(source: Source, counted: Counted) -> dict:
    """Both splits as (N, 3, 32, 32) uint8 and labels 0-9 (the digits)."""
    read = loadmat()
    out: dict = {}
    counted(0, len(SPLITS), "files decoded")
    for done, split in enumerate(SPLITS, start=1):
        path = source.path / SVHN_FILES[split]
        try:
            mat = read(path, variable_names=["X", "y"])
            images = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)), dtype=np.uint8)
            labels = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
            if images.shape[1:] != (3, 32, 32) or len(labels) != len(images) or not len(images):
                raise ValueError(f"pictures {images.shape}, {len(labels)} labels")
        except Exception as exc:
            raise CorruptDataError(
                f"{path} is not SVHN's {split} file or is damaged ({type(exc).__name__}: {exc}). "
                "Delete it to download it again, or copy the official file in its place."
            ) from None
        labels[labels == 10] = 0  # SVHN's 10 is the digit 0
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
        counted(done, len(SPLITS), "files decoded")
    out.update(classes=list(SVHN_CLASSES), warnings=[])
    return out

"""A data set as tensors (ImageData), its batches, and CIFAR-10's layout's names and constants."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cifar_core.errors import DataError

OFFICIAL_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                    "dog", "frog", "horse", "ship", "truck")
BATCH_DIR = "cifar-10-batches-py"
OFFICIAL_ARCHIVE = "cifar-10-python.tar.gz"
OFFICIAL_ARCHIVE_BYTES = 170_498_071
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
# CIFAR-100's official python version (data.cifar100): named here so that CIFAR-10's look into
# the data folder's archives passes over it.
CIFAR100_DIR = "cifar-100-python"
CIFAR100_ARCHIVE = "cifar-100-python.tar.gz"
SPLITS = ("train", "test")
# (channels, height, width) of CIFAR-10's pictures: what networks are built for by default, and
# what an image tree is read as unless its data set says otherwise.
CIFAR_SHAPE = (3, 32, 32)
# Exists while a download runs, holding its pid: the official archive is half written until then.
DOWNLOAD_MARKER = ".cifar_core_downloading"

OFFLINE_HELP = (
    "To work offline, put one of these into the data folder: the official "
    f"'{OFFICIAL_ARCHIVE}' or its unpacked '{BATCH_DIR}/' folder; an image-folder tree "
    "of .png or .jpg files, 'train/<class>/' and 'test/<class>/'; or a .tar.gz of either. "
    "Or set CIFAR_DATA_DIR (or --data-dir) to a folder that has one."
)

Progress = Callable[[str], None]
# How far a decode has got: (done, total, what is counted, e.g. 'files read' or 'pictures
# decoded'), told from 0 to total for each, so that a page can show a bar during the one slow
# load (tens of seconds).
Counted = Callable[[int, int, str], None]
# load_cifar10 also passes the data's warnings to its progress callback, each after this prefix,
# so that whatever shows progress (the CLI, a job's log) shows them; `train --json` turns such a
# line into a warning event.
WARNING_PREFIX = "warning: "


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

    images: torch.Tensor  # (n, C, H, W) uint8
    labels: torch.Tensor  # (n,) int64
    indices: torch.Tensor  # (n,) int64, positions in the split
    classes: tuple[str, ...]

    @property
    def label_names(self) -> list[str]:
        return [self.classes[i] for i in self.labels.tolist()]


@dataclass(frozen=True)
class ImageData:
    """Both splits of a data set, decoded (CIFAR-10: 50,000 and 10,000 images of 3 × 32 × 32)."""

    train_images: torch.Tensor  # (N, C, H, W) uint8
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor  # (M, C, H, W) uint8
    test_labels: torch.Tensor  # (M,) int64
    classes: tuple[str, ...]
    source: str
    warnings: tuple[str, ...] = field(default=())
    dataset: str = "cifar10"  # its name in the data-set registry (cifar_core.data.registry)
    title: str = "CIFAR-10"  # for people

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of every image."""
        return tuple(self.train_images.shape[1:])

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

"""The data sets, by name: each declared once here, and read from here by everything else.

A `DatasetSpec` says what a data set is (its name, a title for people, class names, image
shape) and how to get it (where an offline copy sits in the data folder, how to read it, how to
download it). Adding a data set is one `register(DatasetSpec(...))` call: `load_data`, the
settings check, the networks' shapes, checkpoints, the run store, the CLI's --dataset and the
pages' choices all read this registry. The built-in ones are registered in data.catalog.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cifar_core.data.dataset import Counted, Progress
from cifar_core.data.sources import Source
from cifar_core.errors import DataError

# Every data set is normalised as the tutorial normalises CIFAR-10 (ToTensor, then
# Normalize(0.5, 0.5) per channel): pixels x in 0..255 become (x / 255 - MEAN) / STD.
MEAN, STD = 0.5, 0.5
DEFAULT_DATASET = "cifar10"
# Names are used in file names and the CLI: lower-case letters, digits, '-' and '_'.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


@dataclass(frozen=True)
class DatasetSpec:
    """One registered data set: what it is and how to find, read and download it."""

    name: str  # e.g. 'cifar10': the --dataset value, recorded with runs and checkpoints
    title: str  # for people, e.g. 'CIFAR-10'
    # Class names in label order; empty where the data names them (an image-folder tree).
    classes: tuple[str, ...]
    shape: tuple[int, int, int]  # channels, height, width of every image
    # The first offline copy in the data folder, or None.
    find: Callable[[Path], Source | None]
    # A source -> {train_images, train_labels, test_images, test_labels, classes, warnings}
    # (numpy arrays (N, C, H, W) uint8 and (N,) int64), telling `counted` how far it has got.
    read: Callable[[Source, Counted], dict]
    # Downloads into the data folder and returns the source it left; None: no download.
    download: Callable[[Path, Progress], Source] | None = None
    download_bytes: int = 0  # how much the download fetches (0: not known)
    source_line: str = ""  # where it comes from and its licence, one line
    offline_help: str = ""  # what to put into the data folder to use it offline
    about: str = ""  # one sentence for people: what the pictures show

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def normalization(self) -> dict:
        """The normalisation, per channel, as checkpoints record it."""
        return {"mean": [MEAN] * self.channels, "std": [STD] * self.channels}

    def describe_shape(self) -> str:
        """e.g. '32 × 32 colour' or '28 × 28 grey'."""
        kind = "grey" if self.channels == 1 else "colour"
        return f"{self.shape[1]} × {self.shape[2]} {kind}"


DATASETS: dict[str, DatasetSpec] = {}


def check_name(name: str, what: str = "data set") -> str:
    """The name if it can name a data set; DataError saying which names can."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise DataError(f"'{name}' cannot name a {what}: use 1 to 40 lower-case letters, digits, "
                        "'-' or '_', starting with a letter or digit.")
    return name


def register(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Make a data set choosable by its name everywhere; DataError if the name is taken (unless
    `replace`) or its shape cannot be one of images."""
    check_name(spec.name)
    if spec.name in DATASETS and not replace:
        raise DataError(f"There is already a data set named '{spec.name}': choose another name.")
    channels, height, width = spec.shape
    if channels not in (1, 3) or min(height, width) < 8:
        raise DataError(f"Data set '{spec.name}': images must have 1 (grey) or 3 (colour) "
                        f"channels and be at least 8 × 8 pixels, not {spec.shape}.")
    DATASETS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Forget a registered data set (tests; a folder data set that was deleted)."""
    DATASETS.pop(name, None)


# Called with a data folder (None: the default one) to register the data sets recorded there
# rather than in code (your own image folders: data.folders), before names are listed or an
# unknown one is refused, so that every process, a job's too, knows them. Each returns the
# names it registered from other data folders, which a list of this folder's leaves out.
_RECORD_READERS: list[Callable[[Path | None], set[str]]] = []


def read_records_with(reader: Callable[[Path | None], set[str]]) -> None:
    """Have `reader(root)` register a data folder's recorded data sets when they are asked for."""
    _RECORD_READERS.append(reader)


def read_records(root: Path | str | None = None) -> set[str]:
    """Register the data sets recorded in the data folder `root` (None: the default one);
    the names registered from other data folders."""
    elsewhere: set[str] = set()
    for reader in _RECORD_READERS:
        elsewhere |= reader(Path(root) if root is not None else None)
    return elsewhere


def dataset_names(root: Path | str | None = None) -> tuple[str, ...]:
    """The data set names, the default (cifar10) first: the built-in ones, then those recorded
    in the data folder `root` (None: the default data folder)."""
    elsewhere = read_records(root)
    return tuple(name for name in DATASETS if name not in elsewhere)


def dataset_spec(name: str | None, root: Path | str | None = None) -> DatasetSpec:
    """The data set called `name` (None: the default), built in or recorded in the data folder
    `root` (None: the default data folder); DataError naming the choices."""
    name = DEFAULT_DATASET if name is None else name
    if isinstance(name, str) and name not in DATASETS:
        read_records(root)
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(f"There is no data set '{name}': choose one of "
                        f"{', '.join(DATASETS)} (python -m cifar_core datasets lists them)."
                        ) from None

"""Loading CIFAR-10: the entry point that ties the sources, the cache and the download together.

From the data folder's first source (data.sources), decoded once and then read from the cache
(data.cache); with no source, downloaded by torchvision exactly as the tutorial does
(data.download). Whatever the layout, the result is checked before anything trains on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cifar_core.data.cache import cache_file, read_cache, remove_stale_partials, write_cache
from cifar_core.data.dataset import (
    OFFLINE_HELP,
    SPLITS,
    WARNING_PREFIX,
    CifarData,
    Counted,
    Progress,
    default_data_dir,
)
from cifar_core.data.download import download_cifar10
from cifar_core.data.sources import Source, decode_source, find_source
from cifar_core.errors import CorruptDataError, DataError, DataNotFoundError, ImageFolderError


def load_cifar10(root: Path | str | None = None, download: bool = True,
                 progress: Progress = lambda _msg: None,
                 counted: Counted | None = None) -> CifarData:
    """Both splits from the data folder: cached, decoded from an offline source, or downloaded.
    Each of the data's warnings also goes to `progress`, as WARNING_PREFIX + the warning.
    `counted` is told how far a decode has got (none when the data comes from the cache)."""
    root = Path(root) if root is not None else default_data_dir()
    source = find_source(root)
    if source is None:
        if root.exists() and not root.is_dir():
            raise DataNotFoundError(f"The data folder {root} is a file: point it at a folder.")
        _refuse_half_an_image_tree(root)
        if not download:
            raise DataNotFoundError(f"No CIFAR-10 data in {root.resolve()}. " + OFFLINE_HELP)
        source = download_cifar10(root, progress)
    cache = cache_file(root, source)
    remove_stale_partials(cache.parent)
    decoded = read_cache(cache) if cache.is_file() else None
    if decoded is not None:
        try:
            _check_classes(decoded, source)
        except DataError:
            decoded = None  # cached before these checks: decoding again names the file at fault
    if decoded is None:
        progress(f"Decoding {source.describe()} (once; later starts use a cache) ...")
        decoded = decode_source(source, *([counted] if counted else []))
        decoded = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                   for k, v in decoded.items()}
        _check_classes(decoded, source)
        write_cache(cache, decoded)
    for warning in decoded["warnings"]:
        progress(WARNING_PREFIX + warning)
    # Contiguous (N,3,32,32) whatever the cache holds (earlier caches kept image folders'
    # pixels channels-last, which sends every convolution down a slower path).
    return CifarData(
        train_images=decoded["train_images"].contiguous(), train_labels=decoded["train_labels"],
        test_images=decoded["test_images"].contiguous(), test_labels=decoded["test_labels"],
        classes=tuple(decoded["classes"]), source=source.describe(),
        warnings=tuple(decoded["warnings"]),
    )


def _refuse_half_an_image_tree(root: Path) -> None:
    """An image tree needs train/ and test/; with one of them the folder holds no source, and
    without this a download would quietly fill the folder with CIFAR-10 instead."""
    present = [split for split in SPLITS if (root / split).is_dir()]
    if len(present) == 1:
        [there] = present
        [missing] = [split for split in SPLITS if split != there]
        raise ImageFolderError(
            f"{root.resolve()} has a {there}/ folder but no {missing}/ folder beside it. An "
            f"image-folder data set needs both, train/<class>/ and test/<class>/ (the test "
            f"images measure the accuracy): add {missing}/, or point --data-dir (or "
            "CIFAR_DATA_DIR) at another folder."
        )


def _check_classes(decoded: dict, source: Source) -> None:
    """A DataError unless every label names a class and at least two classes have training
    images (one class trains to 100 % and learns nothing)."""
    classes = list(decoded["classes"])
    for split in SPLITS:
        labels = decoded[f"{split}_labels"]
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise CorruptDataError(
                f"The {split} labels of {source.describe()} go from {int(labels.min())} to "
                f"{int(labels.max())}, but there are {len(classes)} class names: a label is the "
                "position of its class's name. Fix the class names, or replace the data."
            )
    trained = [classes[i] for i in torch.as_tensor(decoded["train_labels"]).unique().tolist()]
    if len(trained) < 2:
        what = f"only one class ({trained[0]})" if trained else "no class"
        layout = ("Put each class's images in a folder of its own, train/<class>/ and "
                  "test/<class>/, for two classes or more."
                  if source.kind.startswith("folder") else
                  "Use a data set with images of two classes or more.")
        error = ImageFolderError if source.kind.startswith("folder") else CorruptDataError
        raise error(f"{source.describe()} has training images of {what}: a classifier needs "
                    f"at least two classes to tell apart. {layout}")

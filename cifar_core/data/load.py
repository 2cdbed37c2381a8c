"""Loading a data set: the entry point that ties its spec, the cache and the download together.

From the data folder's first offline copy of the data set (its spec in data.registry says where
and how to read it), decoded once and then read from the cache (data.cache); with none,
downloaded (CIFAR-10 by torchvision exactly as the tutorial does, data.download). Whatever the
layout, the result is checked before anything trains on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cifar_core.data.cache import cache_file, read_cache, remove_stale_partials, write_cache
from cifar_core.data.dataset import (
    SPLITS,
    WARNING_PREFIX,
    Counted,
    ImageData,
    Progress,
    default_data_dir,
)
from cifar_core.data.registry import dataset_spec, read_records
from cifar_core.data.sources import Source
from cifar_core.errors import CorruptDataError, DataError, DataNotFoundError, ImageFolderError


def load_data(dataset: str | None = None, root: Path | str | None = None,
              download: bool = True, progress: Progress = lambda _msg: None,
              counted: Counted | None = None) -> ImageData:
    """Both splits of the registered data set `dataset` (None: CIFAR-10) from the data folder:
    cached, decoded from an offline copy, or downloaded. Each of the data's warnings also goes
    to `progress`, as WARNING_PREFIX + the warning. `counted` is told how far a decode has got
    (none when the data comes from the cache)."""
    root = Path(root) if root is not None else default_data_dir()
    read_records(root)  # the data folder's own data sets as recorded now (data.folders)
    spec = dataset_spec(dataset, root)
    if root.exists() and not root.is_dir():
        raise DataNotFoundError(f"The data folder {root} is a file: point it at a folder.")
    source = spec.find(root)
    if source is None:
        if not download or spec.download is None:
            raise DataNotFoundError(f"No {spec.title} data in {root.resolve()}. "
                                    + spec.offline_help)
        source = spec.download(root, progress)
    cache = cache_file(root, source, spec.name)
    remove_stale_partials(cache.parent)
    decoded = read_cache(cache) if cache.is_file() else None
    if decoded is not None:
        try:
            _check_classes(decoded, source)
            _check_shape(decoded, spec, source)
        except DataError:
            decoded = None  # cached before these checks: decoding again names the file at fault
    if decoded is None:
        progress(f"Decoding {source.describe()} (once; later starts use a cache) ...")
        decoded = spec.read(source, counted or (lambda *_: None))
        decoded = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                   for k, v in decoded.items()}
        _check_classes(decoded, source)
        _check_shape(decoded, spec, source)
        write_cache(cache, decoded)
    for warning in decoded["warnings"]:
        progress(WARNING_PREFIX + warning)
    # Contiguous (N,C,H,W) whatever the cache holds (earlier caches kept image folders'
    # pixels channels-last, which sends every convolution down a slower path).
    return ImageData(
        train_images=decoded["train_images"].contiguous(), train_labels=decoded["train_labels"],
        test_images=decoded["test_images"].contiguous(), test_labels=decoded["test_labels"],
        classes=tuple(decoded["classes"]), source=source.describe(),
        warnings=tuple(decoded["warnings"]), dataset=spec.name, title=spec.title,
    )


def load_cifar10(root: Path | str | None = None, download: bool = True,
                 progress: Progress = lambda _msg: None,
                 counted: Counted | None = None) -> ImageData:
    """CIFAR-10, as the tutorial loads it: load_data('cifar10', ...)."""
    return load_data("cifar10", root, download, progress, counted)


def _check_shape(decoded: dict, spec, source: Source) -> None:
    """A CorruptDataError unless both splits' images have the data set's shape."""
    for split in SPLITS:
        got = tuple(decoded[f"{split}_images"].shape[1:])
        if got != tuple(spec.shape):
            raise CorruptDataError(
                f"The {split} images of {source.describe()} are {got} (channels, height, "
                f"width), but {spec.title} is declared as {tuple(spec.shape)}. Replace the "
                "data, or register it with the shape it has."
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

"""Loading CIFAR-10: the entry point that ties the sources, the cache and the download together.

From the data folder's first source (cifar_core.sources), decoded once and then read from the
cache (cifar_core.cache); with no source, downloaded by torchvision exactly as the tutorial does
(cifar_core.download).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cifar_core.cache import cache_file, read_cache, remove_stale_partials, write_cache
from cifar_core.dataset import OFFLINE_HELP, CifarData, Progress, default_data_dir
from cifar_core.download import download_cifar10
from cifar_core.errors import DataNotFoundError
from cifar_core.sources import decode_source, find_source


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
        source = download_cifar10(root, progress)
    cache = cache_file(root, source)
    remove_stale_partials(cache.parent)
    decoded = read_cache(cache) if cache.is_file() else None
    if decoded is None:
        progress(f"Decoding {source.describe()} (once; later starts use a cache) ...")
        decoded = decode_source(source)
        decoded = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                   for k, v in decoded.items()}
        write_cache(cache, decoded)
    # Contiguous (N,3,32,32) whatever the cache holds (earlier caches kept image folders'
    # pixels channels-last, which sends every convolution down a slower path).
    return CifarData(
        train_images=decoded["train_images"].contiguous(), train_labels=decoded["train_labels"],
        test_images=decoded["test_images"].contiguous(), test_labels=decoded["test_labels"],
        classes=tuple(decoded["classes"]), source=source.describe(),
        warnings=tuple(decoded["warnings"]),
    )

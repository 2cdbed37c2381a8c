"""Data: CIFAR-10 as tensors, from wherever it is in the data folder.

`load_cifar10` (load) ties together `sources` (finding and decoding each layout, with
`safe_pickle` for the official pickled files), `cache` (decoded once) and `download`
(torchvision's, also in the background); `dataset` holds the decoded data set (`CifarData`),
its batches and constants; `grids` draws its pictures for people (enlarged, framed, gridded).
"""

from cifar_core.data.dataset import OFFICIAL_CLASSES, CifarData, default_data_dir, normalize
from cifar_core.data.grids import image_grid
from cifar_core.data.load import load_cifar10

__all__ = ["OFFICIAL_CLASSES", "CifarData", "default_data_dir", "image_grid", "load_cifar10",
           "normalize"]

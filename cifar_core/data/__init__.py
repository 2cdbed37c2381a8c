"""Data: any registered data set as tensors, CIFAR-10 the default.

`load_data` (load) ties together `registry` (each data set declared once: `DatasetSpec`),
`catalog` (the built-in ones), `folders` (your own picture folders, recorded by name in the
data folder), `own_sets` (the sets you make on the Teach page, kept in the runs folder),
`sources` (finding and decoding each layout, with `safe_pickle`
for the official pickled files), `cache` (decoded once) and `download` (torchvision's, also in
the background); `dataset` holds the decoded data set (`ImageData`), its batches and constants;
`grids` draws its pictures for people (enlarged, framed, gridded).
"""

from cifar_core.data import (
           catalog,  # noqa: F401  (registers the built-in data sets)
           folders,  # noqa: F401  (and reads the data folder's own ones)
           own_sets,  # noqa: F401  (and the sets kept in the runs folder: the Teach page's)
)
from cifar_core.data.dataset import OFFICIAL_CLASSES, ImageData, default_data_dir, normalize
from cifar_core.data.grids import image_grid
from cifar_core.data.load import load_cifar10, load_data
from cifar_core.data.registry import DatasetSpec, dataset_names, dataset_spec, register

__all__ = ["OFFICIAL_CLASSES", "DatasetSpec", "ImageData", "dataset_names", "dataset_spec",
           "default_data_dir", "image_grid", "load_cifar10", "load_data", "normalize", "register"]

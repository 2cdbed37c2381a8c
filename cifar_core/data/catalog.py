"""The built-in data sets, registered by name (data.registry): CIFAR-10, the default, first.

Also `folder_dataset`: any image-folder tree (train/<class>/, test/<class>/) as a data set of
its own, its classes named by its folders.
"""

from __future__ import annotations

from pathlib import Path

from cifar_core.data.dataset import (
    CIFAR_SHAPE,
    OFFICIAL_CLASSES,
    OFFLINE_HELP,
    SPLITS,
    Counted,
    Progress,
)
from cifar_core.data.download import download_cifar10
from cifar_core.data.registry import DatasetSpec, register
from cifar_core.data.sources import Source, decode_source, find_source
from cifar_core.errors import ImageFolderError


def _find_cifar10(root: Path) -> Source | None:
    """CIFAR-10's sources in the data folder (data.sources); a folder with only one of an image
    tree's train/ and test/ is refused, or a download would quietly fill it with CIFAR-10."""
    source = find_source(root)
    if source is None:
        _refuse_half_an_image_tree(root)
    return source


def _refuse_half_an_image_tree(root: Path) -> None:
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


def _read_cifar10(source: Source, counted: Counted) -> dict:
    return decode_source(source, counted, CIFAR_SHAPE)


def _download_cifar10(root: Path, progress: Progress) -> Source:
    return download_cifar10(root, progress)


CIFAR10 = register(DatasetSpec(
    name="cifar10", title="CIFAR-10", classes=OFFICIAL_CLASSES, shape=CIFAR_SHAPE,
    find=_find_cifar10, read=_read_cifar10, download=_download_cifar10,
    source_line="Alex Krizhevsky, Learning Multiple Layers of Features from Tiny Images (2009); "
                "https://www.cs.toronto.edu/~kriz/cifar.html",
    offline_help=OFFLINE_HELP,
    about="Small colour photos of ten kinds of things: animals and vehicles."))


def folder_dataset(name: str, folder: Path | str, title: str | None = None,
                   shape: tuple[int, int, int] = CIFAR_SHAPE) -> DatasetSpec:
    """A spec for the image-folder tree at `folder` (train/<class>/ and test/<class>/, or a
    .tar.gz of them): its pictures read as `shape`, its classes from its folder names. Not
    registered: pass it to data.registry.register."""
    folder = Path(folder)

    def find(_root: Path) -> Source | None:
        return find_source(folder) if folder.is_dir() else (
            Source("folder-archive", folder) if folder.is_file() else None)

    def read(source: Source, counted: Counted) -> dict:
        return decode_source(source, counted, shape)

    return DatasetSpec(
        name=name, title=title or name, classes=(), shape=shape, find=find, read=read,
        source_line=f"Your own pictures, in {folder}",
        offline_help=f"Put the pictures into {folder}/train/<class>/ and "
                     f"{folder}/test/<class>/, one folder per class.",
        about=f"Your own pictures, from {folder}.")

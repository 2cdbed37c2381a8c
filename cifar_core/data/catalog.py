"""The built-in data sets, registered by name (data.registry): CIFAR-10, the default, first,
then Fashion-MNIST, MNIST, CIFAR-100 and SVHN (each read by a module of its format: data.idx,
data.cifar100, data.svhn; downloaded by torchvision's own dataset classes).

Also `folder_dataset`: any image-folder tree (train/<class>/, test/<class>/) as a data set of
its own, its classes named by its folders.
"""

from __future__ import annotations

from pathlib import Path

from cifar_core.data.cifar100 import (
    CIFAR100_ARCHIVE,
    CIFAR100_CLASSES,
    CIFAR100_DIR,
    find_cifar100,
    read_cifar100,
)
from cifar_core.data.dataset import (
    CIFAR_SHAPE,
    OFFICIAL_ARCHIVE_BYTES,
    OFFICIAL_CLASSES,
    OFFLINE_HELP,
    SPLITS,
    Counted,
    Progress,
)
from cifar_core.data.download import download_cifar10, download_with_torchvision
from cifar_core.data.idx import find_idx, read_idx
from cifar_core.data.registry import DatasetSpec, register
from cifar_core.data.sources import Source, decode_source, find_source
from cifar_core.data.svhn import SVHN_CLASSES, SVHN_FILES, find_svhn, loadmat, read_svhn
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
    download_bytes=OFFICIAL_ARCHIVE_BYTES,
    source_line="Alex Krizhevsky, Learning Multiple Layers of Features from Tiny Images (2009); "
                "https://www.cs.toronto.edu/~kriz/cifar.html",
    offline_help=OFFLINE_HELP,
    about="Small colour photos of ten kinds of things: animals and vehicles."))


# --- Fashion-MNIST ----------------------------------------------------------------------------

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Where Debian's dataset-fashion-mnist package puts the four official files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


def _find_fashion_mnist(root: Path) -> Source | None:
    # The system folder is read at each call (a test points it elsewhere).
    return find_idx("fashion-mnist-idx", (Path(root) / "FashionMNIST" / "raw",
                                          FASHION_MNIST_SYSTEM_DIR))


def _read_fashion_mnist(source: Source, counted: Counted) -> dict:
    return read_idx(source, counted, FASHION_MNIST_CLASSES)


def _download_fashion_mnist(root: Path, progress: Progress) -> Source:
    def fetch(where: str) -> None:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(root=where, train=True, download=True)  # fetches all four files

    return download_with_torchvision(root, "fashion-mnist", "Fashion-MNIST", fetch,
                                     _find_fashion_mnist, FASHION_MNIST_HELP, progress)


FASHION_MNIST_HELP = (
    "To work offline, install Debian's package (apt-get install dataset-fashion-mnist: it puts "
    f"the official files in {FASHION_MNIST_SYSTEM_DIR}/), or put the four official files "
    "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz, packed or unpacked) into FashionMNIST/raw/ in the data folder."
)

FASHION_MNIST = register(DatasetSpec(
    name="fashion-mnist", title="Fashion-MNIST", classes=FASHION_MNIST_CLASSES,
    shape=(1, 28, 28), find=_find_fashion_mnist, read=_read_fashion_mnist,
    download=_download_fashion_mnist, download_bytes=30_878_645,
    source_line="Han Xiao, Kashif Rasul, Roland Vollgraf, Fashion-MNIST (Zalando Research, "
                "2017), MIT licence; https://github.com/zalandoresearch/fashion-mnist",
    offline_help=FASHION_MNIST_HELP,
    about="Small grey photos of ten kinds of clothes, shoes and bags, from Zalando's shop."))


# --- MNIST ------------------------------------------------------------------------------------

MNIST_CLASSES = tuple("0123456789")


def _find_mnist(root: Path) -> Source | None:
    return find_idx("mnist-idx", (Path(root) / "MNIST" / "raw",))


def _read_mnist(source: Source, counted: Counted) -> dict:
    return read_idx(source, counted, MNIST_CLASSES)


def _download_mnist(root: Path, progress: Progress) -> Source:
    def fetch(where: str) -> None:
        from torchvision.datasets import MNIST

        MNIST(root=where, train=True, download=True)  # fetches all four files

    return download_with_torchvision(root, "mnist", "MNIST", fetch, _find_mnist, MNIST_HELP,
                                     progress)


MNIST_HELP = (
    "To work offline, put the four official files (train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, packed "
    "or unpacked) into MNIST/raw/ in the data folder (where torchvision's download puts them)."
)

MNIST = register(DatasetSpec(
    name="mnist", title="MNIST", classes=MNIST_CLASSES, shape=(1, 28, 28),
    find=_find_mnist, read=_read_mnist, download=_download_mnist, download_bytes=11_594_722,
    source_line="Yann LeCun, Corinna Cortes, Christopher J.C. Burges, The MNIST database of "
                "handwritten digits, CC BY-SA 3.0 licence; http://yann.lecun.com/exdb/mnist/",
    offline_help=MNIST_HELP,
    about="Small grey pictures of handwritten digits, 0 to 9."))


# --- CIFAR-100 --------------------------------------------------------------------------------

def _download_cifar100(root: Path, progress: Progress) -> Source:
    def fetch(where: str) -> None:
        from torchvision.datasets import CIFAR100

        CIFAR100(root=where, train=True, download=True)  # fetches and unpacks both splits

    return download_with_torchvision(root, "cifar100", "CIFAR-100", fetch, find_cifar100,
                                     CIFAR100_HELP, progress)


CIFAR100_HELP = (
    f"To work offline, put the official '{CIFAR100_ARCHIVE}' or its unpacked '{CIFAR100_DIR}/' "
    "folder (train, test and meta) into the data folder."
)

CIFAR100 = register(DatasetSpec(
    name="cifar100", title="CIFAR-100", classes=CIFAR100_CLASSES, shape=(3, 32, 32),
    find=find_cifar100, read=read_cifar100, download=_download_cifar100, download_bytes=169_001_437,
    source_line="Alex Krizhevsky, Learning Multiple Layers of Features from Tiny Images (2009), "
                "no licence stated (cite the report); https://www.cs.toronto.edu/~kriz/cifar.html",
    offline_help=CIFAR100_HELP,
    about="Small colour photos of a hundred kinds of things: animals, plants, vehicles, "
          "furniture, people and places."))


# --- SVHN -------------------------------------------------------------------------------------

def _download_svhn(root: Path, progress: Progress) -> Source:
    loadmat()  # before 250 MB come down: torchvision reads them with scipy too

    def fetch(where: str) -> None:
        from torchvision.datasets import SVHN

        for split in ("train", "test"):
            SVHN(root=where, split=split, download=True)

    return download_with_torchvision(root, "svhn", "SVHN", fetch, find_svhn, SVHN_HELP, progress)


SVHN_HELP = (
    f"To work offline, put the official '{SVHN_FILES['train']}' and '{SVHN_FILES['test']}' "
    "into the data folder itself."
)

SVHN = register(DatasetSpec(
    name="svhn", title="SVHN", classes=SVHN_CLASSES, shape=(3, 32, 32),
    find=find_svhn, read=read_svhn, download=_download_svhn, download_bytes=246_316_178,
    source_line="Yuval Netzer et al., Reading Digits in Natural Images with Unsupervised Feature "
                "Learning (2011), for non-commercial use only; "
                "http://ufldl.stanford.edu/housenumbers/",
    offline_help=SVHN_HELP,
    about="Small colour photos of house numbers from Google Street View, the digit in the "
          "middle to be named."))


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

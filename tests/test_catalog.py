"""cifar_core.data.catalog: the built-in data sets besides CIFAR-10, each read from small files
written here in its official format, found where its offline copies sit, and downloaded by
torchvision when there is none."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from cifar_core.data import catalog
from cifar_core.data.idx import IDX_FILES
from cifar_core.data.load import load_data
from cifar_core.data.registry import dataset_spec
from cifar_core.errors import CorruptDataError, DataNotFoundError

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file of unsigned bytes, as MNIST's official files are written: two zero bytes,
    the type 0x08, the number of dimensions, each dimension as a big-endian 32-bit number."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d)
                                                        for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_files(folder: Path, train_n: int = 30, test_n: int = 12, side: int = 28,
                    packed: str = "gz", seed: int = 0) -> dict[str, np.ndarray]:
    """The four official files in `folder` (packed: 'gz', 'plain' or 'mixed'); the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (train_n, side, side), dtype=np.uint8),
        "train_labels": (np.arange(train_n) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (test_n, side, side), dtype=np.uint8),
        "test_labels": rng.permutation(np.arange(test_n) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for i, ((split, what), name) in enumerate(IDX_FILES.items()):
        raw = idx_bytes(arrays[f"{split}_{what}"])
        if packed == "gz" or (packed == "mixed" and i % 2):
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


@pytest.fixture
def no_system_copy(tmp_path, monkeypatch):
    """Debian's folder, pointed at one that does not exist (this machine may have the package)."""
    monkeypatch.setattr(catalog, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-copy")


# --- Fashion-MNIST --------------------------------------------------------------------------

@pytest.mark.parametrize("packed", ["gz", "plain", "mixed"])
def test_fashion_mnist_is_read_from_torchvisions_raw_folder(tmp_path, no_system_copy, packed):
    root = tmp_path / "data"
    arrays = write_idx_files(root / "FashionMNIST" / "raw", packed=packed)

    data = load_data("fashion-mnist", root, download=False)

    assert data.dataset == "fashion-mnist" and data.title == "Fashion-MNIST"
    assert data.classes == FASHION_CLASSES and data.shape == (1, 28, 28)
    assert np.array_equal(data.train_images.numpy()[:, 0], arrays["train_images"])
    assert np.array_equal(data.test_images.numpy()[:, 0], arrays["test_images"])
    assert data.train_labels.tolist() == arrays["train_labels"].tolist()
    assert data.test_labels.tolist() == arrays["test_labels"].tolist()
    assert str(root / "FashionMNIST" / "raw") in data.source


def test_our_idx_reader_and_torchvisions_agree_on_the_same_file(tmp_path, no_system_copy):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    root = tmp_path / "data"
    raw = root / "FashionMNIST" / "raw"
    write_idx_files(raw, packed="plain", seed=3)

    data = load_data("fashion-mnist", root, download=False)

    assert np.array_equal(data.train_images[:, 0].numpy(),
                          read_image_file(str(raw / "train-images-idx3-ubyte")).numpy())
    assert np.array_equal(data.test_labels.numpy(),
                          read_label_file(str(raw / "t10k-labels-idx1-ubyte")).numpy())


def test_debians_folder_is_used_when_the_data_folder_has_none(tmp_path, monkeypatch):
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    arrays = write_idx_files(system, packed="gz")
    monkeypatch.setattr(catalog, "FASHION_MNIST_SYSTEM_DIR", system)

    data = load_data("fashion-mnist", tmp_path / "data", download=False)

    assert str(system) in data.source
    assert np.array_equal(data.test_images.numpy()[:, 0], arrays["test_images"])


def test_the_data_folders_copy_comes_before_debians(tmp_path, monkeypatch):
    system = tmp_path / "system"
    write_idx_files(system, seed=1)
    monkeypatch.setattr(catalog, "FASHION_MNIST_SYSTEM_DIR", system)
    root = tmp_path / "data"
    mine = write_idx_files(root / "FashionMNIST" / "raw", seed=2)

    data = load_data("fashion-mnist", root, download=False)

    assert np.array_equal(data.train_images.numpy()[:, 0], mine["train_images"])


def test_no_fashion_mnist_offline_says_how_to_get_it(tmp_path, no_system_copy):
    with pytest.raises(DataNotFoundError) as err:
        load_data("fashion-mnist", tmp_path / "data", download=False)
    message = str(err.value)
    assert "No Fashion-MNIST data" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "FashionMNIST/raw" in message


def test_a_truncated_idx_file_is_named_and_nothing_is_cached(tmp_path, no_system_copy):
    root = tmp_path / "data"
    raw = root / "FashionMNIST" / "raw"
    write_idx_files(raw, packed="plain")
    broken = raw / "t10k-images-idx3-ubyte"
    broken.write_bytes(broken.read_bytes()[:-100])

    with pytest.raises(CorruptDataError, match="t10k-images-idx3-ubyte.*truncated"):
        load_data("fashion-mnist", root, download=False)
    assert not list(root.rglob("*.pt"))


def test_a_damaged_gz_file_is_named(tmp_path, no_system_copy):
    root = tmp_path / "data"
    raw = root / "FashionMNIST" / "raw"
    write_idx_files(raw, packed="gz")
    broken = raw / "train-labels-idx1-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:20])

    with pytest.raises(CorruptDataError, match="train-labels-idx1-ubyte.gz"):
        load_data("fashion-mnist", root, download=False)


def test_images_and_labels_of_different_counts_are_refused(tmp_path, no_system_copy):
    root = tmp_path / "data"
    raw = root / "FashionMNIST" / "raw"
    write_idx_files(raw, packed="plain", train_n=30)
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(29, dtype=np.uint8)))

    with pytest.raises(CorruptDataError, match="30 images but 29 labels"):
        load_data("fashion-mnist", root, download=False)


def test_with_no_offline_copy_torchvision_downloads_fashion_mnist(tmp_path, no_system_copy,
                                                                  monkeypatch):
    import torchvision.datasets

    asked = []

    class FakeFashionMNIST:  # what torchvision's download leaves: FashionMNIST/raw/
        def __init__(self, root, train=True, download=False):
            asked.append((root, download))
            write_idx_files(Path(root) / "FashionMNIST" / "raw", packed="plain", seed=5)

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    root = tmp_path / "data"

    data = load_data("fashion-mnist", root)

    assert asked == [(str(root), True)]
    assert len(data.train_labels) == 30 and data.classes == FASHION_CLASSES


def test_a_failed_fashion_mnist_download_says_why_and_how_to_work_offline(
        tmp_path, no_system_copy, monkeypatch):
    import urllib.error

    import torchvision.datasets

    def unreachable(root, train=True, download=False):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", unreachable)
    with pytest.raises(DataNotFoundError) as err:
        load_data("fashion-mnist", tmp_path / "data")
    message = str(err.value)
    assert "Fashion-MNIST server could not be reached (Network is unreachable)" in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_fashion_mnist_says_where_it_comes_from():
    spec = dataset_spec("fashion-mnist")
    assert "MIT" in spec.source_line and "zalandoresearch" in spec.source_line
    assert spec.describe_shape() == "28 × 28 grey"


@pytest.mark.realdata
@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="no Debian dataset-fashion-mnist in /usr/share/datasets/fashion-mnist")
def test_debians_real_fashion_mnist_loads_60000_and_10000_grey_pictures(tmp_path):
    data = load_data("fashion-mnist", tmp_path / "data", download=False)

    assert len(data.train_labels) == 60_000 and len(data.test_labels) == 10_000
    assert data.shape == (1, 28, 28) and data.classes == FASHION_CLASSES
    assert np.bincount(data.test_labels.numpy()).tolist() == [1000] * 10
    assert "/usr/share/datasets/fashion-mnist" in data.source

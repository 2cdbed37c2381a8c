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
from cifar_core.errors import CorruptDataError, DataError, DataNotFoundError

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


# --- MNIST ----------------------------------------------------------------------------------

def test_mnist_is_read_from_torchvisions_raw_folder_with_digits_as_classes(tmp_path):
    root = tmp_path / "data"
    arrays = write_idx_files(root / "MNIST" / "raw", packed="mixed", seed=7)

    data = load_data("mnist", root, download=False)

    assert data.dataset == "mnist" and data.title == "MNIST"
    assert data.classes == tuple("0123456789") and data.shape == (1, 28, 28)
    assert np.array_equal(data.train_images.numpy()[:, 0], arrays["train_images"])
    assert data.test_labels.tolist() == arrays["test_labels"].tolist()


def test_mnist_does_not_take_fashion_mnists_files_nor_the_other_way_round(tmp_path,
                                                                         no_system_copy):
    root = tmp_path / "data"
    write_idx_files(root / "FashionMNIST" / "raw")
    with pytest.raises(DataNotFoundError, match="No MNIST data"):
        load_data("mnist", root, download=False)
    write_idx_files(root / "MNIST" / "raw", seed=4)
    fashion = load_data("fashion-mnist", root, download=False)
    assert "FashionMNIST" in fashion.source


def test_with_no_offline_copy_torchvision_downloads_mnist(tmp_path, monkeypatch):
    import torchvision.datasets

    asked = []

    class FakeMNIST:
        def __init__(self, root, train=True, download=False):
            asked.append((root, download))
            write_idx_files(Path(root) / "MNIST" / "raw", packed="gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    data = load_data("mnist", tmp_path / "data")
    assert asked == [(str(tmp_path / "data"), True)] and len(data.test_labels) == 12


# --- CIFAR-100 ------------------------------------------------------------------------------

def write_cifar100(root: Path, train_n: int = 60, test_n: int = 20, seed: int = 0,
                   names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """root/cifar-100-python/{train,test,meta} as the official python version pickles them
    (protocol 2; images as (N, 3072) rows; fine and coarse labels); the arrays written."""
    import pickle

    names = names or dataset_spec("cifar100").classes
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", train_n), ("test", test_n)):
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        fine = rng.integers(0, len(names), n)
        entry = {"filenames": [f"{split}_{i}.png" for i in range(n)],
                 "batch_label": f"{split}ing batch 1 of 1",
                 "fine_labels": [int(x) for x in fine],
                 "coarse_labels": [int(x) % 20 for x in fine + 1],  # never equal to fine
                 "data": images.reshape(n, 3072)}
        (folder / split).write_bytes(pickle.dumps(entry, protocol=2))
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, fine
    (folder / "meta").write_bytes(pickle.dumps(
        {"fine_label_names": list(names), "coarse_label_names": [f"group{i}" for i in range(20)]},
        protocol=2))
    return arrays


def test_cifar100_is_read_from_the_official_python_version_with_its_fine_labels(tmp_path):
    root = tmp_path / "data"
    arrays = write_cifar100(root)

    data = load_data("cifar100", root, download=False)

    assert data.dataset == "cifar100" and data.title == "CIFAR-100"
    assert len(data.classes) == 100 and data.shape == (3, 32, 32)
    assert data.classes[:3] == ("apple", "aquarium_fish", "baby")
    assert np.array_equal(data.train_images.numpy(), arrays["train_images"])
    assert data.train_labels.tolist() == arrays["train_labels"].tolist()
    assert data.test_labels.tolist() == arrays["test_labels"].tolist()


def test_cifar100_takes_its_class_names_from_meta(tmp_path):
    names = tuple(f"thing{i}" for i in range(100))
    write_cifar100(tmp_path / "data", names=names)
    assert load_data("cifar100", tmp_path / "data", download=False).classes == names


def test_cifar100_is_also_read_from_its_official_archive(tmp_path):
    from conftest import make_tar

    written = tmp_path / "written"
    arrays = write_cifar100(written)
    root = tmp_path / "data"
    make_tar(root / "cifar-100-python.tar.gz", written, ["cifar-100-python"])

    data = load_data("cifar100", root, download=False)

    assert np.array_equal(data.test_images.numpy(), arrays["test_images"])
    assert "archive" in data.source


def test_a_cifar100_file_that_asks_to_run_code_is_refused_and_named(tmp_path):
    import os
    import pickle

    root = tmp_path / "data"
    write_cifar100(root)

    class Hostile:
        def __reduce__(self):
            return (os.system, ("echo ran",))

    (root / "cifar-100-python" / "test").write_bytes(pickle.dumps({"data": Hostile()}))
    with pytest.raises(CorruptDataError, match="CIFAR-100 file.*'test'.*refused"):
        load_data("cifar100", root, download=False)


def test_a_cifar100_file_missing_is_named(tmp_path):
    root = tmp_path / "data"
    write_cifar100(root)
    (root / "cifar-100-python" / "test").unlink()
    with pytest.raises(DataNotFoundError, match="No CIFAR-100 data"):
        load_data("cifar100", root, download=False)


def test_with_no_offline_copy_torchvision_downloads_cifar100(tmp_path, monkeypatch):
    import torchvision.datasets

    asked = []

    class FakeCIFAR100:
        def __init__(self, root, train=True, download=False):
            asked.append((root, download))
            write_cifar100(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", FakeCIFAR100)
    data = load_data("cifar100", tmp_path / "data")
    assert asked == [(str(tmp_path / "data"), True)] and len(data.train_labels) == 60


# --- SVHN -----------------------------------------------------------------------------------

def write_svhn(root: Path, train_n: int = 40, test_n: int = 15, seed: int = 0
               ) -> dict[str, np.ndarray]:
    """root/train_32x32.mat and root/test_32x32.mat as the official files are: X is
    (32, 32, 3, N) uint8, y is (N, 1) with 1..10, 10 meaning the digit 0. The arrays as
    torchvision reads them: images (N, 3, 32, 32), labels 0..9."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", train_n), ("test", test_n)):
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        digits = np.arange(n) % 10
        savemat(root / f"{split}_32x32.mat",
                {"X": images.transpose(2, 3, 1, 0),  # (H, W, C, N)
                 "y": np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]})
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, digits
    return arrays


def test_svhn_is_read_from_its_mat_files_label_10_meaning_the_digit_0(tmp_path):
    pytest.importorskip("scipy")
    root = tmp_path / "data"
    arrays = write_svhn(root)

    data = load_data("svhn", root, download=False)

    assert data.dataset == "svhn" and data.classes == tuple("0123456789")
    assert data.shape == (3, 32, 32)
    assert np.array_equal(data.train_images.numpy(), arrays["train_images"])
    assert data.test_labels.tolist() == arrays["test_labels"].tolist()
    assert 0 in data.train_labels.tolist() and 10 not in data.train_labels.tolist()


def test_svhn_agrees_with_torchvisions_reader(tmp_path, monkeypatch):
    pytest.importorskip("scipy")
    from torchvision.datasets import SVHN

    root = tmp_path / "data"
    write_svhn(root, seed=2)
    # Their reading of the file, without their check of the official file's checksum.
    monkeypatch.setattr(SVHN, "_check_integrity", lambda self: True)
    theirs = SVHN(str(root), split="test")

    data = load_data("svhn", root, download=False)

    assert np.array_equal(data.test_images.numpy(), theirs.data)
    assert data.test_labels.tolist() == theirs.labels.tolist()


def test_a_cached_svhn_is_decoded_again_when_its_test_file_changes(tmp_path):
    pytest.importorskip("scipy")
    root = tmp_path / "data"
    write_svhn(root, seed=0)
    load_data("svhn", root, download=False)
    newer = write_svhn(tmp_path / "newer", seed=9)
    (root / "test_32x32.mat").write_bytes((tmp_path / "newer" / "test_32x32.mat").read_bytes())

    data = load_data("svhn", root, download=False)

    assert np.array_equal(data.test_images.numpy(), newer["test_images"])


def test_svhn_without_scipy_says_what_to_install(tmp_path, monkeypatch):
    pytest.importorskip("scipy")
    import sys

    root = tmp_path / "data"
    write_svhn(root)
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # as if scipy were not installed

    with pytest.raises(DataError, match="pip install scipy"):
        load_data("svhn", root, download=False)


def test_with_no_offline_copy_torchvision_downloads_both_svhn_files(tmp_path, monkeypatch):
    pytest.importorskip("scipy")
    import torchvision.datasets

    asked = []

    class FakeSVHN:
        def __init__(self, root, split="train", download=False):
            asked.append((root, split, download))
            if len(asked) == 2:
                write_svhn(Path(root))

    monkeypatch.setattr(torchvision.datasets, "SVHN", FakeSVHN)
    data = load_data("svhn", tmp_path / "data")
    root = str(tmp_path / "data")
    assert asked == [(root, "train", True), (root, "test", True)]
    assert len(data.train_labels) == 40


# --- every built-in data set ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["cifar10", "fashion-mnist", "mnist", "cifar100", "svhn"])
def test_every_built_in_data_set_says_where_it_comes_from_and_how_to_get_it_offline(name):
    spec = dataset_spec(name)
    assert "http" in spec.source_line
    assert spec.offline_help and spec.download is not None
    assert len(spec.classes) == {"cifar100": 100}.get(name, 10)


def test_cifar10_does_not_unpack_cifar100s_archive_looking_for_pictures(tmp_path, monkeypatch):
    # Looking into a .tar.gz streams it: CIFAR-100's 160 MB archive was read through on each
    # look for CIFAR-10 (the data page's status line) to learn it holds no CIFAR-10.
    from conftest import make_tar

    from cifar_core.data import sources

    written = tmp_path / "written"
    write_cifar100(written)
    root = tmp_path / "data"
    make_tar(root / "cifar-100-python.tar.gz", written, ["cifar-100-python"])
    opened = []
    monkeypatch.setattr(sources, "_archive_layout", lambda path: opened.append(path))

    assert sources.find_source(root) is None
    assert opened == []

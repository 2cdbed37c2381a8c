"""cifar_core.data.sources: finding CIFAR-10 in the data folder and decoding each of its layouts."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PALETTE, expected_arrays, make_tar, write_batch
from PIL import Image

from cifar_core.data import sources
from cifar_core.data.dataset import (
    BATCH_DIR,
    DOWNLOAD_MARKER,
    OFFICIAL_ARCHIVE,
    OFFICIAL_CLASSES,
    TEST_BATCH,
    TRAIN_BATCHES,
)
from cifar_core.data.load import load_cifar10
from cifar_core.data.sources import find_source
from cifar_core.errors import CorruptDataError, ImageFolderError

# --- the official python layout -----------------------------------------------------------

def test_batches_folder_decodes_to_the_written_images_and_labels(make_cifar_batches):
    root = make_cifar_batches(train_per_batch=20, test_size=50)
    want = expected_arrays(root)

    cifar = load_cifar10(root, download=False)

    assert cifar.train_images.shape == (100, 3, 32, 32)
    assert cifar.train_images.dtype == torch.uint8
    assert cifar.train_labels.dtype == torch.int64
    assert cifar.test_images.shape == (50, 3, 32, 32)
    assert np.array_equal(cifar.train_images.numpy(), want["train_x"])
    assert np.array_equal(cifar.train_labels.numpy(), want["train_y"])
    assert np.array_equal(cifar.test_images.numpy(), want["test_x"])
    assert np.array_equal(cifar.test_labels.numpy(), want["test_y"])
    assert cifar.classes == OFFICIAL_CLASSES
    assert "python batches" in cifar.source and BATCH_DIR in cifar.source


def test_class_names_come_from_batches_meta(make_cifar_batches):
    names = tuple(f"kind{i}" for i in range(10))
    cifar = load_cifar10(make_cifar_batches(classes=names), download=False)
    assert cifar.classes == names


def test_missing_or_unreadable_batches_meta_falls_back_to_official_names(make_cifar_batches):
    names = tuple(f"kind{i}" for i in range(10))
    root = make_cifar_batches(classes=names)
    (root / BATCH_DIR / "batches.meta").write_bytes(b"not a pickle")
    cifar = load_cifar10(root, download=False)
    assert cifar.classes == OFFICIAL_CLASSES
    assert any("batches.meta" in w for w in cifar.warnings)

    (root / BATCH_DIR / "batches.meta").unlink()
    assert load_cifar10(root, download=False).classes == OFFICIAL_CLASSES


def test_non_official_batches_warn_that_checksums_differ(make_cifar_batches):
    cifar = load_cifar10(make_cifar_batches(), download=False)
    [warning] = [w for w in cifar.warnings if "checksum" in w]
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        assert name in warning


def test_batches_with_the_official_checksums_do_not_warn(make_cifar_batches, monkeypatch):
    root = make_cifar_batches()
    md5s = {n: hashlib.md5((root / BATCH_DIR / n).read_bytes()).hexdigest()
            for n in (*TRAIN_BATCHES, TEST_BATCH)}
    monkeypatch.setattr(sources, "_official_md5s", lambda: md5s)
    assert load_cifar10(root, download=False).warnings == ()


@pytest.mark.parametrize("missing", ["data_batch_3", "test_batch"])
def test_a_missing_batch_file_is_named(make_cifar_batches, missing):
    root = make_cifar_batches()
    (root / BATCH_DIR / missing).unlink()
    with pytest.raises(CorruptDataError) as err:
        load_cifar10(root, download=False)
    assert f"'{missing}' is missing" in str(err.value)


def test_a_truncated_batch_file_is_named(make_cifar_batches):
    root = make_cifar_batches()
    path = root / BATCH_DIR / "data_batch_2"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptDataError) as err:
        load_cifar10(root, download=False)
    assert "data_batch_2" in str(err.value)
    assert "truncated" in str(err.value)


def test_a_batch_whose_labels_and_images_differ_in_number_is_refused(make_cifar_batches):
    root = make_cifar_batches()
    images = np.zeros((5, 3, 32, 32), np.uint8)
    write_batch(root / BATCH_DIR / "data_batch_4", images, np.zeros(4, np.int64), "bad")
    with pytest.raises(CorruptDataError, match="data_batch_4"):
        load_cifar10(root, download=False)


# --- archives -----------------------------------------------------------------------------

def test_official_archive_decodes_like_the_unpacked_folder(make_cifar_batches, tmp_path):
    unpacked = make_cifar_batches()
    root = tmp_path / "archive-only"
    make_tar(root / OFFICIAL_ARCHIVE, unpacked, [BATCH_DIR])
    assert not (root / BATCH_DIR).exists()

    from_archive = load_cifar10(root, download=False)
    from_folder = load_cifar10(unpacked, download=False)

    assert "python archive" in from_archive.source and OFFICIAL_ARCHIVE in from_archive.source
    assert torch.equal(from_archive.train_images, from_folder.train_images)
    assert torch.equal(from_archive.train_labels, from_folder.train_labels)
    assert torch.equal(from_archive.test_images, from_folder.test_images)
    assert torch.equal(from_archive.test_labels, from_folder.test_labels)
    assert from_archive.classes == from_folder.classes


def test_batches_in_an_archive_with_another_name_are_found(make_cifar_batches, tmp_path):
    unpacked = make_cifar_batches()
    root = tmp_path / "renamed"
    make_tar(root / "my-cifar-copy.tgz", unpacked, [BATCH_DIR])
    cifar = load_cifar10(root, download=False)
    assert "python archive" in cifar.source and "my-cifar-copy.tgz" in cifar.source
    assert np.array_equal(cifar.test_labels.numpy(), expected_arrays(unpacked)["test_y"])


def test_image_folders_in_an_archive_are_found(make_image_folders, tmp_path):
    tree = make_image_folders(classes=("cat", "dog", "frog"), train_per_class=4,
                              test_per_class=2)
    root = tmp_path / "folder-archive"
    make_tar(root / "cifar10-png.tar.gz", tree, ["train", "test"])

    from_archive = load_cifar10(root, download=False)
    from_tree = load_cifar10(tree, download=False)

    assert "archive of image folders" in from_archive.source
    assert from_archive.classes == ("cat", "dog", "frog")
    assert torch.equal(from_archive.train_images, from_tree.train_images)
    assert torch.equal(from_archive.test_labels, from_tree.test_labels)


def test_a_truncated_official_archive_is_named(make_cifar_batches, tmp_path):
    unpacked = make_cifar_batches()
    root = tmp_path / "truncated"
    archive = make_tar(root / OFFICIAL_ARCHIVE, unpacked, [BATCH_DIR])
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(CorruptDataError) as err:
        load_cifar10(root, download=False)
    assert OFFICIAL_ARCHIVE in str(err.value)
    assert "truncated" in str(err.value)


def test_an_archive_of_something_else_is_not_a_source(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    make_tar(tmp_path / "data" / "notes.tar.gz", tmp_path, ["notes"])
    assert find_source(tmp_path / "data") is None


def test_archive_layout_sniffs_only_tar_files(tmp_path):
    path = tmp_path / "fake.tar.gz"
    path.write_bytes(b"not a tar")
    assert sources._archive_layout(path) is None
    with tarfile.open(tmp_path / "ok.tar.gz", "w:gz"):
        pass
    assert sources._archive_layout(tmp_path / "ok.tar.gz") is None


def test_sources_are_preferred_in_the_documented_order(make_cifar_batches, make_image_folders,
                                                       tmp_path):
    root = make_cifar_batches()
    make_tar(root / OFFICIAL_ARCHIVE, root, [BATCH_DIR])
    make_image_folders(root)
    assert find_source(root).kind == "batches-dir"

    other = tmp_path / "archive-and-folders"
    make_tar(other / OFFICIAL_ARCHIVE, root, [BATCH_DIR])
    make_image_folders(other)
    assert find_source(other).kind == "batches-archive"

    # A half-downloaded official archive is not a source while its download runs.
    (other / DOWNLOAD_MARKER).write_text("123")
    assert find_source(other).kind == "folder-dir"


# --- image folders ------------------------------------------------------------------------

def test_image_folders_decode_with_sorted_classes_and_exact_pixels(make_image_folders):
    root = make_image_folders(classes=("frog", "cat", "dog"), train_per_class=4,
                              test_per_class=2, odd_size=40)

    cifar = load_cifar10(root, download=False)

    assert cifar.classes == ("cat", "dog", "frog")
    assert cifar.train_images.shape == (12, 3, 32, 32)
    assert cifar.test_images.shape == (6, 3, 32, 32)
    assert cifar.class_counts() == {"train": [4, 4, 4], "test": [2, 2, 2]}
    assert "image folders" in cifar.source
    # PNG is lossless: a 32x32 file comes back pixel for pixel, with its folder's label.
    for index, path in ((0, root / "train" / "cat" / "0000.png"),
                        (9, root / "train" / "frog" / "0001.png")):
        pixels = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
        assert np.array_equal(cifar.train_images[index].numpy(), pixels)
    assert cifar.train_labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # Plain (N,3,32,32) layout, from the decoder and from the cache alike: a channels-last
    # tensor would send every convolution down another, slower path.
    assert cifar.train_images.is_contiguous() and cifar.test_images.is_contiguous()
    again = load_cifar10(root, download=False)
    assert again.train_images.is_contiguous() and again.test_images.is_contiguous()


def test_images_of_another_size_are_resized_to_32x32(make_image_folders):
    root = make_image_folders(classes=("a", "b"), train_per_class=2, test_per_class=1,
                              odd_size=40)
    assert Image.open(root / "train" / "a" / "0001.png").size == (40, 40)
    assert Image.open(root / "test" / "b" / "0000.png").size == (40, 40)

    cifar = load_cifar10(root, download=False)

    assert cifar.train_images.shape == (4, 3, 32, 32)
    # Resized, not cropped: the picture keeps its class colour ("a" is PALETTE[0]).
    resized = cifar.train_images[1].float().mean(dim=(1, 2)).numpy()
    assert np.allclose(resized, PALETTE[0], atol=8)
    assert np.allclose(cifar.test_images[1].float().mean(dim=(1, 2)).numpy(), PALETTE[1], atol=8)


def test_an_empty_image_folder_is_refused(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split / "cat").mkdir(parents=True)
    (tmp_path / "train" / "cat" / "readme.txt").write_text("no images here")
    with pytest.raises(ImageFolderError) as err:
        load_cifar10(tmp_path, download=False)
    assert "train/<class>" in str(err.value)


def test_unreadable_images_are_refused(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split / "cat").mkdir(parents=True)
        (tmp_path / split / "cat" / "0.png").write_bytes(b"this is not a png")
    with pytest.raises(ImageFolderError) as err:
        load_cifar10(tmp_path, download=False)
    assert "could be read" in str(err.value)


def test_a_few_unreadable_images_are_skipped_with_a_warning(make_image_folders):
    root = make_image_folders(classes=("cat", "dog"), train_per_class=3, test_per_class=2)
    (root / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG but truncated")
    cifar = load_cifar10(root, download=False)
    assert len(cifar.train_labels) == 6
    [warning] = cifar.warnings
    assert "Skipped 1 unreadable" in warning and "broken.png" in warning


def test_test_classes_missing_from_train_are_refused(make_image_folders):
    root = make_image_folders(classes=("cat", "dog"))
    bird = root / "test" / "bird"
    bird.mkdir()
    (root / "test" / "dog" / "0000.png").rename(bird / "0000.png")
    with pytest.raises(ImageFolderError, match="bird"):
        load_cifar10(root, download=False)


def test_decoding_the_python_version_does_not_wait_for_torchvision(make_cifar_batches):
    # Checking the checksums imported torchvision for its table of them: about 6 of the 8
    # seconds a first decode of the real data took on a busy machine, with the bar standing
    # still at its end. The table is ours now, and must stay torchvision's.
    import subprocess
    import sys

    root = make_cifar_batches()
    code = ("import sys; from pathlib import Path; from cifar_core.data.sources import "
            "decode_source, find_source; decode_source(find_source(Path(sys.argv[1]))); "
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False", out.stdout + out.stderr
    from torchvision.datasets import CIFAR10

    assert dict(CIFAR10.train_list + CIFAR10.test_list) == sources.OFFICIAL_MD5S

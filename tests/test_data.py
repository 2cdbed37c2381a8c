"""cifar_core.data: finding, decoding and caching CIFAR-10 in its official layouts."""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    PALETTE,
    expected_arrays,
    make_tar,
    write_batch,
    write_cifar_batches,
)
from PIL import Image

from cifar_core import data
from cifar_core.data import (
    BATCH_DIR,
    DOWNLOAD_MARKER,
    OFFICIAL_ARCHIVE,
    OFFICIAL_CLASSES,
    TEST_BATCH,
    TRAIN_BATCHES,
    cache_dir,
    default_data_dir,
    download_status,
    find_source,
    image_grid,
    is_cached,
    load_cifar10,
    normalize,
)
from cifar_core.errors import CorruptDataError, DataError, DataNotFoundError, ImageFolderError


@pytest.fixture
def count_decodes(monkeypatch):
    """Counts how often a source is really decoded (not read from the cache)."""
    calls = []
    real = data.decode_source

    def counting(source):
        calls.append(source)
        return real(source)

    monkeypatch.setattr(data, "decode_source", counting)
    return calls


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
    monkeypatch.setattr(data, "_official_md5s", lambda: md5s)
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


# --- no data, downloading -----------------------------------------------------------------

def test_no_data_without_download_explains_the_offline_layouts(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_cifar10(tmp_path / "empty", download=False)
    message = str(err.value)
    assert "No CIFAR-10 data" in message
    for layout in (OFFICIAL_ARCHIVE, BATCH_DIR, "train/<class>", ".tar.gz", "CIFAR_DATA_DIR"):
        assert layout in message


def test_a_data_folder_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "data"
    path.write_text("oops")
    with pytest.raises(DataNotFoundError, match="is a file"):
        load_cifar10(path, download=False)


def test_download_uses_torchvision_like_the_tutorial(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeCIFAR10:
        train_list = torchvision.datasets.CIFAR10.train_list  # the official md5 sums
        test_list = torchvision.datasets.CIFAR10.test_list

        def __init__(self, root, train, download):
            calls.append((root, train, download))
            assert (Path(root) / DOWNLOAD_MARKER).exists()  # visible to download_status
            write_cifar_batches(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    messages = []
    root = tmp_path / "fresh"

    cifar = load_cifar10(root, progress=messages.append)

    assert calls == [(str(root), True, True)]
    assert len(cifar.train_labels) == 100
    assert any("Downloading" in m for m in messages)
    assert not (root / DOWNLOAD_MARKER).exists()


def test_a_failed_download_removes_the_partial_archive_and_explains(tmp_path, monkeypatch):
    import torchvision.datasets

    class OfflineCIFAR10:
        train_list = torchvision.datasets.CIFAR10.train_list
        test_list = torchvision.datasets.CIFAR10.test_list

        def __init__(self, root, train, download):
            (Path(root) / OFFICIAL_ARCHIVE).write_bytes(b"\x1f\x8b" + b"0" * 1000)
            assert download_status(root) == pytest.approx(1002 / data.OFFICIAL_ARCHIVE_BYTES)
            raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", OfflineCIFAR10)
    root = tmp_path / "offline"
    with pytest.raises(DataNotFoundError) as err:
        load_cifar10(root)
    assert "download failed" in str(err.value)
    assert "Name or service not known" in str(err.value)
    assert "To work offline" in str(err.value)
    assert not (root / OFFICIAL_ARCHIVE).exists()
    assert download_status(root) is None


def test_default_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR_DATA_DIR", str(tmp_path / "elsewhere"))
    assert default_data_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("CIFAR_DATA_DIR")
    assert default_data_dir() == Path("./data")


# --- the cache ----------------------------------------------------------------------------

def test_second_load_reads_the_cache_without_decoding(make_cifar_batches, count_decodes):
    root = make_cifar_batches()
    assert not is_cached(root)

    first = load_cifar10(root, download=False)
    assert len(count_decodes) == 1
    assert is_cached(root)
    second = load_cifar10(root, download=False)

    assert len(count_decodes) == 1
    assert torch.equal(first.train_images, second.train_images)
    assert torch.equal(first.test_labels, second.test_labels)
    assert first.classes == second.classes and first.warnings == second.warnings
    assert list(cache_dir(root).glob("cifar10-*.pt"))
    assert cache_dir(root) == root / ".cifar_core_cache"


def test_image_folder_cache_beside_the_images_stays_valid(make_image_folders, count_decodes):
    root = make_image_folders()
    load_cifar10(root, download=False)
    load_cifar10(root, download=False)
    assert len(count_decodes) == 1


def test_touching_a_source_file_invalidates_the_cache(make_cifar_batches, count_decodes):
    root = make_cifar_batches()
    load_cifar10(root, download=False)
    path = root / BATCH_DIR / "data_batch_3"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    assert not is_cached(root)
    load_cifar10(root, download=False)
    assert len(count_decodes) == 2
    assert len(list(cache_dir(root).glob("cifar10-*.pt"))) == 1  # the stale one is gone


def test_rewriting_a_batch_gives_the_new_contents(make_cifar_batches, count_decodes):
    root = make_cifar_batches(test_size=50)
    before = load_cifar10(root, download=False)
    images = np.full((30, 3, 32, 32), 7, np.uint8)
    labels = np.full(30, 3, np.int64)
    write_batch(root / BATCH_DIR / TEST_BATCH, images, labels, "new test batch")

    after = load_cifar10(root, download=False)

    assert len(count_decodes) == 2
    assert len(before.test_labels) == 50
    assert after.test_labels.tolist() == [3] * 30
    assert int(after.test_images.max()) == 7


def test_a_damaged_cache_is_decoded_again(make_cifar_batches, count_decodes):
    root = make_cifar_batches()
    first = load_cifar10(root, download=False)
    [cache] = cache_dir(root).glob("cifar10-*.pt")
    cache.write_bytes(b"garbage")
    again = load_cifar10(root, download=False)
    assert len(count_decodes) == 2
    assert torch.equal(first.train_images, again.train_images)


@pytest.fixture
def read_only():
    """Makes folders read-only (0o555) for one test, writable again afterwards."""
    folders = []

    def make(folder: Path) -> Path:
        folders.append(folder)
        folder.chmod(0o555)
        return folder

    yield make
    for folder in folders:
        folder.chmod(0o755)


def test_a_read_only_data_folder_still_loads_and_caches_elsewhere(
        make_cifar_batches, read_only, tmp_path, count_decodes):
    root = make_cifar_batches()
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    read_only(root)
    # Even as root, who could write there anyway: the owner's 0o555 is respected.

    first = load_cifar10(root, download=False)
    second = load_cifar10(root, download=False)

    assert len(count_decodes) == 1
    assert torch.equal(first.train_images, second.train_images)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert cache_dir(root).is_relative_to(tmp_path / "xdg-cache" / "cifar_core")
    assert list(cache_dir(root).glob("cifar10-*.pt"))


def test_an_unwritable_cache_only_costs_time(make_cifar_batches, read_only, tmp_path,
                                             monkeypatch, count_decodes):
    root = make_cifar_batches()
    read_only(root)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("the cache cannot go under a file")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))

    first = load_cifar10(root, download=False)
    second = load_cifar10(root, download=False)

    assert len(count_decodes) == 2
    assert torch.equal(first.test_images, second.test_images)


# --- using the data -----------------------------------------------------------------------

def test_normalize_equals_the_tutorials_transform_exactly():
    import torchvision.transforms as T

    rng = np.random.default_rng(1)
    picture = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    tutorial = T.Compose([T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])

    images = torch.from_numpy(np.asarray(picture).transpose(2, 0, 1).copy())[None]
    ours = normalize(images)
    buffer = torch.full((1, 3, 32, 32), 7.0)
    into_buffer = normalize(images, out=buffer)

    assert ours.dtype == torch.float32
    assert torch.equal(ours[0], tutorial(picture))
    assert ours.min() >= -1 and ours.max() <= 1
    assert into_buffer.data_ptr() == buffer.data_ptr() and torch.equal(buffer, ours)


def test_random_batch_is_fixed_by_its_seed(tiny_data):
    a = tiny_data.random_batch("test", 8, seed=3)
    b = tiny_data.random_batch("test", 8, seed=3)
    c = tiny_data.random_batch("test", 8, seed=4)

    assert torch.equal(a.indices, b.indices) and torch.equal(a.images, b.images)
    assert not torch.equal(a.indices, c.indices)
    assert len(a.indices) == 8 and len(set(a.indices.tolist())) == 8
    assert torch.equal(a.images, tiny_data.test_images[a.indices])
    assert torch.equal(a.labels, tiny_data.test_labels[a.indices])
    assert a.label_names == [tiny_data.classes[i] for i in a.labels.tolist()]


def test_random_batch_class_filter_returns_only_those_classes(tiny_data):
    batch = tiny_data.random_batch("train", 50, seed=0, classes=["cat", 8])
    assert set(batch.label_names) == {"cat", "ship"}
    # Asking for more than there are gives every image of those classes.
    counts = tiny_data.class_counts()["train"]
    assert len(batch.indices) == counts[3] + counts[8]


def test_random_batch_refuses_unknown_classes_and_splits(tiny_data):
    with pytest.raises(DataError, match="Unknown class 'unicorn'"):
        tiny_data.random_batch("test", 4, classes=["unicorn"])
    with pytest.raises(DataError, match="Unknown split"):
        tiny_data.random_batch("validation", 4)


def test_image_grid_is_hwc_uint8_laid_out_like_make_grid(tiny_data):
    from torchvision.utils import make_grid

    images = tiny_data.test_images[:10]
    grid = image_grid(images, nrow=4, padding=2)

    reference = make_grid(images, nrow=4, padding=2, pad_value=255)
    assert grid.dtype == np.uint8
    assert grid.shape == (reference.shape[1], reference.shape[2], 3)
    assert grid.shape == (3 * 34 + 2, 4 * 34 + 2, 3)  # 3 rows of 4, 2-pixel borders
    assert np.array_equal(grid[2:34, 2:34], images[0].permute(1, 2, 0).numpy())
    assert np.array_equal(grid[36:68, 2:34], images[4].permute(1, 2, 0).numpy())
    assert (grid[:2] == 255).all() and (grid[:, :2] == 255).all()


def test_class_counts_match_the_labels(tiny_data):
    counts = tiny_data.class_counts()
    assert sum(counts["train"]) == len(tiny_data.train_labels)
    assert counts["test"] == [int((tiny_data.test_labels == c).sum()) for c in range(10)]


def test_archive_layout_sniffs_only_tar_files(tmp_path):
    path = tmp_path / "fake.tar.gz"
    path.write_bytes(b"not a tar")
    assert data._archive_layout(path) is None
    with tarfile.open(tmp_path / "ok.tar.gz", "w:gz"):
        pass
    assert data._archive_layout(tmp_path / "ok.tar.gz") is None


def test_class_counts_table_has_a_row_per_class_and_split(tiny_data):
    table = tiny_data.class_counts_table()
    assert len(table) == 2 * len(tiny_data.classes)
    train = table[table["split"] == "train"]
    assert train["images"].tolist() == tiny_data.class_counts()["train"]
    assert train["class"].tolist() == list(tiny_data.classes)
    assert table["images"].sum() == len(tiny_data.train_labels) + len(tiny_data.test_labels)

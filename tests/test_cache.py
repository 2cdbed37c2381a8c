"""cifar_core.data.cache: each data folder decoded once, decoded again when its source changes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_batch

from cifar_core.data import catalog
from cifar_core.data.cache import cache_dir
from cifar_core.data.dataset import BATCH_DIR, TEST_BATCH
from cifar_core.data.download import is_cached
from cifar_core.data.load import load_cifar10


@pytest.fixture
def count_decodes(monkeypatch):
    """Counts how often a source is really decoded (not read from the cache)."""
    calls = []
    real = catalog.decode_source

    def counting(source, *args):
        calls.append(source)
        return real(source, *args)

    monkeypatch.setattr(catalog, "decode_source", counting)
    return calls


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

"""cifar_core.data.dataset: the decoded data set, its batches and the tutorial's normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_core.data.dataset import default_data_dir, normalize
from cifar_core.errors import DataError


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


def test_class_counts_match_the_labels(tiny_data):
    counts = tiny_data.class_counts()
    assert sum(counts["train"]) == len(tiny_data.train_labels)
    assert counts["test"] == [int((tiny_data.test_labels == c).sum()) for c in range(10)]


def test_class_counts_table_has_a_row_per_class_and_split(tiny_data):
    table = tiny_data.class_counts_table()
    assert len(table) == 2 * len(tiny_data.classes)
    train = table[table["split"] == "train"]
    assert train["images"].tolist() == tiny_data.class_counts()["train"]
    assert train["class"].tolist() == list(tiny_data.classes)
    assert table["images"].sum() == len(tiny_data.train_labels) + len(tiny_data.test_labels)


def test_default_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR_DATA_DIR", str(tmp_path / "elsewhere"))
    assert default_data_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("CIFAR_DATA_DIR")
    assert default_data_dir() == Path("./data")

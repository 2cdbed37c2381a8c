"""The data-set seam (issue 24): a data set nobody here has heard of, in a format of its own,
registered with one DatasetSpec and nothing else, goes from load_data through training, the
checkpoint, the evaluation, Try it's prediction and the Runs table."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import NOISE, PALETTE
from PIL import Image

from cifar_core.data.load import load_data
from cifar_core.data.registry import DatasetSpec, register, unregister
from cifar_core.data.sources import Source
from cifar_core.explain.attribution import class_probabilities
from cifar_core.explain.photos import network_inputs, read_photo
from cifar_core.runs.pipeline import execute_run
from cifar_core.runs.store import RunStore
from cifar_core.runs.views import run_classes, runs_table
from cifar_core.training.checkpoint import load_checkpoint
from cifar_core.training.config import TrainConfig
from cifar_core.training.evaluation import evaluate

SHAPE = (3, 16, 16)
CLASSES = ("ruby", "jade", "sapphire")
FILE = "gems.npz"


def write_gems(root, train_per_class: int = 40, test_per_class: int = 10) -> None:
    """The made-up format: one .npz of uint8 pictures (N, 3, 16, 16), each its class's colour
    plus noise, and int labels."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = np.repeat(np.arange(len(CLASSES)), per_class)
        colours = np.asarray(PALETTE[: len(CLASSES)], dtype=np.float64)[labels]
        pixels = colours[:, :, None, None] + rng.normal(0, NOISE, (len(labels), *SHAPE))
        arrays[f"{split}_images"] = pixels.clip(0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels.astype(np.int64)
    np.savez(root / FILE, **arrays)


def find_gems(root) -> Source | None:
    return Source("gems-npz", root / FILE) if (root / FILE).is_file() else None


def read_gems(source: Source, counted) -> dict:
    with np.load(source.path) as saved:
        return {**{k: saved[k] for k in saved.files}, "classes": list(CLASSES), "warnings": []}


@pytest.fixture
def gems(tmp_path):
    spec = register(DatasetSpec(name="gems", title="Gems", classes=CLASSES, shape=SHAPE,
                                find=find_gems, read=read_gems))
    root = tmp_path / "data"
    root.mkdir()
    write_gems(root)
    yield spec, root
    unregister(spec.name)


def test_a_new_data_set_goes_from_loading_to_the_runs_table_through_its_spec_alone(
        gems, tmp_path):
    spec, root = gems
    data = load_data("gems", root, download=False)
    assert (data.dataset, data.title, data.classes, data.shape) == (
        "gems", "Gems", CLASSES, SHAPE)
    assert data.train_images.shape == (120, *SHAPE) and data.test_images.shape == (30, *SHAPE)

    # Training: a stored run on this data set, trained as a job process trains it.
    store = RunStore(tmp_path / "runs")
    config = TrainConfig(epochs=3, lr=0.01, batch_size=8, log_every=5, device="cpu", seed=3)
    run = store.create(config.to_dict(), str(root), "test", dataset="gems")
    finished = execute_run(store, run.id)
    assert finished.status == "completed", finished.message
    assert (finished.dataset, run_classes(finished)) == ("gems", CLASSES)

    # The checkpoint says what it was trained on, and its network takes these pictures.
    checkpoint = load_checkpoint(finished.checkpoint)
    assert (checkpoint.dataset, checkpoint.classes, checkpoint.shape) == ("gems", CLASSES, SHAPE)
    assert checkpoint.normalization == {"mean": [0.5] * 3, "std": [0.5] * 3}
    assert checkpoint.fits(data)
    assert checkpoint.model.conv1.in_channels == 3 and checkpoint.model.fc3.out_features == 3

    # Evaluation: a 3 x 3 confusion matrix over the 30 test pictures, far above guessing.
    evaluation = evaluate(checkpoint.model, data, **checkpoint.prediction_options())
    confusion = evaluation.confusion_matrix()
    assert confusion.shape == (3, 3) and confusion.sum() == 30 and evaluation.classes == CLASSES
    assert evaluation.accuracy > 90.0

    # Try it: a photo of a jade-coloured picture is made 16 x 16 and called jade.
    picture = Image.new("RGB", (64, 48), tuple(int(v) for v in PALETTE[CLASSES.index("jade")]))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    photo = read_photo(buffer.getvalue(), "jade.png", shape=SHAPE)
    inputs = network_inputs([photo], shape=checkpoint.shape)
    assert inputs.shape == (1, *SHAPE)
    probabilities = class_probabilities(checkpoint.model, inputs)[0]
    assert probabilities.shape == (3,)
    assert CLASSES[int(torch.argmax(probabilities))] == "jade"

    # The Runs table names the data set by its title.
    table = runs_table(store.list())
    assert table.loc[table["run"] == run.id, "dataset"].tolist() == ["Gems"]

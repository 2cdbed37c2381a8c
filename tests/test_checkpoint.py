"""cifar_core.training.checkpoint: saving and loading cifar_net.pth, refusing anything else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cifar_core.data.dataset import OFFICIAL_CLASSES
from cifar_core.errors import CheckpointError
from cifar_core.training.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from cifar_core.training.models import Net, model_spec


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net()


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(6, 3, 32, 32)


def test_round_trip_gives_identical_predictions(net, images, tmp_path):
    classes = tuple(f"c{i}" for i in range(10))
    config = {"epochs": 2, "lr": 0.001}
    metrics = {"accuracy": 55.5, "per_class": {"c0": 50.0}}
    path = save_checkpoint(tmp_path / "nested" / "cifar_net.pth", net, config, classes, metrics)

    loaded = load_checkpoint(path)

    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["cifar_net.pth"]  # no temporary file left
    assert not loaded.model.training
    with torch.no_grad():
        assert torch.equal(loaded.model(images), net.eval()(images))
    assert loaded.config == config
    assert loaded.classes == classes
    assert loaded.metrics == metrics


def test_the_tutorials_plain_state_dict_loads(net, images, tmp_path):
    path = tmp_path / "cifar_net.pth"
    torch.save(net.state_dict(), path)  # exactly what the tutorial does

    loaded = load_checkpoint(path)

    assert loaded.classes == OFFICIAL_CLASSES and loaded.model_name == "tutorial"
    assert loaded.config == {} and loaded.metrics == {}
    with torch.no_grad():
        assert torch.equal(loaded.model(images), net.eval()(images))


def test_a_checkpoint_records_its_model_and_rebuilds_it_from_the_registry(images, tmp_path):
    torch.manual_seed(0)
    wide = model_spec("tutorial-wide").build(10)
    path = save_checkpoint(tmp_path / "wide.pth", wide, {"model": "tutorial-wide"},
                           OFFICIAL_CLASSES, {})
    loaded = load_checkpoint(path)
    assert loaded.model_name == "tutorial-wide" and loaded.model.conv1.out_channels == 12
    with torch.no_grad():
        assert torch.equal(loaded.model(images), wide.eval()(images))
    # The tutorial's own plain state_dict of the wide network loads as the model it fits.
    torch.save(wide.state_dict(), tmp_path / "plain-wide.pth")
    assert load_checkpoint(tmp_path / "plain-wide.pth").model_name == "tutorial-wide"


def test_a_checkpoint_from_before_models_had_names_loads_as_the_tutorials_net(net, images,
                                                                            tmp_path):
    """What this app saved before the model registry: the same format, no 'model' key."""
    state = {k: v.detach() for k, v in net.state_dict().items()}
    torch.save({"format": FORMAT, "state_dict": state, "config": {"epochs": 2},
                "classes": list(OFFICIAL_CLASSES), "metrics": {"accuracy": 50.0}},
               tmp_path / "old.pth")
    loaded = load_checkpoint(tmp_path / "old.pth")
    assert loaded.model_name == "tutorial" and type(loaded.model) is Net
    assert loaded.metrics == {"accuracy": 50.0}
    with torch.no_grad():
        assert torch.equal(loaded.model(images), net.eval()(images))


def test_a_model_this_version_does_not_know_is_named(net, tmp_path):
    torch.save({"format": FORMAT, "model": "resnet-9000", "state_dict": net.state_dict(),
                "config": {}, "classes": list(OFFICIAL_CLASSES), "metrics": {}},
               tmp_path / "future.pth")
    with pytest.raises(CheckpointError, match="'resnet-9000' network, which this version"):
        load_checkpoint(tmp_path / "future.pth")


def test_a_missing_file_says_how_to_get_one(tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "nothing.pth")
    assert "No checkpoint at" in str(err.value)
    assert "train" in str(err.value)


def test_corrupt_truncated_and_text_files_are_refused(net, tmp_path):
    good = save_checkpoint(tmp_path / "good.pth", net, {}, OFFICIAL_CLASSES, {})
    cases = {
        "random.pth": (bytes(range(256)) * 10, "is not a PyTorch file."),
        "truncated.pth": (good.read_bytes()[: good.stat().st_size // 2], "is cut short or damaged"),
        "notes.pth": (b"these are my notes, not a network\n", "is not a PyTorch file."),
        "empty.pth": (b"", "is not a PyTorch file: it is empty"),
    }
    for name, (content, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        assert words in str(err.value), name
        assert name in str(err.value)


class Payload:
    """Unpickling this would create `marker`: what a malicious checkpoint could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_file_holding_code_is_refused_without_running_it(net, tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": net.state_dict(), "extra": Payload(marker)}, path)

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)

    assert not marker.exists()
    assert "holds code or objects that are not plain weights" in str(err.value)

    # The payload is real: an unsafe load would have run it.
    control = tmp_path / "control-ran"
    torch.save(Payload(control), tmp_path / "control.pth")
    torch.load(tmp_path / "control.pth", weights_only=False)
    assert control.exists()


def test_weights_of_another_network_are_refused(tmp_path):
    torch.save(nn.Linear(3, 2).state_dict(), tmp_path / "linear.pth")
    with pytest.raises(CheckpointError, match="a network this dashboard does not know"):
        load_checkpoint(tmp_path / "linear.pth")

    # The tutorial's Net, but for 5 classes, saved the tutorial's way: 10 classes expected.
    torch.save(Net(num_classes=5).state_dict(), tmp_path / "five.pth")
    with pytest.raises(CheckpointError, match="trained on 5 classes, and CIFAR-10 has 10"):
        load_checkpoint(tmp_path / "five.pth")

    torch.save({"format": FORMAT, "state_dict": nn.Linear(3, 2).state_dict(), "config": {},
                "classes": list(OFFICIAL_CLASSES), "metrics": {}}, tmp_path / "framed.pth")
    with pytest.raises(CheckpointError, match="a network this dashboard does not know"):
        load_checkpoint(tmp_path / "framed.pth")
    # Torch's own words never reach the message.
    for name in ("linear.pth", "five.pth", "framed.pth"):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(tmp_path / name)
        assert "state_dict" not in str(err.value) and "Error(s)" not in str(err.value)


def test_other_pytorch_files_are_refused(tmp_path):
    for name, obj in {"tensor.pth": torch.zeros(3), "list.pth": [1, 2],
                      "empty-dict.pth": {}, "mixed.pth": {"a": torch.zeros(1), "b": 3}}.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(CheckpointError, match="not a network checkpoint: Use a cifar_net.pth"):
            load_checkpoint(tmp_path / name)


def test_a_checkpoint_for_fewer_classes_keeps_its_class_names(tmp_path, images):
    torch.manual_seed(0)
    net = Net(num_classes=3)
    path = save_checkpoint(tmp_path / "three.pth", net, {}, ("cat", "dog", "frog"), {})
    loaded = load_checkpoint(path)
    assert loaded.classes == ("cat", "dog", "frog")
    with torch.no_grad():
        assert torch.equal(loaded.model(images), net.eval()(images))


# --- the fast network, the recipe's settings, files of the previous version ------------------

def test_a_fast_network_keeps_its_width_and_predictions(images, tmp_path):
    torch.manual_seed(0)
    fast = model_spec("fast").build(10, 8)
    with torch.no_grad():  # whitening and BatchNorm statistics as after a training
        fast.whiten.weight.normal_()
        fast.group1.norm1.running_mean.uniform_(-1, 1)
    config = {"model": "fast", "width": 8, "tta": "flip+translate", "precision": "bf16"}
    loaded = load_checkpoint(save_checkpoint(tmp_path / "fast.pth", fast, config,
                                             OFFICIAL_CLASSES, {}))
    assert loaded.model_name == "fast" and loaded.model.width == 8
    assert loaded.model.group1.conv1.out_channels == 8
    with torch.no_grad():
        assert torch.equal(loaded.model(images), fast.eval()(images))
    assert loaded.prediction_options() == {"tta": "flip+translate", "precision": "bf16"}


def test_prediction_options_of_a_checkpoint_without_them_are_the_tutorials(net, tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save(net.state_dict(), plain)
    assert load_checkpoint(plain).prediction_options() == {"tta": "none", "precision": "fp32"}
    odd = save_checkpoint(tmp_path / "odd.pth", net, {"tta": "rotate", "precision": 16},
                          OFFICIAL_CLASSES, {})
    assert load_checkpoint(odd).prediction_options() == {"tta": "none", "precision": "fp32"}


@pytest.mark.parametrize("name", ["tutorial", "tutorial-wide"])
def test_a_checkpoint_of_the_previous_version_loads(name, images, tmp_path):
    """What this app saved before the fast network: a 'model' key, no 'width' key and none
    of the recipe's settings in its config."""
    torch.manual_seed(0)
    model = model_spec(name).build(10)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT, "model": name, "state_dict": state,
                "config": {"model": name, "epochs": 2, "lr": 0.001},
                "classes": list(OFFICIAL_CLASSES), "metrics": {"accuracy": 50.0}},
               tmp_path / "previous.pth")
    loaded = load_checkpoint(tmp_path / "previous.pth")
    assert loaded.model_name == name and loaded.metrics == {"accuracy": 50.0}
    assert loaded.prediction_options() == {"tta": "none", "precision": "fp32"}
    with torch.no_grad():
        assert torch.equal(loaded.model(images), model.eval()(images))


def test_a_plain_state_dict_of_the_fast_network_at_its_standard_width_loads(images, tmp_path):
    torch.manual_seed(0)
    fast = model_spec("fast").build(10)
    torch.save(fast.state_dict(), tmp_path / "fast-plain.pth")
    loaded = load_checkpoint(tmp_path / "fast-plain.pth")
    assert loaded.model_name == "fast" and loaded.model.width == fast.width
    with torch.no_grad():
        assert torch.equal(loaded.model(images), fast.eval()(images))


# --- the data set a network was trained on (issue 24) ----------------------------------------

FASHION_LIKE = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                "Sneaker", "Bag", "Ankle boot")


def _data(classes, shape, dataset="cifar10", title="CIFAR-10"):
    """An ImageData of two pictures per split of `shape` (only its names and shape matter)."""
    from cifar_core.data.dataset import ImageData

    images = torch.zeros(2, *shape, dtype=torch.uint8)
    labels = torch.zeros(2, dtype=torch.int64)
    return ImageData(train_images=images, train_labels=labels, test_images=images,
                     test_labels=labels, classes=tuple(classes), source="in memory",
                     dataset=dataset, title=title)


def test_a_grey_network_records_its_data_set_and_is_rebuilt_for_its_shape(tmp_path):
    torch.manual_seed(0)
    net = model_spec("tutorial").build(10, None, (1, 28, 28))
    path = save_checkpoint(tmp_path / "grey.pth", net, {}, FASHION_LIKE, {},
                           dataset="fashion-like", shape=(1, 28, 28))
    loaded = load_checkpoint(path)
    assert loaded.dataset == "fashion-like" and loaded.shape == (1, 28, 28)
    assert loaded.normalization == {"mean": [0.5], "std": [0.5]}
    pictures = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded.model(pictures), net.eval()(pictures))


@pytest.mark.parametrize("kind", ["plain state_dict", "previous version"])
def test_both_old_kinds_of_file_load_as_cifar10(kind, net, tmp_path):
    path = tmp_path / "old.pth"
    if kind == "plain state_dict":
        torch.save(net.state_dict(), path)
    else:  # this app's file from before data sets were recorded
        torch.save({"format": FORMAT, "model": "tutorial", "width": None,
                    "state_dict": net.state_dict(), "config": {}, "classes": list(OFFICIAL_CLASSES),
                    "metrics": {}}, path)
    loaded = load_checkpoint(path)
    assert (loaded.dataset, loaded.shape) == ("cifar10", (3, 32, 32))
    assert loaded.normalization == {"mean": [0.5] * 3, "std": [0.5] * 3}
    assert loaded.fits(_data(OFFICIAL_CLASSES, (3, 32, 32)))


def _saved_with(tmp_path, net, **recorded):
    """A file of this app's format with the data-set keys replaced by `recorded`."""
    path = tmp_path / "odd.pth"
    torch.save({"format": FORMAT, "model": "tutorial", "width": None,
                "state_dict": net.state_dict(), "config": {}, "classes": list(OFFICIAL_CLASSES),
                "metrics": {}, **recorded}, path)
    return path


def test_garbage_data_set_records_read_as_cifar10(net, tmp_path):
    path = _saved_with(tmp_path, net, dataset=7, shape=None, normalization="half")
    loaded = load_checkpoint(path)
    assert (loaded.dataset, loaded.shape) == ("cifar10", (3, 32, 32))
    assert loaded.normalization == {"mean": [0.5] * 3, "std": [0.5] * 3}


@pytest.mark.parametrize("shape", [[0, 32, 32], [5, 32, 32], [3, 32], [3, -1, 32],
                                   [3, 100000, 100000], "3x32x32", [3.5, 32, 32]])
def test_an_impossible_picture_shape_is_refused_in_words(shape, net, tmp_path):
    path = _saved_with(tmp_path, net, dataset="cifar10", shape=shape)
    with pytest.raises(CheckpointError, match="picture") as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value)


def test_fits_compares_class_names_and_shape_not_counts(tmp_path):
    torch.manual_seed(0)
    net = model_spec("tutorial").build(10, None, (1, 28, 28))
    grey = load_checkpoint(save_checkpoint(tmp_path / "grey.pth", net, {}, FASHION_LIKE, {},
                                           dataset="fashion-like", shape=(1, 28, 28)))
    assert grey.fits(_data(FASHION_LIKE, (1, 28, 28), "fashion-like", "Fashion-like"))
    assert grey.misfit(_data(FASHION_LIKE, (1, 28, 28), "fashion-like", "Fashion-like")) is None
    # Ten classes each, as the old count check saw it: now told apart by their names.
    cifar = _data(OFFICIAL_CLASSES, (1, 28, 28))
    assert not grey.fits(cifar)
    said = grey.misfit(cifar)
    assert "T-shirt/top" in said and "CIFAR-10" in said and "plane" in said
    # The same names on pictures of another shape do not fit either.
    colour = _data(FASHION_LIKE, (3, 32, 32), "fashion-like", "Fashion-like")
    assert not grey.fits(colour)
    assert "28 × 28 grey" in grey.misfit(colour) and "32 × 32 colour" in grey.misfit(colour)

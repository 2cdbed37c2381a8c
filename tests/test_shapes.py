"""Networks follow the data: training, prediction and their helpers for any picture shape.

A made-up 3-class 16 × 16 colour data set and a 4-class 28 × 28 grey one (Fashion-MNIST's
shape) go through train() and predict for every registered model that can take them; a model
that cannot take a shape is refused in words, before anything is built.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from cifar_core.data.dataset import CIFAR_SHAPE, ImageData, normalize
from cifar_core.errors import ConfigError
from cifar_core.training.augment import augment, tta_logits
from cifar_core.training.config import TrainConfig, shape_problems
from cifar_core.training.estimate import measure_images_per_s
from cifar_core.training.evaluation import predict, predict_probabilities
from cifar_core.training.events import DoneEvent, EpochEvent
from cifar_core.training.fastnet import FastNet, whiten_from
from cifar_core.training.loop import build_model, train
from cifar_core.training.lr_find import find_learning_rate
from cifar_core.training.memory import check_memory, training_memory
from cifar_core.training.models import Net, model_names, model_spec, net_inference_logits

COLOUR_16 = (3, 16, 16)
GREY_28 = (1, 28, 28)
# (shape, number of classes) of the two made-up data sets.
DATA_SETS = {"colour16": (COLOUR_16, 3), "grey28": (GREY_28, 4)}


def made_up_data(shape: tuple[int, int, int], num_classes: int, train_n: int = 96,
                 test_n: int = 30, seed: int = 0) -> ImageData:
    """Random pictures of `shape`, class c a little brighter than class c - 1 (learnable)."""
    generator = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % num_classes
        labels = labels[torch.randperm(n, generator=generator)]
        noise = torch.randint(0, 60, (n, *shape), generator=generator)
        level = (labels * (180 // num_classes)).view(-1, 1, 1, 1)
        return (noise + level).clamp(0, 255).to(torch.uint8), labels

    train_images, train_labels = split(train_n)
    test_images, test_labels = split(test_n)
    return ImageData(train_images=train_images, train_labels=train_labels,
                     test_images=test_images, test_labels=test_labels,
                     classes=tuple(f"class {c}" for c in range(num_classes)),
                     source="made up in memory", dataset=f"made-up-{shape[1]}",
                     title="Made-up pictures")


def small_config(model: str, **settings) -> TrainConfig:
    width = 4 if model_spec(model).widths else None
    return TrainConfig(model=model, width=width, epochs=1, batch_size=16, log_every=2, seed=0,
                       device="cpu", **settings)


def takes(name: str, shape: tuple[int, int, int]) -> bool:
    return model_spec(name).shape_problem(shape) is None


CASES = [(name, key) for key, (shape, _) in DATA_SETS.items() for name in model_names()
         if takes(name, shape)]


@pytest.mark.parametrize("name, key", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_every_model_that_takes_the_shape_trains_an_epoch_and_predicts(name, key):
    shape, k = DATA_SETS[key]
    data = made_up_data(shape, k)
    config = small_config(name)
    model = build_model(config, k, data.shape)
    events = list(train(config, data, model))
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == "completed", done.message
    assert done.images_seen == 96
    (epoch,) = [e for e in events if isinstance(e, EpochEvent)]
    assert len(epoch.confusion) == k and all(len(row) == k for row in epoch.confusion)
    assert sum(map(sum, epoch.confusion)) == 30
    predicted, confidence = predict(model, data.test_images)
    assert predicted.shape == (30,) and predicted.min() >= 0 and predicted.max() < k
    probabilities = predict_probabilities(model, data.test_images, tta="flip+translate")
    assert probabilities.shape == (30, k)
    assert torch.allclose(probabilities.sum(1), torch.ones(30), atol=1e-4)


@pytest.mark.parametrize("batch_size, threads", [(4, 1), (8, 2), (64, 2)],
                         ids=["written-out", "split-batch", "autograd"])
@pytest.mark.parametrize("key", DATA_SETS)
def test_the_tutorial_network_trains_on_other_shapes_through_every_kind_of_step(
        key, batch_size, threads):
    """Batches up to 32 take the written-out step (in halves on two cores), larger ones
    autograd's: each learns from grey and small pictures as from CIFAR-10's."""
    shape, k = DATA_SETS[key]
    data = made_up_data(shape, k, train_n=192)
    config = TrainConfig(epochs=2, batch_size=batch_size, lr=0.02, log_every=1000, seed=0,
                         device="cpu")
    model = build_model(config, k, shape)
    start = [p.detach().clone() for p in model.parameters()]
    events = list(train(config, data, model, threads=threads))
    assert events[-1].status == "completed", events[-1].message
    assert all(not torch.equal(a, b) for a, b in zip(start, model.parameters(), strict=True))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_the_fast_recipe_with_augmentation_trains_on_grey_pictures():
    data = made_up_data(GREY_28, 4)
    config = small_config("fast", augment="flip+translate", tta="flip+translate",
                          label_smoothing=0.2, nesterov=True, weight_decay=0.0005,
                          schedule="warmup-linear")
    model = build_model(config, 4, data.shape)
    events = list(train(config, data, model))
    assert events[-1].status == "completed", events[-1].message


def test_a_model_that_cannot_take_the_pictures_is_refused_in_words():
    shape = (3, 12, 12)
    message = model_spec("tutorial").shape_problem(shape)
    assert message is not None
    assert "12 × 12" in message and "16 × 16" in message
    with pytest.raises(ConfigError) as refused:
        build_model(TrainConfig(seed=0), 3, shape)
    assert refused.value.field == "model" and str(refused.value) == message
    # The settings check says the same before any network is built, of a config or a form.
    assert shape_problems(TrainConfig(), shape) == {"model": message}
    assert shape_problems({"model": "tutorial-wide"}, shape) == {
        "model": model_spec("tutorial-wide").shape_problem(shape)}
    # ... and nothing for a network that takes it, or for pictures the tutorial's takes.
    assert shape_problems({"model": "fast"}, shape) == {}
    assert shape_problems(TrainConfig(), GREY_28) == {}
    # What to do names the networks that can take them, not one that cannot.
    advice = message.split(":", 1)[1].lower()
    assert "fast network" in advice and "resnet-18" in advice and "tutorial" not in advice


def test_the_settings_check_of_a_shape_leaves_an_unknown_model_to_the_settings_check():
    assert shape_problems({"model": "no-such-model"}, (3, 12, 12)) == {}


@pytest.mark.parametrize("shape", [GREY_28, COLOUR_16, (1, 20, 24), (3, 17, 19), (1, 30, 30)])
def test_the_tutorial_networks_inference_route_gives_its_own_logits_on_any_shape(shape):
    torch.manual_seed(0)
    net = Net(5, shape=shape).eval()
    images = torch.randn(6, *shape)
    with torch.no_grad():
        assert torch.allclose(net_inference_logits(net, images), net(images), atol=1e-5)
        channels_last = images.contiguous(memory_format=torch.channels_last)
        assert torch.allclose(net_inference_logits(net, channels_last), net(images), atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 64, 48), (1, 56, 56), (3, 9, 9), (1, 41, 33)])
def test_the_fast_network_takes_pictures_larger_and_smaller_than_cifars(shape):
    """Its last max-pool takes all that is left, whatever the size (airbench94: the 3 × 3 of a
    32 × 32 picture), so the head always sees one value per channel."""
    model = FastNet(7, 4, shape).eval()
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, 7)


def test_the_fast_network_keeps_cifars_last_pool():
    assert FastNet(10, 4, CIFAR_SHAPE).last_pool in (3, (3, 3))


def test_whitening_grey_pictures_makes_their_patches_uncorrelated_with_unit_variance():
    torch.manual_seed(0)
    smooth = F.avg_pool2d(torch.randn(400, 1, 30, 30), 3, stride=1)  # neighbours correlate
    model = FastNet(4, 8, (1, 28, 28))
    whiten_from(model, smooth)
    assert model.whiten.weight.shape == (8, 1, 2, 2)
    with torch.no_grad():
        out = F.conv2d(smooth, model.whiten.weight)[:, :4]  # the directions, not negatives
    rows = out.permute(0, 2, 3, 1).reshape(-1, 4)
    covariance = torch.cov(rows.T)
    assert torch.allclose(covariance, torch.eye(4), atol=0.05)


@pytest.mark.parametrize("shape", [GREY_28, (1, 20, 24), COLOUR_16])
def test_augmentation_and_its_test_time_views_keep_any_shape(shape):
    images = normalize(made_up_data(shape, 2, train_n=8, test_n=2).train_images)
    generator = torch.Generator().manual_seed(0)
    for mode in ("flip", "flip+translate"):
        changed = augment(images, mode, generator)
        assert changed.shape == images.shape
        # Each picture keeps its own values (moved, mirrored), none of another's.
        assert all(set(changed[i].unique().tolist()) <= set(images[i].unique().tolist())
                   for i in range(len(images)))
    seen = []
    tta_logits(lambda x: seen.append(x.shape) or x.mean((2, 3)), images, "flip+translate")
    assert seen and all(s == images.shape for s in seen)


def test_memory_is_counted_for_the_pictures_it_will_train_on():
    config = TrainConfig(batch_size=512, seed=0)
    grey = training_memory(config, 4, shape=GREY_28)
    colour = training_memory(config, 4)
    big = training_memory(config, 4, shape=(3, 64, 64))
    assert grey < colour < big
    # A batch's part grows with the pictures' pixels: per image, 64 × 64 colour takes about
    # 4 times 32 × 32 colour (a little more: a 5 × 5 convolution leaves 60 × 60 of one, and
    # only 28 × 28 of the other).
    per_image = {s: (training_memory(config, 4, shape=s) -
                     training_memory(replace(config, batch_size=256), 4, shape=s)) / 256
                 for s in (CIFAR_SHAPE, (3, 64, 64))}
    assert 4 < per_image[(3, 64, 64)] / per_image[CIFAR_SHAPE] < 5
    check_memory(config, 4, 96, "Training", shape=GREY_28)  # fits: no error


def test_a_speed_is_measured_on_pictures_of_the_data_sets_shape(monkeypatch):
    import cifar_core.training.estimate as estimate_module

    seen = []
    real_open_step = estimate_module.open_step

    def watching_open_step(model, *args, **kwargs):
        seen.append(model)
        return real_open_step(model, *args, **kwargs)

    monkeypatch.setattr(estimate_module, "open_step", watching_open_step)
    speed = measure_images_per_s(TrainConfig(device="cpu", batch_size=4), threads=1,
                                 budget_s=0.02, num_classes=4, shape=GREY_28)
    assert speed > 0
    (model,) = seen
    assert model.conv1.in_channels == 1 and model.fc3.out_features == 4
    assert model.fc1.in_features == 16 * 4 * 4  # 28 × 28: 4 × 4 left at fc1


def test_the_learning_rate_finder_runs_on_grey_pictures():
    data = made_up_data(GREY_28, 4)
    finding = find_learning_rate(TrainConfig(batch_size=16, device="cpu"), data, steps=8)
    # 8 minibatches of made-up pictures may tell no rate: then it says why (issue 26).
    assert len(finding.lrs) >= 1
    assert finding.suggestion > 0 if finding.suggestion is not None else finding.message

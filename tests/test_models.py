"""training.models: the tutorial's Net, the model registry and the fast inference route."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cifar_core.errors import ConfigError
from cifar_core.training.models import (
    MODELS,
    ModelSpec,
    Net,
    count_parameters,
    inference_logits,
    model_names,
    model_spec,
    register,
)


def test_net_has_the_tutorials_62006_parameters():
    assert count_parameters(Net()) == 62_006
    assert sum(p.numel() for p in Net().parameters()) == 62_006


def test_net_has_the_tutorials_layers():
    net = Net()
    shapes = {name: tuple(p.shape) for name, p in net.named_parameters()}
    assert shapes == {
        "conv1.weight": (6, 3, 5, 5), "conv1.bias": (6,),
        "conv2.weight": (16, 6, 5, 5), "conv2.bias": (16,),
        "fc1.weight": (120, 400), "fc1.bias": (120,),
        "fc2.weight": (84, 120), "fc2.bias": (84,),
        "fc3.weight": (10, 84), "fc3.bias": (10,),
    }
    assert isinstance(net.pool, torch.nn.MaxPool2d)
    assert net.pool.kernel_size == 2 and net.pool.stride == 2


def test_net_maps_a_batch_of_images_to_one_score_per_class():
    torch.manual_seed(0)
    assert Net()(torch.randn(5, 3, 32, 32)).shape == (5, 10)
    assert Net(num_classes=3)(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_net_forward_is_the_tutorials_computation():
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(3, 3, 32, 32)
    h = F.max_pool2d(F.relu(F.conv2d(x, net.conv1.weight, net.conv1.bias)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, net.conv2.weight, net.conv2.bias)), 2).flatten(1)
    h = F.relu(F.linear(h, net.fc1.weight, net.fc1.bias))
    h = F.relu(F.linear(h, net.fc2.weight, net.fc2.bias))
    expected = F.linear(h, net.fc3.weight, net.fc3.bias)
    assert torch.allclose(net(x), expected, atol=1e-6)


# --- the registry ---------------------------------------------------------------------------

def test_the_tutorials_net_is_the_default_model():
    assert model_names()[0] == "tutorial"
    spec = model_spec("tutorial")
    torch.manual_seed(0)
    model = spec.build(10)
    assert type(model) is Net and count_parameters(model) == 62_006
    assert spec.parameter_count() == 62_006 and spec.description and spec.title


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_model_maps_images_to_class_scores(name):
    spec = model_spec(name)
    torch.manual_seed(0)
    model = spec.build(7)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert spec.parameter_count(7) == count_parameters(model)
    assert spec.description.endswith(".")


def test_the_wide_tutorial_net_has_twice_the_channels():
    model = model_spec("tutorial-wide").build(10)
    assert model.conv1.out_channels == 12 and model.conv2.out_channels == 32
    assert model_spec("tutorial-wide").parameter_count() > model_spec("tutorial").parameter_count()


@pytest.mark.parametrize("name", [n for n in MODELS if MODELS[n].widths is not None])
def test_a_model_with_a_width_builds_at_it_and_its_standard_widths_are_in_its_range(name):
    spec = model_spec(name)
    low, high = spec.widths
    assert low <= spec.cpu_width <= high and low <= spec.gpu_width <= high
    assert spec.parameter_count(10, low) < spec.parameter_count(10, 2 * low)
    assert spec.parameter_count(10) == spec.parameter_count(10, spec.cpu_width)
    torch.manual_seed(0)
    assert spec.build(3, low)(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_resnet18_keeps_a_32x32_picture_large_in_its_first_layers():
    model = model_spec("resnet18").build(10)
    assert model.conv1.stride == (1, 1) and isinstance(model.maxpool, torch.nn.Identity)
    features = model.layer1(model.conv1(torch.randn(1, 3, 32, 32)))
    assert features.shape[-2:] == (32, 32)


def test_an_unknown_model_is_refused_naming_the_choices():
    with pytest.raises(ConfigError) as err:
        model_spec("resnet-9000")
    assert err.value.field == "model"
    assert "tutorial" in str(err.value) and "tutorial-wide" in str(err.value)


def test_a_registered_model_is_a_choice_everywhere(monkeypatch):
    """One register() call makes a model choosable: the config accepts it and builds it."""
    from cifar_core.training.config import TrainConfig, config_problems
    from cifar_core.training.loop import build_model

    monkeypatch.setattr("cifar_core.training.models.MODELS", dict(MODELS))
    register(ModelSpec(
        name="tiny-linear", title="Tiny", description="One linear layer.",
        build=lambda n, width=None, shape=(3, 32, 32): torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(shape[0] * shape[1] * shape[2], n))))
    assert "model" in config_problems({"model": "tiny-linear-2"})
    config = TrainConfig(model="tiny-linear", seed=1)
    assert isinstance(build_model(config, 10)[1], torch.nn.Linear)


# --- the fast inference route ---------------------------------------------------------------

@pytest.mark.parametrize("width", [1, 2])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_fast_inference_route_gives_the_networks_own_logits(layout, width):
    torch.manual_seed(1)
    net = Net(width=width).eval().to(memory_format=layout)
    # Whole numbers make equal neighbours (ties in the pooling windows) common.
    x = torch.randint(-2, 3, (6, 3, 32, 32)).float().contiguous(memory_format=layout)
    with torch.no_grad():
        assert torch.equal(inference_logits(net, x), net(x))


def test_a_model_of_another_class_keeps_its_own_forward():
    class Shifted(Net):
        def forward(self, x):
            return super().forward(x) + 1.0

    torch.manual_seed(0)
    model, x = Shifted().eval(), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(inference_logits(model, x), Net.forward(model, x) + 1.0)

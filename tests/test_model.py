"""cifar_core.model: the tutorial's Net and the choice of device."""

from __future__ import annotations

import pytest
import torch

from cifar_core.errors import DeviceError
from cifar_core.model import Net, available_devices, count_parameters, resolve_device


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
    import torch.nn.functional as F

    torch.manual_seed(0)
    net = Net()
    x = torch.randn(3, 3, 32, 32)
    h = F.max_pool2d(F.relu(F.conv2d(x, net.conv1.weight, net.conv1.bias)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, net.conv2.weight, net.conv2.bias)), 2).flatten(1)
    h = F.relu(F.linear(h, net.fc1.weight, net.fc1.bias))
    h = F.relu(F.linear(h, net.fc2.weight, net.fc2.bias))
    expected = F.linear(h, net.fc3.weight, net.fc3.bias)
    assert torch.allclose(net(x), expected, atol=1e-6)


def test_auto_picks_an_available_device():
    device = resolve_device("auto")
    assert isinstance(device, torch.device)
    torch.zeros(1, device=device)  # usable
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif torch.backends.mps.is_available():
        assert device.type == "mps"
    else:
        assert device == torch.device("cpu")
    assert resolve_device("") == device  # empty means auto


def test_cpu_is_always_available_and_names_are_forgiving():
    assert available_devices()[:2] == ["auto", "cpu"]
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


def unavailable_devices() -> list[str]:
    names = ["tpu", "cuda:7", "mps", "cuda"]
    return [n for n in names if n not in available_devices()]


@pytest.mark.parametrize("name", unavailable_devices())
def test_an_unavailable_device_is_refused_with_the_available_ones(name):
    with pytest.raises(DeviceError) as err:
        resolve_device(name)
    message = str(err.value)
    assert f"'{name}' is not available" in message
    assert "Available: " + ", ".join(available_devices()) in message

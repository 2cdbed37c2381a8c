"""cifar_core.training.devices: the choice of device."""

from __future__ import annotations

import pytest
import torch

from cifar_core.errors import DeviceError
from cifar_core.training.devices import available_devices, resolve_device


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

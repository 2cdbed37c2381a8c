"""The tutorial's network, layer for layer, and the choice of device it runs on."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cifar_core.errors import DeviceError


class Net(nn.Module):
    """The CIFAR-10 tutorial's CNN: two conv+pool stages, three linear layers (62,006 params)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable weights."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def available_devices() -> list[str]:
    """Device names usable here, 'auto' first: e.g. ['auto', 'cpu', 'cuda', 'cuda:0']."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names.append("cuda")
        names.extend(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda, then mps, then cpu; any other name must exist here."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in available_devices():
        raise DeviceError(
            f"Device '{name}' is not available on this machine. "
            f"Available: {', '.join(available_devices())}."
        )
    return torch.device(name)

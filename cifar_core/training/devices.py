"""Where a network runs: the devices this machine has, and what 'auto' picks."""

from __future__ import annotations

import torch

from cifar_core.errors import DeviceError


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

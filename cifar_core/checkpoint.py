"""Saving and loading `cifar_net.pth`: the weights plus what is needed to trust and use them.

Loading never unpickles code (`weights_only=True`). A plain state_dict saved by the tutorial's
own `torch.save(net.state_dict(), PATH)` loads too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from cifar_core.data import OFFICIAL_CLASSES
from cifar_core.errors import CheckpointError
from cifar_core.model import Net

FORMAT = "cifar_core.checkpoint/1"
DEFAULT_NAME = "cifar_net.pth"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded network with the settings, class names and metrics it was saved with."""

    model: Net
    config: dict
    classes: tuple[str, ...]
    metrics: dict


def save_checkpoint(path: Path | str, model: Net, config: dict, classes: tuple[str, ...],
                    metrics: dict) -> Path:
    """Write atomically, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"format": FORMAT, "state_dict": state, "config": dict(config),
                "classes": list(classes), "metrics": metrics}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path | str) -> Checkpoint:
    """The network in `path`, on the CPU, in eval mode; CheckpointError if it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}: check the path, or train a network "
                              "first (python -m cifar_core train).")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (corrupt, truncated, or it holds "
            f"code rather than weights: {first}). Use a cifar_net.pth saved by this app or by "
            "the tutorial."
        ) from None
    if isinstance(saved, dict) and saved.get("format") == FORMAT:
        state, config = saved.get("state_dict"), saved.get("config") or {}
        classes, metrics = tuple(saved.get("classes") or OFFICIAL_CLASSES), saved.get("metrics")
    elif isinstance(saved, dict) and saved and all(isinstance(v, torch.Tensor)
                                                   for v in saved.values()):
        state, config, classes, metrics = saved, {}, OFFICIAL_CLASSES, {}
    else:
        raise CheckpointError(f"{path} is a PyTorch file but not a CIFAR-10 network checkpoint.")
    model = Net(num_classes=len(classes))
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        detail = str(exc).strip().splitlines()[0][:200]
        raise CheckpointError(
            f"{path} holds weights of a different network ({detail}). It must come from the "
            "tutorial's Net."
        ) from None
    model.eval()
    return Checkpoint(model=model, config=config, classes=classes, metrics=metrics or {})

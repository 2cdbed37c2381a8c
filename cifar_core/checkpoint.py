"""Saving and loading `cifar_net.pth`: the weights plus what is needed to trust and use them.

Loading never unpickles code (`weights_only=True`). The network is rebuilt from the model
registry by the name the checkpoint records; a plain state_dict saved by the tutorial's own
`torch.save(net.state_dict(), PATH)`, or a checkpoint from before models had names, loads as
the registered model whose weights it fits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cifar_core.dataset import OFFICIAL_CLASSES
from cifar_core.errors import CheckpointError
from cifar_core.models import MODELS, model_spec

FORMAT = "cifar_core.checkpoint/1"
DEFAULT_NAME = "cifar_net.pth"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded network with the settings, class names and metrics it was saved with."""

    model: nn.Module
    model_name: str  # its name in the model registry
    config: dict
    classes: tuple[str, ...]
    metrics: dict


def save_checkpoint(path: Path | str, model: nn.Module, config: dict, classes: tuple[str, ...],
                    metrics: dict) -> Path:
    """Write atomically, so a reader never sees half a file. The model's registry name is
    config['model'] (the tutorial's Net where the config names none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"format": FORMAT, "model": config.get("model") or "tutorial",
                "state_dict": state, "config": dict(config),
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
    name = saved.get("model") if state is not saved else None
    name = name if isinstance(name, str) else None
    model, name = _rebuild(path, state, name, len(classes))
    model.eval()
    return Checkpoint(model=model, model_name=name, config=config, classes=classes,
                      metrics=metrics or {})


def _rebuild(path: Path, state: dict, name: str | None,
             num_classes: int) -> tuple[nn.Module, str]:
    """The registered network called `name` with these weights; without a name, the first
    registered one they fit. CheckpointError where none fits."""
    if name is not None and name not in MODELS:
        raise CheckpointError(f"{path} holds a '{name}' network, which this version does not "
                              f"know (it knows {', '.join(MODELS)}).")
    detail = ""
    for candidate in [name] if name is not None else list(MODELS):
        model = model_spec(candidate).build(num_classes)
        try:
            model.load_state_dict(state)
            return model, candidate
        except (RuntimeError, TypeError, AttributeError) as exc:
            detail = detail or str(exc).strip().splitlines()[0][:200]
    expected = f"a '{name}' network" if name is not None else \
        f"one of the networks {', '.join(MODELS)}"
    raise CheckpointError(f"{path} holds weights of a different network ({detail}). It must "
                          f"come from {expected}.")

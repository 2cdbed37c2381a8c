"""Starting a training from a network trained before (the settings Start from and Keep the
earlier layers fixed).

The new network is built as usual for the new data set's classes; then every weight it shares
with the start network is copied in, all but those of its last layer (ModelSpec.head), which
stays freshly initialised for the new classes. With `freeze`, every other weight is kept as it
was: only the last layer learns, and the layers around it (batch norms) stay in their testing
mode, so that what they compute does not drift with the new pictures either.
"""

from __future__ import annotations

import types

from torch import nn

from cifar_core.errors import ConfigError
from cifar_core.training.checkpoint import Checkpoint, _picture_kind
from cifar_core.training.models import in_sentence, model_spec


def start_problem(start: Checkpoint, model_name: str, model: nn.Module,
                  shape: tuple[int, int, int]) -> str | None:
    """Why the network `start` cannot be the starting point of `model` (a freshly built
    network of the registered model `model_name`) for pictures of `shape`, in one sentence
    saying what to choose; None when it can."""
    if start.model_name != model_name:
        theirs, ours = (in_sentence(model_spec(n).title) for n in (start.model_name, model_name))
        return (f"The network to start from is {theirs}, and this training's is {ours}: choose "
                f"{theirs} as the model, or a network to start from that is {ours}.")
    if tuple(start.shape) != tuple(shape):
        return (f"The network to start from was trained on {_picture_kind(start.shape)} "
                f"pictures, and these are {_picture_kind(shape)}: start from a network trained "
                "on pictures like these, or train from scratch.")
    head = model_spec(model_name).head
    ours = {k: v.shape for k, v in model.state_dict().items() if not _in(k, head)}
    theirs = {k: v.shape for k, v in start.model.state_dict().items() if not _in(k, head)}
    if ours != theirs:
        return ("The network to start from has another width than this training's: set Width "
                f"to the start network's ({_width(start)}), or start from another network.")
    return None


def start_from(model: nn.Module, model_name: str, start: Checkpoint,
               shape: tuple[int, int, int], classes: tuple[str, ...] | None = None) -> None:
    """Copy into `model` every weight of `start` but its last layer's (ConfigError('start_from',
    ...) if it cannot be its starting point: start_problem). Where `start` was trained on
    these very `classes`, in this order (a run whose earlier layers were kept fixed, now
    fine-tuned), its last layer is copied too."""
    problem = start_problem(start, model_name, model, shape)
    if problem:
        raise ConfigError("start_from", problem)
    head = model_spec(model_name).head
    same = classes is not None and tuple(classes) == tuple(start.classes)
    body = {k: v for k, v in start.model.state_dict().items() if same or not _in(k, head)}
    missing, unexpected = model.load_state_dict(body, strict=False)
    assert not unexpected and all(_in(k, head) for k in missing), (missing, unexpected)


def freeze_body(model: nn.Module, model_name: str) -> None:
    """Keep every weight of `model` but its last layer's as it is: they stop learning, and
    every layer but the last stays in testing mode (model.train() leaves them there)."""
    head = model_spec(model_name).head
    for name, child in model.named_children():
        if name == head:
            continue
        for module in child.modules():
            for parameter in module.parameters(recurse=False):
                parameter.requires_grad_(False)
            module.train = types.MethodType(_always_testing, module)
            module.eval()


def learning_parameters(model: nn.Module) -> int:
    """How many weights of `model` learn (the frozen ones left out)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _always_testing(module: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(module, False)


def _in(key: str, head: str) -> bool:
    return key == head or key.startswith(head + ".")


def _width(start: Checkpoint) -> str:
    width = getattr(start.model, "width", None)
    return str(width) if isinstance(width, int) else "its standard one"

"""Saving and loading `cifar_net.pth`: the weights plus what is needed to trust and use them.

Loading never unpickles code (`weights_only=True`). The network is rebuilt from the model
registry by the name the checkpoint records; a plain state_dict saved by the tutorial's own
`torch.save(net.state_dict(), PATH)`, or a checkpoint from before models had names, loads as
the registered model whose weights it fits.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cifar_core.augment import TEST_TIME_AUGMENTATIONS
from cifar_core.dataset import OFFICIAL_CLASSES
from cifar_core.errors import CheckpointError
from cifar_core.models import MODELS, model_spec
from cifar_core.recipe import PRECISIONS

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

    def prediction_options(self) -> dict:
        """How the training tested it: test-time augmentation and precision (keyword
        arguments of cifar_core.evaluate's predict and evaluate)."""
        tta, precision = self.config.get("tta"), self.config.get("precision")
        return {"tta": tta if tta in TEST_TIME_AUGMENTATIONS else "none",
                "precision": precision if precision in PRECISIONS else "fp32"}


def save_checkpoint(path: Path | str, model: nn.Module, config: dict, classes: tuple[str, ...],
                    metrics: dict) -> Path:
    """Write atomically, so a reader never sees half a file. The model's registry name is
    config['model'] (the tutorial's Net where the config names none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"format": FORMAT, "model": config.get("model") or "tutorial",
                "width": getattr(model, "width", None), "state_dict": state, "config": dict(config),
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
        raise CheckpointError(why_unreadable(path, exc)) from None
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
    width = saved.get("width") if state is not saved else None
    width = width if isinstance(width, int) and not isinstance(width, bool) else None
    model, name = _rebuild(path, state, name, len(classes), width)
    model.eval()
    return Checkpoint(model=model, model_name=name, config=config, classes=classes,
                      metrics=metrics or {})


# What torch.save writes: a zip archive holding `<name>/data.pkl` and the tensors' bytes; or, in the
# legacy format (torch < 1.6, or _use_new_zipfile_serialization=False), pickles in a row, the first
# of them this number, then the protocol version, the system info and the saved object.
_ZIP_START = b"PK\x03\x04"
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_NAMES_A_FUNCTION = {"GLOBAL", "STACK_GLOBAL", "INST"}
_WHAT_TO_USE = "Use a cifar_net.pth saved by this app or by the tutorial."


def why_unreadable(path: Path, error: Exception) -> str:
    """Our own words for why torch.load refused `path` (it raised `error`), from a look at the
    file itself. Torch's text is never shown: it suggests loading again with weights_only=False,
    which would run whatever code the file holds, and some of it carries terminal colour codes."""
    # torch's weights-only reader refuses a name it does not allow with an UnpicklingError.
    try:
        kind = _kind_of_unreadable(path, refused=isinstance(error, pickle.UnpicklingError))
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror or 'the system refused'}."
    return {
        "empty": f"{path} is not a PyTorch file: it is empty. {_WHAT_TO_USE}",
        "other zip": f"{path} is not a PyTorch file: it is a zip archive of something else. "
                     f"{_WHAT_TO_USE}",
        "not pytorch": f"{path} is not a PyTorch file. {_WHAT_TO_USE}",
        "damaged": f"{path} is cut short or damaged (an interrupted download or copy?), so it "
                   "cannot be read. Copy it again, or use another cifar_net.pth saved by this app "
                   "or by the tutorial.",
        "code": f"{path} holds code or objects that are not plain weights, so it was not opened: "
                f"opening it could run that code. {_WHAT_TO_USE}",
    }[kind]


def _kind_of_unreadable(path: Path, refused: bool) -> str:
    """empty, other zip, not pytorch, damaged or code: what the file torch refused is."""
    with open(path, "rb") as f:
        head = f.read(len(_ZIP_START))
        if not head:
            return "empty"
        if head == _ZIP_START:
            try:
                with zipfile.ZipFile(f) as archive:
                    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
                    if not pickles:
                        return "other zip"
                    if archive.testzip() is not None:
                        return "damaged"
                    data = io.BytesIO(archive.read(pickles[0]))
            except Exception:  # BadZipFile, EOFError, zlib.error ... whatever a broken zip raises
                return "damaged"
            return "code" if refused and _names_functions(_pickle_ops(data)) else "damaged"
        f.seek(0)
        first = _pickle_ops(f)
        if first is None:
            return "not pytorch"
        if not any(op.name == "LONG1" and arg == _LEGACY_MAGIC for op, arg, _ in first):
            # A pickle, but not one torch.save wrote: what matters is whether it names code.
            return "code" if refused and _names_functions(first) else "not pytorch"
        rest = [_pickle_ops(f) for _ in range(3)]  # protocol, system info, the saved object
        if any(ops is None for ops in rest):
            return "damaged"
        return "code" if refused and any(_names_functions(ops) for ops in rest) else "damaged"


def _pickle_ops(stream) -> list | None:
    """The opcodes of the next whole pickle in `stream` (read, never run); None if there is none."""
    try:
        ops = list(pickletools.genops(stream))
    except Exception:  # genops raises ValueError, EOFError, struct errors ... on damaged bytes
        return None
    return ops if ops and ops[-1][0].name == "STOP" else None


def _names_functions(ops: list | None) -> bool:
    """True when these opcodes of a whole pickle name a function or class."""
    return ops is not None and any(op.name in _NAMES_A_FUNCTION for op, _, _ in ops)


def _rebuild(path: Path, state: dict, name: str | None, num_classes: int,
             width: int | None = None) -> tuple[nn.Module, str]:
    """The registered network called `name` (of `width`, where it has one) with these
    weights; without a name, the first registered one they fit. CheckpointError where none
    fits."""
    if name is not None and name not in MODELS:
        raise CheckpointError(f"{path} holds a '{name}' network, which this version does not "
                              f"know (it knows {', '.join(MODELS)}).")
    detail = ""
    for candidate in [name] if name is not None else list(MODELS):
        try:
            model = model_spec(candidate).build(num_classes, width)
            model.load_state_dict(state)
            return model, candidate
        except (RuntimeError, TypeError, AttributeError) as exc:
            detail = detail or str(exc).strip().splitlines()[0][:200]
    expected = f"a '{name}' network" if name is not None else \
        f"one of the networks {', '.join(MODELS)}"
    raise CheckpointError(f"{path} holds weights of a different network ({detail}). It must "
                          f"come from {expected}.")

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
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cifar_core.data.dataset import CIFAR_SHAPE, OFFICIAL_CLASSES, ImageData
from cifar_core.data.registry import DATASETS, DEFAULT_DATASET, MEAN, NAME_PATTERN, STD
from cifar_core.errors import CheckpointError
from cifar_core.training.augment import TEST_TIME_AUGMENTATIONS
from cifar_core.training.models import MODELS, model_spec
from cifar_core.training.recipe import PRECISIONS

FORMAT = "cifar_core.checkpoint/1"
DEFAULT_NAME = "cifar_net.pth"
# The most classes a network here may tell apart: a file that claims more (in its class list or
# its last layer) is refused before any network is built for it (issue 29: a few-KB file that
# claimed 2,000,000 classes made the import allocate gigabytes).
MAX_CLASSES = 1000
# torch.save writes each tensor's numbers once, so the tensors of a real file hold about as many
# bytes as the file. Views that repeat a few numbers (a stride of 0) or one storage claimed many
# times make a crafted file claim far more; building a network from such a claim would fill the
# memory, so beyond this many times the file's size (and a megabyte) the file is refused.
MAX_CLAIMED_RATIO = 4
# The largest picture side a network may be rebuilt for: the networks' first layers grow with
# the side, so a file claiming huge pictures would fill the memory before any weight is read.
MAX_SIDE = 512


@dataclass(frozen=True)
class Checkpoint:
    """A loaded network with the settings, class names and metrics it was saved with."""

    model: nn.Module
    model_name: str  # its name in the model registry
    config: dict
    classes: tuple[str, ...]
    metrics: dict
    # The data set it was trained on (cifar_core.data.registry) and that data's picture shape
    # (channels, height, width) and normalisation: a file from before data sets were recorded,
    # and the tutorial's plain state_dict, read as CIFAR-10's.
    dataset: str = "cifar10"
    shape: tuple[int, int, int] = CIFAR_SHAPE
    normalization: dict = field(default_factory=lambda: _normalization(CIFAR_SHAPE))

    @property
    def title(self) -> str:
        """The title of the data set it was trained on (its name if not registered here)."""
        spec = DATASETS.get(self.dataset)
        return spec.title if spec is not None else self.dataset

    def fits(self, data: ImageData) -> bool:
        """True when `data` has this network's class names, in its order, and picture shape."""
        return self.misfit(data) is None

    def misfit(self, data: ImageData) -> str | None:
        """Why this network cannot be tested or used on `data`, in one sentence saying what to
        choose; None when it fits (the same class names in the same order, the same shape)."""
        same_classes = tuple(data.classes) == tuple(self.classes)
        if same_classes and tuple(data.shape) == tuple(self.shape):
            return None
        what_to_do = (f"choose {self.title} as the data set, or a network trained on "
                      f"{data.title}.")
        if same_classes:
            return (f"This network was trained on {self.title}'s {_picture_kind(self.shape)} "
                    f"pictures, and these are {data.title}'s {_picture_kind(data.shape)} "
                    f"pictures: {what_to_do}")
        return (f"This network was trained on {self.title} ({classes_in_words(self.classes)}),"
                f" and these are {data.title}'s pictures ({classes_in_words(data.classes)}): "
                f"{what_to_do}")

    def prediction_options(self) -> dict:
        """How the training tested it: test-time augmentation and precision, and where the
        augmentation was only for the pictures it was unsure of, below which confidence
        (tta_unsure_below, named only where set) (keyword arguments of
        cifar_core.training.evaluation's predict and evaluate)."""
        tta, precision = self.config.get("tta"), self.config.get("precision")
        unsure = self.config.get("tta_unsure_below")
        tta = tta if tta in TEST_TIME_AUGMENTATIONS else "none"
        unsure = unsure if (tta != "none" and isinstance(unsure, float)
                            and 0 < unsure < 1) else None
        options = {"tta": tta, "precision": precision if precision in PRECISIONS else "fp32"}
        return options if unsure is None else {**options, "tta_unsure_below": unsure}


def save_checkpoint(path: Path | str, model: nn.Module, config: dict, classes: tuple[str, ...],
                    metrics: dict, dataset: str = "cifar10",
                    shape: tuple[int, int, int] = CIFAR_SHAPE) -> Path:
    """Write atomically, so a reader never sees half a file. The model's registry name is
    config['model'] (the tutorial's Net where the config names none); with it the data set it
    was trained on, that data's picture shape and normalisation (what an exporter needs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"format": FORMAT, "model": config.get("model") or "tutorial",
                "width": getattr(model, "width", None), "state_dict": state, "config": dict(config),
                "classes": list(classes), "metrics": metrics, "dataset": dataset,
                "shape": list(shape), "normalization": _normalization(shape)}, tmp)
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
        _check_parts(path, saved)
        state, config = saved.get("state_dict"), saved.get("config") or {}
        classes, metrics = tuple(saved.get("classes") or OFFICIAL_CLASSES), saved.get("metrics")
    elif isinstance(saved, dict) and saved and all(isinstance(v, torch.Tensor)
                                                   for v in saved.values()):
        state, config, classes, metrics = saved, {}, OFFICIAL_CLASSES, {}
        saved = {}  # plain weights record no data set: they are taken as CIFAR-10's
    else:
        raise CheckpointError(f"{path} is a PyTorch file but not a network checkpoint: "
                              + _WHAT_TO_USE)
    plain = not saved
    name = saved.get("model")
    name = name if isinstance(name, str) else None
    width = saved.get("width")
    width = width if isinstance(width, int) and not isinstance(width, bool) else None
    # Every claim is checked against the file before anything is built from it.
    dataset, shape, normalization = _recorded_data(path, saved)
    _check_claims(path, state, classes, name, width)
    model, name = _rebuild(path, state, name, len(classes), width, plain=plain, shape=shape)
    _check_numbers(path, state)
    model.eval()
    return Checkpoint(model=model, model_name=name, config=config, classes=classes,
                      metrics=metrics or {}, dataset=dataset, shape=shape,
                      normalization=normalization)


def _normalization(shape: tuple[int, int, int]) -> dict:
    """The normalisation every data set here gets (data.registry), per channel."""
    return {"mean": [MEAN] * shape[0], "std": [STD] * shape[0]}


def _recorded_data(path: Path, saved: dict) -> tuple[str, tuple[int, int, int], dict]:
    """(data set, picture shape, normalisation) the file records. A file from before they
    were recorded (or plain weights) reads as CIFAR-10's, as does a data set that is no name
    or a normalisation that is not one; a picture shape no network can take is refused."""
    dataset = saved.get("dataset")
    if not isinstance(dataset, str) or not NAME_PATTERN.fullmatch(dataset):
        dataset = DEFAULT_DATASET
    shape = saved.get("shape")
    if shape is None:
        shape = CIFAR_SHAPE
    elif not _possible_shape(shape):
        raise CheckpointError(
            f"{path} says its network was made for pictures of shape {str(shape)[:40]}, which "
            "no picture has (1 grey or 3 colour channels, sides from 8 to "
            f"{MAX_SIDE} pixels), so it was not used. {_WHAT_TO_USE}")
    shape = tuple(int(n) for n in shape)
    normalization = saved.get("normalization")
    if not (isinstance(normalization, dict) and all(
            isinstance(normalization.get(k), list) and len(normalization[k]) == shape[0]
            and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                    for v in normalization[k]) for k in ("mean", "std"))):
        normalization = _normalization(shape)
    return dataset, shape, {"mean": list(normalization["mean"]),
                            "std": list(normalization["std"])}


def _possible_shape(shape) -> bool:
    """True for (channels, height, width) of pictures a network here can be built for."""
    if not isinstance(shape, (list, tuple)) or len(shape) != 3 or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in shape):
        return False
    channels, height, width = shape
    return channels in (1, 3) and 8 <= height <= MAX_SIDE and 8 <= width <= MAX_SIDE


def _picture_kind(shape) -> str:
    """e.g. '28 × 28 grey' or '32 × 32 colour'."""
    return f"{shape[1]} × {shape[2]} {'grey' if shape[0] == 1 else 'colour'}"


def classes_in_words(classes) -> str:
    """e.g. '10 classes: T-shirt/top, Trouser, …'."""
    return f"{len(classes)} class{'es' * (len(classes) != 1)}: {_listed(list(classes))}"


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


def _check_parts(path: Path, saved: dict) -> None:
    """CheckpointError where a part of this tool's checkpoint is not of its kind (class names
    that are not a list of names, settings or results that are not a table of them)."""
    classes = saved.get("classes")
    wrong = [name for name, ok in (
        ("class names", classes is None or (isinstance(classes, (list, tuple)) and
                                            all(isinstance(c, str) for c in classes))),
        ("settings", isinstance(saved.get("config") or {}, dict)),
        ("results", isinstance(saved.get("metrics") or {}, dict))) if not ok]
    if wrong:
        raise CheckpointError(f"{path} is damaged: its {' and '.join(wrong)} are not what this "
                              f"app saves, so it cannot be used. {_WHAT_TO_USE}")


def _check_claims(path: Path, state, classes: tuple, name: str | None,
                  width: int | None) -> None:
    """CheckpointError where the file claims more than it holds or than a network here may
    have: more than MAX_CLASSES classes, a width outside the network's range, or tensors with
    more numbers than the file's bytes (repeated through views, or one storage many times)."""
    if len(classes) > MAX_CLASSES:
        raise CheckpointError(f"{path} claims a network for {len(classes):,} classes; one here "
                              f"tells at most {MAX_CLASSES:,} apart, so the file was not used. "
                              f"{_WHAT_TO_USE}")
    widths = MODELS[name].widths if name in MODELS else None
    if width is not None and widths is not None and not widths[0] <= width <= widths[1]:
        raise CheckpointError(f"{path} claims a '{name}' network of width {width:,}; its width "
                              f"is from {widths[0]:,} to {widths[1]:,}, so the file was not used. "
                              f"{_WHAT_TO_USE}")
    if not isinstance(state, dict):
        return  # _rebuild says that these are no weights
    tensors = [(k, v) for k, v in state.items() if isinstance(v, torch.Tensor)]
    claimed = 0
    for key, tensor in tensors:
        numbers = tensor.numel() * tensor.element_size()
        claimed += numbers
        if numbers > tensor.untyped_storage().nbytes():
            raise CheckpointError(
                f"{path} is not a real network file: its layer {key} claims "
                f"{_shape(tensor.shape)} numbers, more numbers than the file holds, so it was "
                f"not used. {_WHAT_TO_USE}")
    size = path.stat().st_size
    if claimed > MAX_CLAIMED_RATIO * size + 2**20:
        raise CheckpointError(
            f"{path} is not a real network file: its layers claim {claimed / 2**20:,.0f} MB of "
            f"numbers, more numbers than the file holds ({size / 2**20:,.1f} MB), so it was not "
            f"used. {_WHAT_TO_USE}")


def _check_numbers(path: Path, state: dict) -> None:
    """CheckpointError where a weight is not a number (NaN) or infinite: such a network answers
    nothing (every page would fail on it)."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{path} holds weights that are not numbers (missing or infinite values), so it "
                "cannot be used: the training that saved it went wrong. Use another file, or "
                f"train the network again. In detail: layer {key}.")


def _rebuild(path: Path, state: dict, name: str | None, num_classes: int,
             width: int | None = None, plain: bool = False,
             shape: tuple[int, int, int] = CIFAR_SHAPE) -> tuple[nn.Module, str]:
    """The registered network called `name` (of `width`, where it has one) with these
    weights; without a name, the first registered one they fit. CheckpointError where none
    fits, saying how they differ (`plain`: weights without class names, taken as
    CIFAR-10's). The network is built for pictures of `shape`."""
    if name is not None and name not in MODELS:
        raise CheckpointError(f"{path} holds a '{name}' network, which this version does not "
                              f"know (it knows {', '.join(MODELS)}).")
    names = [name] if name is not None else list(MODELS)
    if name is not None and model_spec(name).shape_problem(shape):
        raise CheckpointError(f"{path} holds a '{name}' network for {_picture_kind(shape)} "
                              "pictures, which it cannot take: the file is damaged or was "
                              f"changed, so it cannot be used. {_WHAT_TO_USE}")
    names = [n for n in names if not model_spec(n).shape_problem(shape)]
    for candidate in names:
        try:
            model = model_spec(candidate).build(num_classes, width, shape)
            model.load_state_dict(state)
            return model, candidate
        except (RuntimeError, TypeError, AttributeError):
            continue
    raise CheckpointError(_why_it_does_not_fit(path, state, names, num_classes, width, plain,
                                               shape))


def _why_it_does_not_fit(path: Path, state: dict, names: list[str], expected: int,
                         width: int | None, plain: bool,
                         shape: tuple[int, int, int] = CIFAR_SHAPE) -> str:
    """For weights that fit none of these networks for `expected` classes, a sentence saying
    what a person needs (another class count, or another network), then the detail."""
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        return (f"{path} holds no network weights, so it cannot be used. {_WHAT_TO_USE}")
    for model_name in names:
        count = class_count_it_fits(model_name, state, expected, width, shape)
        if count is None:
            continue
        if not plain:
            return (f"{path} says its network tells {expected} classes apart, but it was "
                    f"trained on {count}: the file is inconsistent. Save the network again, or "
                    "use another file.")
        return (f"{path} holds a network trained on {count} classes, and CIFAR-10 has "
                f"{expected}: it cannot be used here. Use a network trained on the {expected} "
                "CIFAR-10 classes. (Plain weights carry no class names, so they are taken as "
                "CIFAR-10's.)")
    if len(names) == 1 and not plain:
        return (f"{path} says it holds a '{names[0]}' network, but its weights do not fit one: "
                "the file is damaged or was changed, so it cannot be used. "
                f"{_WHAT_TO_USE} In detail: {_difference(state, names, expected, width, shape)}.")
    return (f"{path} holds the weights of a network this dashboard does not know, so it cannot "
            f"be used here. {_WHAT_TO_USE} In detail: "
            f"{_difference(state, names, expected, width, shape)}; the networks it knows are "
            f"{', '.join(MODELS)} (the tutorial's Net is 'tutorial').")


def class_count_it_fits(model_name: str, state: dict, expected: int,
                        width: int | None = None,
                        shape: tuple[int, int, int] = CIFAR_SHAPE) -> int | None:
    """The other class count (at most MAX_CLASSES) for which these weights fit the registered
    network (built for pictures of `shape`), if any."""
    last = [k for k in model_spec(model_name).build(expected, width, shape).state_dict()
            if k.endswith("weight")][-1]
    layer = tuple(getattr(state.get(last), "shape", ()))
    if len(layer) != 2 or not 0 < layer[0] <= MAX_CLASSES or layer[0] == expected:
        return None
    count = layer[0]
    try:
        model_spec(model_name).build(int(count), width, shape).load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError):
        return None
    return int(count)


def _difference(state: dict, names: list[str], classes: int, width: int | None,
                shape: tuple[int, int, int] = CIFAR_SHAPE) -> str:
    """How `state` differs from the registered network it is closest to, in words."""
    built = {n: model_spec(n).build(classes, width, shape).state_dict() for n in names}
    closest = max(names, key=lambda n: len(set(state) & set(built[n])))
    theirs = built[closest]
    for key, tensor in theirs.items():
        if key in state and tuple(state[key].shape) != tuple(tensor.shape):
            return (f"its layer {key} is {_shape(state[key].shape)} where '{closest}' has "
                    f"{_shape(tensor.shape)}")
    unknown, missing = [k for k in state if k not in theirs], [k for k in theirs if k not in state]
    parts = []
    if unknown:
        parts.append(f"it has weights named {_listed(unknown)}, which '{closest}' has not")
    if missing:
        parts.append(f"it lacks {'' if unknown else 'the weights '}{_listed(missing)} of "
                     f"'{closest}'")
    return "; ".join(parts) or f"its weights do not fit '{closest}'"


def _shape(shape) -> str:
    return " × ".join(f"{int(n):,}" for n in shape) or "a single number"


def _listed(names) -> str:
    shown = ", ".join(names[:5])
    return shown + (", …" if len(names) > 5 else "")

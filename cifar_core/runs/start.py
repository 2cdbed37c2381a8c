"""The network a training starts from (the setting Start from): a stored run's, or a file's.

A value naming a run of the store is that run's saved network; any other value is a path to a
.pth file. Either is read by training.checkpoint.load_checkpoint, which checks the file before it
builds anything from it; training.transfer then checks that it fits the new training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cifar_core.data.registry import DATASETS
from cifar_core.errors import CheckpointError, ConfigError, RunError
from cifar_core.runs.naming import display_names
from cifar_core.runs.store import Run, RunStore
from cifar_core.runs.views import dataset_title
from cifar_core.training.checkpoint import Checkpoint, load_checkpoint
from cifar_core.training.config import TrainConfig, config_problems
from cifar_core.training.loop import model_width
from cifar_core.training.models import in_sentence, model_spec
from cifar_core.training.transfer import start_problem


def start_path(store: RunStore | None, value: str) -> Path:
    """The file the setting's value names: the run `value`'s checkpoint where the store has
    that run, else the path `value`; ConfigError('start_from', ...) saying what to choose."""
    if store is not None and _has_run(store, value):
        try:
            return store.checkpoint_path(value)
        except RunError as exc:
            raise ConfigError("start_from", f"{exc} Start from a finished run, or train from "
                                            "scratch.") from None
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(
            "start_from", f"There is no run '{value}' and no file {path} to start from: give a "
                          "finished run's id (python -m cifar_core runs list) or a .pth file.")
    return path


def resolve_start(store: RunStore | None, value: str | None) -> Checkpoint | None:
    """The network the setting Start from names (None for none), loaded;
    ConfigError('start_from', ...) in one sentence if it cannot be read."""
    if value is None:
        return None
    path = start_path(store, value)
    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        raise ConfigError("start_from", str(exc)) from None


def start_settings(start: Checkpoint) -> dict:
    """The settings a training starting from `start` must have: its model and its width (None
    for a model without one)."""
    width = getattr(start.model, "width", None)
    has_width = model_spec(start.model_name).widths is not None
    return {"model": start.model_name,
            "width": width if has_width and isinstance(width, int) else None}


def start_in_words(start: Checkpoint) -> str:
    """e.g. 'the fast network at width 32, trained on CIFAR-10'."""
    chosen = start_settings(start)
    width = f" at width {chosen['width']}" if chosen["width"] is not None else ""
    return f"{in_sentence(model_spec(start.model_name).title)}{width}, trained on {start.title}"


def fit_problem(start: Checkpoint, config: TrainConfig, shape: tuple[int, int, int]) -> str | None:
    """Why a training of `config` on pictures of `shape` cannot start from `start`, in one
    sentence saying what to choose (training.transfer.start_problem's); None when it can. Asked
    before a run is made (the CLI, the Train page); a network that cannot take pictures of
    `shape` at all is training.config.shape_problems' to say."""
    spec = model_spec(config.model)
    if spec.shape_problem(tuple(shape)):
        return None
    model = spec.build(max(2, len(start.classes)), model_width(config), tuple(shape))
    return start_problem(start, config.model, model, tuple(shape))


def start_choices(runs: list[Run], shape: tuple[int, int, int]) -> list[Run]:
    """The runs (in the given order) whose network a training on pictures of `shape` can start
    from: completed, their network file still there, trained on a data set of such pictures."""
    found = []
    for run in runs:
        spec = DATASETS.get(run.dataset)
        if (run.status == "completed" and run.checkpoint and spec is not None
                and tuple(spec.shape) == tuple(shape) and Path(run.checkpoint).is_file()):
            found.append(run)
    return found


def start_choice_label(run: Run, name: str | None = None) -> str:
    """A start network as a menu shows it: the run (by its name, naming.display_names, where
    given), its data set and its test accuracy."""
    accuracy = f", {run.accuracy:.1f} %" if run.accuracy is not None else ""
    return f"{name or f'Run {run.id}'} ({dataset_title(run.dataset)}{accuracy})"


def start_choice_labels(runs: list[Run], offered) -> dict[str, str]:
    """run id -> its start_choice_label, by its name among all `runs`, for the offered ids."""
    names = display_names(runs)
    return {r.id: start_choice_label(r, names[r.id]) for r in runs if r.id in set(offered)}


def start_check(store: RunStore | None, values: dict, shape: tuple[int, int, int],
                load: Callable[[Path], Checkpoint] = load_checkpoint) -> str | None:
    """Why the settings `values` (a form's) cannot train pictures of `shape` from the network
    their Start from names, in one sentence saying what to choose; None when they can, when
    they start from nothing, or when other settings are wrong (config_problems says those).
    `load` reads a network file (a page passes its cached reader)."""
    value = values.get("start_from")
    if value is None or config_problems(values):
        return None
    try:
        start = load(start_path(store, value))
    except (ConfigError, CheckpointError) as exc:
        return str(exc)
    return fit_problem(start, TrainConfig.from_dict(values), shape)


def _has_run(store: RunStore, run_id: str) -> bool:
    try:
        store.get(run_id)
    except RunError:
        return False
    return True

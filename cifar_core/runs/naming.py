"""Every run's display name: the name a person gave it, else one made from what tells it apart
from the runs around it, e.g. "fast · lr 0.02 · mom 0.8".

The runs around it: for a sweep's run, the sweep's other runs (its name shows every setting the
sweep varies); for a run outside sweeps, the other runs outside sweeps (its name shows where it
differs from what most of them used, so that one changed setting reads as that change). Names
that come out alike are told apart by the seed, else the time the run was made. Pages pass all
the runs of the store, so that a run reads the same on every page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from cifar_core.data.registry import DATASETS
from cifar_core.runs.names import short_name, sweep_name
from cifar_core.training.config import compared_settings, settings
from cifar_core.training.models import MODELS

if TYPE_CHECKING:
    from cifar_core.runs.store import Run

SEPARATOR = " · "
# Shorter words than a flag for the settings whose flag is long; the others are called by their
# flag without its dashes (the registry's name for them on the command line).
SHORT_LABELS = {"momentum": "mom", "batch_size": "batch", "train_size": "images",
                "label_smoothing": "smoothing", "weight_decay": "wd", "augment": "aug"}
# The settings as declared, read once (names are made for every run on every page visit).
SETTINGS = settings()
NAMED = tuple(name for name in compared_settings() if name != "model")
# An imported network's origin (views.IMPORTED): it has no training settings to tell it by.
IMPORTED = "imported"


def short_label(name: str) -> str:
    """The setting `name` in a few letters, e.g. 'lr', 'mom', 'batch'."""
    return SHORT_LABELS.get(name) or SETTINGS[name].flag.lstrip("-")


def setting_words(name: str, value) -> str:
    """One setting as a name shows it, e.g. 'lr 0.02', 'images all', 'nesterov on'."""
    spec, label = SETTINGS[name], short_label(name)
    if value is None:
        return f"{label} {spec.none_means or '-'}"
    if spec.kind is bool:
        return f"{label} {'on' if value else 'off'}"
    if spec.kind is float:
        return f"{label} {value:g}"
    if spec.kind is int:
        return f"{label} {value:,}"
    return f"{label} {value}"


def display_names(runs: list[Run]) -> dict[str, str]:
    """run id -> the name it is shown by: its own name, else one made from its model and what
    differs among the runs around it (see the module's docstring); every one different."""
    names = {}
    groups: dict[str | None, list[Run]] = {}
    for run in runs:
        if run.origin != IMPORTED:
            groups.setdefault(run.sweep_id, []).append(run)
    for sweep_id, members in groups.items():
        described = _described(members, in_sweep=sweep_id is not None)
        names.update({run.id: made for run, made in zip(members, described, strict=True)})
    for run in runs:
        if run.name:
            names[run.id] = run.name
        elif run.origin == IMPORTED:
            names[run.id] = sweep_name(str(run.config.get("imported_from") or "")) or (
                "imported network")
    return _told_apart(names, {r.id: r for r in runs})


def _applies(values: dict, name: str) -> bool:
    """Whether the setting means anything for a network of these settings (a width for the
    tutorial's, which has none, does not)."""
    spec = MODELS.get(values.get("model"))
    return not (name == "width" and spec is not None and spec.widths is None)


def _described(runs: list[Run], in_sweep: bool) -> list[str]:
    """Each run's model and the settings that tell it from the others (a sweep's: all those
    the sweep varies; others: those where it is not what most of them used)."""
    shown = {}
    of_run = [r.settings for r in runs]  # (each computed once: a property)
    for name in NAMED:
        values = [setting_words(name, v.get(name)) if _applies(v, name) else None
                  for v in of_run]
        counts = Counter(v for v in values if v is not None)
        if len(counts) + (None in values) < 2:
            continue  # all alike
        usual, times = counts.most_common(1)[0] if counts else (None, 0)
        most = None if in_sweep or times * 2 <= len(runs) else usual
        shown[name] = [v if v != most else None for v in values]
    titles = _dataset_titles(runs)
    parts = [[str(v.get("model"))] for v in of_run]
    for i, run in enumerate(runs):
        if titles:
            parts[i].append(titles[run.id])
        parts[i] += [words[i] for words in shown.values() if words[i] is not None]
    return [short_name(SEPARATOR.join(p)) for p in parts]


def _dataset_titles(runs: list[Run]) -> dict[str, str]:
    """run id -> its data set's title, where the runs trained on more than one (else none)."""
    if len({r.dataset for r in runs}) < 2:
        return {}
    return {r.id: (DATASETS[r.dataset].title if r.dataset in DATASETS else r.dataset)
            for r in runs}


def _seed(run: Run) -> str | None:
    seed = run.config.get("seed")
    return None if seed is None else f"seed {seed}"


def _minute(run: Run) -> str:
    made = datetime.fromtimestamp(run.created)
    return f"{made.day} {made:%b %H:%M}"


def _second(run: Run) -> str:
    made = datetime.fromtimestamp(run.created)
    return f"{made.day} {made:%b %H:%M:%S}"


# What tells alike names apart, the first that does for each run.
_TELLERS: tuple[Callable[[Run], str | None], ...] = (_seed, _minute, _second, lambda r: r.id)


def _told_apart(names: dict[str, str], runs: dict[str, Run]) -> dict[str, str]:
    """The names with those that are alike made different: each such run's name followed by
    the first of its seed, its time (to the minute, to the second) or its id that no other
    run of the same name shares."""
    for _ in range(3):  # a name made longer may meet another: look again
        alike: dict[str, list[str]] = {}
        for run_id, name in names.items():
            alike.setdefault(name, []).append(run_id)
        clusters = [ids for ids in alike.values() if len(ids) > 1]
        if not clusters:
            break
        for ids in clusters:
            left = ids
            for teller in _TELLERS:
                told = {i: teller(runs[i]) for i in left}
                counts = Counter(told.values())
                for i in left:
                    if told[i] is not None and counts[told[i]] == 1:
                        names[i] = f"{names[i]}{SEPARATOR}{told[i]}"
                left = [i for i in left if told[i] is None or counts[told[i]] > 1]
                if not left:
                    break
    return names

"""Teaching a set of your own pictures (the Teach page's one button): the preset "Teach: about
a minute", the networks a set can start from, and the settings of each way to train it.

A network that already learned to see (e.g. on CIFAR-10) is the starting point: its last layer
is made new for the set's classes and every layer goes on learning from the set's pictures
(about 12 s on a 2-core CPU for 3 classes of 30 pictures). Keeping the earlier layers fixed
(only the last layer learning) takes a third of that, but was 6 to 17 points less accurate in
the same benchmark; a run taught that way can be fine-tuned afterwards (fine_tune_settings).
Without a start network the set trains from scratch, the tutorial's network from random
weights (figures: bench/bench_teach.py, bench/RESULTS.md "Issue 25").
"""

from __future__ import annotations

from pathlib import Path

from cifar_core.data.own_sets import OwnSet, is_own_set, test_count
from cifar_core.data.registry import DATASETS
from cifar_core.runs.start import start_settings
from cifar_core.runs.store import Run, RunStore
from cifar_core.runs.views import is_import, run_classes
from cifar_core.training.checkpoint import load_checkpoint
from cifar_core.training.config import preset_values
from cifar_core.training.models import MODELS, Net

TEACH_PRESET = "teach-1min"
# The tutorial's networks learn at the 'quick' preset's rate: at the preset's (chosen for the
# fast network) a tutorial network fine-tuned on a few near-alike pictures blew up for 1 seed
# in 8 (tests/test_teach_preset.py).
TUTORIAL_LR = 0.01
# The CPU preset a start network is trained with first, where there is none yet.
START_NETWORK_PRESET = "cpu-5min"


def start_networks(store: RunStore, shape) -> list[Run]:
    """The finished runs with a saved network that a set of pictures of `shape` (channels,
    height, width) can start from: trained on a data set of such pictures with more than two
    classes, not on a set made on the Teach page; best test accuracy first."""
    found = []
    for run in store.list():
        if run.status != "completed" or not run.checkpoint or is_import(run):
            continue
        spec = DATASETS.get(run.dataset)
        if spec is None or tuple(spec.shape) != tuple(shape) or is_own_set(run.dataset):
            continue
        if len(run_classes(run)) <= 2 or not Path(run.checkpoint).is_file():
            continue
        found.append(run)
    return sorted(found, key=lambda r: -(r.accuracy or 0))


def teach_settings(start: Run | None, *, freeze: bool = False) -> dict:
    """Every setting's value for teaching a set: the Teach preset's, starting from the network
    of the run `start` (its model and width; every layer learning, or only the last one with
    `freeze`), or with `start` None from scratch (the tutorial's network, random weights)."""
    values = preset_values(TEACH_PRESET)
    if start is None:  # the tutorial's network: the fast one's whitening and batch statistics
        # of a few near-alike pictures can blow its first steps up (tests/test_pages_teach.py)
        return {**values, "model": "tutorial", "width": None, "start_from": None,
                "freeze": False, "lr": TUTORIAL_LR}
    model = start.settings["model"]
    lr = TUTORIAL_LR if MODELS.get(model) is not None and MODELS[model].architecture is Net \
        else values["lr"]
    return {**values, "model": model, "width": _width_of(start), "start_from": start.id,
            "freeze": freeze, "lr": lr}


def fine_tune_settings(taught: Run) -> dict:
    """Every setting's value for fine-tuning a set taught with its earlier layers kept fixed:
    the run `taught`'s settings, starting from its network (whose last layer already knows the
    set's classes and is kept: training.transfer), every layer learning."""
    return {**taught.settings, "start_from": taught.id, "freeze": False, "seed": None}


def pictures_split(own: OwnSet) -> tuple[int, int]:
    """How many of the set's pictures a teaching trains on and how many it tests on (each
    class's held-out share: own_sets.test_count)."""
    tests = sum(test_count(len(c.pictures)) for c in own.classes)
    return own.picture_count - tests, tests


def start_network_run_settings() -> dict:
    """The settings to train a start network first on CIFAR-10: the CPU preset's."""
    return preset_values(START_NETWORK_PRESET)


def _width_of(run: Run) -> int | None:
    """The width the run's network was built with: its setting, else (left empty: the standard
    width of the device it trained on) the one its saved network has."""
    width, spec = run.settings.get("width"), MODELS.get(run.settings.get("model"))
    if width is not None or spec is None or spec.widths is None:
        return width
    return start_settings(load_checkpoint(run.checkpoint))["width"]

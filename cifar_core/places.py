"""Where things are kept when nobody says: the runs folder. (The data folder's default is the
data layer's own: data.dataset.default_data_dir.) Below every other module, so that the data
layer can find the sets kept in the runs folder (data.own_sets) without importing the runs
layer above it."""

from __future__ import annotations

import os
from pathlib import Path


def default_runs_dir() -> Path:
    """The runs folder: $CIFAR_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("CIFAR_RUNS_DIR") or "./runs")

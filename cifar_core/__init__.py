"""The PyTorch CIFAR-10 tutorial as a library, in five groups (one folder each):

- `data/`: the data sets (CIFAR-10 the default; a registry of them) found, decoded, cached
  or downloaded, as tensors;
- `training/`: the settings, the networks, the tutorial's loop (and `speed/`), evaluation;
- `runs/`: the run store, each run in its own process, what the pages show of runs;
- `sweeps/`: many runs over a search space, here or on a Ray cluster;
- `explain/`: a picture's answer, where the network looked, inside it, imported networks.

Beside them: `errors` (a message a user can act on, per mistake), `processes`, `password`,
`scheduler` (the one place that starts the next run) and `cli/` (`python -m cifar_core`).
No Streamlit here: the dashboard (app.py, pages/) only calls into this package.
"""

from cifar_core.data.dataset import ImageData, default_data_dir, normalize
from cifar_core.data.grids import image_grid
from cifar_core.data.load import load_cifar10
from cifar_core.errors import (
    CheckpointError,
    CifarError,
    ConfigError,
    CorruptDataError,
    DataError,
    DataNotFoundError,
    DeviceError,
    ImageFolderError,
    RunError,
)
from cifar_core.runs.jobs import JobRunner
from cifar_core.runs.store import Run, RunStore, default_runs_dir
from cifar_core.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from cifar_core.training.config import TrainConfig
from cifar_core.training.devices import available_devices, resolve_device
from cifar_core.training.evaluation import Evaluation, evaluate, predict, predict_probabilities
from cifar_core.training.loop import build_model, train
from cifar_core.training.models import MODELS, ModelSpec, Net, model_spec

__all__ = [
    "MODELS", "CheckpointError", "Checkpoint", "ImageData", "CifarError", "ConfigError",
    "CorruptDataError", "DataError", "DataNotFoundError", "DeviceError", "Evaluation",
    "ImageFolderError", "JobRunner", "ModelSpec", "Net", "Run", "RunError", "RunStore",
    "TrainConfig", "available_devices", "build_model", "default_data_dir", "default_runs_dir",
    "evaluate", "image_grid", "load_checkpoint", "load_cifar10", "model_spec", "normalize",
    "predict", "predict_probabilities", "resolve_device", "save_checkpoint", "train",
]

"""The PyTorch CIFAR-10 tutorial as a library: data, model, training, evaluation, runs, jobs.

No Streamlit here: the dashboard (app.py, pages/) only calls into this package.
"""

from cifar_core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from cifar_core.config import TrainConfig
from cifar_core.data import load_cifar10
from cifar_core.dataset import CifarData, default_data_dir, normalize
from cifar_core.devices import available_devices, resolve_device
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
from cifar_core.evaluate import Evaluation, evaluate, predict, predict_probabilities
from cifar_core.jobs import JobRunner
from cifar_core.models import MODELS, ModelSpec, Net, model_spec
from cifar_core.pictures import image_grid
from cifar_core.runs import Run, RunStore, default_runs_dir
from cifar_core.train import build_model, train

__all__ = [
    "MODELS", "CheckpointError", "Checkpoint", "CifarData", "CifarError", "ConfigError",
    "CorruptDataError", "DataError", "DataNotFoundError", "DeviceError", "Evaluation",
    "ImageFolderError", "JobRunner", "ModelSpec", "Net", "Run", "RunError", "RunStore",
    "TrainConfig", "available_devices", "build_model", "default_data_dir", "default_runs_dir",
    "evaluate", "image_grid", "load_checkpoint", "load_cifar10", "model_spec", "normalize",
    "predict", "predict_probabilities", "resolve_device", "save_checkpoint", "train",
]

"""Training: one network trained and tested, as the tutorial does it and faster.

`config` declares every setting once (`TrainConfig`, `Setting`, presets); `models` is the model
registry (the tutorial's `Net`, `fastnet`'s fast network); `recipe` the optimizer, schedule,
loss and number format; `augment` flips and shifts; `loop` the tutorial's loop, yielding
`events`; `speed/` how a step is computed, behind one entry point (`open_step`), which anyone
not working on speed may ignore; `evaluation` accuracy overall and per class; `checkpoint`
`cifar_net.pth`; `devices` where it runs; `estimate` how long it takes here; `memory` whether it
fits; `lr_find` the learning-rate range test.
"""

from cifar_core.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from cifar_core.training.config import PRESETS, Setting, TrainConfig, settings
from cifar_core.training.devices import available_devices, resolve_device
from cifar_core.training.evaluation import Evaluation, evaluate, predict, predict_probabilities
from cifar_core.training.events import DoneEvent, EpochEvent, StatsEvent
from cifar_core.training.loop import build_model, train
from cifar_core.training.models import MODELS, ModelSpec, Net, model_spec, register

__all__ = [
    "MODELS", "PRESETS", "Checkpoint", "DoneEvent", "EpochEvent", "Evaluation", "ModelSpec",
    "Net", "Setting", "StatsEvent", "TrainConfig", "available_devices", "build_model",
    "evaluate", "load_checkpoint", "model_spec", "predict", "predict_probabilities", "register",
    "resolve_device", "save_checkpoint", "settings", "train",
]

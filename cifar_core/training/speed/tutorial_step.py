"""The tutorial's own training step, for any model: zero_grad, forward, loss, backward, step."""

from __future__ import annotations

import torch
from torch import nn

from cifar_core.training import recipe
from cifar_core.training.models import model_spec


class TutorialStep:
    """The tutorial's step for any model: zero_grad, forward, loss, backward, optimizer step.
    Every other step in cifar_core.training.speed computes what this one does, faster, for the
    tutorial's recipe. The config's recipe settings (training.recipe) change the optimizer,
    the loss and the number format, and add a learning-rate schedule over `total_steps`;
    with their defaults this is the tutorial's step exactly."""

    def __init__(self, model: nn.Module, config, total_steps: int = 0):
        self.model = model
        self.criterion = recipe.loss_function(config)
        self.optimizer = recipe.make_optimizer(model, config)
        self.schedule = recipe.make_schedule(self.optimizer, config.schedule, total_steps)
        device = next(model.parameters()).device
        self.precision, self.device = config.precision, device
        # fp16 needs its gradients scaled up so that small ones do not round to zero.
        self.scaler = torch.amp.GradScaler("cuda") if recipe.autocast_dtype(
            config.precision, device) == torch.float16 else None
        # oneDNN's convolutions want channels-last inputs (bench/RESULTS.md).
        self.layout = torch.channels_last if device.type == "cpu" and model_spec(
            config.model).channels_last else None

    def step(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.layout is not None:
            x = x.contiguous(memory_format=self.layout)
        self.optimizer.zero_grad()
        with recipe.autocast(self.precision, self.device):
            loss = self.criterion(self.model(x), labels)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        if self.schedule is not None:
            self.schedule.step()
        return loss.detach()

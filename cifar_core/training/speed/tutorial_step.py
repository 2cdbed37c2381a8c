"""The tutorial's own training step, for any model: zero_grad, forward, loss, backward, step."""

from __future__ import annotations

import torch
from torch import nn

from cifar_core.training import recipe
from cifar_core.training.compiled import Compilation
from cifar_core.training.models import model_spec


def channels_last_for(config, device: torch.device) -> bool:
    """Whether the network trains on channels-last tensors: on a CPU for the networks that
    ask for it (oneDNN's convolutions, bench/RESULTS.md), and on a GPU where they also
    compute in half-size numbers (bf16, fp16), whose tensor-core convolutions take that
    layout (airbench94's, the gpu preset's); float32 on a GPU keeps PyTorch's usual one."""
    if not model_spec(config.model).channels_last:
        return False
    if device.type == "cpu":
        return True
    return device.type == "cuda" and recipe.autocast_dtype(config.precision, device) is not None


class TutorialStep:
    """The tutorial's step for any model: zero_grad, forward, loss, backward, optimizer step.
    Every other step in cifar_core.training.speed computes what this one does, faster, for the
    tutorial's recipe. The config's recipe settings (training.recipe) change the optimizer
    (Muon for the filters beside SGD), the loss and the number format, and add a
    learning-rate schedule over `total_steps`; Compile computes the network through
    torch.compile (training.compiled). With their defaults this is the tutorial's step
    exactly."""

    def __init__(self, model: nn.Module, config, total_steps: int = 0):
        self.model = model
        self.criterion = recipe.loss_function(config)
        self.optimizers = recipe.make_optimizers(model, config)
        self.optimizer = self.optimizers[-1]  # the SGD (the only one without Muon)
        self.schedules = [recipe.make_schedule(optimizer, config.schedule, total_steps)
                          for optimizer in self.optimizers]
        self.schedules = [s for s in self.schedules if s is not None]
        self.compilation = Compilation(model) if getattr(config, "compile", False) else None
        self.forward = self.compilation.forward if self.compilation is not None else model
        device = next(model.parameters()).device
        self.precision, self.device = config.precision, device
        # fp16 needs its gradients scaled up so that small ones do not round to zero.
        self.scaler = torch.amp.GradScaler("cuda") if recipe.autocast_dtype(
            config.precision, device) == torch.float16 else None
        # oneDNN's convolutions want channels-last inputs (bench/RESULTS.md), and so do a
        # GPU's in half-size numbers (speed.channels_last_for).
        self.layout = torch.channels_last if channels_last_for(config, device) else None

    def step(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.layout is not None:
            x = x.contiguous(memory_format=self.layout)
        if self.compilation is not None and self.compilation.first_time(x.shape):
            return self.compilation.first_step(self._step, x, labels)
        return self._step(x, labels)

    def _step(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        for optimizer in self.optimizers:
            optimizer.zero_grad()
        with recipe.autocast(self.precision, self.device):
            loss = self.criterion(self.forward(x), labels)
        if self.scaler is None:
            loss.backward()
            for optimizer in self.optimizers:
                optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            for optimizer in self.optimizers:
                self.scaler.step(optimizer)
            self.scaler.update()
        for schedule in self.schedules:
            schedule.step()
        return loss.detach()

    def notes(self) -> list[str]:
        """What the run's message says about this step (compiling)."""
        return self.compilation.notes() if self.compilation is not None else []

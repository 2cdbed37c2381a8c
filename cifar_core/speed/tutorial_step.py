"""The tutorial's own training step, for any model: zero_grad, forward, loss, backward, step."""

from __future__ import annotations

import torch
from torch import nn, optim


class TutorialStep:
    """The tutorial's step for any model: zero_grad, forward, loss, backward, optimizer step.
    Every other step in cifar_core.speed computes what this one does, faster."""

    def __init__(self, model: nn.Module, lr: float, momentum: float):
        self.model = model
        self.criterion = nn.CrossEntropyLoss()
        device = next(model.parameters()).device
        # The fused SGD step is one kernel instead of a few per weight tensor (CPU and CUDA).
        fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
        self.optimizer = optim.SGD(model.parameters(), lr=lr, momentum=momentum, **fused)

    def step(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad()
        loss = self.criterion(self.model(x), labels)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


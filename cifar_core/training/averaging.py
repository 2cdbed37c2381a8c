"""Weight averaging: the network tested and saved is an average of its recent weights.

Two ways (TrainConfig.averaging):
- 'ema': an exponential moving average of the weights, updated after every step
  (average = decay x average + (1 - decay) x weights, the decay ema_decay(step): EMA_DECAY,
  less over the first steps so that the starting weights do not linger); the tests after
  each epoch and the saved network use the average, the training goes on from its own
  weights.
- 'lookahead': airbench94's. Every LOOKAHEAD_EVERY steps the average is pulled towards the
  weights and the weights are set to the average, with a pull that weakens as the training
  ends (the decay rises as the cube of the share of steps done, to 0.95^5); after the last
  step the weights are the average (airbench94 drops the steps since the last pull). A
  training of fewer than LOOKAHEAD_EVERY steps has no average and keeps its weights.

Both average every floating-point tensor of the network's state (weights and BatchNorm's
running statistics), as airbench94 does, and work in place on the tensors the model holds, so
they work behind every training step in cifar_core.training.speed (the written-out step's
weights are views into its flat tensor: changed in place, they stay so).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

AVERAGINGS = ("none", "ema", "lookahead")

# The EMA's weight on the average so far at each step: the last ~100 steps count (a CPU
# preset's epoch is 98 steps of 512 images).
EMA_DECAY = 0.99

# airbench94's lookahead: every 5 steps, decay 0.95^5 x (share of the steps done)^3.
LOOKAHEAD_EVERY = 5
LOOKAHEAD_DECAY = 0.95 ** 5


def ema_decay(step: int) -> float:
    """The EMA's decay after `step` (1-based): EMA_DECAY, or less at the start, (1 + step) /
    (10 + step), as TensorFlow's ExponentialMovingAverage with its number of updates (else
    after a few dozen steps the average would still be mostly the random start)."""
    return min(EMA_DECAY, (1 + step) / (10 + step))


def lookahead_decay(step: int, total_steps: int) -> float:
    """The lookahead's decay after `step` (1-based) of `total_steps`."""
    return LOOKAHEAD_DECAY * (min(step, total_steps) / max(1, total_steps)) ** 3


class WeightAverage:
    """The average of a model's weights, as `mode` ('ema' or 'lookahead') keeps it over a
    training of `total_steps` steps (0: unknown, the end comes with `finish`). Call
    `before_step()` and `after_step()` around every training step; `averaged()` around a
    test; `finish()` at the end (it is also called after the last of `total_steps`), which
    leaves the average in the model. The average starts from the weights as they are at the
    first step (after a set-up from the data, such as the fast network's whitening)."""

    def __init__(self, model: nn.Module, mode: str, total_steps: int = 0):
        if mode not in AVERAGINGS or mode == "none":
            raise ValueError(f"unknown weight averaging {mode!r}")
        self.mode, self.total_steps = mode, total_steps
        self.tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
        self.average: list[torch.Tensor] | None = None
        self.steps = 0
        self.finished = False

    def before_step(self) -> None:
        """Start the average from the weights before the first step."""
        if self.average is None:
            self.average = [t.detach().clone() for t in self.tensors]

    @torch.no_grad()
    def after_step(self) -> None:
        """Update the average after one more training step."""
        if self.finished or self.average is None:
            return
        self.steps += 1
        if self.mode == "ema":
            torch._foreach_lerp_(self.average, self.tensors, 1 - ema_decay(self.steps))
        elif self.steps % LOOKAHEAD_EVERY == 0:
            decay = lookahead_decay(self.steps, self.total_steps or self.steps)
            torch._foreach_lerp_(self.average, self.tensors, 1 - decay)
            torch._foreach_copy_(self.tensors, self.average)
        if self.steps == self.total_steps:
            self.finish()

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """The model holds the average while inside (a test), its own weights again after."""
        if self.finished or not self._has_average() or (
                self.mode == "lookahead" and self.steps % LOOKAHEAD_EVERY == 0):
            yield  # the model holds the average already (or there is none yet)
            return
        own = [t.clone() for t in self.tensors]
        with torch.no_grad():
            torch._foreach_copy_(self.tensors, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.tensors, own)

    @torch.no_grad()
    def finish(self) -> None:
        """The average into the model, for good (the training is over)."""
        if not self.finished and self._has_average():
            torch._foreach_copy_(self.tensors, self.average)
        self.finished = True

    def _has_average(self) -> bool:
        """Whether an average was taken yet (a lookahead's first is after LOOKAHEAD_EVERY
        steps)."""
        if self.average is None:
            return False
        return self.mode == "ema" and self.steps > 0 or self.steps >= LOOKAHEAD_EVERY

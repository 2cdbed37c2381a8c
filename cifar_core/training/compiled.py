"""torch.compile of the training step's network (TrainConfig.compile), timed, with a way back.

torch.compile turns the network's forward and backward passes into generated kernels the
first time it sees a batch's shape (a run's full batches, then its last, shorter one): that
first step takes seconds to minutes, which count as training time (they are part of what the
user waits for) and are said in the run's message. Where compiling cannot work here (no
torch.compile, a Python it does not support, no C++ compiler for the CPU's kernels, a backend
that fails), the step is computed without it, and the message says so and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn


def compile_problem() -> str | None:
    """Why torch.compile cannot be used in this process, in words; None where it can be
    tried (it may still fail when it first compiles: Compilation handles that)."""
    if not callable(getattr(torch, "compile", None)):
        return "this PyTorch has no torch.compile"
    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return "torch.compile does not support this version of Python"
    except Exception as exc:  # an import that fails in a broken install, whatever its type
        return f"torch.compile could not be loaded ({type(exc).__name__})"
    return None


class Compilation:
    """A network's forward pass through torch.compile. `forward(x)` is what a step calls;
    `first_step(step, x, labels)` runs a step on a batch shape not seen before, timing it
    (compiling is done then) and, where compiling fails, putting the network's state back and
    doing the step without compiling from then on."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.problem = compile_problem()
        # torch.compile itself only wraps: the compiling happens at the first call. One
        # graph per batch shape (dynamic=False): a run has two, which beats dynamic shapes'
        # slower kernels.
        self.module = model if self.problem else torch.compile(model, dynamic=False)
        self.shapes: set[tuple[int, ...]] = set()
        self.compile_s = 0.0

    @property
    def compiling(self) -> bool:
        return self.problem is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def first_time(self, shape: tuple[int, ...]) -> bool:
        """Whether a batch of `shape` would be compiled now."""
        return self.problem is None and tuple(shape) not in self.shapes

    def first_step(self, step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """step(x, labels) with compiling, timed; without it where compiling fails."""
        saved = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        start = time.perf_counter()
        try:
            loss = step(x, labels)
            loss.item()  # waits for the device: the compiled kernels have run
        except Exception as exc:  # the compiler's failure, whatever its type
            with torch.no_grad():
                for name, value in self.model.state_dict().items():
                    value.copy_(saved[name])
            self.problem = f"compiling failed ({type(exc).__name__}: {_first_line(exc)})"
            self.module = self.model
            return step(x, labels)
        self.compile_s += time.perf_counter() - start
        self.shapes.add(tuple(x.shape))
        return loss

    def notes(self) -> list[str]:
        """What the run's message says about compiling."""
        if self.problem is not None:
            return [f"The training step was not compiled: {self.problem}. It trained as it "
                    "does with Compile off."]
        if not self.shapes:
            return []
        which = ("its first step" if len(self.shapes) == 1 else
                 f"the first step of each of its {len(self.shapes)} batch sizes")
        return [f"Compiling the training step took {self.compile_s:.1f} s of the training "
                f"time ({which})."]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no message"

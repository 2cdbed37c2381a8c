"""Muon for the convolution filters, as airbench94_muon and the CIFAR-10 speedruns use it.

Muon takes SGD's momentum (Nesterov) and replaces each filter bank's update by the nearest
"orthogonal" matrix (all its directions of the same size), found by a few Newton-Schulz
iterations, so that no single direction dominates a step. torch.optim.Muon (PyTorch 2.9+)
takes 2-D weights only and decays them; airbench94_muon's takes the 4-D filters as matrices
(one row per output channel) and keeps each bank's size fixed instead (the BatchNorm after each
convolution makes the network blind to that size), so this module follows airbench94_muon.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn, optim

# The quintic Newton-Schulz iteration's coefficients and steps (Keller Jordan's, also
# torch.optim.Muon's defaults).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
# airbench94_muon's momentum for the filters.
MUON_MOMENTUM = 0.6


def newton_schulz(matrix: torch.Tensor, steps: int = NS_STEPS, eps: float = 1e-7) -> torch.Tensor:
    """An approximately orthogonal matrix with `matrix`'s directions (U S' V^T with S' near 1,
    where U S V^T is its SVD): `matrix` scaled to norm 1, then `steps` iterations of
    X <- a X + (b A + c A^2) X, A = X X^T, on the wider orientation. On a GPU in bfloat16 (as
    the speedruns do: fast there); on a CPU in the matrix's own precision (bfloat16 is emulated
    there, and no faster)."""
    a, b, c = NS_COEFFICIENTS
    x = matrix.bfloat16() if matrix.is_cuda else matrix.clone()
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / (x.norm() + eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(matrix.dtype)


class Muon(optim.Optimizer):
    """airbench94_muon's Muon for filter weights (any shape: each is taken as a matrix with
    one row per output channel): buf = momentum x buf + grad; the update is grad +
    momentum x buf (Nesterov) or buf, orthogonalised (newton_schulz); before it the weight is
    scaled to norm sqrt(rows); then weight -= lr x update."""

    def __init__(self, params, lr: float, momentum: float = MUON_MOMENTUM,
                 nesterov: bool = True):
        if lr <= 0:
            raise ValueError(f"Muon's learning rate must be above 0, not {lr}")
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with _one_cpu_thread(self.param_groups):
            self._update()
        return loss

    def _update(self) -> None:
        for group in self.param_groups:
            momentum = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf = state["momentum_buffer"]
                buf.mul_(momentum).add_(p.grad)
                g = p.grad.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.mul_(len(p) ** 0.5 / p.norm())
                update = newton_schulz(g.reshape(len(g), -1)).view(g.shape)
                p.add_(update, alpha=-group["lr"])


@contextmanager
def _one_cpu_thread(groups: list[dict]) -> Iterator[None]:
    """One PyTorch thread while Muon updates CPU weights, the count before afterwards: its
    matrix products are tiny, and two threads waiting on each other made a step of the fast
    network's filters (width 8) 20 to 70 times slower than one thread on this project's 2-core
    machine (3 ms against 65-210 ms, with other processes busy)."""
    on_cpu = any(p.device.type == "cpu" for g in groups for p in g["params"])
    threads = torch.get_num_threads()
    if not on_cpu or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def filters(model: nn.Module) -> list[nn.Parameter]:
    """The convolution filters that learn (4-D weights): Muon's share of a network."""
    return [p for p in model.parameters() if p.requires_grad and p.ndim == 4]

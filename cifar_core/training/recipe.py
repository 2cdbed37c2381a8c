"""The training recipe beyond the tutorial: the optimizer's options, the learning-rate
schedule, label smoothing and the number format, from a TrainConfig.

With the default settings every piece here is the tutorial's: SGD with momentum at a constant
learning rate, plain cross-entropy, float32.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch
from torch import nn, optim

from cifar_core.training.models import model_spec
from cifar_core.training.muon import Muon, filters

SCHEDULES = ("constant", "warmup-linear", "one-cycle")
PRECISIONS = ("fp32", "auto", "bf16", "fp16")

# The share of the steps the learning rate takes to rise to its peak (warm-up, one-cycle).
WARMUP_FRACTION = 0.2


def warmup_linear_factor(step: int, total_steps: int) -> float:
    """The learning rate's multiple at `step` (0-based) of `total_steps`: rising in a straight
    line over the first WARMUP_FRACTION of the steps to 1, then falling in a straight line to
    reach 0 just after the last step."""
    warmup = max(1, round(WARMUP_FRACTION * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup))


def make_optimizers(model: nn.Module, config) -> list[optim.Optimizer]:
    """The optimizers a training step takes: make_optimizer's SGD for every weight; with Muon
    (config.muon_lr above 0), Muon for the convolution filters (training.muon) and the SGD for
    the rest (the fast recipe's: Nesterov)."""
    muon_lr = getattr(config, "muon_lr", 0.0)
    if not muon_lr:
        return [make_optimizer(model, config)]
    banks = filters(model)
    return [Muon(banks, lr=muon_lr), make_optimizer(model, config, leave_out=banks)]


def make_optimizer(model: nn.Module, config, leave_out: list[nn.Parameter] = ()) -> optim.SGD:
    """SGD with the config's learning rate, momentum, Nesterov and weight decay, for every
    weight that learns but those in `leave_out`. A model may give some weights a larger
    learning rate (its spec's `lr_scales`); their weight decay is divided by the same scale,
    so that every weight decays alike per step."""
    device = next(model.parameters()).device
    # The fused SGD step is one kernel instead of a few per weight tensor (CPU and CUDA).
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    options = dict(lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                   weight_decay=config.weight_decay, **fused)
    scales = model_spec(config.model).lr_scales
    left_out = {id(p) for p in leave_out}
    if scales is None:
        if not left_out:
            return optim.SGD(model.parameters(), **options)
        return optim.SGD([p for p in model.parameters() if id(p) not in left_out], **options)
    groups = [dict(params=[p for p in params if id(p) not in left_out], lr=config.lr * scale,
                   weight_decay=config.weight_decay / scale)
              for params, scale in scales(model)]
    return optim.SGD([g for g in groups if g["params"]], **options)


def make_schedule(optimizer: optim.Optimizer, schedule: str,
                  total_steps: int) -> optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule over `total_steps` optimizer steps (stepped after each);
    None for a constant rate."""
    if schedule == "constant":
        return None
    if schedule == "warmup-linear":
        return optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_linear_factor(step, total_steps))
    if schedule == "one-cycle":
        # Momentum stays the config's (OneCycleLR would otherwise vary it too).
        return optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=max(total_steps, 2), pct_start=WARMUP_FRACTION, cycle_momentum=False)
    raise ValueError(f"unknown schedule {schedule!r}")


def loss_function(config) -> nn.CrossEntropyLoss:
    """Cross-entropy, with the config's label smoothing (0: the tutorial's plain one)."""
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


@functools.cache
def cpu_computes_bf16_fast() -> bool:
    """Whether this CPU has matrix units for bfloat16 (Intel AMX), with which oneDNN runs
    bf16 convolutions much faster than float32 (bench/RESULTS.md, "The fast network on a
    2-core CPU"). Elsewhere bf16 is emulated or barely faster, and 'auto' stays with
    float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The lower-precision type autocast computes in for `precision` on `device`; None for
    float32 ('fp32', or 'auto' where no lower precision is faster)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_computes_bf16_fast():
        return torch.bfloat16
    return None


def precision_problem(precision: str, device: torch.device) -> str | None:
    """Why `precision` cannot be used on `device`, in words; None if it can."""
    if precision == "fp16" and device.type != "cuda":
        return ("Half precision (fp16) needs a GPU. On a CPU choose bf16, auto or fp32.")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "This GPU cannot compute in bf16: choose fp16, auto or fp32."
    return None


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """A context in which the forward pass computes in the config's precision."""
    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)

"""How much memory a training step needs, and what to say when there is not enough.

A step holds the network's weights, their gradients and the optimizer's state (a fixed part),
and for every image of the minibatch the output of each layer, kept for the backward pass,
and its gradient (a part per image). The part per image is counted, not guessed: one forward
pass of two images through the config's network, adding up what each layer gives out. Lower
number formats, in-place layers and freed intermediates are not taken off, so for a network with
many of them (ResNet-18) it errs high; for the tutorial's it came within a few percent of a
step's measured peak. A refusal leaves the other half of the free memory as a margin.

The learning-rate finder runs inside the dashboard's process, which serves everyone: it is
refused beforehand when the estimate passes MEMORY_SHARE of the memory free (issue 29 asked
for a guard after ResNet-18 at a batch of 50,000 asked for 13 GB there). A training that runs
out of memory anyway ends with out_of_memory_message, not the allocator's text.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import replace

import torch
from torch import nn

from cifar_core.data.dataset import CIFAR_SHAPE
from cifar_core.errors import ConfigError
from cifar_core.training.config import TrainConfig
from cifar_core.training.devices import resolve_device
from cifar_core.training.loop import build_model, model_width

# A finder (or any step in a shared process) may take at most this share of the memory free.
MEMORY_SHARE = 0.5
# Each layer's output is kept for the backward pass, which then makes its gradient.
ACTIVATION_COPIES = 2
# The weights, their gradients and up to two numbers of optimizer state each (Adam's).
WEIGHT_COPIES = 4
# The minibatch itself: its images, their augmented copy and the normalised input.
INPUT_COPIES = 3
# Bytes of one float number of a picture.
FLOAT_BYTES = 4


def training_memory(config: TrainConfig, num_classes: int = 10,
                    images: int | None = None,
                    shape: tuple[int, int, int] = CIFAR_SHAPE) -> int:
    """Bytes a training step of `config` needs at most (its minibatch: the config's batch size,
    or `images` where fewer are there to fill it) on pictures of `shape` (channels, height,
    width: the data set's)."""
    batch = config.batch_size if images is None else max(1, min(config.batch_size, images))
    fixed, per_image = _fixed_and_per_image(config.model, model_width(config), num_classes,
                                            tuple(shape))
    return fixed + batch * per_image


def available_bytes(device: torch.device) -> int:
    """Memory free for a new allocation on `device`: the GPU's free memory, or the machine's
    available memory (Linux's MemAvailable; elsewhere the free pages)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(config: TrainConfig, num_classes: int, images: int, what: str,
                 shape: tuple[int, int, int] = CIFAR_SHAPE) -> None:
    """ConfigError (on the batch size) if `what` (e.g. 'Finding a learning rate') with
    `config` on `images` training images of `shape` would need more than MEMORY_SHARE of the
    memory free, saying the largest batch that fits."""
    device = resolve_device(config.device)
    needed = training_memory(config, num_classes, images, shape)
    room = int(MEMORY_SHARE * available_bytes(device))
    if needed <= room:
        return
    fixed, per_image = _fixed_and_per_image(config.model, model_width(config), num_classes,
                                            tuple(shape))
    fits = (room - fixed) // per_image
    where = "the GPU" if device.type == "cuda" else "this machine"
    batch = min(config.batch_size, images)
    advice = (f"use a batch of at most {fits:,} images" if fits >= 1 else
              "pick a smaller network, or free some memory")
    raise ConfigError("batch_size", f"{what} with a batch of {batch:,} images needs about "
                                    f"{_size(needed)} of memory, and {where} has "
                                    f"{_size(room / MEMORY_SHARE)} free: {advice}.")


def out_of_memory_message(error: BaseException, batch_size: int | None) -> str | None:
    """The reason to give for a training that ran out of memory (`error`, as torch or Python
    raised it), in words; None for any other error."""
    text = str(error)
    if not (isinstance(error, (MemoryError, torch.OutOfMemoryError)) or
            (isinstance(error, RuntimeError) and re.search(
                r"can't allocate memory|not enough memory|out of memory", text))):
        return None
    asked = re.search(r"allocate (\d+) bytes", text)
    at_once = f" (it asked for {_size(int(asked.group(1)))} at once)" if asked else ""
    batch = f" (now {batch_size:,})" if isinstance(batch_size, int) else ""
    return (f"The training ran out of memory{at_once}: lower the batch size{batch}, or pick a "
            "smaller network.")


@functools.lru_cache(maxsize=32)
def _fixed_and_per_image(model_name: str, width: int | None, num_classes: int,
                         shape: tuple[int, int, int]) -> tuple[int, int]:
    """(bytes for the weights and what goes with them, bytes per image of a minibatch)."""
    config = replace(TrainConfig(model=model_name, width=width), seed=0)
    with torch.random.fork_rng(devices=[]):  # build_model seeds torch: leave it as it was
        model = build_model(config, num_classes, shape)
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        outputs = _output_bytes(model, torch.randn(2, *shape))
    image_bytes = math.prod(shape) * FLOAT_BYTES
    return WEIGHT_COPIES * weights, ACTIVATION_COPIES * outputs // 2 + INPUT_COPIES * image_bytes


def _output_bytes(model: nn.Module, images: torch.Tensor) -> int:
    """Bytes of what every layer without sublayers gives out for these images."""
    total = 0

    def count(module, inputs, output) -> None:
        nonlocal total
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if not any(True for _ in m.children())]
    try:
        with torch.no_grad():
            model.train()(images)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def _size(size: float) -> str:
    return f"{size / 2**30:,.1f} GB" if size >= 2**30 else f"{size / 2**20:,.0f} MB"

"""Inside a network: its layers with their output shapes and sizes, the first layer's filters,
and what each convolution makes of one picture (its feature maps).

Everything works on a copy of the network (`inspection_copy`), so the network itself is never
changed: not its weights, its train/eval mode, its requires_grad flags or its hooks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cifar_core.data.dataset import normalize
from cifar_core.data.grids import image_grid
from cifar_core.training.speed.cpu import settings

INPUT_SHAPE = (3, 32, 32)  # one picture as the network takes it


def one_picture_threads():
    """CPU settings for one picture's work (a context manager, or a function decorator): one
    thread. The work is too small to share: two threads waiting for each other, and for
    whatever else uses the second core, were many times slower on a loaded 2-core CPU, and
    single calls stalled far longer than the work takes (bench/bench_explain.py;
    bench/RESULTS.md, "Session 6: the Try it page"). Put back on leaving."""
    return settings(threads=1, onednn=True)


@dataclass(frozen=True)
class LayerRow:
    """One step of the network as a picture goes through it."""

    name: str  # its name in the network, e.g. 'conv1'; 'input' for the picture itself
    kind: str  # in words: 'convolution 5×5', 'max-pool 2×2', 'fully connected'
    output_shape: tuple[int, ...]  # for one picture, e.g. (6, 28, 28)
    parameters: int  # the weights it holds (a layer used twice counts them once)


def inspection_copy(model: nn.Module) -> nn.Module:
    """A CPU copy of `model` in eval mode whose weights need no gradients. A dashboard's model
    is cached and shared by every browser session (and may be mid-training elsewhere): hooks or
    a mode change on it would leak into their answers, so explaining works on a copy."""
    examined = copy.deepcopy(model).cpu().float().eval()
    examined.requires_grad_(False)
    return examined


@one_picture_threads()
def layer_table(model: nn.Module, input_shape: tuple[int, ...] = INPUT_SHAPE) -> list[LayerRow]:
    """The network's layers in the order a picture of `input_shape` goes through them, with
    their output shapes and parameter counts (which add up to the network's)."""
    examined = inspection_copy(model)
    rows = [LayerRow("input", "picture", tuple(input_shape), 0)]
    counted: set[int] = set()
    for name, module, output in _module_calls(examined, torch.zeros(1, *input_shape)):
        parameters = 0
        if id(module) not in counted:
            counted.add(id(module))
            parameters = _own_parameter_count(module)
        rows.append(LayerRow(name, _kind(module), tuple(output.shape[1:]), parameters))
    # Weights a forward pass never reaches (or that sit on a container module) still count.
    for name, module in examined.named_modules():
        parameters = _own_parameter_count(module)
        if parameters and id(module) not in counted:
            rows.append(LayerRow(name or "network", _kind(module) + " (not used)", (), parameters))
    return rows


@one_picture_threads()
def convolutions(model: nn.Module, input_shape: tuple[int, ...] = INPUT_SHAPE) -> list[str]:
    """The names of the network's convolutions (nn.Conv2d) in the order a picture goes through
    them (each once); the last is where Grad-CAM looks."""
    names: list[str] = []
    for name, _module, _ in _module_calls(inspection_copy(model), torch.zeros(1, *input_shape),
                                         wanted=lambda m: isinstance(m, nn.Conv2d)):
        if name not in names:
            names.append(name)
    return names


@one_picture_threads()
def first_layer_filters(model: nn.Module, scale: int = 8, per_row: int = 8,
                        input_shape: tuple[int, ...] = INPUT_SHAPE) -> np.ndarray:
    """The first convolution's filters as one HWC uint8 grid of small colour pictures, each
    filter stretched to 0..255 on its own (the pattern it looks for, not its strength), and
    enlarged `scale` times."""
    examined = inspection_copy(model)
    first = dict(examined.named_modules())[convolutions(examined, input_shape)[0]]
    weights = first.weight.detach().float()  # (filters, input channels, kh, kw)
    if weights.shape[1] != 3:  # not a colour input: show each filter's mean over its inputs
        weights = weights.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    low = weights.amin(dim=(1, 2, 3), keepdim=True)
    span = (weights.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-12)
    pictures = ((weights - low) / span * 255).round().to(torch.uint8)
    return image_grid(_enlarged(pictures, scale), nrow=per_row, padding=max(1, scale // 2))


@one_picture_threads()
def feature_maps(model: nn.Module, image: torch.Tensor) -> dict[str, np.ndarray]:
    """What each convolution outputs for one uint8 picture (C,H,W), before its ReLU: per
    convolution's name a float32 (channels, height, width) array, in the order they run (a
    convolution used twice appears as 'name', then 'name (2)')."""
    x = normalize(image.reshape(1, *image.shape[-3:]).cpu())
    maps: dict[str, np.ndarray] = {}
    for name, _, output in _module_calls(inspection_copy(model), x,
                                         wanted=lambda m: isinstance(m, nn.Conv2d)):
        key, use = name, 1
        while key in maps:
            use += 1
            key = f"{name} ({use})"
        maps[key] = output[0].numpy().astype(np.float32)
    return maps


@one_picture_threads()
def feature_map_grid(maps: np.ndarray, scale: int = 4, per_row: int = 8) -> np.ndarray:
    """One convolution's feature maps (channels, H, W) as an HWC uint8 grid of grey pictures,
    all on the layer's one scale (darkest value black, brightest white), so that a channel that
    barely reacted looks flat."""
    values = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    low, span = values.min(), (values.max() - values.min()).clamp_min(1e-12)
    grey = ((values - low) / span * 255).round().to(torch.uint8)
    pictures = grey[:, None].expand(-1, 3, -1, -1)
    return image_grid(_enlarged(pictures, scale), nrow=per_row, padding=max(1, scale // 2))


def _module_calls(model: nn.Module, x: torch.Tensor,
                  wanted: Callable[[nn.Module], bool] | None = None
                  ) -> list[tuple[str, nn.Module, torch.Tensor]]:
    """(name, module, output) for each call of a leaf module (or each `wanted` one) while
    `model` runs on `x`, in the order they happen. `model` should be an inspection copy."""
    calls: list[tuple[str, nn.Module, torch.Tensor]] = []
    hooks = []
    for name, module in model.named_modules():
        is_leaf = not any(True for _ in module.children())
        if (wanted(module) if wanted else is_leaf and module is not model):
            def record(mod, _inputs, output, name=name):
                if isinstance(output, torch.Tensor):
                    calls.append((name, mod, output.detach()))
            hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad(), one_picture_threads():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def _own_parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def _kind(module: nn.Module) -> str:
    """A layer's kind in words."""
    if isinstance(module, nn.Conv2d):
        return f"convolution {module.kernel_size[0]}×{module.kernel_size[1]}"
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        size = module.kernel_size
        height, width = (size, size) if isinstance(size, int) else size
        return f"{'max' if isinstance(module, nn.MaxPool2d) else 'average'}-pool {height}×{width}"
    if isinstance(module, nn.Linear):
        return "fully connected"
    named = {nn.ReLU: "ReLU", nn.Flatten: "flatten", nn.Dropout: "dropout",
             nn.BatchNorm2d: "batch norm", nn.BatchNorm1d: "batch norm"}
    return named.get(type(module), type(module).__name__)


def _enlarged(pictures: torch.Tensor, scale: int) -> torch.Tensor:
    """(N,3,h,w) pictures with each pixel a scale x scale square."""
    return pictures.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3).contiguous()

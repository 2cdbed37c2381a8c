"""The networks a run can train, by name: the tutorial's Net and the others registered here.

Adding a model is one `register(ModelSpec(...))` call: the settings (TrainConfig.model), the
CLI's --model, the Train page's choice, checkpoints and evaluation all read this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cifar_core.data.dataset import CIFAR_SHAPE
from cifar_core.errors import ConfigError
from cifar_core.training.fastnet import FastNet, bias_lr_scales, whiten_from


class Net(nn.Module):
    """The CIFAR-10 tutorial's CNN: two conv+pool stages, three linear layers (62,006 params).
    `width` multiplies the convolutions' channels (1: the tutorial's 6 and 16)."""

    def __init__(self, num_classes: int = 10, width: int = 1,
                 shape: tuple[int, int, int] = CIFAR_SHAPE):
        super().__init__()
        channels, height, breadth = shape
        self.conv1 = nn.Conv2d(channels, 6 * width, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6 * width, 16 * width, 5)
        # The tutorial's 16 * 5 * 5: what is left of a 32 x 32 picture after each 5 x 5
        # convolution (4 pixels fewer) and each pooling (half).
        self.fc1 = nn.Linear(16 * width * net_side(height) * net_side(breadth), 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def net_side(side: int) -> int:
    """What is left of a picture's side of `side` pixels at Net's first linear layer (32: 5)."""
    return ((side - 4) // 2 - 4) // 2


def _pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pool as two element-wise maxima (rows, then columns): the same values as
    max_pool2d without its index bookkeeping, and vectorised in a channels-last layout, where
    max_pool2d with 6 or 16 channels is not. An odd last row or column is left out, as
    max_pool2d leaves it."""
    height, width = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
    t = x.permute(0, 2, 3, 1)[:, :height, :width]  # (B, H, W, C): contiguous if channels-last
    rows = torch.maximum(t[:, 0::2], t[:, 1::2])
    return torch.maximum(rows[:, :, 0::2], rows[:, :, 1::2]).permute(0, 3, 1, 2)


def net_inference_logits(net: Net, x: torch.Tensor) -> torch.Tensor:
    """Net.forward for inference, with max-pool before ReLU (they commute; ReLU then sees a
    quarter of the values) and the pooling above. Same logits as net(x) (tests/test_models)."""
    x = _pool(F.conv2d(x, net.conv1.weight, net.conv1.bias)).relu_()
    x = _pool(F.conv2d(x, net.conv2.weight, net.conv2.bias)).relu_()
    x = F.relu(net.fc1(torch.flatten(x, 1)))
    x = F.relu(net.fc2(x))
    return net.fc3(x)


@dataclass(frozen=True)
class ModelSpec:
    """One registered network: how to build it, and what the UI says about it."""

    name: str  # the setting's value, e.g. 'tutorial'
    title: str  # a few words for menus
    description: str  # one sentence for people who do not program
    # (number of classes, width or None for the standard one, image shape (channels, height,
    # width)) -> a freshly initialised network
    build: Callable[..., nn.Module]
    # The network class these apply to (checkpoints and evaluation find the spec by it).
    architecture: type[nn.Module] = nn.Module
    # A faster forward pass for inference, giving the same logits as model(x); None: model(x).
    inference: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
    # Whether cifar_core.training.speed's step with the backward pass written out can train it.
    written_out_step: bool = False
    # The width setting's range and its standard value on a CPU and on a GPU (None: the
    # network has no width setting).
    widths: tuple[int, int] | None = None
    cpu_width: int | None = None
    gpu_width: int | None = None
    # The weights in groups with their learning-rate multiple (None: one group at 1).
    lr_scales: Callable[[nn.Module], list[tuple[list, float]]] | None = None
    # Set up from the normalised training images before the first step (e.g. whitening).
    prepare: Callable[[nn.Module, torch.Tensor], None] | None = None
    # Trains and predicts faster with channels-last tensors on a CPU (oneDNN convolutions).
    channels_last: bool = False

    # The smallest picture side the network can take (its poolings need something to pool).
    min_side: int = 8
    # The attribute naming its last layer (an nn.Linear deciding between the classes): a
    # network started from another one's weights (training.transfer) gets a new one of these.
    head: str = "fc"

    def parameter_count(self, num_classes: int = 10, width: int | None = None,
                        shape: tuple[int, int, int] = CIFAR_SHAPE) -> int:
        """Number of trainable weights of this network for `num_classes` classes."""
        return count_parameters(self.build(num_classes, width, shape))

    def shape_problem(self, shape: tuple[int, int, int]) -> str | None:
        """Why this network cannot take pictures of `shape` (channels, height, width), in
        words, or None if it can."""
        if min(shape[1:]) >= self.min_side:
            return None
        others = [in_sentence(spec.title) for spec in MODELS.values()
                  if spec.name != self.name and min(shape[1:]) >= spec.min_side]
        advice = (f"choose {' or '.join(others)}" if others else
                  "choose a data set with larger pictures")
        return (f"The {self.title.lower()} needs pictures of at least {self.min_side} × "
                f"{self.min_side} pixels, and these are {shape[1]} × {shape[2]}: {advice}.")


def in_sentence(title: str) -> str:
    """A model's title inside a sentence: 'the fast network', but 'ResNet-18' as it is."""
    first_word = title.split()[0]
    return f"the {title[0].lower()}{title[1:]}" if first_word[1:].islower() else title


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Make a network choosable by its name everywhere (settings, CLI, dashboard)."""
    MODELS[spec.name] = spec
    return spec


register(ModelSpec(
    name="tutorial", title="Tutorial network",
    description="The small network of PyTorch's CIFAR-10 tutorial: two layers that look for "
                "patterns, then three that decide.",
    build=lambda num_classes, width=None, shape=CIFAR_SHAPE: Net(num_classes, shape=shape),
    architecture=Net, inference=net_inference_logits, written_out_step=True, min_side=16,
    head="fc3"))

register(ModelSpec(
    name="tutorial-wide", title="Tutorial network, twice as wide",
    description="The tutorial's network with twice as many pattern detectors in each of its "
                "two looking layers: slower, and it can learn a little more.",
    build=lambda num_classes, width=None, shape=CIFAR_SHAPE: Net(num_classes, 2, shape),
    architecture=Net, inference=net_inference_logits, min_side=16, head="fc3"))


def _fast(num_classes: int, width: int | None = None,
          shape: tuple[int, int, int] = CIFAR_SHAPE) -> nn.Module:
    return FastNet(num_classes, width or MODELS["fast"].cpu_width, shape)


def _resnet18(num_classes: int, width: int | None = None,
              shape: tuple[int, int, int] = CIFAR_SHAPE) -> nn.Module:
    """torchvision's ResNet-18 for small images (CIFAR-10's 32x32, any channels): a 3x3 first
    convolution with stride 1 and no max-pool (the ImageNet stem would shrink a CIFAR image to
    8x8 before the first block)."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(shape[0], 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


register(ModelSpec(
    name="fast", title="Fast network",  # airbench94's layout (cifar_core.training.fastnet)
    description="A modern small network built for fast training: it looks for patterns at "
                "three scales, with each layer's output kept in a steady range. Learns far "
                "more than the tutorial's in the same minutes.",
    build=_fast, widths=(4, 256), cpu_width=32, gpu_width=64, lr_scales=bias_lr_scales,
    prepare=whiten_from, channels_last=True, min_side=9, head="head"))

register(ModelSpec(
    name="resnet18", title="ResNet-18",  # torchvision's
    description="The well-known ResNet-18, adapted to small pictures: large and accurate, "
                "but slow without a GPU.",
    build=_resnet18, channels_last=True))


def model_names() -> tuple[str, ...]:
    """The registered model names, the default (tutorial) first."""
    return tuple(MODELS)


def model_spec(name: str) -> ModelSpec:
    """The registered model called `name`; ConfigError naming the choices if there is none."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ConfigError("model", f"There is no model '{name}': choose one of "
                                   f"{', '.join(MODELS)}.") from None


def inference_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(x), by the faster inference route its architecture registered, if any."""
    for spec in MODELS.values():
        if spec.inference is not None and type(model) is spec.architecture:
            return spec.inference(model, x)
    return model(x)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable weights."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

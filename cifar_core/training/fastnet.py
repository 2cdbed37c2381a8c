"""The fast network: the layout of KellerJordan's airbench94, at a width that suits the machine.

A first 2x2 convolution whose weights whiten the images' pixel patches (computed from the
training images, then frozen), three groups of conv-pool-BatchNorm-GELU-conv-BatchNorm-GELU,
a last max-pool and one linear layer. The BatchNorms learn only their shifts, whose learning
rate is BIAS_LR_SCALE times the others'. `width` is the first group's channels; the two others
have four times as many (airbench94: 64, 256, 256).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# airbench94's scaling of the BatchNorm shifts' learning rate (its 'bias_scaler').
BIAS_LR_SCALE = 64.0

# The whitening layer's patch size and the images its statistics come from.
WHITEN_KERNEL = 2
WHITEN_IMAGES = 5000


class _BatchNorm(nn.BatchNorm2d):
    """BatchNorm that learns only its shift (airbench94: its scale stays 1), with a running
    average that follows the last few batches (each new batch weighs 0.4: airbench94's
    momentum 0.6 in its own convention)."""

    def __init__(self, channels: int):
        super().__init__(channels, momentum=0.4, eps=1e-12)
        self.weight.requires_grad = False


class ConvGroup(nn.Module):
    """conv, max-pool, BatchNorm, GELU, conv, BatchNorm, GELU."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False)
        self.norm1 = _BatchNorm(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.norm2 = _BatchNorm(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class FastNet(nn.Module):
    """airbench94's network with the first group `width` channels wide (the others 4x)."""

    def __init__(self, num_classes: int = 10, width: int = 64,
                 shape: tuple[int, int, int] = (3, 32, 32)):  # (channels, height, width)
        super().__init__()
        channels, height, breadth = shape
        whitened = 2 * channels * WHITEN_KERNEL ** 2  # each patch direction, and its negative
        self.whiten = nn.Conv2d(channels, whitened, WHITEN_KERNEL)
        self.whiten.weight.requires_grad = False  # set from the data (whiten_from)
        widths = (width, 4 * width, 4 * width)
        self.group1 = ConvGroup(whitened, widths[0])
        self.group2 = ConvGroup(widths[0], widths[1])
        self.group3 = ConvGroup(widths[1], widths[2])
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.width = width
        # airbench94's last max-pool takes the 3 x 3 left of a 32 x 32 picture (the whitening
        # leaves 31 x 31, then three halvings): all that is left, whatever the picture's size,
        # so that the head sees one value per channel.
        self.last_pool = tuple(left_after_groups(side) for side in (height, breadth))
        for group in (self.group1, self.group2, self.group3):
            for conv in (group.conv1, group.conv2):
                _dirac_init(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.whiten(x))
        x = self.group3(self.group2(self.group1(x)))
        x = torch.flatten(F.max_pool2d(x, self.last_pool), 1)
        # airbench94 divides the logits by 9: it keeps the first steps' updates small.
        return self.head(x) / 9


def left_after_groups(side: int) -> int:
    """What is left of a picture's side of `side` pixels after the whitening and the three
    groups' max-pools (32: 3); 0 where the picture is too small for the network."""
    side -= WHITEN_KERNEL - 1
    for _ in range(3):
        side //= 2
    return side


def _dirac_init(conv: nn.Conv2d) -> None:
    """Make the first channels an identity, as airbench94 does (the rest keep their random
    start): at the start each group passes its input through, which speeds up early learning."""
    with torch.no_grad():
        n = min(conv.in_channels, conv.out_channels)
        nn.init.dirac_(conv.weight[:n])


@torch.no_grad()
def whiten_from(model: FastNet, images: torch.Tensor, eps: float = 5e-4) -> None:
    """Set the whitening layer's weights from normalised training images (N,C,H,W): the
    eigenvectors of their 2x2 patches' covariance, scaled so that each output has unit
    variance, and their negatives. Uses the first WHITEN_IMAGES images."""
    images = images[:WHITEN_IMAGES].float()
    k, channels = WHITEN_KERNEL, images.shape[1]
    patches = images.unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
    # One row per patch, in the order of a conv weight's (channel, row, column).
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, channels * k * k)
    patches = patches - patches.mean(dim=0)
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    directions = eigenvectors.T.reshape(-1, channels, k, k)
    weights = directions / torch.sqrt(eigenvalues + eps).view(-1, 1, 1, 1)
    model.whiten.weight.copy_(torch.cat([weights, -weights]).to(model.whiten.weight))


def bias_lr_scales(model: nn.Module) -> list[tuple[list[nn.Parameter], float]]:
    """The network's trainable weights in groups with their learning-rate scale: BatchNorm
    shifts BIAS_LR_SCALE, the rest 1."""
    shifts = [m.bias for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    ids = {id(p) for p in shifts}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    return [(rest, 1.0), (shifts, BIAS_LR_SCALE)]

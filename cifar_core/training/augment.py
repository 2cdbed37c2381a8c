"""Data augmentation and test-time augmentation, as batched tensor ops on the images' device.

Augmentation shows the network each training image a little changed each epoch (mirrored,
shifted by a pixel or two), so that it learns what a cat looks like rather than these 50,000
pictures. Test-time augmentation asks the trained network about a picture and its mirror
image (and shifted copies) and averages its answers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

AUGMENTATIONS = ("none", "flip", "flip+translate")
TEST_TIME_AUGMENTATIONS = ("none", "flip", "flip+translate")

# How far a training image may shift each way (airbench94: 2 pixels, mirrored at the edge).
TRANSLATE_PIXELS = 2


def flip(images: torch.Tensor, generator: torch.Generator,
         mirrored: torch.Tensor | None = None) -> torch.Tensor:
    """Each image (N,C,H,W) mirrored left-right with probability 1/2, drawn from `generator`
    (a CPU generator: the same draws on every device); or, where `mirrored` (N booleans) is
    given, the images it says, drawing nothing."""
    if mirrored is None:
        mirrored = torch.rand(len(images), generator=generator) < 0.5
    mirrored = mirrored.to(images.device).view(-1, 1, 1, 1)
    return torch.where(mirrored, images.flip(3), images)


def translate(images: torch.Tensor, generator: torch.Generator,
              pixels: int = TRANSLATE_PIXELS) -> torch.Tensor:
    """Each image (N,C,H,W) shifted by -pixels..pixels rows and columns (each drawn from
    `generator`), the edge mirrored into the gap: one gather for the whole batch."""
    n, _, height, width = images.shape
    padded = F.pad(images, (pixels,) * 4, mode="reflect")
    shifts = torch.randint(0, 2 * pixels + 1, (2, n), generator=generator).to(images.device)
    rows = shifts[0].view(n, 1, 1, 1) + torch.arange(height, device=images.device).view(1, 1, -1, 1)
    cols = shifts[1].view(n, 1, 1, 1) + torch.arange(width, device=images.device).view(1, 1, 1, -1)
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channel = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    return padded[batch, channel, rows, cols]


def augment(images: torch.Tensor, mode: str, generator: torch.Generator,
            mirrored: torch.Tensor | None = None) -> torch.Tensor:
    """The images augmented as `mode` says (one of AUGMENTATIONS); 'none' returns them as
    they are and draws nothing from the generator. `mirrored`: which images the flip mirrors
    (alternating_flips), instead of a draw."""
    if mode == "none":
        return images
    if mode not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {mode!r}")
    images = flip(images, generator, mirrored)
    return translate(images, generator) if mode == "flip+translate" else images


def alternating_flips(first: torch.Tensor, epoch: int) -> torch.Tensor:
    """Which pictures the flip mirrors in `epoch` (0-based) with the alternating flip
    (airbench94's derandomised flip): `first` (a boolean per picture, drawn once from the seed)
    in even epochs, its opposite in odd ones. Each picture is seen both ways every two epochs,
    where a fresh draw each epoch shows a quarter of them the same way twice running."""
    return first if epoch % 2 == 0 else ~first


def shifted(images: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The images moved by (rows, cols) pixels (positive: down and right), the edge mirrored
    into the gap."""
    n = max(abs(rows), abs(cols))
    if n == 0:
        return images
    padded = F.pad(images, (n,) * 4, mode="reflect")
    height, width = images.shape[2:]
    return padded[:, :, n - rows:n - rows + height, n - cols:n - cols + width]


def tta_logits(forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
               mode: str, unsure_below: float | None = None) -> torch.Tensor:
    """forward(images), averaged over the views `mode` asks for: 'flip' the images and their
    mirror images; 'flip+translate' (airbench94's multi-crop level 2) also both moved a pixel
    up-left and down-right, weighted as airbench94 does (half for the unmoved pair, a quarter
    for each moved one). `unsure_below` (selective test-time augmentation): only the pictures
    whose plain answer's top probability is below it get the views' average; the others keep
    their plain logits, untouched (None or 1: every picture gets them)."""
    if mode == "none":
        return forward(images)
    if unsure_below is None or unsure_below >= 1:
        return _views_logits(forward, images, mode)
    plain = forward(images)
    sure = torch.softmax(plain.float(), dim=1).amax(dim=1) >= unsure_below
    # Every picture's views are computed and the answers chosen per picture, a shape that
    # an exported graph (ONNX, TorchScript) keeps; inference computes the unsure ones only.
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return torch.where(sure.view(-1, 1), plain, _views_logits(forward, images, mode))
    unsure = torch.nonzero(~sure).flatten()
    if len(unsure) == 0:
        return plain
    logits = plain.clone()
    logits[unsure] = _views_logits(forward, images[unsure], mode).to(logits.dtype)
    return logits


def _views_logits(forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                  mode: str) -> torch.Tensor:
    """forward(images) averaged over every view of `mode` (not 'none')."""

    def with_mirror(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (forward(x) + forward(x.flip(3)))

    logits = with_mirror(images)
    if mode == "flip+translate":
        moved = 0.5 * (with_mirror(shifted(images, -1, -1)) + with_mirror(shifted(images, 1, 1)))
        logits = 0.5 * (logits + moved)
    return logits

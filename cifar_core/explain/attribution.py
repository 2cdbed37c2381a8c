"""One answer of a network explained: every class's probability, the answer in a sentence a
child understands, and where in the picture the network looked (attribution maps made with
Captum, PyTorch's interpretability library), drawn over the picture.

Attribution works on a copy of the network (inside.inspection_copy): the network itself keeps
its weights, mode and requires_grad flags.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

# Captum is imported with this module, not at the first map: importing it (and matplotlib, which
# it loads) takes about a second, better spent once while the page loads than on the first map.
from captum.attr import (
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Occlusion,
    Saliency,
)
from torch import nn

from cifar_core.data.dataset import normalize
from cifar_core.data.grids import enlarge
from cifar_core.explain.inside import convolutions, inspection_copy, one_picture_threads
from cifar_core.training.evaluation import predict_probabilities

NEAR_TIE = 0.05  # top two answers closer than this (5 points) are a tie for a child
UNSURE_BELOW = 0.30  # a top answer under this is "not sure at all"
OCCLUSION_SQUARE = 8  # pixels a side of the grey square occlusion moves over the picture
OCCLUSION_STEP = 2  # pixels it moves each time (smaller: smoother map, more forward passes)
INTEGRATION_STEPS = 32  # integrated gradients' steps from black to the picture
ONE_THREAD_UP_TO = 16  # so many pictures' probabilities take one_picture_threads()


def class_probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Every class's probability, (N, classes) summing to 1 per row, for uint8 pictures
    (N,3,32,32) or one picture (3,32,32) (then N = 1)."""
    batch = images.reshape(-1, *images.shape[-3:])
    if len(batch) <= ONE_THREAD_UP_TO:
        with one_picture_threads():
            return predict_probabilities(model, batch)
    return predict_probabilities(model, batch)


def answer_sentence(probabilities: Sequence[float] | torch.Tensor | np.ndarray,
                    classes: Sequence[str]) -> str:
    """The network's answer for one picture in a sentence a child understands, e.g. "The
    network is 87 % sure this is a cat; its second guess is dog, 9 %." Near-ties and very
    unsure answers are said as such."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    order = np.argsort(-p, kind="stable")
    first = classes[order[0]]
    if len(p) < 2:
        return f"The network says this is {_with_article(first)}."
    second, p1, p2 = classes[order[1]], p[order[0]], p[order[1]]
    if p1 < UNSURE_BELOW:
        return (f"The network is not sure at all: its best guess is {_with_article(first)}, "
                f"only {_percent(p1)}, then {second}, {_percent(p2)}.")
    if p1 - p2 < NEAR_TIE:
        return (f"The network cannot decide between {_with_article(first)} ({_percent(p1)}) and "
                f"{_with_article(second)} ({_percent(p2)}).")
    return (f"The network is {_percent(p1)} sure this is {_with_article(first)}; its second "
            f"guess is {second}, {_percent(p2)}.")


def probabilities_table(probabilities: torch.Tensor | np.ndarray, classes: Sequence[str],
                        names: Sequence[str]) -> pd.DataFrame:
    """One row per picture: its name, the top answer and every class's probability (0..1);
    what the page offers as a CSV for several uploaded pictures."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(len(names), len(classes))
    table = pd.DataFrame(p, columns=list(classes))
    table.insert(0, "answer", [classes[i] for i in p.argmax(axis=1)] if len(p) else [])
    table.insert(0, "picture", list(names))
    return table


def _percent(p: float) -> str:
    shown = round(p * 100)
    if shown >= 100 and p < 1:
        return "more than 99 %"
    if shown <= 0 and p > 0:
        return "less than 1 %"
    return f"{shown} %"


def _with_article(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


# Attribution maps ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AttributionMethod:
    """One way to show where the network looked."""

    name: str  # e.g. 'grad-cam'
    title: str  # a few words for menus
    description: str  # one sentence for people who do not program
    # (inspection copy, normalised (1,3,32,32) picture, class) -> (32,32) map, larger = more
    compute: Callable[[nn.Module, torch.Tensor, int], torch.Tensor]


def _grad_cam(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    names = convolutions(model, tuple(x.shape[1:]))
    if not names:
        raise ValueError("Grad-CAM needs a network with a convolution (nn.Conv2d).")
    last = dict(model.named_modules())[names[-1]]
    coarse = LayerGradCam(model, last).attribute(x, target=target, relu_attributions=True)
    # The last convolution sees the picture as a coarse grid (10 x 10 for the tutorial's Net);
    # stretched to the picture the usual Grad-CAM way.
    return LayerAttribution.interpolate(coarse, tuple(x.shape[2:]),
                                        interpolate_mode="bilinear")[0, 0]


def _integrated_gradients(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    black = torch.full_like(x, -1.0)  # uint8 0 after normalize
    attributions = IntegratedGradients(model).attribute(
        x.requires_grad_(), baselines=black, target=target, n_steps=INTEGRATION_STEPS)
    # Summed over the colours: what a pixel adds to the answer; what speaks against it is 0.
    return attributions[0].sum(dim=0).clamp_min(0)


def _saliency(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    return Saliency(model).attribute(x.requires_grad_(), target=target, abs=True)[0].amax(dim=0)


def _occlusion(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    # How sure, as log-odds (log p / (1 - p) of each class): a very sure answer's probability,
    # and its logarithm, sit at 1.0 and 0.0 in float32, where covering a part of the picture
    # changes them too little to register; the odds keep moving.
    def log_odds(inputs: torch.Tensor) -> torch.Tensor:
        scores = model(inputs)
        others = torch.stack([torch.cat([scores[:, :k], scores[:, k + 1:]], dim=1)
                              .logsumexp(dim=1) for k in range(scores.shape[1])], dim=1)
        return scores - others

    positions = ((x.shape[2] - OCCLUSION_SQUARE) // OCCLUSION_STEP + 1) * (
        (x.shape[3] - OCCLUSION_SQUARE) // OCCLUSION_STEP + 1)
    drop = Occlusion(log_odds).attribute(
        x, sliding_window_shapes=(x.shape[1], OCCLUSION_SQUARE, OCCLUSION_SQUARE),
        strides=(x.shape[1], OCCLUSION_STEP, OCCLUSION_STEP), baselines=0.0,  # 0: mid-grey
        target=target, perturbations_per_eval=positions)
    # How much less sure covering a pixel makes it; covering that makes it surer counts 0.
    return drop[0, 0].clamp_min(0)


ATTRIBUTION_METHODS: dict[str, AttributionMethod] = {method.name: method for method in (
    AttributionMethod(
        "grad-cam", "Grad-CAM",
        "The regions that the network's last pattern-finding layer found most in favour of "
        "its answer (a coarse map: that layer sees the picture in blocks).", _grad_cam),
    AttributionMethod(
        "integrated-gradients", "Integrated gradients",
        "The pixels that add most to the answer, measured by fading the picture in from "
        "black and adding up how the answer grows on the way.", _integrated_gradients),
    AttributionMethod(
        "saliency", "Saliency",
        "The pixels where the smallest change would change the answer most.", _saliency),
    AttributionMethod(
        "occlusion", "Occlusion",
        "Where hiding the picture under a small grey square, one place at a time, makes the "
        "network least sure of its answer.", _occlusion),
)}


def attribution(model: nn.Module, image: torch.Tensor, target: int | None = None,
                method: str = "grad-cam") -> np.ndarray:
    """Where the network looked to answer `target` (default: its own top answer) for one uint8
    picture (C,H,W), e.g. (3,32,32): a float32 (H,W) map scaled to 0..1 (1: where it looked
    most; all 0 when the method finds nothing for the answer). `method` is a key of
    ATTRIBUTION_METHODS. The model is not changed."""
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"No attribution method '{method}': choose one of "
                         f"{', '.join(ATTRIBUTION_METHODS)}.")
    # Gradients are needed even where the caller switched them off (a page in inference_mode).
    with torch.inference_mode(False), torch.enable_grad(), one_picture_threads():
        examined = inspection_copy(model)
        x = normalize(image.reshape(1, *image.shape[-3:]).cpu().clone())
        if target is None:
            with torch.no_grad():
                target = int(examined(x).argmax(dim=1))
        heat = ATTRIBUTION_METHODS[method].compute(examined, x, int(target))
    return _scaled_to_unit(heat.detach().float().numpy())


def _scaled_to_unit(heat: np.ndarray) -> np.ndarray:
    heat = np.nan_to_num(heat.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    heat = heat - heat.min()
    top = heat.max()
    return (heat / top if top > 0 else np.zeros_like(heat)).astype(np.float32)


# Drawing a map over the picture --------------------------------------------------------------

# Anchors of a dark-to-bright colour map (close to matplotlib's 'inferno'): dark purple where
# the network did not look, yellow-white where it looked most. Its brightness rises all the
# way, so the map reads without colour vision too.
_COLOUR_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9],
                            [252, 255, 164]], dtype=np.float32)


def heat_colours(heat: np.ndarray) -> np.ndarray:
    """A map of values in 0..1 (H,W) as HWC uint8 colours (dark purple 0 .. pale yellow 1)."""
    position = np.clip(np.asarray(heat, dtype=np.float32), 0, 1) * (len(_COLOUR_ANCHORS) - 1)
    low = np.minimum(position.astype(np.int64), len(_COLOUR_ANCHORS) - 2)
    fraction = (position - low)[..., None]
    colours = _COLOUR_ANCHORS[low] * (1 - fraction) + _COLOUR_ANCHORS[low + 1] * fraction
    return np.rint(colours).astype(np.uint8)


@one_picture_threads()
def overlay(image: torch.Tensor | np.ndarray, heat: np.ndarray, scale: int = 8,
            opacity: float = 0.5) -> np.ndarray:
    """The picture (uint8 (3,32,32) or (32,32,3)) enlarged `scale` times with sharp pixels, and
    the map (values 0..1, the picture's height and width) smoothly enlarged and blended over it
    in colour: HWC uint8 for display."""
    picture = enlarge(image, scale).astype(np.float32)
    smooth = F.interpolate(torch.as_tensor(np.asarray(heat, dtype=np.float32))[None, None],
                           size=picture.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    colours = heat_colours(smooth.clamp(0, 1).numpy()).astype(np.float32)
    return np.rint(picture * (1 - opacity) + colours * opacity).clip(0, 255).astype(np.uint8)

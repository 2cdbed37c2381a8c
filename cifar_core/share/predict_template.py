"""Name what a picture shows with the network in this folder.

    python predict.py PICTURE [PICTURE ...]

network.onnx needs only onnxruntime, numpy and Pillow (pip install onnxruntime numpy pillow);
network.pt (TorchScript) needs torch, numpy and Pillow. model_card.json, beside this file, says
which file, the class names, the picture size and the normalisation. A picture is prepared as
the dashboard's Try it prepares it: turned upright, transparency on white, its centre square
resized to the network's size (grey for a network of grey pictures), then normalised.
"""
# (cifar_core exports this file as the zip's predict.py: it must run without cifar_core.)

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# As the dashboard reads a picture (cifar_core/explain/photos.py read_photo): a JPEG is decoded
# at no less than this many pixels on its longer side, then reduced with Lanczos.
DISPLAY_SIDE = 512
SMALLEST_DRAFT = 32


def prepare(path: Path | str, shape, normalization: dict) -> np.ndarray:
    """The picture at `path` as the network's input: float32 (1, channels, height, width),
    normalised as (pixel / 255 - mean) / std per channel."""
    channels, height, width = shape
    picture = Image.open(path)
    if picture.format in ("JPEG", "MPO"):
        scale = min(1.0, DISPLAY_SIDE / max(picture.size))
        picture.draft(None, (max(SMALLEST_DRAFT, round(picture.size[0] * scale)),
                             max(SMALLEST_DRAFT, round(picture.size[1] * scale))))
    picture.seek(0)  # an animated picture: its first frame
    picture.load()
    with contextlib.suppress(Exception):  # unreadable orientation: the picture as stored
        picture = ImageOps.exif_transpose(picture)
    rgb = _as_rgb(picture)
    picture = rgb.convert("L") if channels == 1 else rgb
    side = min(rgb.size)
    left, top = (rgb.size[0] - side) // 2, (rgb.size[1] - side) // 2
    small = picture.resize((width, height), Image.Resampling.LANCZOS,
                           box=(left, top, left + side, top + side), reducing_gap=3.0)
    pixels = np.asarray(small, dtype=np.uint8).reshape(height, width, channels)
    pixels = pixels.transpose(2, 0, 1).astype(np.float32)
    mean = np.asarray(normalization["mean"], np.float32).reshape(channels, 1, 1)
    std = np.asarray(normalization["std"], np.float32).reshape(channels, 1, 1)
    return ((pixels / np.float32(255) - mean) / std)[None]


def _as_rgb(picture: Image.Image) -> Image.Image:
    """RGB: 16-bit grey made 8-bit, transparency laid on white."""
    if picture.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(picture, dtype=np.float64)
        if picture.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257
        picture = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    if picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return picture.convert("RGB")


def network_answers(folder: Path, card: dict):
    """A function from prepared pictures to every class's probability (N, classes)."""
    model_file = folder / card["file"]
    if card["format"] == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(model_file),
                                               providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda batch: session.run(None, {name: batch})[0]
    import torch

    model = torch.jit.load(str(model_file), map_location="cpu").eval()

    def answer(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch)).numpy()
    return answer


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    folder = Path(__file__).resolve().parent
    card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
    answer = network_answers(folder, card)
    classes = card["classes"]
    failed = 0
    for name in argv:
        try:
            batch = prepare(name, card["input"]["shape"][1:], card["input"]["normalization"])
        except FileNotFoundError:
            print(f"{name}: there is no such file.", file=sys.stderr)
            failed += 1
            continue
        except Exception:  # Pillow's errors for files that are not pictures, or damaged ones
            print(f"{Path(name).name} is not a picture this can read (or it is damaged): use a "
                  "JPEG, PNG, WebP, BMP or GIF file.", file=sys.stderr)
            failed += 1
            continue
        probabilities = answer(batch)[0]
        best = np.argsort(-probabilities)[:3]
        others = ", ".join(f"{classes[i]} {100 * probabilities[i]:.1f} %" for i in best[1:])
        print(f"{Path(name).name}: {classes[best[0]]} ({100 * probabilities[best[0]]:.1f} %)"
              + (f"; then {others}" if others else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Pictures for people: a data set's small images enlarged (sharp, not blurred), framed, gridded."""

from __future__ import annotations

import base64
import functools
import html
import io

import numpy as np
import torch
from PIL import Image

CORRECT_RGB = (34, 160, 70)
WRONG_RGB = (214, 40, 40)


def enlarge(image: torch.Tensor | np.ndarray, scale: int = 4) -> np.ndarray:
    """One uint8 image, (3,H,W) or (H,W,3), or grey (1,H,W) or (H,W), as HWC uint8 `scale` times
    larger, pixels kept square (a browser would blur a 32x32 picture shown at 128 px). A grey
    picture comes back with three equal channels, so that it can be framed in colour."""
    array = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 3 and array.shape[0] == 1:
        array = array.repeat(3, axis=0)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[2] != 3:
        array = array.transpose(1, 2, 0)
    return np.ascontiguousarray(array.repeat(scale, axis=0).repeat(scale, axis=1))


def framed(image: np.ndarray, rgb: tuple[int, int, int], width: int = 4) -> np.ndarray:
    """An HWC uint8 image with a coloured border of `width` pixels (drawn inside it)."""
    out = image.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = rgb, rgb, rgb, rgb
    return out


def tiles(images: torch.Tensor, scale: int = 4) -> list[np.ndarray]:
    """Each image of a (N,3,32,32) uint8 batch, enlarged."""
    return [enlarge(img, scale) for img in images]


def verdict_tiles(images: torch.Tensor, correct: list[bool] | np.ndarray,
                  scale: int = 4) -> list[np.ndarray]:
    """Enlarged images framed green where the prediction was right, red where it was wrong."""
    return [framed(enlarge(img, scale), CORRECT_RGB if ok else WRONG_RGB, width=max(2, scale))
            for img, ok in zip(images, correct, strict=True)]


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """uint8 (N,3,H,W) -> one HWC uint8 picture, as torchvision.utils.make_grid lays it out."""
    from torchvision.utils import make_grid

    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=255)
    return grid.permute(1, 2, 0).contiguous().numpy()


def png_bytes(image: np.ndarray) -> bytes:
    """An HWC uint8 picture as a PNG file's bytes: lossless, so enlarged pixels stay sharp
    squares (JPEG smears their edges)."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(out, format="PNG", compress_level=1)
    return out.getvalue()


@functools.lru_cache(maxsize=1024)
def _cached_png(shape: tuple[int, ...], raw: bytes) -> bytes:
    return png_bytes(np.frombuffer(raw, dtype=np.uint8).reshape(shape))


def encoded(image: np.ndarray) -> bytes:
    """png_bytes, encoded once per distinct picture in this process: the same tiles come back
    on every visit to a page (bench/RESULTS.md, issue 16)."""
    array = np.ascontiguousarray(image, dtype=np.uint8)
    return _cached_png(array.shape, array.tobytes())


def tiles_html(images: list[np.ndarray], captions: list[str]) -> str:
    """HWC uint8 pictures, each at its own size with its caption under it, in rows that wrap, as
    one piece of HTML with the pictures inline (data: URLs). One element and no picture
    requests: a browser draws 16 tiles as soon as the page's message arrives instead of
    fetching them one by one after it (bench/RESULTS.md, issue 16)."""
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} pictures but {len(captions)} captions")
    figures = []
    for image, caption in zip(images, captions, strict=True):
        height, width = image.shape[:2]
        source = base64.b64encode(encoded(image)).decode("ascii")
        text = html.escape(caption)
        figures.append(
            f'<figure style="margin:0;width:{width}px">'
            f'<img src="data:image/png;base64,{source}" width="{width}" height="{height}" '
            f'alt="{text}" style="display:block">'
            f'<figcaption style="font-size:0.875rem;opacity:0.6;text-align:center;'
            f'overflow-wrap:anywhere">{text}</figcaption></figure>')
    return ('<div class="cifar-tiles" style="display:flex;flex-wrap:wrap;gap:0.5rem 1rem">'
            + "".join(figures) + "</div>")

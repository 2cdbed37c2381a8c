"""A picture someone brings (an uploaded file, a camera shot) as the network's input.

Any size and most colour kinds are taken: the picture is turned upright (EXIF orientation),
made RGB (transparency on white; grey, palette, CMYK and 16-bit pictures converted), its centre
square is cut out and resized to the network's picture shape (CIFAR-10's 32 x 32 colour unless
told another; grey for a network of grey pictures). A file that cannot be used raises
ImageError with a sentence saying what to do, and a `reason` naming the kind of problem.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cifar_core.data.dataset import CIFAR_SHAPE
from cifar_core.errors import ImageError
from cifar_core.explain.uploads import read_upload, size_in_words

SIDE = CIFAR_SHAPE[-1]  # what a CIFAR-10 network sees: SIDE x SIDE pixels
# Formats we promise to read (the JPEG reader also opens the JPEGs with extra preview pictures
# that many phones write, which Pillow then calls MPO). Restricting Image.open to these also
# keeps the parsers of rarer formats away from uploaded bytes.
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
FORMAT_NAMES = "JPEG, PNG, WebP, BMP or GIF"
# The file endings of those formats: what an uploader lets through (and what it lists).
FILE_ENDINGS = ("jpg", "jpeg", "png", "webp", "bmp", "gif")
# Pictures over this are refused before they are decoded: a 48-megapixel phone photo fits;
# decoded, the largest takes about 256 MB. (PIL's own guard, which we also catch, only warns
# up to 89 million pixels and refuses above 179 million.)
MAX_PIXELS = 64_000_000
# Picture files over this are refused before they are read whole: any picture of our formats
# within MAX_PIXELS fits (the largest, an uncompressed 32-bit BMP, is 256 MB; a phone's JPEG a
# few MB), so a file never costs more memory than its largest decoded picture. The dashboard
# passes its own upload limit instead.
MAX_BYTES = 256 * 2**20
MIN_SIDE = 16  # fewer pixels a side carry too little to recognise anything
MAX_ASPECT = 8  # the centre square of a longer strip is a thin slice of it
DISPLAY_SIDE = 512  # the original is shown at most this many pixels on its longer side
# A picture read only for a network is decoded at no less than this many times the network's
# side: the Lanczos reduction after it then still sees several pixels per pixel it makes.
DRAFT_FACTOR = 4

# How files of our formats start (JPEG, PNG, GIF, WebP, BMP).
_OUR_FORMATS = re.compile(
    rb"^(\xff\xd8\xff|\x89PNG\r\n\x1a\n|GIF8[79]a|RIFF....WEBP|BM....\x00\x00\x00\x00)", re.S)
# What other picture formats start with, to name them instead of calling them "not a picture".
_OTHER_FORMATS = (
    (re.compile(rb"^....ftyp(heic|heix|hevc|heim|heis|mif1|msf1)", re.S),
     "a HEIC photo (the iPhone's own format)"),
    (re.compile(rb"^....ftyp(avif|avis)", re.S), "an AVIF picture"),
    (re.compile(rb"^(II\*\x00|MM\x00\*)"), "a TIFF picture"),
    (re.compile(rb"^%PDF"), "a PDF document"),
    (re.compile(rb"^\s*(<\?xml[^>]*>\s*)?<svg", re.I), "an SVG drawing"),
)


@dataclass(frozen=True)
class Photo:
    """An uploaded picture: what the network sees, and what people see."""

    name: str
    network_input: torch.Tensor  # uint8 (C, H, W), e.g. (3, 32, 32): the centre square, resized
    original: np.ndarray  # HWC uint8 RGB, upright, longer side at most DISPLAY_SIDE
    size: tuple[int, int]  # (width, height) of the uploaded picture, upright
    format: str  # as Pillow names it: 'JPEG', 'PNG', 'WEBP', 'BMP', 'GIF', 'MPO'


def read_photo(file: bytes | bytearray | memoryview | BinaryIO, name: str | None = None,
               max_bytes: int = MAX_BYTES,
               shape: tuple[int, int, int] = CIFAR_SHAPE, shown: bool = True) -> Photo:
    """The picture in `file` (its bytes, or a binary file such as Streamlit's UploadedFile)
    ready for a network of pictures of `shape` (Checkpoint.shape); ImageError with a sentence
    saying what to do if it cannot be used, a file over `max_bytes` before it is read whole.
    `name` (default: the file's own name) is how the messages call it. `shown=False`: only the
    network's input is wanted (a picture added to a set of your own): a JPEG is then decoded
    at no more than DRAFT_FACTOR times that size, and `original` is that input."""
    data, name = read_upload(file, name, max_bytes,
                             lambda name, size: _too_many_bytes(name, size, max_bytes))
    if not data:
        raise ImageError(f"{name} is empty (0 bytes): the upload may have failed. Choose the "
                         "file again, or another picture.", "empty")
    picture = _open(data, name)
    width, height = picture.size
    _check_size(name, width, height)
    if picture.format in ("JPEG", "MPO"):
        # Let the JPEG decoder itself scale down (by 1/2, 1/4 or 1/8) to no less than what is
        # shown, or what the network needs: a phone photo then decodes several times faster.
        needed = DISPLAY_SIDE if shown else DRAFT_FACTOR * max(shape[1:])
        scale = min(1.0, needed / max(width, height))
        picture.draft(None, (max(SIDE, round(width * scale)), max(SIDE, round(height * scale))))
    _decode(picture, name)
    upright = _upright(picture)
    turned = upright.size != picture.size  # a quarter turn swaps width and height
    rgb = _as_rgb(upright, name)
    network_input = _centre_square(rgb, shape)
    return Photo(name=name, network_input=network_input,
                 original=_for_display(rgb) if shown else _as_shown(network_input),
                 size=(height, width) if turned else (width, height), format=str(picture.format))


def network_inputs(photos: list[Photo],
                   shape: tuple[int, int, int] | None = None) -> torch.Tensor:
    """The photos' network inputs as one uint8 (N, C, H, W) batch: each made `shape` where
    given (photo_input), else as read."""
    if not photos:
        return torch.empty(0, *(shape or CIFAR_SHAPE), dtype=torch.uint8)
    return torch.stack([photo.network_input if shape is None else photo_input(photo, shape)
                        for photo in photos])


def photo_input(photo: Photo, shape: tuple[int, int, int]) -> torch.Tensor:
    """The photo as a network of pictures of `shape` sees it: the input it was read with where
    that has the shape, else its centre square made that shape from the picture people see
    (a photo kept while another network, of other pictures, is chosen)."""
    if tuple(photo.network_input.shape) == tuple(shape):
        return photo.network_input
    return _centre_square(Image.fromarray(photo.original), shape)


def _open(data: bytes, name: str) -> Image.Image:
    """The picture's header read (nothing decoded yet)."""
    try:
        return Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        if _OUR_FORMATS.match(data[:16]):
            # It starts as one of our formats, but Pillow's reader gave up on the header.
            raise ImageError(_damaged(name), "damaged") from None
        raise ImageError(_not_a_picture(data, name), "not_image" if not _other_format(data)
                         else "unsupported") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # (the warning arrives as an exception where warnings are made errors)
        raise ImageError(_too_large(name, _pixels_in(str(exc))), "too_large") from None
    except Exception:
        # The start looked like one of our formats but the header that follows is broken.
        raise ImageError(_damaged(name), "damaged") from None


def _not_a_picture(data: bytes, name: str) -> str:
    other = _other_format(data)
    if other:
        return (f"{name} is {other}, which this cannot read: save it as {FORMAT_NAMES} "
                "(a photo app or editor can export it) and upload that.")
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    renamed = (f", although its name ends in .{extension}"
               if extension in ("jpg", "jpeg", "png", "webp", "bmp", "gif") else "")
    return (f"{name} is not a picture{renamed}. Upload a photo or picture file "
            f"({FORMAT_NAMES}).")


def _other_format(data: bytes) -> str | None:
    head = data[:256]
    return next((what for pattern, what in _OTHER_FORMATS if pattern.match(head)), None)


def _check_size(name: str, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(_too_large(name, width * height, (width, height)), "too_large")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{name} is only {width} × {height} pixels: too small to show anything "
                         f"(the network looks at {SIDE} × {SIDE}; at least {MIN_SIDE} pixels "
                         "a side are needed). Use a larger picture.", "too_small")
    if max(width, height) > MAX_ASPECT * min(width, height):
        ratio = max(width, height) / min(width, height)
        raise ImageError(f"{name} is {width:,} × {height:,} pixels, one side {ratio:.0f} times "
                         "the other: the network looks at the middle square, which would be a "
                         "thin slice of it. Crop it closer to a square (at most "
                         f"{MAX_ASPECT} to 1) and upload it again.", "too_thin")


def _too_large(name: str, pixels: int | None, size: tuple[int, int] | None = None) -> str:
    limit = f"pictures of up to {MAX_PIXELS // 1_000_000} megapixels can be used"
    if size:
        what = f"{size[0]:,} × {size[1]:,} pixels ({pixels / 1e6:,.0f} megapixels)"
    elif pixels:
        what = f"{pixels / 1e6:,.0f} megapixels"
    else:
        what = "far too large"
    return (f"{name} is {what}; {limit}. Make it smaller (a photo editor's 'resize' or "
            "'export') and upload it again.")


def _too_many_bytes(name: str, size: int, max_bytes: int) -> ImageError:
    return ImageError(f"{name} is {size_in_words(size)}; a picture file may be at most "
                      f"{size_in_words(max_bytes)}. Save it smaller (as a JPEG, or resized in a "
                      "photo editor) and upload it again.", "too_large")


def _pixels_in(pil_message: str) -> int | None:
    found = re.search(r"\((\d+) pixels\)", pil_message)
    return int(found.group(1)) if found else None


def _damaged(name: str) -> str:
    return (f"{name} is damaged or cut short: it could not be read to the end. Upload it "
            "again, or open it in a photo viewer and save a fresh copy.")


def _decode(picture: Image.Image, name: str) -> None:
    try:
        picture.seek(0)  # GIF, animated WebP: the first frame
        picture.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(_too_large(name, _pixels_in(str(exc))), "too_large") from None
    except MemoryError:
        raise ImageError(_too_large(name, None), "too_large") from None
    except Exception:
        raise ImageError(_damaged(name), "damaged") from None


def _upright(picture: Image.Image) -> Image.Image:
    """Turned as its EXIF orientation says (phones store portrait photos lying on their side)."""
    try:
        return ImageOps.exif_transpose(picture)
    except Exception:
        return picture  # unreadable EXIF: shown as stored, which is better than refusing it


def _as_rgb(picture: Image.Image, name: str) -> Image.Image:
    try:
        if picture.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
            picture = _eight_bit_grey(picture)
        if picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in picture.info:
            rgba = picture.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return picture.convert("RGB")
    except Exception:
        raise ImageError(f"{name} uses a colour format this cannot convert ({picture.mode}): "
                         "save it as an ordinary RGB JPEG or PNG and upload that.",
                         "unsupported") from None


def _eight_bit_grey(picture: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer) grey as 8-bit grey; Pillow's own convert would clip it."""
    values = np.asarray(picture, dtype=np.float64)
    if picture.mode.startswith("I;16") or values.max(initial=0) > 255:
        values = values / 257  # 65535 -> 255
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def _centre_square(rgb: Image.Image, shape: tuple[int, int, int] = CIFAR_SHAPE) -> torch.Tensor:
    """The picture's centre square as uint8 (C, H, W) of `shape`: grey (its brightness) for
    one channel."""
    channels, height_out, width_out = shape
    picture = rgb.convert("L") if channels == 1 else rgb
    width, height = rgb.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    # Lanczos in Pillow widens its kernel with the reduction, so every source pixel counts
    # (no aliasing); reducing_gap first box-averages very large pictures, which is faster.
    small = picture.resize((width_out, height_out), Image.Resampling.LANCZOS,
                           box=(left, top, left + side, top + side), reducing_gap=3.0)
    pixels = np.asarray(small, dtype=np.uint8).reshape(height_out, width_out, channels)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()


def _as_shown(network_input: torch.Tensor) -> np.ndarray:
    """A network input (C, H, W) as a picture people see (H, W, 3)."""
    pixels = network_input.permute(1, 2, 0).numpy()
    return np.ascontiguousarray(np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels)


def _for_display(rgb: Image.Image) -> np.ndarray:
    width, height = rgb.size
    scale = DISPLAY_SIDE / max(width, height)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.array(rgb, dtype=np.uint8)

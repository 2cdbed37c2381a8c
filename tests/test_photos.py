"""explain.photos: pictures people bring, in every format and colour kind, as network input;
each kind of unusable file refused with its own message. Every picture is made here with PIL."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_core.errors import CifarError, ImageError
from cifar_core.explain.photos import (
    DISPLAY_SIDE,
    MAX_ASPECT,
    MAX_PIXELS,
    MIN_SIDE,
    network_inputs,
    read_photo,
)

RED, GREEN, BLUE, WHITE = (220, 20, 30), (20, 200, 40), (30, 40, 210), (255, 255, 255)


def encoded(picture: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    picture.save(out, fmt, **options)
    return out.getvalue()


def saved(tmp_path: Path, name: str, data: bytes) -> bytes:
    """Write the file as a user would have it, and read it back as an upload's bytes."""
    (tmp_path / name).write_bytes(data)
    return (tmp_path / name).read_bytes()


def solid(colour, size=(48, 40), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def close_to(pixel, colour, tolerance=12) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, dtype=int) - np.asarray(colour)) <= tolerance))


def noisy(size=(256, 256), seed=0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def png_16bit_rgb(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), from uint16 (H, W, 3)."""
    height, width, _ = pixels.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height pixels: a decompression bomb's header."""
    data = bytearray(encoded(solid(RED, (16, 16)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


# Formats and colour kinds ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt, extension, tolerance", [
    ("JPEG", "jpg", 12), ("PNG", "png", 0), ("WEBP", "webp", 12), ("BMP", "bmp", 0),
    ("GIF", "gif", 12)])
def test_each_format_gives_the_network_a_32x32_picture_of_its_colours(tmp_path, fmt, extension,
                                                                       tolerance):
    picture = solid(GREEN, (60, 45))
    photo = read_photo(saved(tmp_path, f"green.{extension}", encoded(picture, fmt)),
                       f"green.{extension}")
    assert photo.network_input.shape == (3, 32, 32) and photo.network_input.dtype == torch.uint8
    assert photo.original.shape == (45, 60, 3) and photo.original.dtype == np.uint8
    assert photo.size == (60, 45) and photo.format == fmt
    assert close_to(photo.network_input[:, 16, 16], GREEN, tolerance)
    assert close_to(photo.original[20, 30], GREEN, tolerance)


def test_an_animated_gif_gives_its_first_frame(tmp_path):
    frames = [solid(RED), solid(BLUE), solid(GREEN)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    photo = read_photo(saved(tmp_path, "moving.gif", data))
    assert close_to(photo.network_input[:, 16, 16], RED)


def test_an_animated_webp_gives_its_first_frame(tmp_path):
    frames = [solid(BLUE), solid(RED)]
    data = encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    photo = read_photo(saved(tmp_path, "moving.webp", data))
    assert close_to(photo.network_input[:, 16, 16], BLUE, 2)


def test_a_phones_multi_picture_jpeg_gives_its_main_picture(tmp_path):
    """Many phones write MPO: a JPEG followed by more pictures (previews, a second lens)."""
    data = encoded(solid(RED), "MPO", save_all=True, append_images=[solid(BLUE)])
    photo = read_photo(saved(tmp_path, "phone.jpg", data))
    assert photo.format == "MPO" and close_to(photo.network_input[:, 16, 16], RED)


@pytest.mark.parametrize("mode, colour", [("RGBA", (*RED, 0)), ("LA", (90, 0)),
                                          ("RGBA", (*BLUE, 0))])
def test_transparent_pixels_are_white(tmp_path, mode, colour):
    picture = solid(colour, (40, 40), mode)
    if mode == "RGBA":  # the left half opaque
        picture.paste((*colour[:3], 255), (0, 0, 20, 40))
    photo = read_photo(saved(tmp_path, "clear.png", encoded(picture, "PNG")))
    assert close_to(photo.network_input[:, 16, 31], WHITE, 0)
    if mode == "RGBA":
        assert close_to(photo.network_input[:, 16, 0], colour[:3], 2)


def test_half_transparent_pixels_are_blended_on_white(tmp_path):
    picture = solid((0, 0, 0, 128), (40, 40), "RGBA")
    photo = read_photo(saved(tmp_path, "half.png", encoded(picture, "PNG")))
    assert close_to(photo.network_input[:, 16, 16], (127, 127, 127), 2)


def test_a_palette_picture_with_a_transparent_colour_is_white_there(tmp_path):
    picture = Image.new("P", (40, 40), 1)
    picture.putpalette([*RED, *BLUE] + [0] * 762)
    picture.paste(0, (0, 0, 20, 40))
    data = encoded(picture, "PNG", transparency=1)
    photo = read_photo(saved(tmp_path, "palette.png", data))
    assert close_to(photo.network_input[:, 16, 0], RED, 0)
    assert close_to(photo.network_input[:, 16, 31], WHITE, 0)


def test_grey_black_and_white_and_palette_pictures_become_rgb(tmp_path):
    grey = read_photo(saved(tmp_path, "grey.png", encoded(solid(90, mode="L"), "PNG")))
    assert close_to(grey.network_input[:, 5, 5], (90, 90, 90), 0)
    assert grey.original.shape[2] == 3
    bits = solid(1, mode="1")
    assert close_to(read_photo(encoded(bits, "PNG")).network_input[:, 5, 5], WHITE, 0)
    palette = Image.new("P", (40, 40), 1)
    palette.putpalette([*RED, *BLUE] + [0] * 762)
    assert close_to(read_photo(encoded(palette, "BMP")).network_input[:, 5, 5], BLUE, 0)


def test_a_cmyk_jpeg_becomes_rgb(tmp_path):
    magenta = solid((0, 255, 0, 0), mode="CMYK")  # full magenta ink, nothing else
    photo = read_photo(saved(tmp_path, "print.jpg", encoded(magenta, "JPEG", quality=95)))
    assert close_to(photo.network_input[:, 16, 16], (255, 0, 255), 12)


def test_16_bit_grey_keeps_its_brightness(tmp_path):
    values = np.full((40, 40), 32768, dtype=np.uint16)  # half of 65535
    picture = Image.fromarray(values)
    assert picture.mode.startswith("I")
    photo = read_photo(saved(tmp_path, "deep.png", encoded(picture, "PNG")))
    assert close_to(photo.network_input[:, 16, 16], (128, 128, 128), 1)


def test_16_bit_colour_keeps_its_colours(tmp_path):
    pixels = np.zeros((40, 40, 3), dtype=np.uint16)
    pixels[...] = (65535, 32768, 0)
    photo = read_photo(saved(tmp_path, "deep-colour.png", png_16bit_rgb(pixels)))
    assert close_to(photo.network_input[:, 16, 16], (255, 128, 0), 1)


# Orientation, cropping, size ------------------------------------------------------------------

@pytest.mark.parametrize("orientation, top, bottom", [(6, RED, BLUE), (8, BLUE, RED)])
def test_exif_orientation_turns_the_photo_upright(tmp_path, orientation, top, bottom):
    """Stored lying on its side (red left, blue right), as a phone stores a portrait photo; EXIF
    orientation 6 says 'turn 90 degrees clockwise to show', 8 'anticlockwise'."""
    stored = solid(RED, (64, 32))
    stored.paste(BLUE, (32, 0, 64, 32))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(stored, "JPEG", quality=95, exif=exif.tobytes())
    photo = read_photo(saved(tmp_path, "portrait.jpg", data))
    assert photo.size == (32, 64) and photo.original.shape == (64, 32, 3)
    assert close_to(photo.original[5, 16], top, 15) and close_to(photo.original[58, 16], bottom, 15)
    # The network sees the middle square of the upright photo: top half, bottom half.
    assert close_to(photo.network_input[:, 4, 16], top, 15)
    assert close_to(photo.network_input[:, 28, 16], bottom, 15)


def test_the_network_sees_the_centre_square(tmp_path):
    bands = solid(RED, (96, 32))
    bands.paste(GREEN, (32, 0, 64, 32))
    bands.paste(BLUE, (64, 0, 96, 32))
    photo = read_photo(encoded(bands, "PNG"))
    seen = photo.network_input.permute(1, 2, 0).reshape(-1, 3).numpy()
    assert np.all(np.abs(seen.astype(int) - GREEN) <= 1)


def test_a_sharp_edge_is_resized_without_ringing_far_from_it(tmp_path):
    """Left half black, right half white, 4000 x 4000: resized, the far columns stay pure."""
    picture = solid((0, 0, 0), (4000, 4000))
    picture.paste(WHITE, (2000, 0, 4000, 4000))
    photo = read_photo(encoded(picture, "PNG"))
    assert photo.network_input[:, :, :14].max() <= 2 and photo.network_input[:, :, 18:].min() >= 253


def test_large_photos_are_shown_downscaled(tmp_path):
    photo = read_photo(encoded(solid(RED, (2000, 1000)), "PNG"))
    assert photo.original.shape == (DISPLAY_SIDE // 2, DISPLAY_SIDE, 3)
    assert photo.size == (2000, 1000)
    jpeg = read_photo(encoded(solid(BLUE, (4000, 3000)), "JPEG"))  # decoded scaled down
    assert jpeg.original.shape == (384, 512, 3) and jpeg.size == (4000, 3000)
    assert close_to(jpeg.network_input[:, 16, 16], BLUE, 12)


def test_a_real_photo_sized_jpeg_matches_its_full_decode(tmp_path):
    """The JPEG decoder's own downscaling gives nearly what decoding it whole would."""
    picture = noisy((1200, 900)).resize((300, 225)).resize((1200, 900), Image.Resampling.BICUBIC)
    data = encoded(picture, "JPEG", quality=92)
    full = Image.open(io.BytesIO(data)).convert("RGB")
    square = full.resize((32, 32), Image.Resampling.LANCZOS, box=(150, 0, 1050, 900))
    seen = read_photo(data).network_input.permute(1, 2, 0).numpy().astype(int)
    assert np.abs(seen - np.asarray(square, dtype=int)).mean() < 4


def test_a_file_object_and_its_name_are_taken():
    upload = io.BytesIO(encoded(solid(RED), "PNG"))
    upload.name = "holiday.png"
    assert read_photo(upload).name == "holiday.png"
    with pytest.raises(ImageError, match="^notes.png is empty"):
        read_photo(_named(b"", "notes.png"))


def _named(data: bytes, name: str) -> io.BytesIO:
    upload = io.BytesIO(data)
    upload.name = name
    return upload


def test_network_inputs_stacks_photos():
    photos = [read_photo(encoded(solid(colour), "PNG")) for colour in (RED, GREEN)]
    batch = network_inputs(photos)
    assert batch.shape == (2, 3, 32, 32) and batch.dtype == torch.uint8
    assert torch.equal(batch[1], photos[1].network_input)
    assert network_inputs([]).shape == (0, 3, 32, 32)


def test_limits_at_their_edges_are_accepted():
    read_photo(encoded(solid(RED, (MIN_SIDE, MIN_SIDE)), "PNG"))
    read_photo(encoded(solid(RED, (MAX_ASPECT * 20, 20)), "PNG"))


# Files that cannot be used: each its own reason and an actionable sentence --------------------

def refusal(data: bytes, name: str) -> ImageError:
    with pytest.raises(ImageError) as caught:
        read_photo(data, name)
    error = caught.value
    assert isinstance(error, CifarError)
    message = str(error)
    assert message.startswith(name) and "Traceback" not in message and message.endswith(".")
    return error


def test_an_empty_file(tmp_path):
    error = refusal(saved(tmp_path, "cat.jpg", b""), "cat.jpg")
    assert error.reason == "empty" and "empty (0 bytes)" in str(error)


def test_a_text_file_renamed_png(tmp_path):
    data = saved(tmp_path, "cat.png", b"Dear diary, today I saw a cat.\n" * 20)
    error = refusal(data, "cat.png")
    assert error.reason == "not_image"
    assert str(error) == ("cat.png is not a picture, although its name ends in .png. Upload a "
                          "photo or picture file (JPEG, PNG, WebP, BMP or GIF).")


def test_random_bytes_are_not_a_picture():
    error = refusal(bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)),
                    "blob")
    assert error.reason == "not_image" and "not a picture." in str(error)


@pytest.mark.parametrize("head, what", [
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"), (b"%PDF-1.7\n", "PDF"),
    (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">', "SVG")])
def test_other_formats_are_named(head, what):
    error = refusal(head + bytes(300), "scan")
    assert error.reason == "unsupported" and what in str(error) and "JPEG" in str(error)


def test_a_tiff_is_named():
    error = refusal(encoded(solid(RED), "TIFF"), "scan.tif")
    assert error.reason == "unsupported" and "TIFF" in str(error)


@pytest.mark.parametrize("width, height", [(30_000, 30_000), (10_000, 10_000), (9_000, 9_000)])
def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path, width, height):
    """30000^2 is over PIL's own refusal (179M pixels), 10000^2 between its warning and its
    refusal, 9000^2 under PIL's warning (89M) but over ours: each said in megapixels."""
    assert width * height > MAX_PIXELS
    data = saved(tmp_path, "bomb.png", png_claiming(width, height))
    assert len(data) < 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        error = refusal(data, "bomb.png")
    assert error.reason == "too_large"
    assert f"{width * height // 1_000_000:,} megapixels" in str(error)
    assert f"up to {MAX_PIXELS // 1_000_000} megapixels" in str(error)


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read():
    """As a network file is (explain.network_imports): an upload that says its size is refused
    without reading a terabyte into memory, with its size in the message."""
    class Huge:
        name, size = "holiday.jpg", 10**12

        def getvalue(self):
            raise AssertionError("read")

        read = getvalue

    error = refusal(Huge(), "holiday.jpg")
    assert error.reason == "too_large" and "931.3 GB" in str(error)


def test_a_picture_at_the_callers_size_limit_is_taken_and_a_larger_stream_is_not_read_whole():
    data = encoded(noisy((64, 64)), "PNG")
    assert read_photo(data, "noise.png", max_bytes=len(data)).size == (64, 64)

    class Stream:  # a file that does not say its size
        asked = []

        def read(self, size=-1):
            self.asked.append(size)
            return data if size < 0 else data[:size]

    with pytest.raises(ImageError, match="^noise.png is .* a picture file may be at most") as \
            caught:
        read_photo(Stream(), "noise.png", max_bytes=len(data) - 10)
    assert caught.value.reason == "too_large" and Stream.asked == [len(data) - 9]


def test_pils_bomb_warning_made_an_error_is_still_too_large(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        error = refusal(png_claiming(10_000, 10_000), "bomb.png")
    assert error.reason == "too_large" and "100 megapixels" in str(error)


def test_a_real_bomb_pil_would_decode_is_refused(tmp_path):
    """A 12000 x 6000 PNG of one colour: 400 KB that would take 216 MB decoded."""
    data = encoded(Image.new("L", (12_000, 6_000), 0), "PNG")
    assert len(data) < 500_000
    error = refusal(saved(tmp_path, "flat.png", data), "flat.png")
    assert error.reason == "too_large" and "12,000 × 6,000 pixels (72 megapixels)" in str(error)


@pytest.mark.parametrize("size", [(1, 1), (10, 40), (MIN_SIDE - 1, 100)])
def test_a_tiny_picture(size):
    error = refusal(encoded(solid(RED, size), "PNG"), "tiny.png")
    assert error.reason == "too_small"
    assert f"only {size[0]} × {size[1]} pixels" in str(error)
    assert f"at least {MIN_SIDE} pixels" in str(error)


@pytest.mark.parametrize("size", [(20_000, 200), (200, 20_000), (MAX_ASPECT * 20 + 1, 20)])
def test_a_thin_strip(size):
    error = refusal(encoded(Image.new("L", size, 50), "PNG"), "strip.png")
    assert error.reason == "too_thin"
    assert f"{size[0]:,} × {size[1]:,} pixels" in str(error)
    assert f"at most {MAX_ASPECT} to 1" in str(error)


def test_a_truncated_jpeg(tmp_path):
    data = encoded(noisy(), "JPEG", quality=90)
    error = refusal(saved(tmp_path, "cut.jpg", data[:len(data) // 2]), "cut.jpg")
    assert error.reason == "damaged" and "damaged or cut short" in str(error)


def test_a_jpeg_with_a_corrupt_header(tmp_path):
    data = bytearray(encoded(noisy(), "JPEG"))
    data[3:300] = bytes(297)  # the start marker stays, what follows is garbage
    error = refusal(saved(tmp_path, "broken.jpg", bytes(data)), "broken.jpg")
    assert error.reason == "damaged"


def test_a_truncated_png_and_gif(tmp_path):
    for fmt, name in (("PNG", "cut.png"), ("GIF", "cut.gif")):
        data = encoded(noisy(), fmt)
        assert refusal(data[:len(data) // 3], name).reason == "damaged"


def test_a_cifar_sized_picture_is_taken_pixel_for_pixel():
    pixels = np.asarray(noisy((32, 32), seed=3))
    photo = read_photo(encoded(Image.fromarray(pixels), "PNG"))
    assert np.array_equal(photo.network_input.permute(1, 2, 0).numpy(), pixels)
    assert np.array_equal(photo.original, pixels)


def test_a_picture_read_only_for_a_network_has_nearly_the_same_input_as_one_shown():
    """A set of your own keeps only the network's input (shown=False decodes a JPEG smaller):
    what it stores differs little from Try it's input for the same photo (the JPEG decoder's
    own reduction: under 2 % of the range on average)."""
    rng = np.random.default_rng(3)
    # Smooth colours (a photo, not noise): a blurred random field, 3000 x 2000 pixels.
    small = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    picture = Image.fromarray(small).resize((3000, 2000), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=92)
    shown = read_photo(buffer.getvalue(), "photo.jpg")
    kept = read_photo(buffer.getvalue(), "photo.jpg", shown=False)
    difference = (shown.network_input.int() - kept.network_input.int()).abs()
    assert kept.network_input.shape == shown.network_input.shape == (3, 32, 32)
    assert difference.float().mean() < 0.02 * 255
    assert kept.original.shape == (32, 32, 3) and shown.original.shape == (341, 512, 3)
    grey = read_photo(buffer.getvalue(), "photo.jpg", shape=(1, 28, 28), shown=False)
    assert grey.original.shape == (28, 28, 3)

"""Pictures for people: enlarged without blur, framed by verdict."""

import numpy as np
import torch

from cifar_core.data.grids import (
    CORRECT_RGB,
    WRONG_RGB,
    enlarge,
    framed,
    image_grid,
    tiles,
    verdict_tiles,
)


def test_enlarge_keeps_pixels_square_and_accepts_chw_or_hwc():
    image = torch.arange(3 * 2 * 2, dtype=torch.uint8).reshape(3, 2, 2)
    big = enlarge(image, scale=3)
    assert big.shape == (6, 6, 3) and big.dtype == np.uint8
    hwc = image.permute(1, 2, 0).numpy()
    assert (big[:3, :3] == hwc[0, 0]).all() and (big[3:, 3:] == hwc[1, 1]).all()
    assert (enlarge(hwc, scale=3) == big).all()


def test_framed_draws_a_border_and_leaves_the_middle():
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    out = framed(image, (1, 2, 3), width=2)
    assert (out[0, 5] == (1, 2, 3)).all() and (out[9, 9] == (1, 2, 3)).all()
    assert (out[5, 5] == 0).all() and (image == 0).all()


def test_tiles_and_verdict_frames():
    batch = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    assert [t.shape for t in tiles(batch, scale=2)] == [(64, 64, 3)] * 2
    right, wrong = verdict_tiles(batch, [True, False], scale=2)
    assert tuple(right[0, 0]) == CORRECT_RGB and tuple(wrong[0, 0]) == WRONG_RGB
    assert tuple(right[32, 32]) == (128, 128, 128)


def test_image_grid_is_hwc_uint8_laid_out_like_make_grid(tiny_data):
    from torchvision.utils import make_grid

    images = tiny_data.test_images[:10]
    grid = image_grid(images, nrow=4, padding=2)

    reference = make_grid(images, nrow=4, padding=2, pad_value=255)
    assert grid.dtype == np.uint8
    assert grid.shape == (reference.shape[1], reference.shape[2], 3)
    assert grid.shape == (3 * 34 + 2, 4 * 34 + 2, 3)  # 3 rows of 4, 2-pixel borders
    assert np.array_equal(grid[2:34, 2:34], images[0].permute(1, 2, 0).numpy())
    assert np.array_equal(grid[36:68, 2:34], images[4].permute(1, 2, 0).numpy())
    assert (grid[:2] == 255).all() and (grid[:, :2] == 255).all()


def test_png_bytes_keep_every_pixel_and_encoded_reuses_the_first_encoding():
    import io

    from PIL import Image

    from cifar_core.data.grids import encoded, png_bytes

    rng = np.random.default_rng(0)
    picture = enlarge(rng.integers(0, 256, (3, 32, 32), dtype=np.uint8), 3)
    decoded = np.asarray(Image.open(io.BytesIO(png_bytes(picture))))
    assert np.array_equal(decoded, picture)  # lossless: the enlarged pixels stay sharp
    first = encoded(picture)
    assert encoded(picture.copy()) is first  # the same picture again: no second encoding
    other = picture.copy()
    other[0, 0, 0] ^= 1
    assert encoded(other) != first  # one pixel differs: its own encoding


def test_tiles_html_holds_each_picture_inline_with_its_caption_escaped():
    import base64
    import html
    import io
    import re

    import pytest
    from PIL import Image

    from cifar_core.data.grids import tiles_html

    rng = np.random.default_rng(1)
    pictures = tiles(torch.from_numpy(rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)), 2)
    captions = ["cat", "✗ dog (91%) · is <cat> & co", 'a "quoted" one']
    page = tiles_html(pictures, captions)
    found = re.findall(r'<img src="data:image/png;base64,([^"]+)" width="(\d+)" height="(\d+)" '
                       r'alt="([^"]*)"', page)
    assert len(found) == 3
    for (data, width, height, alt), picture, caption in zip(found, pictures, captions,
                                                           strict=True):
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
        assert np.array_equal(decoded, picture)  # each picture, in its place, pixel for pixel
        assert (int(width), int(height)) == (64, 64)  # shown at its own size: no blur
        assert html.unescape(alt) == caption
    # What a caption says cannot become markup.
    assert "<cat>" not in page and "&lt;cat&gt; &amp; co" in page
    assert [html.unescape(c) for c in re.findall(r"<figcaption[^>]*>([^<]*)</figcaption>", page)] \
        == captions
    with pytest.raises(ValueError, match="3 pictures but 2 captions"):
        tiles_html(pictures, captions[:2])

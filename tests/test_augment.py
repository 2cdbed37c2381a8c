"""training.augment: flips and shifts as batched tensor ops, seeded; test-time augmentation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cifar_core.training.augment import (
    AUGMENTATIONS,
    TRANSLATE_PIXELS,
    augment,
    flip,
    shifted,
    translate,
    tta_logits,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def distinct_images(n: int = 16, channels: int = 3, height: int = 8, width: int = 8):
    """Images in which every pixel value differs (so a moved pixel can be told apart)."""
    return torch.arange(n * channels * height * width, dtype=torch.float32).view(
        n, channels, height, width)


# --- flip --------------------------------------------------------------------------------------

def test_flip_gives_each_image_or_its_exact_mirror_and_both_occur():
    image = torch.arange(6, dtype=torch.float32).view(1, 1, 2, 3)  # [[0,1,2],[3,4,5]]
    mirror = torch.tensor([[[[2.0, 1, 0], [5, 4, 3]]]])
    batch = image.repeat(64, 1, 1, 1)
    out = flip(batch, gen(0))
    assert out.shape == batch.shape and out.dtype == batch.dtype
    is_image = (out == image).flatten(1).all(1)
    is_mirror = (out == mirror).flatten(1).all(1)
    assert bool((is_image | is_mirror).all())
    assert 0 < int(is_mirror.sum()) < 64  # each image decides alone


def test_flip_keeps_an_image_with_its_channels_together():
    images = distinct_images(32)
    out = flip(images, gen(3))
    for original, result in zip(images, out, strict=True):
        assert torch.equal(result, original) or torch.equal(result, original.flip(2))


# --- translate ---------------------------------------------------------------------------------

def crops_of(image: torch.Tensor, pixels: int) -> dict[tuple[int, int], torch.Tensor]:
    """Every crop of the reflect-padded image at offsets -pixels..pixels, by (rows, cols)."""
    padded = F.pad(image[None], (pixels,) * 4, mode="reflect")[0]
    h, w = image.shape[1:]
    return {(dr, dc): padded[:, pixels + dr:pixels + dr + h, pixels + dc:pixels + dc + w]
            for dr in range(-pixels, pixels + 1) for dc in range(-pixels, pixels + 1)}


def test_translate_gives_each_image_as_a_crop_of_its_reflect_padded_self():
    images = distinct_images(40)
    out = translate(images, gen(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    offsets = set()
    for original, result in zip(images, out, strict=True):
        [offset] = [o for o, crop in crops_of(original, TRANSLATE_PIXELS).items()
                    if torch.equal(crop, result)]
        offsets.add(offset)
    assert len(offsets) > 5  # the shifts vary from image to image
    assert (0, 0) in crops_of(images[0], TRANSLATE_PIXELS)


def test_a_reflected_shift_by_hand():
    """One row 0..4 shifted: whatever the draw, the values are those a mirror at the edge
    gives (the edge pixel not repeated)."""
    row = torch.tensor([0.0, 1, 2, 3, 4]).view(1, 1, 1, 5).repeat(1, 1, 5, 1)
    by_hand = {  # columns read from the padded row 2 1 | 0 1 2 3 4 | 3 2
        -2: [2.0, 3, 4, 3, 2], -1: [1.0, 2, 3, 4, 3], 0: [0.0, 1, 2, 3, 4],
        1: [1.0, 0, 1, 2, 3], 2: [2.0, 1, 0, 1, 2]}
    for seed in range(10):
        out = translate(row, gen(seed))[0, 0, 0].tolist()
        assert out in by_hand.values()
    assert shifted(row, 0, 1)[0, 0, 0].tolist() == by_hand[1]
    assert shifted(row, 0, -2)[0, 0, 0].tolist() == by_hand[-2]


def test_translate_on_an_image_as_small_as_its_shift_still_reflects():
    image = distinct_images(4, 1, 3, 3)
    out = translate(image, gen(0))
    for original, result in zip(image, out, strict=True):
        assert any(torch.equal(crop, result) for crop in crops_of(original, 2).values())


# --- shifted -----------------------------------------------------------------------------------

def test_shifted_moves_the_picture_down_and_right_for_positive_shifts():
    images = distinct_images(2, 3, 6, 6)
    down_right = shifted(images, 1, 1)
    assert torch.equal(down_right[:, :, 1:, 1:], images[:, :, :-1, :-1])
    up_left = shifted(images, -1, -1)
    assert torch.equal(up_left[:, :, :-1, :-1], images[:, :, 1:, 1:])
    right_two = shifted(images, 0, 2)
    assert torch.equal(right_two[:, :, :, 2:], images[:, :, :, :-2])
    assert torch.equal(right_two[:, :, :, 0], images[:, :, :, 2])  # mirrored at the edge
    assert torch.equal(shifted(images, 0, 0), images)
    assert torch.equal(shifted(images, 2, -1)[:, :, 2:, :-1], images[:, :, :-2, 1:])


# --- augment: modes and seeds ------------------------------------------------------------------

@pytest.mark.parametrize("mode", [m for m in AUGMENTATIONS if m != "none"])
def test_the_same_seed_gives_the_same_augmentation_and_another_seed_another(mode):
    images = distinct_images(32)
    first = augment(images, mode, gen(5))
    assert first.shape == images.shape and first.dtype == images.dtype
    assert torch.equal(first, augment(images, mode, gen(5)))
    assert not torch.equal(first, augment(images, mode, gen(6)))
    assert not torch.equal(first, images)


def test_flip_and_translate_both_happen():
    images = distinct_images(64)
    out = augment(images, "flip+translate", gen(2))
    mirrored = sum(any(torch.equal(crop, result)
                       for crop in crops_of(original.flip(2), TRANSLATE_PIXELS).values())
                   and not any(torch.equal(crop, result)
                               for crop in crops_of(original, TRANSLATE_PIXELS).values())
                   for original, result in zip(images, out, strict=True))
    assert 0 < mirrored < 64
    moved = sum(not torch.equal(r, o) and not torch.equal(r, o.flip(2))
                for o, r in zip(images, out, strict=True))
    assert moved > 0


def test_none_returns_the_images_and_draws_nothing():
    images = distinct_images(8)
    generator = gen(9)
    state = generator.get_state()
    assert augment(images, "none", generator) is images
    assert torch.equal(generator.get_state(), state)
    augment(images, "flip", generator)  # (where a real mode does draw)
    assert not torch.equal(generator.get_state(), state)


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="rotate"):
        augment(distinct_images(2), "rotate", gen(0))


# --- test-time augmentation --------------------------------------------------------------------

def left_weighted(x: torch.Tensor) -> torch.Tensor:
    """A 'network' that tells left from right and up from down: logits of 2 classes."""
    w = torch.arange(x.shape[3], dtype=x.dtype)
    h = torch.arange(x.shape[2], dtype=x.dtype)
    return torch.stack([(x * w).sum((1, 2, 3)), (x * h[:, None]).sum((1, 2, 3))], dim=1)


def test_no_tta_is_the_forward_pass():
    images = torch.randn(3, 3, 8, 8)
    assert torch.equal(tta_logits(left_weighted, images, "none"), left_weighted(images))


def test_flip_tta_is_the_mean_over_the_picture_and_its_mirror():
    images = torch.randn(3, 3, 8, 8)
    expected = (left_weighted(images) + left_weighted(images.flip(3))) / 2
    assert torch.allclose(tta_logits(left_weighted, images, "flip"), expected)
    assert not torch.allclose(expected, left_weighted(images))


def test_flip_translate_tta_weighs_the_unmoved_pair_half_and_each_moved_pair_a_quarter():
    images = torch.randn(3, 3, 8, 8)

    def pair(x):
        return (left_weighted(x) + left_weighted(x.flip(3))) / 2

    expected = (0.5 * pair(images) + 0.25 * pair(shifted(images, -1, -1))
                + 0.25 * pair(shifted(images, 1, 1)))
    got = tta_logits(left_weighted, images, "flip+translate")
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, tta_logits(left_weighted, images, "flip"), atol=1e-3)

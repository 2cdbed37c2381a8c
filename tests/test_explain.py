"""explain.attribution: probabilities, the answer in a sentence, attribution maps, overlays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cifar_core.data.dataset import OFFICIAL_CLASSES
from cifar_core.explain.attribution import (
    ATTRIBUTION_METHODS,
    answer_sentence,
    attribution,
    class_probabilities,
    heat_colours,
    overlay,
    probabilities_table,
)
from cifar_core.training.evaluation import predict_probabilities
from cifar_core.training.models import Net, model_names, model_spec

METHODS = tuple(ATTRIBUTION_METHODS)


def pictures(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def seeded_net(seed: int = 0, **options) -> Net:
    torch.manual_seed(seed)
    return Net(**options).eval()


# Probabilities and the sentence ----------------------------------------------------------------

def test_probabilities_sum_to_one_and_are_predicts():
    model, images = seeded_net(), pictures(5)
    probabilities = class_probabilities(model, images)
    assert probabilities.shape == (5, 10)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(probabilities, predict_probabilities(model, images), atol=1e-6)
    one = class_probabilities(model, images[2])
    assert one.shape == (1, 10) and torch.allclose(one[0], probabilities[2], atol=1e-6)


def test_probabilities_of_many_pictures_match_too():
    model, images = seeded_net(), pictures(40)
    assert torch.allclose(class_probabilities(model, images),
                          predict_probabilities(model, images), atol=1e-6)


def hand_made(**by_class: float) -> np.ndarray:
    p = np.zeros(len(OFFICIAL_CLASSES))
    rest = 1 - sum(by_class.values())
    others = [c for c in OFFICIAL_CLASSES if c not in by_class]
    for name in others:
        p[OFFICIAL_CLASSES.index(name)] = rest / len(others)
    for name, value in by_class.items():
        p[OFFICIAL_CLASSES.index(name)] = value
    return p


def test_the_sentence_of_a_clear_answer():
    assert answer_sentence(hand_made(cat=0.87, dog=0.09), OFFICIAL_CLASSES) == (
        "The network is 87 % sure this is a cat; its second guess is dog, 9 %.")


def test_the_sentence_says_an_before_a_vowel_and_takes_a_tensor():
    p = torch.tensor(hand_made(airplane=0.6, ship=0.3))
    assert answer_sentence(p, OFFICIAL_CLASSES) == (
        "The network is 60 % sure this is an airplane; its second guess is ship, 30 %.")


def test_the_sentence_of_a_near_tie():
    assert answer_sentence(hand_made(dog=0.46, cat=0.44), OFFICIAL_CLASSES) == (
        "The network cannot decide between a dog (46 %) and a cat (44 %).")


def test_the_sentence_of_a_very_unsure_answer():
    assert answer_sentence(hand_made(frog=0.22, deer=0.12), OFFICIAL_CLASSES) == (
        "The network is not sure at all: its best guess is a frog, only 22 %, then deer, 12 %.")
    # Nearly the same for every class: unsure says it better than a tie between two.
    assert answer_sentence(hand_made(frog=0.12, cat=0.11), OFFICIAL_CLASSES) == (
        "The network is not sure at all: its best guess is a frog, only 12 %, then cat, 11 %.")


def test_the_sentence_never_says_100_or_0_percent_of_what_is_not():
    p = hand_made(truck=0.998, automobile=0.0015)
    assert answer_sentence(p, OFFICIAL_CLASSES) == (
        "The network is more than 99 % sure this is a truck; its second guess is automobile, "
        "less than 1 %.")


def test_the_sentence_with_two_classes_and_one():
    assert answer_sentence([0.3, 0.7], ("cat", "owl")) == (
        "The network is 70 % sure this is an owl; its second guess is cat, 30 %.")
    assert answer_sentence([1.0], ("cat",)) == "The network says this is a cat."


def test_probabilities_table_for_a_csv():
    p = np.array([hand_made(cat=0.8), hand_made(ship=0.5)])
    table = probabilities_table(p, OFFICIAL_CLASSES, ["a.jpg", "b.png"])
    assert list(table.columns) == ["picture", "answer", *OFFICIAL_CLASSES]
    assert list(table["answer"]) == ["cat", "ship"] and table.loc[0, "cat"] == pytest.approx(0.8)
    assert "a.jpg,cat," in table.to_csv(index=False)


# Attribution maps ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_a_unit_map_for_every_registered_model(name, method):
    torch.manual_seed(1)
    model = model_spec(name).build(10).eval()
    heat = attribution(model, pictures(1, seed=3)[0], method=method)
    assert heat.shape == (32, 32) and heat.dtype == np.float32
    assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
    assert heat.max() == pytest.approx(1.0) and heat.min() == pytest.approx(0.0)


def test_each_method_says_what_it_shows():
    for method in ATTRIBUTION_METHODS.values():
        assert method.title and method.description.endswith(".")
        assert 40 < len(method.description) < 200


class LeftHalfNet(nn.Module):
    """Sees only the picture's left half (the right half is multiplied by 0 before the first
    convolution); class 0's score is the sum of its last convolution's positive outputs."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                conv.weight.abs_()
                conv.bias.zero_()
            self.fc.weight.copy_(torch.tensor([[1.0] * 4, [-1.0] * 4]))
            self.fc.bias.zero_()
        mask = torch.zeros(1, 1, 32, 32)
        mask[..., :16] = 1
        self.register_buffer("left", mask)

    def forward(self, x):
        x = torch.relu(self.conv1(x * self.left))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


def bright_noise() -> torch.Tensor:
    return torch.randint(160, 256, (3, 32, 32), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("method", METHODS)
def test_maps_are_brighter_where_the_answer_comes_from(method):
    heat = attribution(LeftHalfNet().eval(), bright_noise(), target=0, method=method)
    left, right = heat[:, :14].mean(), heat[:, 20:].mean()
    assert heat.std() > 0.05  # not a constant map
    assert left > 0.2 and right < 0.25 * left, (left, right)
    assert heat[:, 26:].max() < 0.05  # far from the seen half nothing counts


def test_occlusion_still_sees_where_a_completely_sure_network_looked():
    model = LeftHalfNet().eval()
    with torch.no_grad():
        model.fc.weight.mul_(10)
    assert class_probabilities(model, bright_noise())[0, 0] == 1.0  # in float32
    heat = attribution(model, bright_noise(), target=0, method="occlusion")
    assert heat[:, :14].mean() > 0.5 and heat[:, 22:].max() == 0


@pytest.mark.parametrize("method", ["saliency", "integrated-gradients", "occlusion"])
def test_on_the_tutorials_net_pixels_it_cannot_see_get_nothing(method):
    """Net with fc1's weights for the pooled grid's columns 2-4 set to 0 answers from the
    picture's columns 0-19 only (receptive field of pooled columns 0-1)."""
    model = seeded_net(2)
    with torch.no_grad():
        model.fc1.weight.view(120, 16, 5, 5)[..., 2:] = 0
    heat = attribution(model, pictures(1, seed=4)[0], method=method)
    assert heat[:, :20].max() == pytest.approx(1.0)
    assert heat[:, 27:].max() < 1e-6


def test_the_target_class_chooses_what_is_explained():
    model = LeftHalfNet().eval()
    # Class 1's score is minus class 0's: Grad-CAM finds nothing in its favour on a bright
    # picture, and says so with an all-zero map.
    assert attribution(model, bright_noise(), target=1, method="grad-cam").max() == 0
    assert attribution(model, bright_noise(), target=0, method="grad-cam").max() == 1
    # By default the network's own answer is explained: class 0 here.
    assert np.array_equal(attribution(model, bright_noise(), method="occlusion"),
                          attribution(model, bright_noise(), target=0, method="occlusion"))


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("training", [False, True])
def test_explaining_does_not_change_the_model(training):
    model = seeded_net(3)
    model.fc3.weight.requires_grad_(False)
    model.train(training)
    before = state_of(model)
    for method in METHODS:
        attribution(model, pictures(1)[0], method=method)
    class_probabilities(model, pictures(2))
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(m.training is training for m in model.modules())
    assert not model.fc3.weight.requires_grad and model.fc2.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks
               for m in model.modules())
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())


def test_the_thread_count_is_put_back():
    threads = torch.get_num_threads()
    model, image = seeded_net(), pictures(1)[0]
    overlay(image, attribution(model, image, method="occlusion"))
    class_probabilities(model, image)
    assert torch.get_num_threads() == threads


def test_a_caller_without_gradients_still_gets_maps():
    model, image = seeded_net(), pictures(1)[0]
    expected = attribution(model, image, method="saliency")
    with torch.inference_mode():
        assert np.array_equal(attribution(model, image, method="saliency"), expected)
    with torch.no_grad():
        assert np.array_equal(attribution(model, image, method="grad-cam"),
                              attribution(model, image, method="grad-cam"))


def test_grad_cam_of_a_network_without_convolutions_says_so():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with pytest.raises(ValueError, match="needs a network with a convolution"):
        attribution(model, pictures(1)[0], method="grad-cam")
    assert attribution(model, pictures(1)[0], method="saliency").shape == (32, 32)


def test_an_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="grad-cam, integrated-gradients, saliency, occlusion"):
        attribution(seeded_net(), pictures(1)[0], method="magic")


# Overlay ---------------------------------------------------------------------------------------

def test_heat_colours_run_from_dark_to_pale_yellow():
    colours = heat_colours(np.array([[0.0, 0.5, 1.0]]))
    assert colours.shape == (1, 3, 3) and colours.dtype == np.uint8
    assert tuple(colours[0, 0]) == (0, 0, 4) and tuple(colours[0, 2]) == (252, 255, 164)
    assert colours[0, 1].sum() > colours[0, 0].sum()


def test_overlay_blends_the_map_over_the_enlarged_picture():
    white = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    heat = np.zeros((32, 32), dtype=np.float32)
    heat[:, 16:] = 1
    drawn = overlay(white, heat, scale=8)
    assert drawn.shape == (256, 256, 3) and drawn.dtype == np.uint8
    assert tuple(drawn[100, 10]) == (128, 128, 130)  # white half-covered by the darkest colour
    assert tuple(drawn[100, 250]) == (254, 255, 210)  # and by the brightest
    hwc = overlay(white.permute(1, 2, 0).numpy(), heat, scale=4)
    assert hwc.shape == (128, 128, 3)


def test_overlay_keeps_the_pictures_pixels_sharp():
    image = pictures(1)[0]
    drawn = overlay(image, np.zeros((32, 32), dtype=np.float32), scale=4, opacity=0.0)
    assert np.array_equal(drawn[::4, ::4], image.permute(1, 2, 0).numpy())
    assert np.array_equal(drawn[3::4, 3::4], image.permute(1, 2, 0).numpy())

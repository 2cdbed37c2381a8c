"""cifar_core.explain.inside: the layer table, the first layer's filters, feature maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cifar_core.data.dataset import normalize
from cifar_core.explain.inside import (
    LayerRow,
    convolutions,
    feature_map_grid,
    feature_maps,
    first_layer_filters,
    inspection_copy,
    layer_table,
)
from cifar_core.training.models import Net, count_parameters, model_names, model_spec


def picture(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def net(**options) -> Net:
    torch.manual_seed(0)
    return Net(**options).eval()


def test_the_tutorials_layer_table():
    assert layer_table(net()) == [
        LayerRow("input", "picture", (3, 32, 32), 0),
        LayerRow("conv1", "convolution 5×5", (6, 28, 28), 456),
        LayerRow("pool", "max-pool 2×2", (6, 14, 14), 0),
        LayerRow("conv2", "convolution 5×5", (16, 10, 10), 2416),
        LayerRow("pool", "max-pool 2×2", (16, 5, 5), 0),  # Net uses one pool layer twice
        LayerRow("fc1", "fully connected", (120,), 48120),
        LayerRow("fc2", "fully connected", (84,), 10164),
        LayerRow("fc3", "fully connected", (10,), 850),
    ]


@pytest.mark.parametrize("name", model_names())
def test_parameter_counts_add_up_to_the_models(name):
    model = model_spec(name).build(10)
    rows = layer_table(model)
    # Every weight a layer holds, the fixed ones too (the fast network's whitening).
    assert sum(row.parameters for row in rows) == sum(p.numel() for p in model.parameters())
    assert sum(row.parameters for row in rows) >= count_parameters(model)
    assert rows[-1].output_shape == (10,)


class SharedAndIdle(nn.Module):
    """One convolution used twice, and a layer forward never reaches."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4))
        self.idle = nn.Linear(2, 2)

    def forward(self, x):
        return self.head(self.conv(torch.relu(self.conv(x))))


def test_a_layer_used_twice_counts_once_and_an_unused_one_still_counts():
    model = SharedAndIdle()
    rows = layer_table(model)
    assert [row.name for row in rows] == ["input", "conv", "conv", "head.0", "head.1", "idle"]
    assert [row.parameters for row in rows] == [0, 84, 0, 0, 12292, 6]
    assert rows[-1].kind == "fully connected (not used)"
    # Every weight a layer holds, the fixed ones too (the fast network's whitening).
    assert sum(row.parameters for row in rows) == sum(p.numel() for p in model.parameters())
    assert sum(row.parameters for row in rows) >= count_parameters(model)
    assert list(feature_maps(model, picture())) == ["conv", "conv (2)"]


def test_convolutions_in_the_order_they_run():
    assert convolutions(net()) == ["conv1", "conv2"]
    assert convolutions(SharedAndIdle()) == ["conv"]


@pytest.mark.parametrize("width", [1, 2])
def test_feature_maps_per_convolution(width):
    model, image = net(width=width), picture()
    maps = feature_maps(model, image)
    assert {name: m.shape for name, m in maps.items()} == {
        "conv1": (6 * width, 28, 28), "conv2": (16 * width, 10, 10)}
    assert all(m.dtype == np.float32 for m in maps.values())
    with torch.no_grad():
        conv1 = model.conv1(normalize(image[None]))[0].numpy()
    np.testing.assert_allclose(maps["conv1"], conv1, atol=1e-5)


def test_feature_map_grid():
    maps = feature_maps(net(), picture())
    grid = feature_map_grid(maps["conv2"], scale=4, per_row=8)
    # 16 maps of 10x10 enlarged to 40x40, 8 a row, 2 pixels between and around
    assert grid.shape == (2 * 42 + 2, 8 * 42 + 2, 3) and grid.dtype == np.uint8
    tiles = grid[2:42, 2:42]
    assert np.array_equal(tiles[..., 0], tiles[..., 2])  # grey
    inner = grid[2:-2, 2:-2]
    assert inner.min() == 0  # the layer's lowest value is black


def test_first_layer_filters_grid():
    model = net()
    grid = first_layer_filters(model, scale=8, per_row=8)
    # 6 filters of 5x5 enlarged to 40x40, in one row, 4 pixels between and around
    assert grid.shape == (40 + 8, 6 * 44 + 4, 3) and grid.dtype == np.uint8
    for k in range(6):
        tile = grid[4:44, 4 + 44 * k: 44 + 44 * k]
        assert tile.min() == 0 and tile.max() == 255  # each stretched on its own
        assert np.array_equal(tile[::8, ::8], tile[7::8, 7::8])  # pixels kept square
    weights = model.conv1.weight.detach()[0]
    brightest = np.unravel_index(int(weights.argmax()), weights.shape)  # (colour, row, column)
    tile = grid[4:44, 4:44]
    assert tile[brightest[1] * 8, brightest[2] * 8, brightest[0]] == 255
    wide = first_layer_filters(net(width=2), scale=4, per_row=6)
    assert wide.shape == (2 * 22 + 2, 6 * 22 + 2, 3)


def test_a_grey_input_first_layer_is_drawn_grey():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, 2))
    grid = first_layer_filters(model, scale=2, per_row=4, input_shape=(1, 32, 32))
    assert grid.shape == (6 + 2, 4 * 7 + 1, 3)
    assert np.array_equal(grid[..., 0], grid[..., 1])
    assert layer_table(model, input_shape=(1, 32, 32))[1].output_shape == (4, 30, 30)


@pytest.mark.parametrize("training", [False, True])
def test_looking_inside_does_not_change_the_model(training):
    model = net().train(training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layer_table(model)
    first_layer_filters(model)
    feature_maps(model, picture())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(m.training is training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_inspection_copy_is_a_separate_eval_copy():
    model = net().train()
    examined = inspection_copy(model)
    assert examined is not model and not examined.training and model.training
    assert not any(p.requires_grad for p in examined.parameters())
    with torch.no_grad():
        examined.conv1.weight.zero_()
    assert model.conv1.weight.abs().sum() > 0
    x = normalize(picture()[None])
    assert not torch.allclose(examined(x), model.eval()(x))


def test_the_thread_count_is_put_back():
    threads = torch.get_num_threads()
    model = net()
    layer_table(model)
    feature_map_grid(feature_maps(model, picture())["conv1"])
    first_layer_filters(model)
    assert torch.get_num_threads() == threads

"""training.fastnet: airbench94's layout, its whitening layer, its start and its groups."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from conftest import in_memory_data
from torch import nn

from cifar_core.data.dataset import normalize
from cifar_core.training.fastnet import WHITEN_KERNEL, FastNet, bias_lr_scales, whiten_from
from cifar_core.training.models import count_parameters

PATCH = 3 * WHITEN_KERNEL ** 2  # values in one 2x2 patch of a colour image: 12


def images(n: int = 200, seed: int = 0) -> torch.Tensor:
    """Normalised synthetic images (each a class colour plus noise: neighbouring pixels and
    channels correlated)."""
    return normalize(in_memory_data(train_n=n, test_n=10, seed=seed).train_images)


def test_width_sets_the_channels_of_each_group_and_the_output_is_one_score_per_class():
    torch.manual_seed(0)
    net = FastNet(num_classes=7, width=8)
    assert net(torch.randn(3, 3, 32, 32)).shape == (3, 7)
    assert (net.group1.conv1.out_channels, net.group2.conv1.out_channels,
            net.group3.conv2.out_channels) == (8, 32, 32)
    assert net.head.in_features == 32 and net.width == 8
    assert count_parameters(FastNet(width=16)) > count_parameters(net)


def test_the_whitening_layer_makes_the_patches_uncorrelated_with_unit_variance():
    torch.manual_seed(0)
    net, x = FastNet(width=8), images()
    whiten_from(net, x)
    with torch.no_grad():
        out = F.conv2d(x, net.whiten.weight)  # (the bias only shifts the mean)
    values = out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])
    covariance = torch.cov(values.T)
    first = covariance[:PATCH, :PATCH]
    assert torch.allclose(first, torch.eye(PATCH), atol=0.05), first.diagonal()
    # The other half are the same directions with their sign flipped.
    assert torch.allclose(out[:, PATCH:], -out[:, :PATCH])
    # The raw patches were far from that: the check can tell.
    raw = x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, PATCH)
    assert not torch.allclose(torch.cov(raw.T), torch.eye(PATCH), atol=0.05)


def test_the_whitening_weights_are_frozen_while_the_rest_learns():
    torch.manual_seed(0)
    net, x = FastNet(width=4), images(40)
    whiten_from(net, x)
    whiten, conv = net.whiten.weight.detach().clone(), net.group1.conv1.weight.detach().clone()
    assert not net.whiten.weight.requires_grad
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    labels = torch.arange(len(x)) % 10
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(net(x), labels).backward()
        optimizer.step()
    assert torch.equal(net.whiten.weight, whiten)
    assert not torch.equal(net.group1.conv1.weight, conv)


def test_the_batchnorms_learn_their_shifts_only():
    net = FastNet(width=4)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6
    for norm in norms:
        assert not norm.weight.requires_grad and norm.bias.requires_grad
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
    [(rest, rest_scale), (shifts, scale)] = bias_lr_scales(net)
    assert rest_scale == 1.0 and scale > 1
    assert {id(p) for p in shifts} == {id(n.bias) for n in norms}
    assert all(p.requires_grad for p in rest)


def test_dirac_start_makes_each_convolutions_first_channels_pass_their_input_through():
    torch.manual_seed(0)
    net = FastNet(width=8)
    for conv in (net.group1.conv1, net.group1.conv2, net.group2.conv1, net.group3.conv2):
        x = torch.randn(2, conv.in_channels, 6, 6)
        n = min(conv.in_channels, conv.out_channels)
        with torch.no_grad():
            out = conv(x)
        assert torch.allclose(out[:, :n], x[:, :n], atol=1e-6)
        if conv.out_channels > n:  # the channels beyond keep their random start
            assert not torch.allclose(out[:, n:2 * n], x[:, :n], atol=1e-2)

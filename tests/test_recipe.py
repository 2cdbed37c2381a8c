"""training.recipe: the optimizer's options, the learning-rate schedules, label smoothing and
the number format."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from torch import nn

from cifar_core.training import recipe
from cifar_core.training.config import TrainConfig
from cifar_core.training.fastnet import BIAS_LR_SCALE
from cifar_core.training.models import model_spec
from cifar_core.training.recipe import (
    WARMUP_FRACTION,
    autocast,
    autocast_dtype,
    loss_function,
    make_optimizer,
    make_schedule,
    precision_problem,
    warmup_linear_factor,
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


# --- warm-up then linear decay -----------------------------------------------------------------

def test_warmup_linear_rises_to_one_then_falls_to_almost_nothing():
    total = 100
    factors = [warmup_linear_factor(step, total) for step in range(total)]
    warmup = round(WARMUP_FRACTION * total)
    assert factors[0] == pytest.approx(1 / warmup)  # the first step is a gentle one
    assert factors[warmup - 1] == pytest.approx(1.0)  # the peak ends the warm-up
    assert max(factors) == pytest.approx(1.0)
    rise, fall = factors[:warmup], factors[warmup:]
    assert all(a < b for a, b in pairwise(rise))
    # (The decay's first step is at the peak too: the peak lasts two steps.)
    assert all(a > b for a, b in pairwise(fall))
    assert 0 < factors[-1] < 0.05  # the last step still learns, with a fine step
    assert warmup_linear_factor(total, total) == 0.0


def test_warmup_linear_with_very_few_steps_still_starts_at_the_peak_and_decays():
    assert warmup_linear_factor(0, 1) == 1.0
    factors = [warmup_linear_factor(s, 3) for s in range(3)]
    assert factors[0] == 1.0 and factors[0] >= factors[1] > factors[2] > 0


# --- schedules on an optimizer -----------------------------------------------------------------

def learning_rates(schedule: str, total: int, lr: float = 0.1) -> list[float]:
    """The learning rate each of `total` steps uses under `schedule`."""
    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=lr, momentum=0.9)
    scheduler = make_schedule(optimizer, schedule, total)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return rates


def test_the_constant_schedule_is_none_and_keeps_the_rate():
    weight = nn.Parameter(torch.zeros(1))
    assert make_schedule(torch.optim.SGD([weight], lr=0.1), "constant", 50) is None
    assert learning_rates("constant", 20) == [0.1] * 20


def test_warmup_linear_schedule_gives_the_rate_times_the_factor_at_each_step():
    rates = learning_rates("warmup-linear", 50, lr=0.2)
    assert rates == pytest.approx([0.2 * warmup_linear_factor(s, 50) for s in range(50)])


def test_one_cycle_peaks_at_the_configs_rate_near_the_warmup_fraction_and_ends_far_below():
    total, lr = 100, 0.4
    rates = learning_rates("one-cycle", total, lr=lr)
    peak = max(range(total), key=rates.__getitem__)
    assert rates[peak] == pytest.approx(lr)
    assert abs(peak - WARMUP_FRACTION * total) <= 2
    assert rates[0] < lr / 10 and rates[-1] < lr / 100
    assert all(a <= b for a, b in pairwise(rates[:peak + 1]))
    assert all(a >= b for a, b in pairwise(rates[peak:]))


def test_one_cycle_keeps_the_configs_momentum():
    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.85)
    schedule = make_schedule(optimizer, "one-cycle", 10)
    for _ in range(5):
        optimizer.step()
        schedule.step()
        assert optimizer.param_groups[0]["momentum"] == 0.85


def test_an_unknown_schedule_is_refused():
    weight = nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="cosine"):
        make_schedule(torch.optim.SGD([weight], lr=0.1), "cosine", 10)


# --- the optimizer -----------------------------------------------------------------------------

def test_the_tutorials_optimizer_is_plain_sgd_with_momentum():
    model = model_spec("tutorial").build(10)
    optimizer = make_optimizer(model, TrainConfig())
    [group] = optimizer.param_groups
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == \
        (0.001, 0.9, False, 0.0)
    assert len(group["params"]) == len(list(model.parameters()))


def test_nesterov_and_weight_decay_reach_the_optimizer():
    model = model_spec("tutorial").build(10)
    config = TrainConfig(nesterov=True, weight_decay=0.0005, momentum=0.8, lr=0.01)
    [group] = make_optimizer(model, config).param_groups
    assert group["nesterov"] is True and group["weight_decay"] == 0.0005
    assert group["momentum"] == 0.8 and group["lr"] == 0.01


def test_the_fast_networks_batchnorm_shifts_learn_faster_and_decay_alike():
    model = model_spec("fast").build(10, 8)
    config = TrainConfig(model="fast", width=8, lr=0.05, weight_decay=0.001, nesterov=True)
    groups = make_optimizer(model, config).param_groups
    shifts = {id(m.bias) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    by_scale = {}
    for group in groups:
        ids = {id(p) for p in group["params"]}
        by_scale[group["lr"] / config.lr] = (ids, group)
        assert group["nesterov"] is True
    assert sorted(by_scale) == pytest.approx([1.0, BIAS_LR_SCALE])
    (rest_ids, rest_group), (shift_ids, shift_group) = (by_scale[k] for k in sorted(by_scale))
    assert shift_ids == shifts
    assert shift_group["weight_decay"] == pytest.approx(0.001 / BIAS_LR_SCALE)
    assert rest_group["weight_decay"] == pytest.approx(0.001)
    # Every weight that learns is in exactly one group; the frozen ones in none.
    learning = {id(p) for p in model.parameters() if p.requires_grad}
    assert shift_ids | rest_ids == learning and not shift_ids & rest_ids
    assert id(model.whiten.weight) not in learning


# --- label smoothing ---------------------------------------------------------------------------

def test_label_smoothing_makes_a_confident_right_answer_cost_more():
    logits, labels = torch.tensor([[12.0, 0.0, 0.0]]), torch.tensor([0])
    plain = loss_function(TrainConfig())(logits, labels)
    smoothed = loss_function(TrainConfig(label_smoothing=0.2))(logits, labels)
    assert plain.item() < 1e-4 and smoothed.item() > 1.0
    # Against a clearly wrong answer smoothing changes little.
    wrong = torch.tensor([[0.0, 12.0, 0.0]])
    assert loss_function(TrainConfig(label_smoothing=0.2))(wrong, labels).item() < \
        loss_function(TrainConfig())(wrong, labels).item()
    assert loss_function(TrainConfig()).label_smoothing == 0.0


# --- the number format -------------------------------------------------------------------------

def test_autocast_dtype_by_precision():
    assert autocast_dtype("fp32", CPU) is None and autocast_dtype("fp32", CUDA) is None
    assert autocast_dtype("bf16", CPU) is torch.bfloat16
    assert autocast_dtype("fp16", CUDA) is torch.float16


def test_auto_is_bf16_only_on_a_cpu_that_computes_it_fast(monkeypatch):
    monkeypatch.setattr(recipe, "cpu_computes_bf16_fast", lambda: True)
    assert autocast_dtype("auto", CPU) is torch.bfloat16
    monkeypatch.setattr(recipe, "cpu_computes_bf16_fast", lambda: False)
    assert autocast_dtype("auto", CPU) is None


def test_auto_on_a_gpu_is_bf16_where_it_can_else_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("auto", CUDA) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype("auto", CUDA) is torch.float16


def test_precision_problems_say_what_to_choose(monkeypatch):
    message = precision_problem("fp16", CPU)
    assert message and "GPU" in message and "bf16" in message
    for precision in ("fp32", "auto", "bf16"):
        assert precision_problem(precision, CPU) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert "fp16" in precision_problem("bf16", CUDA)
    assert precision_problem("fp16", CUDA) is None and precision_problem("auto", CUDA) is None


def test_autocast_computes_in_the_chosen_format_on_a_cpu():
    layer, x = nn.Linear(4, 2), torch.randn(3, 4)
    with autocast("bf16", CPU):
        assert layer(x).dtype is torch.bfloat16
    with autocast("fp32", CPU):
        assert layer(x).dtype is torch.float32

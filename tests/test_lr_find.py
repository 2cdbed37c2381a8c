"""The learning-rate range test (training/lr_find.py) and `python -m cifar_core lr-find`."""

from __future__ import annotations

import json
import math
import threading

import pytest
import torch
from conftest import in_memory_data, run_cli

from cifar_core.errors import ConfigError
from cifar_core.training.config import TrainConfig, settings
from cifar_core.training.loop import build_model, train
from cifar_core.training.lr_find import (
    DEFAULT_STEPS,
    LossSmoother,
    find_learning_rate,
    judge_suggestion,
    rounded_lr,
    settings_that_matter,
    smooth,
    suggestions,
)

# Batches above the written-out step's limit, so that train() runs in this process alone.
WHOLE_BATCH = 64


@pytest.fixture(scope="module")
def data():
    return in_memory_data(train_n=200, test_n=50)


def assert_exponential(lrs, start, end):
    assert lrs[0] == pytest.approx(start)
    assert lrs[-1] == pytest.approx(end)
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert all(r == pytest.approx(ratios[0]) for r in ratios)
    assert ratios[0] == pytest.approx((end / start) ** (1 / (len(lrs) - 1)))


# --- the test itself ---------------------------------------------------------------------------

@pytest.mark.parametrize("config", [
    TrainConfig(batch_size=16),
    # A model that trains some weights at a multiple of the rate: the base rate is recorded.
    TrainConfig(model="fast", width=8, batch_size=32, device="cpu", momentum=0.85,
                nesterov=True, label_smoothing=0.2, augment="flip+translate"),
], ids=["tutorial", "fast"])
def test_the_learning_rate_grows_exponentially_from_start_to_end_over_the_steps(data, config):
    done = []
    # 200 images in batches of 16 or 32: the 30 steps take several epochs.
    finding = find_learning_rate(config, data, start_lr=1e-5, end_lr=1e-2, steps=30,
                                 progress=lambda i, n: done.append((i, n)))
    assert finding.ended == "completed", finding.message
    assert len(finding.lrs) == len(finding.losses) == len(finding.smoothed) == 30
    assert_exponential(finding.lrs, 1e-5, 1e-2)
    assert done == [(i, 30) for i in range(1, 31)]
    assert all(math.isfinite(x) for x in finding.losses)
    assert finding.lrs[0] <= finding.min_loss_lr <= finding.lrs[-1]
    if finding.steepest_lr is not None:
        assert finding.lrs[0] <= finding.steepest_lr < finding.min_loss_lr
    # (Or none, with the reason, where the curve is too flat or noisy to tell: issue 26.)
    assert finding.suggestion in (finding.steepest_lr, finding.tenth_of_min_loss_lr, None)
    assert (finding.suggestion is None) == ("nothing is suggested" in finding.message)


def test_a_huge_end_lr_stops_early_once_the_loss_shoots_up(data):
    config = TrainConfig(batch_size=WHOLE_BATCH, seed=0)
    finding = find_learning_rate(config, data, start_lr=1e-6, end_lr=10.0, steps=60)
    assert finding.ended == "diverged"
    assert len(finding.lrs) < 60
    assert "shot up" in finding.message and "too high" in finding.message
    # Suggestions lie in the range tried, the steepest descent below the minimum.
    assert finding.lrs[0] <= finding.steepest_lr <= finding.min_loss_lr <= finding.lrs[-1]
    assert finding.tenth_of_min_loss_lr == pytest.approx(finding.min_loss_lr / 10)
    # On these 200 pictures the loss fell 2.6 % before it shot up: too little to suggest a
    # rate (issue 26), and the message says so; where it suggests one, it is the steepest.
    if finding.suggestion is None:
        assert "nothing is suggested" in finding.message and finding.marks() == []
    else:
        assert finding.suggestion == finding.steepest_lr
        assert finding.suggestion_kind == "steepest descent"
        assert [label for label, _ in finding.marks()] == ["steepest descent", "minimum / 10"]
    # The point that passed the limit is the last one recorded.
    assert finding.smoothed[-1] > 4 * min(finding.smoothed)
    assert all(s <= 4 * min(finding.smoothed) for s in finding.smoothed[:-1])


def test_stop_ends_it_after_the_current_minibatch(data):
    stop = threading.Event()

    def progress(done, total):
        if done == 7:
            stop.set()

    finding = find_learning_rate(TrainConfig(batch_size=16), data, steps=50, progress=progress,
                                 stop=stop)
    assert finding.ended == "stopped" and len(finding.lrs) == 7
    assert "Stopped on request after 7 of 50" in finding.message


def test_the_finding_says_which_settings_it_was_for_the_learning_rate_and_epochs_aside(data):
    config = TrainConfig(batch_size=16, lr=0.05, epochs=7)
    finding = find_learning_rate(config, data, steps=5)
    assert finding.settings == settings_that_matter(config.to_dict())
    assert "lr" not in finding.settings and "epochs" not in finding.settings
    assert finding.settings["batch_size"] == 16 and finding.settings["seed"] is None
    assert settings_that_matter(TrainConfig(batch_size=16, lr=0.5).to_dict()) == finding.settings
    json.dumps(finding.to_dict())  # (the CLI's --json)


def test_the_finding_says_which_data_set_it_was_for_and_fits_only_that_one(data):
    """A rate found on one data set says nothing about another (issue 24): the finding
    records its data set, and `fits` asks for the same settings and the same data set."""
    config = TrainConfig(batch_size=16, lr=0.05)
    finding = find_learning_rate(config, data, steps=5)
    assert finding.dataset == data.dataset == "cifar10"
    assert finding.to_dict()["dataset"] == "cifar10"
    assert finding.fits(config.to_dict(), "cifar10")
    assert finding.fits({**config.to_dict(), "lr": 0.5, "epochs": 9}, "cifar10")
    assert not finding.fits(config.to_dict(), "fashion-mnist")
    assert not finding.fits({**config.to_dict(), "batch_size": 32}, "cifar10")


def test_a_run_after_the_test_gets_the_same_weights_and_batches_as_without_it(data):
    config = TrainConfig(batch_size=WHOLE_BATCH, epochs=2, log_every=1, seed=5)

    def following_run():
        model = build_model(config)
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        events = [(type(e).__name__, getattr(e, "loss", None), getattr(e, "test_accuracy", None),
                   getattr(e, "confusion", None)) for e in train(config, data, model)]
        return weights, events, torch.rand(3)  # and what torch draws next

    torch.manual_seed(123)
    plain = following_run()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    find_learning_rate(config, data, steps=20)
    assert torch.equal(torch.get_rng_state(), state), "torch's random state is put back"
    after = following_run()
    assert plain[0].keys() == after[0].keys()
    assert all(torch.equal(plain[0][k], after[0][k]) for k in plain[0])
    assert plain[1] == after[1]
    assert len(plain[1]) > 3  # losses and both epochs' tests were compared
    assert torch.equal(plain[2], after[2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_a_gpu_the_gpus_random_state_is_put_back_too(data):
    config = TrainConfig(model="fast", width=8, batch_size=WHOLE_BATCH, device="cuda",
                         precision="auto", seed=1)
    torch.manual_seed(7)
    torch.cuda.manual_seed(7)
    cpu_state, gpu_state = torch.get_rng_state(), torch.cuda.get_rng_state()
    finding = find_learning_rate(config, data, steps=10)
    assert len(finding.lrs) >= 2
    assert torch.equal(torch.get_rng_state(), cpu_state)
    assert torch.equal(torch.cuda.get_rng_state(), gpu_state)


@pytest.mark.parametrize("start, end, steps, says", [
    (1.0, 0.1, 100, "must be above the first"),
    (0.1, 0.1, 100, "must be above the first"),
    (0.0, 1.0, 100, "must be above 0"),
    (-1e-3, 1.0, 100, "must be above 0"),
    (1e-6, 100.0, 100, "at most 10"),
    (float("nan"), 1.0, 100, "must be numbers"),
    (1e-6, 1.0, 4, "from 5 to"),
    (1e-6, 1.0, 2.5, "whole number"),
])
def test_bad_ranges_say_what_to_do_before_any_training(data, start, end, steps, says):
    with pytest.raises(ConfigError) as caught:
        find_learning_rate(TrainConfig(), data, start_lr=start, end_lr=end, steps=steps)
    message = str(caught.value)
    assert says in message
    assert "try" in message or "e.g." in message or "usual" in message


# --- smoothing and the suggestions, on curves made up here ---------------------------------

def test_smoothing_is_an_exponential_average_without_the_pull_towards_zero():
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    smoother, average = LossSmoother(0.9), 0.0
    for n, loss in enumerate([3.0, 1.0, 2.0, 5.0], start=1):
        average = 0.9 * average + 0.1 * loss
        assert smoother.add(loss) == pytest.approx(average / (1 - 0.9 ** n))
    # 0.5 * 1 = 0.5, / 0.5 = 1; 0.5 * 0.5 + 0.5 * 3 = 1.75, / 0.75.
    assert smooth([1.0, 3.0], beta=0.5) == pytest.approx([1.0, 1.75 / 0.75])


def made_up_curve(lrs):
    """Falls fastest at lr 1e-3 (a tanh in log lr), lowest near 3e-2, rising steeply after."""
    loss = []
    for lr in lrs:
        u = math.log10(lr)
        loss.append(2.0 - math.tanh(2 * (u + 3)) + (5 * (u + 1.5) ** 2 if u > -1.5 else 0.0))
    return loss


def test_the_steepest_descent_is_where_the_loss_falls_fastest_and_before_the_minimum():
    lrs = [10 ** (-6 + 6 * i / 99) for i in range(100)]
    loss = made_up_curve(lrs)
    steepest, lowest = suggestions(lrs, loss)
    assert steepest == pytest.approx(1e-3, rel=0.15)  # within a step of the grid (x 1.15)
    assert lowest == lrs[loss.index(min(loss))]
    assert lrs[0] <= steepest < lowest <= lrs[-1]
    # A steep rise after the minimum is never taken for a descent.
    assert steepest < 1e-2


def test_a_loss_that_never_falls_has_no_steepest_descent():
    lrs = [10 ** (-3 + i / 10) for i in range(20)]
    rising = [1.0 + i * 0.1 for i in range(20)]
    assert suggestions(lrs, rising) == (None, lrs[0])


def test_suggestions_are_rounded_as_a_person_would_type_them():
    assert rounded_lr(0.053366992) == 0.053
    assert rounded_lr(1.0000000000000007) == 1.0
    assert rounded_lr(0.000123456) == 0.00012


# --- the command line ----------------------------------------------------------------------

def test_cli_prints_a_short_table_and_the_suggestions(capsys, synthetic_dir):
    code, out, err = run_cli(capsys, "lr-find", "--data-dir", synthetic_dir, "--batch-size",
                             "16", "--steps", "30", "--end-lr", "0.1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["learning", "rate", "smoothed", "loss"]
    rows = [line for line in lines[1:] if line.strip() and line.split()[0][0].isdigit()]
    assert 5 <= len(rows) <= 12  # a line every few steps, not one per step
    assert float(rows[0].split()[0]) == pytest.approx(1e-6)
    last = lines[-1]
    assert last.startswith("Suggested learning rate: ")
    assert "minimum loss at" in last
    if last.startswith("Suggested learning rate: none"):  # the curve could not tell (issue 26)
        assert "nothing is suggested" in out
    else:
        assert "/ 10 = " in last
        assert "(steepest descent)" in last or "(minimum / 10)" in last


def test_cli_json_is_one_object_with_the_curve_and_the_suggestions(capsys, synthetic_dir):
    code, out, err = run_cli(capsys, "lr-find", "--data-dir", synthetic_dir, "--batch-size",
                             "16", "--steps", "12", "--json")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    found = json.loads(lines[0])
    assert found["kind"] == "lr_find"
    assert len(found["lrs"]) == len(found["smoothed"]) == len(found["losses"]) <= 12
    assert found["lrs"][0] == pytest.approx(1e-6)
    for key in ("steepest_lr", "min_loss_lr", "tenth_of_min_loss_lr", "suggestion",
                "suggestion_kind", "ended", "message", "settings"):
        assert key in found
    assert found["settings"]["batch_size"] == 16


def test_cli_takes_a_preset_and_setting_flags(capsys, synthetic_dir):
    code, out, err = run_cli(capsys, "lr-find", "--data-dir", synthetic_dir, "--preset", "quick",
                             "--steps", "5", "--json")
    assert code == 0, err
    assert json.loads(out)["settings"]["batch_size"] == 16  # the quick preset's


@pytest.mark.parametrize("argv, says", [
    (["--start-lr", "1", "--end-lr", "0.1"], "must be above the first"),
    (["--steps", "2"], "from 5 to"),
    (["--steps", "many"], "'many' is not a whole number"),
    (["--momentum", "2"], "Momentum must be at least 0 and below 1"),
])
def test_cli_bad_input_is_one_error_line_and_status_2(capsys, synthetic_dir, argv, says):
    code, out, err = run_cli(capsys, "lr-find", "--data-dir", synthetic_dir, *argv)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0], err
    assert out == ""


def test_default_steps_are_a_usual_number():
    assert 100 <= DEFAULT_STEPS <= 200


def test_with_a_network_to_start_from_the_test_runs_on_a_fresh_one_as_its_settings_say(data):
    """Start from and Keep fixed are not settings the range test depends on (range_test=False):
    it is asked with them set (the Train page's form, the CLI) and gives what it gives without
    them, never a developer's sentence."""
    plain = TrainConfig(batch_size=10, seed=0)
    started = TrainConfig(batch_size=10, seed=0, start_from="some-run", freeze=True)
    a = find_learning_rate(plain, data, 1e-4, 1, steps=8)
    b = find_learning_rate(started, data, 1e-4, 1, steps=8)
    assert b.losses == a.losses and b.suggestion == a.suggestion


# --- an honest suggestion (issue 26) -------------------------------------------------------------

LRS = [10 ** (-6 + 6 * i / 99) for i in range(100)]  # 1e-6 to 1 in 100 steps


def scatter(n, size, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, generator=generator, dtype=torch.float64) * size).tolist()


def judged(lrs, losses):
    return judge_suggestion(lrs, losses, smooth(losses), form_lr=0.75)


def test_a_flat_curve_suggests_nothing_and_says_why_and_what_to_try():
    """Issue 26: the fast network at width 8 (then cpu-3min, 100 minibatches of 512) suggested 0.87
    from a curve that fell 1.5 %: chance level throughout, a slight fall at the end."""
    losses = [2.31 + e for e in scatter(100, 0.005)]
    losses[85:] = [2.31 - 0.01 * (i + 1) + e for i, e in enumerate(scatter(15, 0.005, 1))]
    suggestion, kind, why = judged(LRS, losses)
    assert suggestion is None and kind == "none"
    assert "hardly" in why and "nothing is suggested" in why
    assert "more minibatches" in why and "0.75" in why  # what to try, the rate kept


def test_a_noisy_curve_suggests_nothing_and_says_so():
    # A fall of 0.15 (6 %: not flat), in minibatch losses that scatter by 0.4 (batch 4).
    trend = [2.4 - 0.15 * i / 99 for i in range(100)]
    losses = [t + e for t, e in zip(trend, scatter(100, 0.4), strict=True)]
    suggestion, kind, why = judged(LRS, losses)
    assert suggestion is None and kind == "none"
    assert "jumped around more than it fell" in why and "larger batch" in why


def test_a_clear_dip_suggests_its_steepest_descent():
    losses = [x + e for x, e in zip(made_up_curve(LRS), scatter(100, 0.02), strict=True)]
    suggestion, kind, why = judged(LRS, losses)
    assert why is None and kind == "steepest descent"
    assert 3e-4 < suggestion < 3e-3  # near where it falls fastest (1e-3), the smoothing lags


def test_a_suggestion_the_form_would_refuse_is_never_offered():
    """The form takes learning rates up to its Setting's high (10; 100 is 'far too high')."""
    lrs = [10 ** (-2 + 5 * i / 99) for i in range(100)]  # 0.01 to 1,000
    # Falls fastest at 50, lowest near 300.
    losses = [2.0 - math.tanh(2 * (math.log10(lr) - math.log10(50))) for lr in lrs]
    suggestion, kind, why = judged(lrs, losses)
    assert suggestion is None
    assert "above 10" in why and "the most the form takes" in why
    high = settings()["lr"].high
    for lrs_, losses_ in ((LRS, made_up_curve(LRS)), (lrs, losses)):
        found, _, _ = judged(lrs_, losses_)
        assert found is None or found <= high

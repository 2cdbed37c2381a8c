"""cifar_core.sweeps.space: parsing, checking and expanding what a sweep varies."""

from __future__ import annotations

import math

import pytest

from cifar_core.sweeps.space import (
    MAX_RUNS,
    Axis,
    SearchSpace,
    SweepError,
    parse_axis,
    space_from_toml,
    space_problems,
)
from cifar_core.training.config import defaults, settings


def space(*axes, **kwargs) -> SearchSpace:
    return SearchSpace(axes=tuple(axes), **kwargs)


# --- parsing the command line's text -------------------------------------------------------

@pytest.mark.parametrize("name, text, kind, expected", [
    ("lr", "0.01", "fixed", (0.01,)),
    ("lr", "0.001,0.01,0.1", "list", (0.001, 0.01, 0.1)),
    ("batch_size", "4, 16", "list", (4, 16)),
    ("model", "tutorial,fast", "list", ("tutorial", "fast")),
    ("nesterov", "on,off", "list", (True, False)),
    ("train_size", "all,1000", "list", (None, 1000)),
])
def test_values_and_lists_are_read_as_the_setting_s_kind(name, text, kind, expected):
    axis = parse_axis(name, text)
    assert axis.kind == kind
    assert axis.values == expected
    assert all(type(v) is type(e) for v, e in zip(axis.values, expected, strict=True))


def test_ranges_are_read_with_their_points_and_scale():
    axis = parse_axis("lr", "0.0001:0.1:4:log")
    assert (axis.kind, axis.low, axis.high, axis.count, axis.log) == ("range", 0.0001, 0.1, 4,
                                                                      True)
    assert parse_axis("momentum", "0.5:0.9").count is None
    assert parse_axis("epochs", "1:5:3").points() == (1, 3, 5)


@pytest.mark.parametrize("name, text, words", [
    ("lr", "0.01,,2", "empty value"),
    ("lr", "fast", "not a number"),
    ("epochs", "1.5", "not a whole number"),
    ("lr", "1:2:3:4:5", "LOW:HIGH"),
    ("lr", "0.1:1:x", "not a whole number"),
    ("nesterov", "maybe", "not on or off"),
    ("colour", "1", "not a setting"),
])
def test_unreadable_text_is_refused_naming_the_setting(name, text, words):
    with pytest.raises(SweepError, match=words) as caught:
        parse_axis(name, text)
    assert caught.value.field == name


# --- points of a range ---------------------------------------------------------------------

def test_a_log_range_s_points_are_evenly_spaced_in_log_with_exact_ends():
    points = Axis("lr", low=0.0001, high=0.1, count=4, log=True).points()
    assert points[0] == 0.0001 and points[-1] == 0.1
    ratios = [b / a for a, b in zip(points, points[1:], strict=False)]
    assert all(r == pytest.approx(10.0, rel=1e-4) for r in ratios)


def test_a_linear_range_of_whole_numbers_rounds_and_drops_repeats():
    assert Axis("momentum", low=0.5, high=0.9, count=5).points() == pytest.approx(
        (0.5, 0.6, 0.7, 0.8, 0.9))
    assert Axis("epochs", low=1, high=3, count=5).points() == (1, 2, 3)  # 1, 1.5->2, 2, 2.5->2..


# --- expansion ------------------------------------------------------------------------------

def test_a_grid_is_every_combination_with_the_fixed_settings_and_defaults():
    s = space(Axis("lr", (0.001, 0.01, 0.1)), Axis("momentum", (0.8, 0.9)),
              Axis("batch_size", (4, 16)), Axis("epochs", (1,)))
    configs = s.configs()
    assert s.size() == len(configs) == 12
    combos = {(c["lr"], c["momentum"], c["batch_size"]) for c in configs}
    assert len(combos) == 12
    assert all(c["epochs"] == 1 and c["model"] == defaults()["model"] for c in configs)
    assert set(configs[0]) == set(settings())  # whole configs, ready for a run


def test_a_grid_s_run_budget_takes_its_first_combinations():
    s = space(Axis("lr", (0.001, 0.01, 0.1)), Axis("momentum", (0.8, 0.9)), runs=4)
    assert s.size() == 4
    assert s.configs() == space(Axis("lr", (0.001, 0.01, 0.1)),
                                Axis("momentum", (0.8, 0.9))).configs()[:4]


def test_random_draws_are_seeded_within_the_ranges_and_on_the_log_scale():
    s = space(Axis("lr", low=1e-4, high=1e-1, log=True), Axis("batch_size", (4, 16, 64)),
              strategy="random", runs=200, seed=3)
    configs = s.configs()
    assert configs == s.configs()  # the same seed, the same draws
    assert configs != space(*s.axes, strategy="random", runs=200, seed=4).configs()
    lrs = [c["lr"] for c in configs]
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs)
    # On a log scale about a third of the draws fall in each decade (uniform: ~90 % in the top).
    in_lowest_decade = sum(lr < 1e-3 for lr in lrs) / len(lrs)
    assert 0.2 < in_lowest_decade < 0.5
    assert {c["batch_size"] for c in configs} == {4, 16, 64}


def test_random_over_lists_only_never_repeats_a_combination():
    s = space(Axis("lr", (0.001, 0.01, 0.1)), Axis("momentum", (0.8, 0.9)), strategy="random",
              runs=6, seed=0)
    combos = [(c["lr"], c["momentum"]) for c in s.configs()]
    assert len(set(combos)) == 6


def test_whole_number_settings_are_drawn_as_whole_numbers():
    s = space(Axis("batch_size", low=4, high=100, log=True), strategy="random", runs=30)
    assert all(isinstance(c["batch_size"], int) for c in s.configs())


def test_the_space_round_trips_through_its_dict_form():
    s = space(Axis("lr", low=1e-4, high=1e-1, count=3, log=True), Axis("momentum", (0.8, 0.9)),
              strategy="smart", runs=7, minutes=12.5, seed=2, prune="halving",
              base={"model": "fast"})
    assert SearchSpace.from_dict(s.to_dict()) == s


# --- checks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("the_space, field, words", [
    (space(Axis("lr", (0.01, 20.0))), "lr", "far too high"),
    (space(Axis("momentum", (1.0,))), "momentum", "below 1"),
    (space(Axis("lr", ())), "lr", "at least one value"),
    (space(Axis("lr", (0.01, 0.01))), "lr", "twice"),
    (space(Axis("lr", low=0.1, high=0.01, count=3)), "lr", "lower to a higher"),
    (space(Axis("lr", low=0.0, high=0.01, count=3)), "lr", "above 0"),
    (space(Axis("momentum", low=0.0, high=0.9, count=3, log=True)), "momentum", "log range"),
    (space(Axis("lr", low=0.001, high=0.1)), "lr", "how many points"),
    (space(Axis("lr", low=0.001, high=0.1, count=0)), "lr", "from 1 to"),
    (space(Axis("model", low=1, high=2, count=2)), "model", "not a number"),
    (space(Axis("colour", (1,))), "colour", "not a setting"),
    (space(Axis("lr", (0.01, 0.1)), strategy="sideways"), "strategy", "grid, random, smart"),
    (space(Axis("lr", (0.01, 0.1)), strategy="random"), "runs", "how many runs"),
    (space(Axis("lr", (0.01, 0.1)), runs=0), "runs", "from 1"),
    (space(Axis("lr", (0.01, 0.1)), minutes=-1), "minutes", "above 0"),
    (space(Axis("lr", (0.01, 0.1)), prune="maybe"), "prune", "none, median, halving"),
    (space(Axis("lr", (0.01, 0.1)), Axis("epochs", (1,)), prune="median"), "prune",
     "2 epochs or more"),
    (space(Axis("model", ("tutorial",)), Axis("width", (8, 16))), "width", "no width"),
    (space(Axis("momentum", (0.0, 0.9)), Axis("nesterov", (True,))), "nesterov",
     "momentum above 0"),
])
def test_every_bad_space_is_refused_naming_the_setting_and_what_to_do(the_space, field, words):
    problems = space_problems(the_space)
    assert field in problems, problems
    assert words in problems[field]
    with pytest.raises(SweepError, match=words):
        the_space.validate()


def test_a_grid_over_the_run_limit_is_refused_saying_how_big_it_is():
    big = space(Axis("lr", low=0.001, high=0.1, count=30), Axis("momentum", low=0.1, high=0.9,
                                                                  count=30))
    problems = space_problems(big)
    assert f"{30 * 30:,} runs" in problems["space"] and str(MAX_RUNS) in problems["space"]
    # The same space with a run budget is fine: its first runs are taken.
    assert space_problems(space(*big.axes, runs=50)) == {}


def test_a_combination_only_some_runs_have_is_found_in_a_random_space():
    s = space(Axis("model", ("tutorial", "fast")), Axis("width", low=8, high=64), strategy="random",
              runs=5)
    assert "width" in space_problems(s)


def test_a_good_space_has_no_problems():
    s = space(Axis("lr", low=1e-4, high=1e-1, log=True), Axis("momentum", (0.8, 0.9)),
              Axis("epochs", (2,)), strategy="smart", runs=10, prune="median", minutes=5)
    assert space_problems(s) == {}
    assert s.validate() is s


# --- space files ----------------------------------------------------------------------------

def test_a_toml_space_file_gives_lists_ranges_and_fixed_values():
    s = space_from_toml("""
strategy = "random"
runs = 5
minutes = 10
prune = "median"
seed = 7
[settings]
lr = {low = 0.0001, high = 0.1, log = true}
batch_size = [4, 16]
epochs = 3
""")
    assert (s.strategy, s.runs, s.minutes, s.prune, s.seed) == ("random", 5, 10, "median", 7)
    assert s.axis("lr") == Axis("lr", low=0.0001, high=0.1, log=True)
    assert s.axis("batch_size").values == (4, 16)
    assert s.fixed["epochs"] == 3


@pytest.mark.parametrize("text, words", [
    ("strategy = ", "not valid TOML"),
    ("colour = 1", "not one of"),
    ("[settings]\nlr = {low = 0.1, hi = 1}", "not 'hi'"),
    ("[settings]\nlr = [0.01, 50.0]", "far too high"),
])
def test_a_bad_space_file_is_refused_with_what_is_wrong(text, words):
    with pytest.raises(SweepError, match=words):
        space_from_toml(text)


def test_the_log_range_points_cover_the_decades_evenly():
    points = Axis("lr", low=1e-6, high=1.0, count=7, log=True).points()
    assert [round(math.log10(p)) for p in points] == [-6, -5, -4, -3, -2, -1, 0]

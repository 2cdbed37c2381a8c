"""Which settings mattered (cifar_core.sweeps.importance): with few runs the plain
mean accuracy of each value (the heatmap's numbers) and a sentence saying that few runs cannot
say much; with enough, Optuna's importance with its range over resamples of the runs."""

from __future__ import annotations

import json
import os
import warnings

import pytest
from conftest import app_at, no_traceback
from test_newcomer_pages_runs import chart_specs, page_words, sweep_of_two_settings
from test_sweep_views import run

from cifar_core.runs.store import RunStore
from cifar_core.sweeps import smart
from cifar_core.sweeps.answer import heatmap_table
from cifar_core.sweeps.importance import FEW_RUNS, importance_answer
from cifar_core.sweeps.space import Axis, SearchSpace
from cifar_core.sweeps.store import SweepStore
from cifar_core.training.config import TrainConfig

# Issue 26's sweep: lr 0.002/0.02 x momentum 0.8/0.9.
GRID = SearchSpace(axes=(Axis("lr", (0.002, 0.02)), Axis("momentum", (0.8, 0.9))))
ACCURACY = {(0.002, 0.8): 14.3, (0.002, 0.9): 18.4, (0.02, 0.8): 23.1, (0.02, 0.9): 18.4}


def grid_runs():
    return [run(i, ACCURACY[lr, m], lr=lr, momentum=m)
            for i, (lr, m) in enumerate(ACCURACY)]


def test_a_2x2_sweep_ranks_the_learning_rate_first_by_its_means_and_says_4_runs_say_little():
    runs = grid_runs()
    answer = importance_answer(GRID, runs)
    assert answer.few
    assert "4 runs" in answer.note and "cannot" in answer.note
    assert answer.importance is None  # no percentage split from four runs
    means = answer.means
    assert list(means["setting"].drop_duplicates()) == ["Learning rate", "Momentum"]
    lr = means[means["name"] == "lr"].set_index("value")["mean"]
    momentum = means[means["name"] == "momentum"].set_index("value")["mean"]
    # The means of the two runs with each value, as the heatmap's cells average to.
    assert lr["0.002"] == pytest.approx((14.3 + 18.4) / 2)
    assert lr["0.02"] == pytest.approx((23.1 + 18.4) / 2)
    assert momentum["0.8"] == pytest.approx((14.3 + 23.1) / 2)
    assert momentum["0.9"] == pytest.approx(18.4)
    spreads = means.drop_duplicates("name").set_index("name")["spread"]
    assert spreads["lr"] == pytest.approx(lr.max() - lr.min())
    assert spreads["lr"] > spreads["momentum"]
    cells = heatmap_table(runs, "lr", "momentum")
    assert lr["0.02"] == pytest.approx(cells[cells["x"] == "0.02"]["accuracy"].mean())
    assert answer.lines[0].startswith("Learning rate")


def test_enough_runs_give_the_importance_with_its_range_over_resamples():
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1, log=True),
                              Axis("momentum", (0.8, 0.9))), strategy="random", runs=FEW_RUNS)
    configs = space.configs()
    assert len(configs) == FEW_RUNS
    # The accuracy follows the learning rate; momentum only adds a little noise.
    runs = [run(i, 100 * c["lr"] + (i % 2) * 0.01, **c) for i, c in enumerate(configs)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        answer = importance_answer(space, runs)
    assert not answer.few
    table = answer.importance
    assert list(table["setting"]) == ["Learning rate", "Momentum"]
    assert (table["low"] <= table["importance"] + 1e-9).all()
    assert (table["importance"] <= table["high"] + 1e-9).all()
    assert (table["high"] - table["low"] >= 0).all()
    lr = table.iloc[0]
    assert lr["low"] > table.iloc[1]["high"]  # the learning rate, whichever runs are drawn
    assert "%" in lr["label"] and "to" in lr["label"]
    assert "resample" in answer.note or "drawn" in answer.note


def test_the_resampled_importance_is_the_same_twice_and_keeps_its_order():
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1, log=True),
                              Axis("momentum", (0.8, 0.9))), strategy="random", runs=12)
    runs = [run(i, 100 * c["lr"] + (i % 2) * 0.01, **c) for i, c in enumerate(space.configs())]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        first = smart.importance_ranges(space, runs)
        second = smart.importance_ranges(space, runs)
    assert first == second
    assert set(first) == {"lr", "momentum"}
    assert all(0 <= low <= high <= 1 for low, high in first.values())


def test_the_sweep_page_says_four_runs_are_too_few_and_shows_each_values_mean(data_dir,
                                                                             runs_dir):
    sweep_of_two_settings(runs_dir, data_dir)  # lr 0.001/0.01 x momentum 0.8/0.9: 4 runs
    at = app_at("pages/sweep.py")
    no_traceback(at)
    words = page_words(at)
    assert "Only 4 runs finished their training: too few" in words
    # The learning rate first: its values' means 30.0 and 56.5 % lie 26.5 points apart,
    # momentum's 41.0 and 45.5 % 4.5.
    lr = words.index("Learning rate: 0.001 30.0 %, 0.01 56.5 % (26.5 points apart)")
    assert lr < words.index("Momentum: 0.8 41.0 %, 0.9 45.5 % (4.5 points apart)")
    assert not [s for s in chart_specs(at) if '"importance"' in json.dumps(s)]  # no split


def test_the_sweep_page_shows_the_importance_with_its_range_from_enough_runs(data_dir, runs_dir):
    store, config = RunStore(runs_dir), TrainConfig(epochs=1, batch_size=10, seed=0).to_dict()
    sweeps = SweepStore(store)
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.002, 0.005, 0.01, 0.02)),
                              Axis("momentum", (0.8, 0.9))))
    sweep = sweeps.create("ten runs", space, str(data_dir), "cli")
    for trial, c in enumerate(space.configs()):  # the accuracy follows the learning rate
        run_ = sweeps.add_run(sweep, {**config, **c}, trial)
        store.set_running(run_.id, os.getpid())
        store.finish(run_.id, "completed", "", {"accuracy": 1000 * c["lr"] + c["momentum"],
                                                 "per_class": {}})
    sweeps.finish(sweep.id, "completed", "")
    at = app_at("pages/sweep.py")
    no_traceback(at)
    words = page_words(at)
    assert "too few" not in words and "the 10 finished runs" in words
    [bars] = [json.dumps(s) for s in chart_specs(at) if '"importance"' in json.dumps(s)]
    assert '"low"' in bars and '"high"' in bars  # the range over resamples


def test_one_setting_that_differs_gets_its_means_not_a_share_of_100_percent():
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.01)),), strategy="grid")
    runs = [run(i, 20.0 + 10 * (i % 2) + i / 10, lr=(0.001, 0.01)[i % 2]) for i in range(12)]
    answer = importance_answer(space, runs)
    assert answer.importance is None
    assert "Only one setting" in answer.note
    assert answer.lines[0].startswith("Learning rate: 0.001 20.5 %, 0.01 30.6 %")

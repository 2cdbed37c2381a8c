"""The Sweep page's numbers and tables (cifar_core.sweeps: form, estimate,
progress, answer), on made-up runs."""

from __future__ import annotations

import math

import pytest

from cifar_core.runs.store import Run
from cifar_core.sweeps.answer import (
    ACCURACY_AXIS,
    accuracy_by_setting,
    answered_runs,
    brushed_ranges,
    heatmap_table,
    parallel_coordinates,
    range_text,
    runs_in_ranges,
    sweep_runs_table,
    train_form_values,
    varied_names,
)
from cifar_core.sweeps.estimate import planned_configs, sweep_estimate
from cifar_core.sweeps.form import AxisForm, build_space, modes_for
from cifar_core.sweeps.importance import importance_missing, importance_table
from cifar_core.sweeps.progress import curve_runs, sweep_progress
from cifar_core.sweeps.space import Axis, SearchSpace
from cifar_core.sweeps.store import Sweep
from cifar_core.training.config import TrainConfig, defaults, settings
from cifar_core.training.estimate import speed_key


def run(i: int, accuracy: float | None = None, status: str = "completed", **config) -> Run:
    return Run(id=f"run-{i}", created=1000.0 + i, config={**defaults(), **config},
               data_dir="/data", origin="dashboard", status=status, pid=None, started=1000.0 + i,
               finished=1010.0 + i if status not in ("queued", "running") else None,
               message="", metrics={"accuracy": accuracy} if accuracy is not None else None,
               checkpoint=None, stop_requested=False, sweep_id="sweep-1", trial=i)


def sweep(space: SearchSpace, status: str = "running", message: str = "") -> Sweep:
    return Sweep(id="sweep-1", created=0.0, name="sweep-1", space=space, data_dir="/data",
                 origin="dashboard", engine="local", address="", parallel=2, status=status,
                 message=message, finished=None, stop_requested=False, pid=None)


LR_MOMENTUM = SearchSpace(axes=(Axis("lr", (0.001, 0.01, 0.1)), Axis("momentum", (0.8, 0.9)),
                                Axis("epochs", (1,))))


def test_modes_numbers_take_ranges_choices_and_switches_lists_device_one_value():
    assert modes_for("lr") == ("fixed", "list", "range")
    assert modes_for("model") == ("fixed", "list")
    assert modes_for("nesterov") == ("fixed", "list")
    assert modes_for("device") == ("fixed",)


def test_the_form_builds_a_space_and_counts_its_runs():
    forms = [AxisForm("lr", "list", text="0.001, 0.01, 0.1"),
             AxisForm("momentum", "range", low=0.8, high=0.9, points=2),
             AxisForm("model", "list", chosen=("tutorial",)), AxisForm("epochs", "fixed", 1),
             AxisForm("seed", "fixed", None)]
    space, problems = build_space(forms)
    assert problems == {}
    assert space.size() == 6
    assert space.axis("seed") is None  # a random seed: the sweep draws one for all its runs
    assert space.axis("momentum").points() == (0.8, 0.9)


def test_bad_values_get_the_settings_own_messages():
    space, problems = build_space([AxisForm("lr", "list", text="0.01, 20")])
    assert "far too high" in problems["lr"]
    _, problems = build_space([AxisForm("lr", "list", text="0.01, fast")])
    assert "'fast' is not a number" in problems["lr"]
    _, problems = build_space([AxisForm("momentum", "range", low=0.9, high=0.5, points=3)])
    assert "lower to a higher" in problems["momentum"]
    _, problems = build_space([AxisForm("lr", "list", text="")])
    assert "at least one value" in problems["lr"]


def test_an_absurd_grid_is_refused_with_why_and_nothing_varied_too():
    forms = [AxisForm("lr", "range", low=0.001, high=0.1, points=50, log=True),
             AxisForm("momentum", "range", low=0.5, high=0.9, points=20)]
    _, problems = build_space(forms)
    assert "1,000 runs" in problems["space"] and "500" in problems["space"]
    _, problems = build_space([AxisForm("lr", "fixed", 0.01)])
    assert "Nothing varies" in problems["space"]


def test_the_estimate_sums_each_runs_images_at_its_speed_divided_by_runs_side_by_side():
    measured = []

    def measure(config):
        measured.append(speed_key(config))
        return 100.0 if config.batch_size == 4 else 400.0

    space = SearchSpace(axes=(Axis("lr", (0.01, 0.1)), Axis("batch_size", (4, 16)),
                              Axis("epochs", (2,)), Axis("train_size", (1000,))))
    estimate = sweep_estimate(space, 50_000, [], measure, parallel=2)
    # Two runs of 2,000 images at 100/s and two at 400/s: 50 s, two side by side: 25 s.
    assert estimate.runs == 4 and estimate.seconds == pytest.approx(25.0)
    assert len(measured) == 2  # once per speed setting, not per run
    assert estimate.sentence() == "4 runs, about 25 s here (2 side by side)"


def test_the_estimate_stops_at_the_minutes_budget_and_uses_earlier_runs():
    space = SearchSpace(axes=(Axis("lr", (0.01, 0.1)), Axis("epochs", (10,))), minutes=1)
    estimate = sweep_estimate(space, 50_000, [], lambda c: 1000.0, parallel=1)
    assert estimate.capped and estimate.seconds == 60
    assert "the time budget ends it then" in estimate.sentence()
    earlier = run(1, 50.0, lr=0.5)
    earlier = Run(**{**earlier.__dict__, "metrics": {"accuracy": 50.0, "images_per_s": 500.0}})
    quick = SearchSpace(axes=(Axis("lr", (0.01, 0.1)), Axis("epochs", (1,)),
                              Axis("train_size", (500,))))
    assert sweep_estimate(quick, 50_000, [earlier], None, 1).seconds == pytest.approx(2.0)
    assert sweep_estimate(quick, 50_000, [], None, 1) is None


def test_smart_plans_as_many_runs_as_asked():
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1, log=True),), strategy="smart",
                        runs=7)
    configs = planned_configs(space)
    assert len(configs) == 7 and all(0.001 <= c["lr"] <= 0.1 for c in configs)


def test_progress_counts_finished_running_and_waiting_runs():
    runs = [run(0, 40.0), run(1, status="pruned"), run(2, status="running"),
            run(3, status="queued")]
    progress = sweep_progress(sweep(LR_MOMENTUM), runs)
    assert (progress.finished, progress.running, progress.queued, progress.planned) == (2, 1, 1,
                                                                                        6)
    assert progress.fraction == pytest.approx(2 / 6)
    assert progress.text == "2 of 6 runs finished · 1 running · 1 waiting"
    ended = sweep_progress(sweep(LR_MOMENTUM, "completed", "6 runs (6 completed)."), runs)
    assert ended.fraction == 1.0 and ended.text == "Completed: 6 runs (6 completed)."


def test_the_table_is_sorted_by_accuracy_with_the_best_marked_and_pruned_said_in_words():
    runs = [run(0, 30.0, lr=0.001), run(1, 55.0, lr=0.01), run(2, status="running", lr=0.1),
            run(3, 20.0, status="pruned", lr=0.1)]
    table = sweep_runs_table(LR_MOMENTUM, runs)
    assert list(table["run"]) == ["run-1", "run-0", "run-3", "run-2"]
    assert list(table["best"]) == [True, False, False, False]
    assert list(table["lr"]) == ["0.01", "0.001", "0.1", "0.1"]
    assert table.loc[table["run"] == "run-3", "status"].item() == "stopped early"


def test_varied_settings_and_the_runs_that_answer():
    runs = [run(0, 30.0, lr=0.001), run(1, 50.0, lr=0.01), run(2, 45.0, "pruned", lr=0.1)]
    assert varied_names(LR_MOMENTUM) == ["lr", "momentum"]
    assert varied_names(LR_MOMENTUM, runs) == ["lr"]
    assert [r.id for r in answered_runs(runs)] == ["run-0", "run-1"]
    assert [r.id for r in answered_runs([run(2, 45.0, "pruned")])] == ["run-2"]


def test_curves_of_at_most_limit_runs_the_running_ones_included():
    runs = [run(i, 10.0) for i in range(10)] + [run(10, status="running")]
    shown = curve_runs(runs, 4)
    assert [r.id for r in shown] == ["run-0", "run-1", "run-2", "run-10"]


def lr_model_runs() -> list[Run]:
    return [run(0, 30.0, lr=0.001, model="tutorial"), run(1, 50.0, lr=0.01, model="tutorial"),
            run(2, 60.0, lr=0.1, model="fast"), run(3, 40.0, lr=0.01, model="fast"),
            run(4, status="running", lr=0.1)]


def test_parallel_coordinates_log_numbers_even_choices_and_accuracy_all_0_to_1():
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.01, 0.1)),
                              Axis("model", ("tutorial", "fast"))))
    chart = parallel_coordinates(space, lr_model_runs(), ["lr", "model"])
    assert chart.axes == ["Learning rate", "Model", ACCURACY_AXIS]
    lines = chart.lines
    assert set(lines["run"]) == {"run-0", "run-1", "run-2", "run-3"}  # the running one has none
    assert lines["position"].between(0, 1).all()
    lr = lines[lines["axis"] == "Learning rate"].set_index("run")["position"]
    assert lr["run-0"] == 0 and lr["run-1"] == pytest.approx(0.5) and lr["run-2"] == 1  # log10
    model = lines[lines["axis"] == "Model"].set_index("run")["position"]
    assert {model["run-0"], model["run-2"]} == {0.0, 1.0}  # 'fast' and 'tutorial', evenly
    accuracy = lines[lines["axis"] == ACCURACY_AXIS].set_index("run")["position"]
    assert accuracy["run-0"] == 0 and accuracy["run-2"] == 1
    assert accuracy["run-3"] == pytest.approx(1 / 3)
    ticks = chart.ticks
    assert list(ticks[ticks["axis_index"] == 0]["label"]) == ["0.001", "0.01", "0.1"]
    assert list(ticks[ticks["axis_index"] == 1]["label"]) == ["fast", "tutorial"]
    assert "60.0 %" in set(ticks[ticks["axis_index"] == 2]["label"])


def test_many_values_get_a_few_ticks_at_their_real_values():
    runs = [run(i, 10.0 + i, lr=10 ** (-4 + i / 4)) for i in range(13)]
    space = SearchSpace(axes=(Axis("lr", low=1e-4, high=0.1, log=True),), strategy="random",
                        runs=13)
    chart = parallel_coordinates(space, runs, ["lr"])
    ticks = chart.ticks[chart.ticks["axis_index"] == 0]
    assert len(ticks) == 5
    assert list(ticks["label"]) == ["0.0001", "0.0005623", "0.003162", "0.01778", "0.1"]


def test_a_box_on_the_chart_filters_the_runs_through_it():
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.01, 0.1)),
                              Axis("model", ("tutorial", "fast"))))
    chart = parallel_coordinates(space, lr_model_runs(), ["lr", "model"])
    # A box over the learning rate's axis from the middle up: lr 0.01 and 0.1.
    ranges = brushed_ranges(chart, {"axis_index": [-0.2, 0.3], "position": [0.4, 1.0]})
    assert ranges == {"Learning rate": (0.4, 1.0)}
    assert runs_in_ranges(chart, ranges) == ["run-1", "run-2", "run-3"]
    assert range_text(chart, ranges) == "Learning rate 0.01 to 0.1"
    # Over both settings' axes: lr high and model 'tutorial' (position 1).
    both = brushed_ranges(chart, {"axis_index": [0, 1], "position": [0.9, 1]})
    assert runs_in_ranges(chart, both) == []
    accuracy = brushed_ranges(chart, {"axis_index": [1.8, 2.2], "position": [0.5, 1]})
    assert runs_in_ranges(chart, accuracy) == ["run-1", "run-2"]
    assert runs_in_ranges(chart, {}) == ["run-0", "run-1", "run-2", "run-3"]
    assert brushed_ranges(chart, None) == {}


def test_accuracy_against_one_setting_in_its_order():
    table = accuracy_by_setting(lr_model_runs(), "lr")
    assert list(table["value"]) == [0.001, 0.01, 0.01, 0.1]
    assert list(table["value_text"]) == ["0.001", "0.01", "0.01", "0.1"]


def test_heatmap_means_the_runs_of_each_pair():
    runs = lr_model_runs() + [run(5, 44.0, lr=0.01, model="fast")]
    table = heatmap_table(runs, "lr", "model")
    cell = table[(table["x"] == "0.01") & (table["y"] == "fast")].iloc[0]
    assert cell["accuracy"] == pytest.approx(42.0) and cell["runs"] == 2
    # Two runs in the cell (40 and 44): their mean and spread (issue 26's repeats).
    assert cell["label"] == "42.0 ± 2.0 %" and cell["spread"] == pytest.approx(2.0)
    assert len(table) == 4
    assert sorted(set(table["x_order"])) == [0, 1, 2]


def test_importance_as_bars_and_why_it_is_missing():
    table = importance_table({"momentum": 0.25, "lr": 0.75})
    assert list(table["setting"]) == ["Learning rate", "Momentum"]
    assert list(table["label"]) == ["75 %", "25 %"]
    assert "at least 3 runs" in importance_missing(LR_MOMENTUM, [run(0, 10.0)])
    assert "(1 so far)" in importance_missing(LR_MOMENTUM, [run(0, 10.0)])


def test_the_best_runs_settings_for_the_train_form():
    values = train_form_values(run(0, 50.0, lr=0.02, seed=7, train_size=500))
    assert values == TrainConfig(lr=0.02, seed=7, train_size=500).to_dict()
    assert set(values) == set(settings())


def test_value_positions_never_nan_for_one_value():
    runs = [run(0, 30.0, lr=0.01), run(1, 30.0, lr=0.01)]
    chart = parallel_coordinates(LR_MOMENTUM, runs, ["lr"])
    assert not any(math.isnan(p) for p in chart.lines["position"])
    assert set(chart.lines["position"]) == {0.5}


def test_labels_of_a_sweep_and_of_a_runs_small_chart():
    from dataclasses import replace

    from cifar_core.sweeps.progress import panel_title, sweep_label, sweep_menu_label

    runs = [run(0, 30.0), run(1, 55.5), run(2, status="running")]
    assert sweep_label(sweep(LR_MOMENTUM), runs) == "sweep-1 (running, 3 of 6 runs, best 55.5 %)"
    assert sweep_menu_label(sweep(LR_MOMENTUM)) == "sweep-1"
    named = replace(sweep(LR_MOMENTUM), name="rates")
    assert sweep_menu_label(named).startswith("rates (started ")
    assert panel_title(runs[1]) == "Trial 1 · 55.5 %"
    assert panel_title(run(3, status="pruned")) == "Trial 3 · stopped early"


def test_a_run_stopped_early_says_so_in_menus_too():
    from cifar_core.runs.views import run_label, status_text

    pruned = run(4, 20.0, status="pruned")
    assert status_text(pruned) == "stopped early"
    assert "(stopped early, 20.0 %;" in run_label(pruned)


# One label's height as a share of the chart's axis (11-pixel text on a 380-pixel chart).
LABEL_HEIGHT = 14 / 380


def test_tick_labels_never_print_over_each_other():
    # Issue 22 item 10: equal (as shown) and close values printed their labels on top of each
    # other on the accuracy axis.
    accuracies = [41.02, 40.98, 41.3, 41.04, 60.0, 59.96]
    runs = [run(i, a, lr=0.001 * (i + 1)) for i, a in enumerate(accuracies)]
    space = SearchSpace(axes=(Axis("lr", tuple(0.001 * (i + 1) for i in range(6))),))
    chart = parallel_coordinates(space, runs, ["lr"])
    for _, ticks in chart.ticks.groupby("axis_index"):
        labels = list(ticks["label"])
        assert len(labels) == len(set(labels)), labels
        positions = sorted(ticks["position"])
        assert all(b - a >= LABEL_HEIGHT for a, b in zip(positions, positions[1:],
                                                         strict=False)), labels
    accuracy = chart.ticks[chart.ticks["axis_index"] == 1]
    # The ends are kept: the lowest and the highest accuracy are labelled.
    assert {"41.0 %", "60.0 %"} <= set(accuracy["label"])
    assert accuracy["position"].min() == 0 and accuracy["position"].max() == 1

"""Repeats (issue 26): each setting of a sweep run N times with seeds seed, seed+1, ...; Train's
"repeat N times"; the mean and spread of a setting's repeats in the tables and charts, and an
answer that says when the best two settings are within the noise."""

from __future__ import annotations

import json
import os

import pytest
from conftest import app_at, no_traceback
from test_sweep_views import run

from cifar_core.runs.jobs import JobRunner
from cifar_core.runs.repeats import (
    MAX_REPEATS,
    RepeatError,
    repeat_groups,
    spread_of,
    start_repeats,
    within_noise,
)
from cifar_core.runs.store import RunStore
from cifar_core.share import sweep_charts
from cifar_core.sweeps import engine
from cifar_core.sweeps.form import AxisForm, build_space
from cifar_core.sweeps.groups import best_two_answer, groups_table, value_spreads
from cifar_core.sweeps.importance import importance_answer
from cifar_core.sweeps.space import Axis, SearchSpace, SweepError, space_from_toml
from cifar_core.sweeps.store import SweepStore
from cifar_core.training.config import TrainConfig, settings

LR_GRID = SearchSpace(axes=(Axis("lr", (0.001, 0.01)), Axis("momentum", (0.8, 0.9))),
                      repeats=3, base={"seed": 7})


# --- the space ----------------------------------------------------------------------------

def test_a_grid_with_repeats_runs_every_setting_n_times_with_seeds_from_the_seed_on():
    configs = LR_GRID.configs()
    assert LR_GRID.size() == 12 and len(configs) == 12
    by_setting: dict[tuple, list[int]] = {}
    for config in configs:
        by_setting.setdefault((config["lr"], config["momentum"]), []).append(config["seed"])
    assert len(by_setting) == 4
    assert all(seeds == [7, 8, 9] for seeds in by_setting.values())
    # The run the engine makes for each index is the same as the list's.
    assert [LR_GRID.run_config(i) for i in range(12)] == configs


def test_random_draws_are_repeated_too_and_one_repeat_is_todays_behaviour():
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1, log=True),),
                        strategy="random", runs=4, seed=3, base={"seed": 0}, repeats=2)
    configs = space.configs()
    assert len(configs) == 8
    lrs = [c["lr"] for c in configs]
    assert lrs[0::2] == lrs[1::2] and len(set(lrs)) == 4
    assert [c["seed"] for c in configs] == [0, 1] * 4
    once = SearchSpace(axes=space.axes, strategy="random", runs=4, seed=3, base={"seed": 0})
    assert [c["lr"] for c in once.configs()] == lrs[0::2]
    assert {c["seed"] for c in once.configs()} == {0}


def test_repeats_are_stored_with_the_sweep_and_old_sweeps_read_as_one():
    assert SearchSpace.from_dict(LR_GRID.to_dict()).repeats == 3
    old = LR_GRID.to_dict()
    del old["repeats"]
    assert SearchSpace.from_dict(old).repeats == 1


def test_toml_repeats_are_read_and_checked():
    text = 'repeats = 3\n[settings]\nlr = [0.001, 0.01]\nepochs = 1\n'
    space = space_from_toml(text)
    assert space.repeats == 3 and space.size() == 6
    for bad in ("0", "2.5", '"three"', str(MAX_REPEATS + 1)):
        with pytest.raises(SweepError) as caught:
            space_from_toml(f"repeats = {bad}\n[settings]\nlr = [0.001, 0.01]\n")
        assert caught.value.field == "repeats" and "Repeats" in str(caught.value)
    # The seed cannot vary when repeats choose the seeds; early stopping is refused with them.
    with pytest.raises(SweepError, match="seed"):
        space_from_toml('repeats = 2\n[settings]\nlr = [0.001, 0.01]\nseed = [1, 2]\n')
    with pytest.raises(SweepError, match="[Ee]arly stopping"):
        space_from_toml('repeats = 2\nprune = "median"\n[settings]\nlr = [0.001, 0.01]\n'
                        'epochs = 2\n')


def test_the_cli_takes_repeats():
    from cifar_core.cli import build_parser
    from cifar_core.cli.sweep import space_from_args

    args = build_parser().parse_args(["sweep", "--lr", "0.001,0.01", "--repeats", "4"])
    space = space_from_args(args)
    assert space.repeats == 4 and space.size() == 8
    args = build_parser().parse_args(["sweep", "--lr", "0.001,0.01", "--repeats", "0"])
    with pytest.raises(SweepError, match="Repeats"):
        space_from_args(args)


def test_the_form_builds_a_space_with_repeats():
    forms = [AxisForm("lr", "list", text="0.001, 0.01")]
    space, problems = build_space(forms, repeats=3)
    assert not problems and space.repeats == 3 and space.size() == 6


def test_the_engine_gives_a_sweeps_repeats_distinct_seeds(runs_dir, monkeypatch):
    monkeypatch.setattr(engine, "check_devices", lambda space: None)
    monkeypatch.setattr(engine.JobRunner, "launch_queued", lambda self: [])
    store = RunStore(runs_dir)
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.01)), Axis("epochs", (1,))), repeats=3)
    sweep = engine.start_sweep(store, space, runs_dir, parallel=64)
    runs = SweepStore(store).runs(sweep.id)
    assert len(runs) == 6
    seed = sweep.space.base["seed"]
    for lr in (0.001, 0.01):
        assert sorted(r.settings["seed"] for r in runs if r.settings["lr"] == lr) == \
            [seed, seed + 1, seed + 2]


def test_smart_repeats_run_each_suggested_setting_n_times(runs_dir, monkeypatch):
    monkeypatch.setattr(engine, "check_devices", lambda space: None)
    monkeypatch.setattr(engine.JobRunner, "launch_queued", lambda self: [])
    store = RunStore(runs_dir)
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1, log=True), Axis("epochs", (1,))),
                        strategy="smart", runs=2, repeats=2)
    sweep = engine.start_sweep(store, space, runs_dir, parallel=64)
    runs = SweepStore(store).runs(sweep.id)
    assert len(runs) == 4
    lrs = [r.settings["lr"] for r in runs]
    assert lrs[0] == lrs[1] and lrs[2] == lrs[3]
    seed = sweep.space.base["seed"]
    assert [r.settings["seed"] for r in runs] == [seed, seed + 1, seed, seed + 1]


# --- mean and spread ------------------------------------------------------------------------

def repeated_runs(accuracies: dict[float, list[float]]) -> list:
    """Runs of a sweep over learning rates, each rate's repeats with these accuracies."""
    runs, i = [], 0
    for lr, values in accuracies.items():
        for r, accuracy in enumerate(values):
            runs.append(run(i, accuracy, lr=lr, seed=r))
            i += 1
    return runs


ONE_SETTING = SearchSpace(axes=(Axis("lr", (0.001, 0.01, 0.1)),), repeats=3)


def test_the_grouped_table_has_each_settings_mean_and_standard_deviation():
    runs = repeated_runs({0.001: [30.0, 32.0, 34.0], 0.01: [50.0, 52.0, 60.0],
                          0.1: [10.0, 10.0, 10.0]})
    table = groups_table(ONE_SETTING, runs)
    assert list(table["lr"]) == ["0.01", "0.001", "0.1"]  # best mean first
    best = table.iloc[0]
    assert best["runs"] == 3 and best["mean"] == pytest.approx(54.0)
    assert best["spread"] == pytest.approx(5.2915, abs=1e-3)  # sample sd of 50, 52, 60
    assert (best["low"], best["high"]) == pytest.approx((54.0 - 5.2915, 54.0 + 5.2915), abs=1e-3)
    assert best["text"] == "54.0 ± 5.3 %"
    assert table.iloc[2]["spread"] == 0.0
    # Two repeats: the bar reaches from the lower to the higher, ± half their difference.
    two = spread_of([40.0, 44.0])
    assert (two.mean, two.low, two.high) == (42.0, 40.0, 44.0) and two.text == "42.0 ± 2.0 %"


def test_the_answer_says_within_the_noise_when_the_best_two_overlap():
    close = repeated_runs({0.001: [50.0, 53.0, 47.0], 0.01: [51.0, 49.0, 54.0],
                           0.1: [10.0, 11.0, 9.0]})
    sentence = best_two_answer(ONE_SETTING, close)
    assert "within the noise" in sentence and "0.01" in sentence and "0.001" in sentence
    apart = repeated_runs({0.001: [30.0, 31.0, 29.0], 0.01: [51.0, 49.0, 50.0],
                           0.1: [10.0, 11.0, 9.0]})
    sentence = best_two_answer(ONE_SETTING, apart)
    assert "within the noise" not in sentence and "more than" in sentence
    assert within_noise(spread_of([50, 53, 47]), spread_of([51, 49, 54]))
    assert not within_noise(spread_of([30, 31, 29]), spread_of([51, 49, 50]))


def test_one_seed_per_setting_says_it_cannot_tell_noise():
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.01, 0.1)),))
    runs = [run(i, a, lr=lr) for i, (lr, a) in enumerate([(0.001, 30.0), (0.01, 31.0),
                                                            (0.1, 10.0)])]
    sentence = best_two_answer(space, runs)
    assert "within the noise" not in sentence and "one seed" in sentence.lower()


def test_the_one_setting_chart_draws_error_bars_from_the_repeats():
    runs = repeated_runs({0.001: [30.0, 32.0, 34.0], 0.01: [50.0, 52.0, 60.0]})
    from cifar_core.sweeps.answer import accuracy_by_setting

    spreads = value_spreads(runs, "lr")
    assert list(spreads["mean"]) == pytest.approx([32.0, 54.0])
    spec = sweep_charts.one_setting_chart(accuracy_by_setting(runs, "lr"), settings()["lr"],
                                          spreads).to_dict()
    bars = [layer for layer in spec["layer"]
            if (layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"])
            == "errorbar"]
    assert bars, [layer["mark"] for layer in spec["layer"]]
    assert bars[0]["encoding"]["y"]["field"] == "low"
    assert bars[0]["encoding"]["y2"]["field"] == "high"


def test_the_heatmap_shows_a_cells_spread_and_the_per_value_means_too():
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.01)), Axis("momentum", (0.8, 0.9))),
                        repeats=2)
    runs, i = [], 0
    for lr in (0.001, 0.01):
        for m in (0.8, 0.9):
            for r, delta in enumerate((-1.0, 1.0)):
                runs.append(run(i, (40.0 if lr == 0.01 else 20.0) + delta, lr=lr, momentum=m,
                                seed=r))
                i += 1
    from cifar_core.sweeps.answer import heatmap_table

    table = heatmap_table(runs, "lr", "momentum")
    assert set(table["label"]) == {"20.0 ± 1.0 %", "40.0 ± 1.0 %"}
    assert set(table["runs"]) == {2}
    answer = importance_answer(space, runs)
    assert "seed" in answer.note.lower()
    assert any("within" in line for line in answer.lines if line.startswith("Momentum"))
    assert any("more than" in line for line in answer.lines if line.startswith("Learning"))


# --- Train's repeat N times -------------------------------------------------------------------

def test_train_repeats_make_n_runs_with_seeds_s_to_s_plus_n_minus_1(runs_dir, data_dir,
                                                                     monkeypatch):
    launched = []
    monkeypatch.setattr(JobRunner, "_launch", lambda self, r: launched.append(r.id))
    runner = JobRunner(RunStore(runs_dir))
    config = TrainConfig(epochs=1, batch_size=10, seed=41)
    runs = start_repeats(runner, config, data_dir, 3)
    assert [r.settings["seed"] for r in runs] == [41, 42, 43]
    assert all(r.settings["lr"] == config.lr for r in runs)
    assert len({r.id for r in runs}) == 3
    # Without a seed, one is drawn and the repeats follow it.
    drawn = start_repeats(runner, TrainConfig(epochs=1), data_dir, 2)
    assert drawn[1].settings["seed"] == drawn[0].settings["seed"] + 1
    for bad in (0, MAX_REPEATS + 1):
        with pytest.raises(RepeatError):
            start_repeats(runner, config, data_dir, bad)


def test_train_repeats_are_grouped_with_their_mean_and_spread():
    runs = [run(i, a, seed=s, lr=0.01) for i, (s, a) in enumerate([(5, 40.0), (6, 44.0),
                                                                    (7, 42.0)])]
    other = run(9, 70.0, seed=1, lr=0.1)  # other settings: not of the group
    lone = [r.__class__(**{**r.__dict__, "sweep_id": None, "trial": None})
            for r in runs + [other]]
    [group] = repeat_groups(lone)
    assert [r.id for r in group.runs] == ["run-0", "run-1", "run-2"]
    assert group.spread.mean == pytest.approx(42.0)
    assert group.spread.spread == pytest.approx(2.0)
    assert "3 runs" in group.title and "seeds 5 to 7" in group.title
    assert repeat_groups(runs) == []  # a sweep's runs are the sweep's


# --- the pages --------------------------------------------------------------------------------

def test_the_sweep_forms_repeats_field_multiplies_the_runs(data_dir, runs_dir, monkeypatch):
    import cifar_core.training.estimate as estimate

    monkeypatch.setattr(estimate, "measure_images_per_s",
                        lambda config, threads=None, **_: 1000.0)
    monkeypatch.setattr(estimate, "measure_test_images_per_s",
                        lambda config, threads=None, num_classes=10, shape=None: 1000.0)
    at = app_at("pages/sweep.py")
    at.radio(key="sw_lr_mode").set_value("list").run()
    at.text_input(key="sw_lr_list").input("0.001, 0.01").run()
    at.number_input(key="sw_repeats").set_value(3).run()
    no_traceback(at)
    assert any(m.value.startswith("**6 runs, about") for m in at.markdown), \
        [m.value for m in at.markdown]
    assert not at.button(key="sw_start_button").disabled
    at.selectbox(key="sw_prune").set_value("median").run()
    errors = [e.value for e in at.error]
    assert any("Early stopping and repeats" in e for e in errors), errors
    assert at.button(key="sw_start_button").disabled


def test_the_runs_page_shows_train_repeats_as_a_group(data_dir, runs_dir):
    store = RunStore(runs_dir)
    config = TrainConfig(epochs=1, batch_size=10, log_every=2, lr=0.01).to_dict()
    for seed, accuracy in ((3, 40.0), (4, 44.0)):
        made = store.create({**config, "seed": seed}, str(data_dir), "dashboard")
        store.set_running(made.id, os.getpid())
        store.finish(made.id, "completed", "", {"accuracy": accuracy, "per_class": {}})
    at = app_at("pages/runs.py")
    no_traceback(at)
    assert any(m.value.startswith("**Repeated runs**") for m in at.markdown)
    [table] = [d.value for d in at.dataframe if "group" in d.value.columns]
    assert list(table["group"]) == ["2 runs, seeds 3 to 4"]
    assert list(table["accuracy"]) == ["42.0 ± 2.0 %"]


def repeated_sweep(runs_dir, data_dir, accuracies: dict[float, list[float]]) -> str:
    """A completed sweep over learning rates, each run len(values) times with these
    accuracies (made through the store): its id."""
    store = RunStore(runs_dir)
    sweeps = SweepStore(store)
    repeats = len(next(iter(accuracies.values())))
    config = TrainConfig(epochs=1, batch_size=10, log_every=2).to_dict()
    space = SearchSpace(axes=(Axis("lr", tuple(accuracies)),), repeats=repeats,
                        base={"seed": 5})
    sweep = sweeps.create("repeats", space, str(data_dir), "cli")
    trial = 0
    for lr, values in accuracies.items():
        for r, accuracy in enumerate(values):
            made = sweeps.add_run(sweep, {**config, "lr": lr, "seed": 5 + r}, trial)
            store.set_running(made.id, os.getpid())
            store.finish(made.id, "completed", "", {"accuracy": accuracy, "per_class": {}})
            trial += 1
    sweeps.finish(sweep.id, "completed", "")
    return sweep.id


def test_the_sweep_answer_shows_each_settings_mean_spread_and_error_bars(data_dir, runs_dir):
    repeated_sweep(runs_dir, data_dir, {0.001: [30.0, 31.0, 29.0], 0.01: [51.0, 49.0, 50.0]})
    at = app_at("pages/sweep.py")
    no_traceback(at)
    [best] = [s.value for s in at.success]
    assert best.startswith("Best setting: learning rate 0.01, **50.0 ± 1.0 %**")
    assert any("more than their spreads" in c.value for c in at.caption)
    [table] = [d.value for d in at.dataframe if "text" in d.value.columns]
    assert list(table["text"]) == ["50.0 ± 1.0 %", "30.0 ± 1.0 %"]
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    marks = [layer["mark"] for spec in specs for layer in spec.get("layer", [])]
    assert any((m["type"] if isinstance(m, dict) else m) == "errorbar" for m in marks)


def test_the_sweep_report_gives_each_settings_mean_spread_and_error_bars(data_dir, runs_dir):
    from cifar_core.share.report import sweep_report

    sweep_id = repeated_sweep(runs_dir, data_dir, {0.001: [50.0, 53.0, 47.0],
                                                   0.01: [51.0, 49.0, 54.0]})
    store = RunStore(runs_dir)
    html = sweep_report(store, SweepStore(store).get(sweep_id))
    assert "are within the noise" in html  # the best two settings
    assert "51.3 ± 2.5 %" in html  # the best setting's row: 51, 49, 54
    assert '"errorbar"' in html
    assert "<th>Seed</th>" in html  # the runs' table tells a setting's repeats apart


def test_sweep_show_says_the_best_settings_mean_and_the_noise(data_dir, runs_dir, capsys):
    from conftest import run_cli

    sweep_id = repeated_sweep(runs_dir, data_dir, {0.001: [30.0, 31.0, 29.0],
                                                   0.01: [51.0, 49.0, 50.0]})
    code, out, _ = run_cli(capsys, "sweep", "show", sweep_id, "--runs-dir", str(runs_dir))
    assert code == 0
    assert "Best setting: learning rate 0.01, 50.0 ± 1.0 %" in out
    assert "more than their spreads" in out


def test_two_settings_repeats_get_a_chart_of_each_settings_mean_with_error_bars():
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.01)), Axis("momentum", (0.8, 0.9))),
                        repeats=3)
    runs, i = [], 0
    for lr in (0.001, 0.01):
        for m in (0.8, 0.9):
            for r, delta in enumerate((-1.0, 0.0, 1.0)):
                runs.append(run(i, (40.0 if lr == 0.01 else 20.0) + 5 * (m == 0.9) + delta,
                                lr=lr, momentum=m, seed=r))
                i += 1
    table = groups_table(space, runs)
    assert list(table["setting"])[0] == "learning rate 0.01, momentum 0.9"
    spec = sweep_charts.settings_chart(table).to_dict()
    [bar] = [layer for layer in spec["layer"] if layer["mark"]["type"] == "errorbar"]
    assert bar["encoding"]["x"]["field"] == "low" and bar["encoding"]["x2"]["field"] == "high"
    assert bar["encoding"]["y"]["sort"] == list(table["setting"])  # best mean on top


def test_a_two_setting_sweep_with_repeats_draws_each_settings_error_bar(data_dir, runs_dir):
    store = RunStore(runs_dir)
    sweeps = SweepStore(store)
    config = TrainConfig(epochs=1, batch_size=10, log_every=2).to_dict()
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.01)), Axis("momentum", (0.8, 0.9))),
                        repeats=2, base={"seed": 5})
    sweep = sweeps.create("two settings", space, str(data_dir), "cli")
    for trial, config_i in enumerate(space.configs()):
        made = sweeps.add_run(sweep, {**config, **config_i}, trial)
        store.set_running(made.id, os.getpid())
        accuracy = 100 * config_i["lr"] + config_i["momentum"] + config_i["seed"] - 5
        store.finish(made.id, "completed", "", {"accuracy": accuracy, "per_class": {}})
    sweeps.finish(sweep.id, "completed", "")
    at = app_at("pages/sweep.py")
    no_traceback(at)
    assert any(m.value == "**Each setting, over its repeats**" for m in at.markdown)
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    bars = [layer for spec in specs for layer in spec.get("layer", [])
            if isinstance(layer.get("mark"), dict) and layer["mark"].get("type") == "errorbar"]
    assert bars and bars[0]["encoding"]["x2"]["field"] == "high"


def test_the_train_pages_repeat_field_starts_n_runs_of_the_next_seeds(data_dir, runs_dir,
                                                                      monkeypatch):
    monkeypatch.setattr(JobRunner, "_launch", lambda self, r: None)  # queued, not trained
    at = app_at("pages/train.py")
    at.checkbox(key="cfg_seed_none").uncheck().run()
    at.number_input(key="cfg_seed").set_value(11)
    at.number_input(key="train_repeats").set_value(3).run()
    no_traceback(at)
    assert any(c.value.startswith("3 runs (seed, seed + 1, ...)") for c in at.caption)
    next(b for b in at.button if b.label == "Start training").click().run()
    no_traceback(at)
    runs = RunStore(runs_dir).list()
    assert sorted(r.settings["seed"] for r in runs) == [11, 12, 13]
    assert len({repr({k: v for k, v in r.settings.items() if k != "seed"}) for r in runs}) == 1


def test_the_runs_table_shows_each_repeats_seed_as_written():
    from cifar_core.sweeps.answer import sweep_runs_table

    runs = repeated_runs({0.001: [30.0, 32.0], 0.01: [50.0, 52.0]})
    runs = [r.__class__(**{**r.__dict__, "config": {**r.config, "seed": 931748790 + i % 2}})
            for i, r in enumerate(runs)]
    table = sweep_runs_table(SearchSpace(axes=(Axis("lr", (0.001, 0.01)),), repeats=2), runs)
    assert list(table["seed"]) == ["931748791", "931748790", "931748791", "931748790"]


def test_parallel_coordinates_label_a_repeated_settings_values_not_made_up_ones():
    from cifar_core.sweeps.answer import parallel_coordinates

    space = SearchSpace(axes=(Axis("lr", (0.002, 0.02)), Axis("momentum", (0.8, 0.9))),
                        repeats=3)
    runs = [run(i, 10.0 + i, **c) for i, c in enumerate(SearchSpace(
        axes=space.axes, repeats=3, base={"seed": 0}).configs())]
    chart = parallel_coordinates(space, runs, ["lr", "momentum"])
    labels = chart.ticks.groupby("axis_index")["label"].apply(list)
    assert labels[0] == ["0.002", "0.02"] and labels[1] == ["0.8", "0.9"]


def test_repeats_do_not_count_as_settings_for_the_importance():
    # A 2 x 2 grid with 3 repeats: 12 finished runs, but only 4 settings (issue 26's 50 % / 50 %
    # came back from such a sweep: the importance took the runs for 12 settings).
    space = SearchSpace(axes=(Axis("lr", (0.002, 0.02)), Axis("momentum", (0.8, 0.9))),
                        repeats=3, base={"seed": 5})
    runs = [run(i, 100 * c["lr"] + c["seed"], **c) for i, c in enumerate(space.configs())]
    answer = importance_answer(space, runs)
    assert answer.few and answer.importance is None
    assert "4 settings" in answer.note
    assert answer.lines[0].startswith("Learning rate")


def test_smart_draws_its_first_settings_at_random_whatever_the_repeats(tmp_path):
    from cifar_core.sweeps import smart

    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1, log=True),), strategy="smart",
                        runs=12, repeats=3)
    journal = tmp_path / "study.log"
    smart.create_study(journal, "s")
    once = smart._load(smart._storage(journal), "s", SearchSpace(axes=space.axes,
                                                                 strategy="smart", runs=12))
    repeated = smart._load(smart._storage(journal), "s", space)
    # Each setting's repeats are trials too: the random start spans as many settings.
    assert repeated.sampler._n_startup_trials == 3 * once.sampler._n_startup_trials

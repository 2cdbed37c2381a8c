"""The Train page's Model choice, Advanced settings (the training recipe) and presets, through
streamlit.testing.v1.AppTest on tiny generated data (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
import torch
from conftest import shown_tiles
from streamlit.testing.v1 import AppTest

import cifar_core.training.estimate
from cifar_core import scheduler
from cifar_core.runs.store import RunStore
from cifar_core.runs.views import SETTINGS
from cifar_core.training.config import PRESETS, TrainConfig, defaults, offered_presets, settings
from cifar_core.training.loop import model_width
from cifar_core.training.models import model_spec

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 60
TRAIN_IMAGES = 100  # the tiny data's (conftest.write_cifar_batches: 5 batches of 20)
ADVANCED = [name for name, spec in settings().items() if spec.advanced]


@pytest.fixture(autouse=True)
def fresh_caches():
    """The page caches measured speeds and sizes per process: each test starts without."""
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def train_page(advanced_open: bool = True) -> AppTest:
    """The Train page, its Advanced section opened (as a click opens it) unless told not to."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/train.py").run()
    if advanced_open:
        at.session_state["advanced_open"] = True
        at.run()
    no_traceback(at)
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in texts(at) and "Something went wrong" not in texts(at)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def start_button(at: AppTest):
    return next(b for b in at.button if b.label == "Start training")


def model_caption(at: AppTest) -> str:
    """The caption under the Model choice (it holds the model's description)."""
    description_starts = [model_spec(name).description[:30] for name in ("tutorial", "fast",
                                                                         "resnet18",
                                                                         "tutorial-wide")]
    return next(c.value for c in at.caption
                if any(c.value.startswith(d) for d in description_starts))


def widget(at: AppTest, name: str):
    spec = settings()[name]
    if spec.kind is bool:
        return at.toggle(key=f"cfg_{name}")
    if spec.choices is not None or name == "start_from":  # a menu of runs (issue 25)
        return at.selectbox(key=f"cfg_{name}")
    return at.number_input(key=f"cfg_{name}")


def form_value(at: AppTest, name: str):
    """A setting's value as the form holds it (None: its 'none' box is ticked)."""
    if name == "start_from":  # its menu's first choice is None: nothing to start from
        return widget(at, name).value
    if settings()[name].optional and at.checkbox(key=f"cfg_{name}_none").value:
        return None
    return widget(at, name).value


def choose_preset(at: AppTest, preset_id: str) -> None:
    at.selectbox(key="preset").set_value(preset_id).run()
    no_traceback(at)


# --- The Model choice ---------------------------------------------------------------------------

def test_the_model_choice_shows_what_it_is_its_size_at_the_width_and_a_measured_time(
        data_dir, runs_dir):
    at = train_page()
    caption = model_caption(at)
    assert model_spec("tutorial").description in caption
    assert f"{model_spec('tutorial').parameter_count():,} weights" in caption
    assert "of training, " in caption and "of tests (measured just now)" in caption

    at.selectbox(key="cfg_model").set_value("fast").run()
    no_traceback(at)
    fast = model_spec("fast")
    standard = model_width(TrainConfig(model="fast"))  # this machine's standard width
    caption = model_caption(at)
    assert fast.description in caption
    assert f"{fast.parameter_count(10, standard):,} weights at width {standard}" in caption
    # The standard width is shown (greyed out); unticked, another width changes the size.
    assert at.number_input(key="cfg_width").value == standard
    assert at.number_input(key="cfg_width").disabled
    at.checkbox(key="cfg_width_none").uncheck().run()
    at.number_input(key="cfg_width").set_value(8).run()
    no_traceback(at)
    assert f"{fast.parameter_count(10, 8):,} weights at width 8" in model_caption(at)
    assert "measured just now" in model_caption(at)


def test_the_time_comes_from_earlier_runs_like_it_when_there_are_some(data_dir, runs_dir):
    store = RunStore(runs_dir)
    like_it = TrainConfig(batch_size=10, epochs=1, seed=0, lr=0.01).to_dict()
    run = store.create(like_it, str(data_dir), "cli", status="running")
    store.finish(run.id, "completed", metrics={"accuracy": 30.0, "images_per_s": 40.0})
    at = train_page()
    assert "measured just now" in model_caption(at)  # batch 4: not like it
    at.number_input(key="cfg_batch_size").set_value(10).run()
    no_traceback(at)
    # 2 epochs of the 100 training images at 40 images per second (its start-up and tests
    # unknown: it has no epoch reports, so they are measured).
    expected = "5 s of training, "
    assert expected in model_caption(at).lower()
    assert any(expected in c.value for c in at.caption if "images in all" in c.value)


def test_the_speed_is_measured_once_per_speed_setting_not_on_every_change(data_dir, runs_dir,
                                                                         monkeypatch):
    measured = []

    def fake_measure(config, threads=None, **_):
        measured.append((config.model, config.batch_size))
        return 50.0

    monkeypatch.setattr(cifar_core.training.estimate, "measure_images_per_s", fake_measure)
    at = train_page()
    assert measured == [("tutorial", 4)]
    assert "4 s of training, " in model_caption(at).lower()
    assert "(measured just now)" in model_caption(at)
    at.number_input(key="cfg_epochs").set_value(3).run()
    at.number_input(key="cfg_lr").set_value(0.01).run()
    assert measured == [("tutorial", 4)], "epochs and learning rate do not change the speed"
    assert "6 s of training, " in model_caption(at)
    at.number_input(key="cfg_batch_size").set_value(8).run()
    assert measured == [("tutorial", 4), ("tutorial", 8)]


def test_a_failing_measurement_leaves_the_page_working_without_a_time(data_dir, runs_dir,
                                                                      monkeypatch):
    def broken(config, threads=None, **_):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(cifar_core.training.estimate, "measure_images_per_s", broken)
    at = train_page()
    assert model_spec("tutorial").description in model_caption(at)
    assert "of training" not in texts(at)
    assert not start_button(at).disabled


# --- Width --------------------------------------------------------------------------------------

def test_width_invites_no_value_for_the_tutorial_model_and_its_message_shows_if_set(
        data_dir, runs_dir):
    at = train_page()
    assert at.number_input(key="cfg_width").disabled
    assert at.number_input(key="cfg_width").value is None  # an empty field, not a '0'
    assert at.checkbox(key="cfg_width_none").disabled  # nothing to choose
    assert "The tutorial network has no width setting." in texts(at)

    choose_preset(at, "cpu-2min")  # a width for the fast network ...
    assert not at.number_input(key="cfg_width").disabled
    at.selectbox(key="cfg_model").set_value("tutorial").run()  # ... kept for the tutorial's
    no_traceback(at)
    assert any("has no width setting: leave Width empty" in e for e in errors(at)), errors(at)
    assert start_button(at).disabled
    assert "Fix the settings marked in red to start: Width." in texts(at)
    # The message's own advice can be followed: the 'standard' box still takes a click.
    at.checkbox(key="cfg_width_none").check().run()
    assert not errors(at) and not start_button(at).disabled


def test_a_width_out_of_the_models_range_gets_the_configs_message(data_dir, runs_dir):
    at = train_page()
    at.selectbox(key="cfg_model").set_value("fast").run()
    at.checkbox(key="cfg_width_none").uncheck().run()
    at.number_input(key="cfg_width").set_value(2).run()
    no_traceback(at)
    low, high = model_spec("fast").widths
    assert any(f"between {low} and {high}" in e for e in errors(at)), errors(at)
    assert start_button(at).disabled


# --- Advanced -----------------------------------------------------------------------------------

def test_every_advanced_setting_has_a_widget_under_advanced_with_its_help(data_dir, runs_dir):
    at = train_page()
    [advanced] = [e for e in at.expander if e.label.startswith("Advanced")]
    inside = {getattr(w, "key", None) for w in advanced.children.values()} | {
        getattr(w, "key", None) for w in _descendants(advanced)}
    for name in ADVANCED:
        spec = settings()[name]
        assert f"cfg_{name}" in inside, f"{name} is not under Advanced"
        shown = widget(at, name)
        assert shown.label == spec.label and shown.help == spec.help
        if spec.kind is bool:
            assert shown.type == "toggle" or type(shown).__name__ == "Toggle"
    # The basic settings are not in there.
    assert "cfg_epochs" not in inside and "cfg_model" not in inside


def _descendants(block):
    for child in block.children.values():
        yield child
        if hasattr(child, "children"):
            yield from _descendants(child)


@pytest.mark.parametrize("name, value, words", [
    ("label_smoothing", 1.0, "Label smoothing"),
    ("weight_decay", 2.0, "Weight decay"),
])
def test_a_bad_advanced_value_gets_the_configs_message_and_no_start(data_dir, runs_dir, name,
                                                                   value, words):
    at = train_page()
    widget(at, name).set_value(value).run()
    no_traceback(at)
    assert any(words in e for e in errors(at)), errors(at)
    assert start_button(at).disabled
    # Said where to look: the field is inside the (maybe closed) Advanced section.
    assert f"{settings()[name].label} (under Advanced)" in texts(at)


def test_fp16_on_a_cpu_gets_its_message(data_dir, runs_dir):
    at = train_page()
    at.selectbox(key="cfg_device").set_value("cpu").run()
    at.selectbox(key="cfg_precision").set_value("fp16").run()
    no_traceback(at)
    assert any("fp16" in e and "needs a GPU" in e for e in errors(at)), errors(at)
    assert start_button(at).disabled
    at.selectbox(key="cfg_precision").set_value("bf16").run()
    assert not errors(at) and not start_button(at).disabled


def test_nesterov_is_a_switch_and_needs_momentum(data_dir, runs_dir):
    at = train_page()
    at.toggle(key="cfg_nesterov").set_value(True).run()
    assert not errors(at)
    at.number_input(key="cfg_momentum").set_value(0.0).run()
    no_traceback(at)
    assert any("Nesterov momentum needs a momentum above 0" in e for e in errors(at))
    assert start_button(at).disabled


def test_augmentation_is_shown_on_one_training_image_and_copies(data_dir, runs_dir):
    at = train_page()
    off = shown_tiles(at)
    assert [caption for _, caption in off] == ["original", "copy 1", "copy 2", "copy 3",
                                               "copy 4", "copy 5"]
    assert "Augmentation is off" in texts(at)
    # flip+translate moves the picture: some copies differ from the original.
    assert {url for url, _ in off[1:]} - {off[0][0]}
    at.selectbox(key="cfg_augment").set_value("flip").run()
    no_traceback(at)
    flipped = shown_tiles(at)
    assert "With flip," in texts(at)
    assert flipped[0] == off[0], "the same training image"
    # A flip copy is the original or its mirror image: at most two different pictures.
    assert len({url for url, _ in flipped}) <= 2 < len({url for url, _ in off})
    at.run()
    assert shown_tiles(at) == flipped, "seeded: the same copies on every rerun"


# --- Presets ------------------------------------------------------------------------------------

def test_the_preset_menu_offers_what_this_machine_can_run(data_dir, runs_dir):
    at = train_page()
    options = at.selectbox(key="preset").options
    assert len(options) == len(offered_presets())
    assert {PRESETS["cpu-2min"].title, PRESETS["cpu-5min"].title} <= set(options)
    if not torch.cuda.is_available():
        assert PRESETS["gpu"].title not in options


def test_where_cuda_is_present_the_gpu_preset_is_offered_and_fills_the_fields(
        data_dir, runs_dir, monkeypatch):
    # No GPU is needed: CUDA is only said to be there, and the speed is not measured on it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(cifar_core.training.estimate, "measure_images_per_s",
                        lambda config, threads=None, **_: 10_000.0)
    at = train_page()
    assert PRESETS["gpu"].title in at.selectbox(key="preset").options
    choose_preset(at, "gpu")
    wanted = {**defaults(), **PRESETS["gpu"].values}
    for name in settings():
        if name != "seed":
            assert form_value(at, name) == wanted[name], name
    at.checkbox(key="cfg_width_none").check().run()  # the standard width here: the GPU's
    assert at.number_input(key="cfg_width").value == model_spec("fast").gpu_width
    at.selectbox(key="cfg_precision").set_value("fp16").run()  # allowed on a GPU
    assert not errors(at) and not start_button(at).disabled


@pytest.mark.parametrize("preset_id", ["cpu-1min", "cpu-2min", "cpu-5min"])
def test_a_cpu_preset_fills_every_field_and_the_tutorial_preset_resets_them(data_dir, runs_dir,
                                                                           preset_id):
    at = train_page()
    assert "Measured:" not in texts(at)  # the tutorial preset first: no figures to give
    choose_preset(at, preset_id)
    wanted = {**defaults(), **PRESETS[preset_id].values}
    for name in settings():
        if name != "seed":  # a preset leaves the seed as chosen
            assert form_value(at, name) == wanted[name], name
    assert not errors(at) and not start_button(at).disabled
    # what it was measured to reach, under the menu
    assert PRESETS[preset_id].measured in [c.value.split(" ", 1)[1] for c in at.caption]

    choose_preset(at, "tutorial")
    tutorial = {**defaults(), **PRESETS["tutorial"].values}  # the defaults, Log every 2,000
    for name in settings():
        if name not in ("seed", "device"):  # the tutorial preset names no device
            assert form_value(at, name) == tutorial[name], name
    assert not errors(at)


def test_back_to_the_preset_undoes_changes(data_dir, runs_dir):
    at = train_page()
    assert not [b for b in at.button if b.label == "Back to the preset"]
    at.selectbox(key="cfg_augment").set_value("flip").run()
    at.number_input(key="cfg_epochs").set_value(7).run()
    next(b for b in at.button if b.label == "Back to the preset").click().run()
    no_traceback(at)
    assert form_value(at, "augment") == "none" and form_value(at, "epochs") == 2


# --- A fast run from the form, and the pages that show it ---------------------------------------

def test_a_fast_run_started_from_the_form_records_its_recipe_and_runs_shows_it(data_dir,
                                                                              runs_dir):
    at = train_page()
    choose_preset(at, "cpu-2min")
    at.number_input(key="cfg_epochs").set_value(1).run()
    at.number_input(key="cfg_batch_size").set_value(50).run()
    at.checkbox(key="cfg_width_none").check().run()  # the standard width
    start_button(at).click().run()
    no_traceback(at)
    [run] = RunStore(runs_dir).list()
    config = run.train_config
    recipe = PRESETS["cpu-2min"].values
    assert (config.model, config.width, config.epochs, config.batch_size) == ("fast", None, 1, 50)
    for name in ADVANCED:
        assert getattr(config, name) == recipe.get(name, defaults()[name]), name
    finished = scheduler.wait(RunStore(runs_dir), run.id, timeout=120)
    assert finished.status == "completed", finished.message

    at.switch_page("pages/runs.py").run()
    no_traceback(at)
    table = at.dataframe[0].value
    assert set(SETTINGS) <= set(table.columns)
    row = table[table["run"] == run.id].iloc[0]
    assert row["model"] == "fast" and row["augment"] == recipe["augment"]
    assert bool(row["nesterov"]) is recipe["nesterov"]
    at.switch_page("pages/evaluate.py").run()
    no_traceback(at)
    assert any(run.id in str(s.value) for s in at.selectbox)


def test_the_runs_table_shows_width_and_nesterov_as_settings(data_dir, runs_dir):
    import json

    store = RunStore(runs_dir)
    for settings_ in (dict(), dict(model="fast", width=4, nesterov=True, augment="flip")):
        run = store.create(TrainConfig(seed=0, **settings_).to_dict(), str(data_dir), "cli",
                           status="running")
        store.finish(run.id, "completed", metrics={"accuracy": 40.0, "images_per_s": 100.0})
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/runs.py").run()
    no_traceback(at)
    table = at.dataframe[0].value.set_index("model")
    # A column of a width and a None must not read '4.0' and 'nan'; the tutorial's network has
    # no width at all, so its cell reads '-'.
    assert table.loc["fast", "width"] == "4" and table.loc["tutorial", "width"] == "-"
    assert bool(table.loc["fast", "nesterov"]) and not bool(table.loc["tutorial", "nesterov"])
    columns = json.loads(at.dataframe[0].proto.columns)
    assert columns["nesterov"]["type_config"]["type"] == "checkbox"  # on/off, not a number
    at.radio(key="scatter_setting").set_value("nesterov").run()
    no_traceback(at)


def test_the_closed_advanced_section_draws_nothing_and_its_values_still_count(data_dir,
                                                                             runs_dir):
    at = train_page(advanced_open=False)
    # Closed (as a visit finds it): none of its fields is made.
    assert "cfg_weight_decay" not in [n.key for n in at.number_input]
    at.session_state["advanced_open"] = True
    at.run()
    at.number_input(key="cfg_weight_decay").set_value(0.0005).run()
    at.number_input(key="cfg_label_smoothing").set_value(1.0).run()  # out of range
    at.session_state["advanced_open"] = False
    at.run()
    at.number_input(key="cfg_epochs").set_value(3).run()  # other reruns while it is closed
    no_traceback(at)
    assert "cfg_weight_decay" not in [n.key for n in at.number_input]
    # The closed section's values still count: the bad one keeps Start disabled, and says why.
    start = next(b for b in at.button if b.label == "Start training")
    assert start.disabled
    assert any("Label smoothing" in e.value for e in at.error), texts(at)
    at.session_state["advanced_open"] = True
    at.run()
    no_traceback(at)
    assert at.number_input(key="cfg_weight_decay").value == pytest.approx(0.0005)
    assert at.number_input(key="cfg_label_smoothing").value == pytest.approx(1.0)


def test_a_speed_timed_on_the_train_page_is_not_timed_again_on_the_sweep_page(data_dir, runs_dir,
                                                                              monkeypatch):
    """One cache of measured speeds for every page (issue 23: each page had its own, so the
    same settings were timed twice, a second each)."""
    measured = []

    def fake_measure(config, threads=None, **_):
        measured.append((config.model, config.batch_size, threads))
        return 50.0

    monkeypatch.setattr(cifar_core.training.estimate, "measure_images_per_s", fake_measure)
    at = train_page(advanced_open=False)
    assert [m[:2] for m in measured] == [("tutorial", 4)]
    at.switch_page("pages/sweep.py").run()
    at.radio(key="sw_lr_mode").set_value("list").run()  # two learning rates: two runs, timed
    at.text_input(key="sw_lr_list").input("0.001, 0.01").run()
    no_traceback(at)
    assert any(m.value.startswith("**2 runs, about") for m in at.markdown), texts(at)
    assert [m[:2] for m in measured] == [("tutorial", 4)], measured

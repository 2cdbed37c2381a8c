"""cifar_core.training.config: the settings, declared once, their checks, and the presets."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from cifar_core.errors import ConfigError
from cifar_core.training.config import (
    PRESETS,
    TrainConfig,
    compared_settings,
    config_problems,
    defaults,
    offered_presets,
    plain_recipe,
    preset_note,
    preset_values,
    presets_help,
    settings,
    shape_problems,
)

# --- the settings ---------------------------------------------------------------------------

def test_defaults_are_the_tutorials():
    config = TrainConfig()
    assert (config.epochs, config.lr, config.momentum, config.batch_size) == (2, 0.001, 0.9, 4)
    # Log every: automatic by default (issue 26); the tutorial preset keeps the tutorial's 2,000.
    assert config.log_every is None
    assert config.device == "auto" and config.train_size is None
    assert config.model == "tutorial" and config.seed is None


@pytest.mark.parametrize(("settings", "field", "words"), [
    ({"lr": 0}, "lr", "above 0"),
    ({"lr": -0.1}, "lr", "above 0"),
    ({"lr": 11}, "lr", "too high"),
    ({"lr": float("nan")}, "lr", "must be a number"),
    ({"lr": float("inf")}, "lr", "must be a number"),
    ({"lr": "0.1"}, "lr", "must be a number"),
    ({"lr": True}, "lr", "must be a number"),
    ({"momentum": 1.0}, "momentum", "below 1"),
    ({"momentum": -0.1}, "momentum", "at least 0"),
    ({"momentum": None}, "momentum", "must be a number"),
    ({"epochs": 0}, "epochs", "between 1"),
    ({"epochs": 1001}, "epochs", "between 1"),
    ({"epochs": 1.5}, "epochs", "whole number"),
    ({"epochs": "2"}, "epochs", "whole number"),
    ({"epochs": True}, "epochs", "whole number"),
    ({"batch_size": 0}, "batch_size", "between 1"),
    ({"batch_size": 4.0}, "batch_size", "whole number"),
    ({"log_every": 0}, "log_every", "between 1"),
    ({"seed": -1}, "seed", "between 0"),
    ({"seed": 1.5}, "seed", "whole number"),
    ({"train_size": 0}, "train_size", "between"),
    ({"device": ""}, "device", "auto, cpu or cuda"),
    ({"device": None}, "device", "auto, cpu or cuda"),
])
def test_out_of_range_settings_raise_config_error_naming_the_field(settings, field, words):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**settings)
    assert err.value.field == field
    assert words in str(err.value)


def test_edge_values_inside_the_range_are_accepted():
    config = TrainConfig(epochs=1000, lr=10, momentum=0.0, batch_size=1, log_every=1, seed=0)
    assert config.lr == 10 and config.momentum == 0.0
    assert TrainConfig(momentum=0.999).momentum == 0.999


def test_with_seed_fills_in_a_seed_only_when_missing():
    assert TrainConfig(seed=None).with_seed().seed is not None
    assert TrainConfig(seed=5).with_seed().seed == 5


def test_dict_round_trip_ignores_unknown_keys():
    config = TrainConfig(epochs=3, lr=0.01, seed=4, train_size=50)
    assert TrainConfig.from_dict({**config.to_dict(), "from_a_newer_version": 1}) == config
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({"lr": -1})


@pytest.mark.parametrize(("settings_", "words"), [
    ({"model": "resnet-9000"}, "must be one of tutorial, tutorial-wide"),
    ({"model": ""}, "must be one of"),
    ({"model": 3}, "must be one of"),
])
def test_the_model_must_be_a_registered_one(settings_, words):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**settings_)
    assert err.value.field == "model" and words in str(err.value)
    assert TrainConfig(model="tutorial-wide").model == "tutorial-wide"


# The recipe's settings: (settings, field named, words of its message).
RECIPE_MISTAKES = [
    ({"width": 0}, "width", "tutorial network has no width setting"),
    ({"width": 0, "model": "fast"}, "width", "between 4 and 256 (got 0)"),
    ({"width": 2000, "model": "fast"}, "width", "between 4 and 256 (got 2000)"),
    ({"width": 8.5, "model": "fast"}, "width", "whole number"),
    ({"width": 8}, "width", "tutorial network has no width setting"),
    ({"width": 8, "model": "tutorial-wide"}, "width", "has no width setting"),
    ({"width": 2, "model": "fast"}, "width", "between 4 and 256 (got 2); 32 suits a CPU"),
    ({"width": 300, "model": "fast"}, "width", "between 4 and 256 (got 300)"),
    ({"augment": "rotate"}, "augment", "one of none, flip, flip+translate (got 'rotate')"),
    ({"augment": ""}, "augment", "must be one of"),
    ({"augment": 1}, "augment", "must be one of"),
    ({"label_smoothing": 1.0}, "label_smoothing", "at least 0 and below 1 (got 1.0)"),
    ({"label_smoothing": -0.1}, "label_smoothing", "at least 0 and below 1"),
    ({"label_smoothing": "0.1"}, "label_smoothing", "must be a number"),
    ({"label_smoothing": float("nan")}, "label_smoothing", "must be a number"),
    ({"weight_decay": -0.001}, "weight_decay", "between 0 and 1"),
    ({"weight_decay": 2}, "weight_decay", "between 0 and 1 (got 2)"),
    ({"weight_decay": True}, "weight_decay", "must be a number"),
    ({"nesterov": 1}, "nesterov", "on or off"),
    ({"nesterov": 0}, "nesterov", "on or off"),
    ({"nesterov": "true"}, "nesterov", "on or off"),
    ({"nesterov": None}, "nesterov", "on or off"),
    ({"nesterov": True, "momentum": 0.0}, "nesterov", "needs a momentum above 0"),
    ({"schedule": "cosine"}, "schedule", "one of constant, warmup-linear, one-cycle"),
    ({"schedule": None}, "schedule", "must be one of"),
    ({"tta": "rotate"}, "tta", "one of none, flip, flip+translate (got 'rotate')"),
    ({"precision": "fp8"}, "precision", "one of fp32, auto, bf16, fp16 (got 'fp8')"),
    ({"precision": "fp16", "device": "cpu"}, "precision", "fp16) needs a GPU"),
]


@pytest.mark.parametrize(("settings_", "field", "words"), RECIPE_MISTAKES)
def test_a_recipe_setting_out_of_place_is_named_with_its_message(settings_, field, words):
    problems = config_problems(settings_)
    assert set(problems) == {field}, problems
    assert words in problems[field]
    with pytest.raises(ConfigError) as err:
        TrainConfig(**settings_)
    assert err.value.field == field and words in str(err.value)


def test_the_recipe_settings_accept_their_values():
    config = TrainConfig(model="fast", width=4, augment="flip+translate", label_smoothing=0.2,
                         weight_decay=0.0005, nesterov=True, schedule="one-cycle",
                         tta="flip", precision="bf16", device="cpu")
    assert (config.width, config.nesterov, config.precision) == (4, True, "bf16")
    assert TrainConfig(model="fast", width=256).width == 256
    assert TrainConfig(model="fast").width is None  # the standard width for the device
    assert TrainConfig(nesterov=False, momentum=0.0).momentum == 0.0


def test_fp16_on_a_machine_without_cuda_is_refused_for_auto_too(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "precision" in config_problems({"precision": "fp16", "device": "auto"})
    assert "precision" not in config_problems({"precision": "bf16", "device": "auto"})


def test_the_tutorials_recipe_is_the_default_and_any_other_setting_leaves_it():
    assert plain_recipe(TrainConfig())
    # Augmentation and test-time augmentation change the data, not the step.
    assert plain_recipe(TrainConfig(augment="flip", tta="flip"))
    for changed in ({"label_smoothing": 0.1}, {"weight_decay": 0.001}, {"nesterov": True},
                    {"schedule": "warmup-linear"}, {"precision": "bf16"}):
        assert not plain_recipe(TrainConfig(**changed)), changed


def test_every_setting_is_declared_with_what_the_ui_and_cli_need():
    declared = settings()
    assert list(declared) == [f.name for f in dataclasses.fields(TrainConfig)]
    flags = [spec.flag for spec in declared.values()]
    assert len(set(flags)) == len(flags)
    for name, spec in declared.items():
        assert spec.label and spec.help.endswith(".") and spec.flag.startswith("--")
        assert spec.kind in (int, float, str, bool)
        # Numbers have a range; text and on/off settings have none.
        assert (spec.kind in (int, float)) == (spec.low is not None and spec.high is not None), \
            name
        # The default passes the setting's own check, and a value of the wrong kind does not.
        assert name not in config_problems({name: defaults()[name]})
        assert name in config_problems({name: [] if spec.kind is not str else ""})


def test_problems_of_a_partial_form_take_defaults_for_the_rest():
    assert config_problems({}) == {}
    assert set(config_problems({"epochs": 0, "lr": -1})) == {"epochs", "lr"}


def test_runs_are_compared_by_the_settings_that_shape_a_result():
    compared = compared_settings()
    assert {"model", "epochs", "lr", "momentum", "batch_size", "train_size"} <= set(compared)
    assert "log_every" not in compared and "device" not in compared


def test_presets_have_stable_ids_and_only_known_settings():
    assert list(PRESETS) == ["tutorial", "quick", "cpu-1min", "cpu-2min", "cpu-5min", "gpu",
                             "fashion-5min",
                             "teach-1min"]
    for preset in PRESETS.values():
        assert preset.title and set(preset.values) <= set(settings())
    for preset_id in offered_presets():
        values = preset_values(preset_id)
        if values["freeze"]:  # the Teach preset's: a network to start from comes with it
            values["start_from"] = "a-run"
        TrainConfig(**values)  # every preset offered here is a valid config
    assert preset_values("tutorial") == {**defaults(), **PRESETS["tutorial"].values}
    # The defaults but Log every: the tutorial's 2,000 where the default is automatic.
    assert TrainConfig(**preset_values("tutorial")) == TrainConfig(log_every=2000)
    with pytest.raises(ConfigError) as err:
        preset_values("fastest")
    assert "tutorial" in str(err.value) and "quick" in str(err.value)


def test_the_cpu_presets_train_more_the_more_minutes_they_promise_and_say_their_figures():
    ids = ("cpu-1min", "cpu-2min", "cpu-5min")
    images = [PRESETS[i].values["epochs"] * (PRESETS[i].values.get("train_size") or 50_000)
              for i in ids]
    assert images == sorted(images) and len(set(images)) == len(ids)
    for preset_id in ids:
        measured = PRESETS[preset_id].measured
        assert re.match(r"Measured: \d+\.\d % in \d+\.\d minutes? of training", measured), measured
        assert f"- {PRESETS[preset_id].title}: {measured}" in presets_help().splitlines()
    assert presets_help({"tutorial": PRESETS["tutorial"]}) == ""  # no figures, no line


def test_presets_say_which_data_sets_they_were_measured_on():
    for preset_id in ("tutorial", "quick", "cpu-2min", "cpu-5min", "gpu"):
        assert PRESETS[preset_id].measured_on == ("cifar10",), preset_id
    fashion = PRESETS["fashion-5min"]
    assert fashion.measured_on == ("fashion-mnist",) and not fashion.needs_gpu
    values = preset_values("fashion-5min")
    assert values["model"] == "fast" and values["device"] == "cpu"
    assert shape_problems(values, (1, 28, 28)) == {}  # its network takes Fashion-MNIST's
    # On its own data set a preset needs no word; on another, it says where it was measured.
    assert preset_note("cpu-5min", "cifar10") is None
    assert preset_note("fashion-5min", "fashion-mnist") is None
    note = preset_note("cpu-5min", "made-up-pictures")
    assert "CIFAR-10" in note and "made-up-pictures" in note
    with pytest.raises(ConfigError):
        preset_note("fastest", "cifar10")


def test_the_gpu_preset_is_offered_only_where_cuda_is(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "gpu" not in offered_presets()
    assert {"tutorial", "quick", "cpu-2min", "cpu-5min"} <= set(offered_presets())
    with pytest.raises(ConfigError) as err:
        preset_values("gpu")
    assert err.value.field == "preset"
    assert "needs a GPU" in str(err.value) and "cpu-2min" in str(err.value)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert "gpu" in offered_presets()
    values = preset_values("gpu")
    assert values["model"] == "fast" and values["device"] == "cuda"
    assert set(values) == set(settings())


def test_the_fast_presets_train_the_fast_network_with_its_recipe():
    for preset_id in ("cpu-2min", "cpu-5min", "gpu", "fashion-5min"):
        values = {**defaults(), **PRESETS[preset_id].values}
        assert values["model"] == "fast" and values["augment"] != "none", preset_id
        assert not plain_recipe(TrainConfig.from_dict({**values, "device": "cpu",
                                                       "precision": "fp32"})), preset_id
    assert PRESETS["gpu"].needs_gpu and not PRESETS["cpu-2min"].needs_gpu


def test_tiny_batches_on_a_gpu_get_advice_and_the_cpu_none(monkeypatch):
    import cifar_core.training.config as config_module

    assert config_module.device_advice("cpu", 4) is None
    assert config_module.device_advice("no-such-device", 4) is None  # config checks say so
    monkeypatch.setattr(config_module, "resolve_device", lambda name: torch.device("cuda"))
    advice = config_module.device_advice("auto", 4)
    assert advice and "batch of 4" in advice and "cpu" in advice
    assert config_module.device_advice("auto", 16) is not None
    assert config_module.device_advice("auto", 32) is None


@pytest.mark.parametrize("model", ["fast", "tutorial", "resnet18"])
def test_a_width_that_does_not_fit_gets_one_message_whatever_the_number(model):
    # Width 0 said "between 1 and 1,024", width 3 "between 4 and 256", for the same network.
    messages = {re.sub(r"\(got -?\d+\)", "(got N)", config_problems(
        {"model": model, "width": width})["width"]) for width in (-5, 0, 3, 300, 2000)}
    assert len(messages) == 1, messages
    [message] = messages
    assert "1,024" not in message


def test_the_gpu_advice_holds_up_to_the_batch_size_its_own_words_name(monkeypatch):
    """The advice says 'a batch of N or more' lets the GPU pay off: it is given below N and not
    from N on (it was given only up to 16 while saying 32)."""
    import re

    import cifar_core.training.config as config_module

    monkeypatch.setattr(config_module, "resolve_device", lambda name: torch.device("cuda"))
    named = int(re.search(r"a batch of (\d+) or more", config_module.device_advice("auto", 4))
                .group(1))
    assert config_module.device_advice("auto", named - 1) is not None
    assert config_module.device_advice("auto", named) is None

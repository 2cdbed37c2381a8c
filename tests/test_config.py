"""cifar_core.config: the settings, declared once, their checks, and the presets."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cifar_core.config import (
    PRESETS,
    TrainConfig,
    compared_settings,
    config_problems,
    defaults,
    preset_values,
    settings,
)
from cifar_core.errors import ConfigError

# --- the settings ---------------------------------------------------------------------------

def test_defaults_are_the_tutorials():
    config = TrainConfig()
    assert (config.epochs, config.lr, config.momentum, config.batch_size, config.log_every) \
        == (2, 0.001, 0.9, 4, 2000)
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


def test_every_setting_is_declared_with_what_the_ui_and_cli_need():
    declared = settings()
    assert list(declared) == [f.name for f in dataclasses.fields(TrainConfig)]
    flags = [spec.flag for spec in declared.values()]
    assert len(set(flags)) == len(flags)
    for name, spec in declared.items():
        assert spec.label and spec.help.endswith(".") and spec.flag.startswith("--")
        assert spec.kind in (int, float, str)
        assert (spec.kind is str) == (spec.low is None and spec.high is None), name
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
    assert list(PRESETS)[:2] == ["tutorial", "quick"]
    for preset_id, preset in PRESETS.items():
        assert preset.title and set(preset.values) <= set(settings())
        TrainConfig(**preset_values(preset_id))  # every preset is a valid config
    assert preset_values("tutorial") == {**defaults(), **PRESETS["tutorial"].values}
    assert TrainConfig(**preset_values("tutorial")) == TrainConfig()
    with pytest.raises(ConfigError) as err:
        preset_values("fastest")
    assert "tutorial" in str(err.value) and "quick" in str(err.value)


def test_tiny_batches_on_a_gpu_get_advice_and_the_cpu_none(monkeypatch):
    import cifar_core.config as config_module

    assert config_module.device_advice("cpu", 4) is None
    assert config_module.device_advice("no-such-device", 4) is None  # config checks say so
    monkeypatch.setattr(config_module, "resolve_device", lambda name: torch.device("cuda"))
    advice = config_module.device_advice("auto", 4)
    assert advice and "batch of 4" in advice and "cpu" in advice
    assert config_module.device_advice("auto", 16) is not None
    assert config_module.device_advice("auto", 32) is None

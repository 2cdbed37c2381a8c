"""cifar_core.training.speed: which step trains what, the settings it makes and puts back, what it
records, and the pinned weights that say the reshaping of the code changed no result."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import in_memory_data

import cifar_core.training.speed as speed
from cifar_core.training.config import TrainConfig
from cifar_core.training.loop import build_model, train
from cifar_core.training.models import MODELS
from cifar_core.training.speed import (
    WRITTEN_OUT_MAX_BATCH,
    SplitBatchTraining,
    TrainingStep,
    WrittenOutStep,
    open_step,
    splits_batches,
    threads_for_background_runs,
)
from cifar_core.training.speed.split_batch import second_process_possible
from cifar_core.training.speed.tutorial_step import TutorialStep

CPU = torch.device("cpu")
needs_second_process = pytest.mark.skipif(
    not second_process_possible(), reason="no second process on this machine (Linux, 2+ cores)")


@pytest.fixture(scope="module")
def data():
    return in_memory_data(train_n=100, test_n=50)


def run(config: TrainConfig, data):
    model = build_model(config, len(data.classes))
    return model, list(train(config, data, model))


def kind_of_step(config: TrainConfig) -> type:
    with open_step(build_model(config.with_seed()), config, CPU) as step:
        return type(step)


# --- which step -----------------------------------------------------------------------------

def test_batches_are_split_on_two_cores_for_2_to_32_images_unless_one_core_is_allowed(
        monkeypatch):
    monkeypatch.setattr(speed, "second_process_possible", lambda: True)
    monkeypatch.delenv("CIFAR_CORE_THREADS", raising=False)
    split = [b for b in (1, 2, 4, 5, 16, 32, 33, 128) if splits_batches(b)]
    assert split == [2, 4, 5, 16, 32]
    monkeypatch.setenv("CIFAR_CORE_THREADS", "1")  # runs side by side: one core each
    assert not splits_batches(4)
    assert kind_of_step(TrainConfig(batch_size=4)) is WrittenOutStep
    monkeypatch.setenv("CIFAR_CORE_THREADS", "2")
    assert splits_batches(4)
    monkeypatch.setattr(speed, "second_process_possible", lambda: False)
    assert not splits_batches(4)
    assert kind_of_step(TrainConfig(batch_size=4)) is WrittenOutStep


def test_the_written_out_step_is_for_registered_models_in_small_cpu_batches_only(monkeypatch):
    monkeypatch.setenv("CIFAR_CORE_THREADS", "1")
    assert kind_of_step(TrainConfig(batch_size=WRITTEN_OUT_MAX_BATCH)) is WrittenOutStep
    assert kind_of_step(TrainConfig(batch_size=WRITTEN_OUT_MAX_BATCH + 1)) is TrainingStep
    # The wide Net has the same layers, but its registry entry does not claim the step.
    assert kind_of_step(TrainConfig(model="tutorial-wide", batch_size=4)) is TrainingStep


@pytest.mark.parametrize("recipe", [{"label_smoothing": 0.1}, {"weight_decay": 0.0005},
                                    {"nesterov": True}, {"schedule": "warmup-linear"},
                                    {"schedule": "one-cycle"}, {"precision": "bf16"}])
def test_the_written_out_step_trains_the_tutorials_recipe_only(recipe, monkeypatch):
    monkeypatch.setenv("CIFAR_CORE_THREADS", "1")
    assert kind_of_step(TrainConfig(batch_size=4)) is WrittenOutStep
    # Augmentation changes the data, not the step.
    assert kind_of_step(TrainConfig(batch_size=4, augment="flip")) is WrittenOutStep
    with open_step(build_model(TrainConfig(seed=0)), TrainConfig(batch_size=4, **recipe),
                   CPU, total_steps=10) as step:
        assert type(step) is TrainingStep and isinstance(step.stepper, TutorialStep)


def test_a_run_with_label_smoothing_records_the_tutorial_step(data, monkeypatch):
    monkeypatch.delenv("CIFAR_CORE_THREADS", raising=False)
    _, events = run(TrainConfig(epochs=1, batch_size=4, log_every=50, seed=0,
                                label_smoothing=0.1), data)
    assert events[-1].training_step == TrainingStep.description
    _, events = run(TrainConfig(epochs=1, batch_size=4, log_every=50, seed=0), data)
    assert events[-1].training_step != TrainingStep.description


@needs_second_process
def test_split_batches_where_the_machine_allows(monkeypatch):
    monkeypatch.delenv("CIFAR_CORE_THREADS", raising=False)
    assert kind_of_step(TrainConfig(batch_size=4)) is SplitBatchTraining


# --- settings made on entering, put back on leaving -----------------------------------------

@pytest.mark.parametrize("batch_size", [4, 64])
def test_thread_and_onednn_settings_are_put_back_after_training(batch_size, data):
    threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    config = TrainConfig(epochs=1, batch_size=batch_size, log_every=5, seed=0, device="cpu")
    model = build_model(config)
    inside = []
    for event in train(config, data, model):
        if event.kind == "stats":
            inside.append((torch.get_num_threads(), torch.backends.mkldnn.enabled))
    assert (torch.get_num_threads(), torch.backends.mkldnn.enabled) == (threads, onednn)
    # Tiny batches train with PyTorch's own convolutions (oneDNN off), larger ones with it.
    assert {on for _, on in inside} == {batch_size > 16}


def test_making_a_step_changes_no_process_setting():
    """Settings are made by open_step, never by a constructor: a step object made outside it
    leaves the process as it was."""
    from cifar_core.training.speed.split_batch import SplitBatchStep

    threads = torch.get_num_threads()
    torch.manual_seed(0)
    step = SplitBatchStep(build_model(TrainConfig(seed=0)), 0.01, 0.9, batch_size=4)
    step.close()
    assert torch.get_num_threads() == threads


def test_the_run_records_which_step_trained_on_how_many_cores(data, monkeypatch):
    monkeypatch.setenv("CIFAR_CORE_THREADS", "1")
    _, events = run(TrainConfig(epochs=1, batch_size=4, log_every=50, seed=0), data)
    done = events[-1]
    assert done.training_step == WrittenOutStep.description and done.cores == 1
    _, events = run(TrainConfig(epochs=1, batch_size=64, log_every=50, seed=0), data)
    assert events[-1].training_step == TrainingStep.description


def test_background_runs_leave_a_core_to_the_dashboard_on_two_cores(monkeypatch):
    monkeypatch.delenv("CIFAR_CORE_THREADS", raising=False)
    # Two cores: the run takes one, so it never splits batches while the dashboard draws.
    assert threads_for_background_runs(1, cores=2) == 1
    # More cores: shared out between the runs side by side, never oversubscribed.
    for cores in (4, 8, 16):
        for parallel in (1, 2, 3):
            share = threads_for_background_runs(parallel, cores=cores)
            assert share >= 1 and share * parallel <= cores
    monkeypatch.setenv("CIFAR_CORE_THREADS", "1")  # a lower cap already set stays
    assert threads_for_background_runs(1, cores=16) == 1


# --- the split batch's second process coming and going --------------------------------------

@needs_second_process
def test_the_second_process_coming_and_going_mid_run_changes_no_weight(data, monkeypatch):
    """The same run three ways: the second process as the governor likes (this machine),
    switched on and off at every report, and never started (one process computes both
    halves)."""
    monkeypatch.delenv("CIFAR_CORE_THREADS", raising=False)
    # As on a machine with 3+ cores, where small batches would start on two threads (at 2
    # images, one and two threads round differently: the halves must be on one either way).
    monkeypatch.setattr("cifar_core.training.speed.cpu.small_batch_threads", lambda: 2)
    config = TrainConfig(epochs=2, batch_size=4, log_every=2, seed=0, device="cpu")
    usual, _ = run(config, data)

    switches = []

    class Flipping:  # a governor that switches the second process at every report
        def __init__(self, apply, **_):
            self.apply, self.on = apply, True

        def update(self, steps):
            self.on = not self.on
            self.apply(2 if self.on else 1)
            switches.append(self.on)

        def paused(self, steps):
            return contextlib.nullcontext()

    monkeypatch.setattr(speed, "CoreGovernor", Flipping)
    flipping, _ = run(config, data)
    assert True in switches and False in switches
    monkeypatch.setattr("cifar_core.training.speed.split_batch.SplitBatchStep.start",
                        lambda self, inputs, labels: False)
    alone, _ = run(config, data)
    for model in (flipping, alone):
        assert all(torch.equal(a, b)
                   for a, b in zip(usual.parameters(), model.parameters(), strict=True))


# --- the same weights as before the code was reshaped ---------------------------------------

def _machine() -> str:
    """What float rounding depends on (torch's version, its CPU kernels, the CPU's maker), as
    bench/pin_weights.py, which makes the pins, names it: one definition for both."""
    path = Path(__file__).resolve().parents[1] / "bench" / "pin_weights.py"
    spec = importlib.util.spec_from_file_location("pin_weights", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.machine_kind()


# sha256 (first 24 hex digits) of the weights after the default tutorial run (2 epochs, lr
# 0.001, momentum 0.9, seed 7, log every 25) on in_memory_data(400, 50), computed by the code
# as it was before training.speed existed (commit 598490c), per machine kind. Float rounding
# differs between CPUs and kernels, so each machine kind needs its own entry: PIN_COMMAND makes
# it. 598490c already had both paths: "one process" is its written-out step (NetStep, with
# CIFAR_CORE_THREADS=1), "two processes" its minibatch in two halves with a helper process
# (HalvesStep, CIFAR_CORE_THREADS unset), today's WrittenOutStep and SplitBatchTraining.
PIN_COMMAND = "git worktree add /tmp/pin598 598490c && python bench/pin_weights.py /tmp/pin598"
PINNED = {
    "2.14.1+cu130 AVX512 GenuineIntel": {
        ("one process", 4): "6db2b33068003cab40a88ef0",
        ("one process", 7): "b47d319a75e408f8a00a4fbe",
        ("two processes", 4): "ffca66de6fc171e26261e95e",
        ("two processes", 7): "e58e4d00486481913e2568d2",
    },
    "2.14.1+cu130 AVX2 AuthenticAMD": {  # AMD EPYC, 2 cores
        ("one process", 4): "9872a03e1b44118eecab1c17",
        ("one process", 7): "865d20626e681352b9f39eac",
        ("two processes", 4): "d69ea65b94a8a84565630510",
        ("two processes", 7): "c8f12982443015a76afa06d3",
    },
}


@pytest.mark.parametrize("batch_size", [4, 7])
@pytest.mark.parametrize("processes", ["one process", "two processes"])
def test_the_default_tutorial_run_gives_the_pinned_weights_bit_for_bit(
        processes, batch_size, monkeypatch):
    pinned = PINNED.get(_machine())
    if pinned is None:
        pytest.skip(f"no pinned weights for this machine kind ({_machine()}): make them with "
                    f"`{PIN_COMMAND}` and add them to PINNED in tests/test_speed.py")
    if processes == "one process":
        monkeypatch.setenv("CIFAR_CORE_THREADS", "1")
    else:
        if not second_process_possible():
            pytest.skip("no second process on this machine")
        monkeypatch.delenv("CIFAR_CORE_THREADS", raising=False)
    config = TrainConfig(seed=7, log_every=25, batch_size=batch_size)
    model, events = run(config, in_memory_data(train_n=400, test_n=50))
    assert events[-1].cores == (1 if processes == "one process" else 2)
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    assert digest.hexdigest()[:24] == pinned[(processes, batch_size)]


def test_a_registry_entry_that_gives_up_the_written_out_step_trains_the_same_to_rounding(
        data, monkeypatch):
    """The tutorial's autograd step and the written-out one learn the same weights (to float
    rounding), whichever the registry picks."""
    from dataclasses import replace

    config = TrainConfig(epochs=2, batch_size=4, log_every=5, lr=0.001, seed=0, device="cpu")
    fast, fast_events = run(config, data)
    monkeypatch.setitem(MODELS, "tutorial", replace(MODELS["tutorial"], written_out_step=False))
    plain, plain_events = run(config, data)
    assert plain_events[-1].training_step == TrainingStep.description
    assert max((a - b).abs().max().item()
               for a, b in zip(fast.parameters(), plain.parameters(), strict=True)) < 1e-5
    assert [e.kind for e in fast_events] == [e.kind for e in plain_events]

"""cifar_core.runtime: threads, oneDNN and the C allocator of a training process."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from conftest import in_memory_data

from cifar_core.runtime import (
    THREADS_ENV,
    ThreadGovernor,
    keep_freed_memory,
    runtime_settings,
)
from cifar_core.train import TrainConfig, build_model, train


@pytest.fixture(scope="module")
def data():
    return in_memory_data(train_n=100, test_n=50)


def test_small_cpu_batches_train_without_onednn_and_leave_the_settings_as_found(data):
    threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    seen = []
    config = TrainConfig(epochs=1, batch_size=4, log_every=5, seed=0, device="cpu")
    for _event in train(config, data, build_model(config)):
        seen.append(torch.backends.mkldnn.enabled)
    assert seen and not any(seen), "tiny CPU batches use PyTorch's own convolution"
    assert (torch.get_num_threads(), torch.backends.mkldnn.enabled) == (threads, onednn)
    with runtime_settings(64, torch.device("cpu")):  # larger batches keep the defaults
        assert torch.backends.mkldnn.enabled == onednn
        assert torch.get_num_threads() == threads


class FakeLibc:
    """A C library whose mallopt records its calls and accepts what `accept` allows."""

    def __init__(self, accept=lambda param, value: True):
        self.calls, self.accept = [], accept

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return int(self.accept(param, value))


@pytest.fixture
def fresh_memory_setting():
    keep_freed_memory.cache_clear()
    yield keep_freed_memory
    keep_freed_memory.cache_clear()


def test_training_keeps_freed_memory_with_both_glibc_limits(monkeypatch, fresh_memory_setting,
                                                           data):
    libc = FakeLibc()
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr("ctypes.CDLL", lambda name: libc)
    config = TrainConfig(epochs=1, batch_size=4, log_every=5, seed=0, train_size=20,
                         device="cpu")
    list(train(config, data, build_model(config)))
    list(train(config, data, build_model(config)))
    # M_MMAP_THRESHOLD 32 MB, then M_TRIM_THRESHOLD 1 GB; once per process.
    assert libc.calls == [(-3, 32 << 20), (-1, 1 << 30)]
    assert fresh_memory_setting() is True


def test_memory_limits_are_both_set_or_neither(monkeypatch, fresh_memory_setting):
    refusing = FakeLibc(accept=lambda param, value: param != -3)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr("ctypes.CDLL", lambda name: refusing)
    assert fresh_memory_setting() is False
    assert refusing.calls == [(-3, 32 << 20)], "the trim limit alone would slow training"

    fresh_memory_setting.cache_clear()
    monkeypatch.setattr("ctypes.CDLL", lambda name: object())  # a C library without mallopt
    assert fresh_memory_setting() is False
    fresh_memory_setting.cache_clear()
    monkeypatch.setattr(sys, "platform", "darwin")
    assert fresh_memory_setting() is False


def test_threads_for_small_batches_and_the_cap_a_job_runner_sets(monkeypatch):
    cpu, threads = torch.device("cpu"), torch.get_num_threads()
    monkeypatch.delenv(THREADS_ENV, raising=False)
    with runtime_settings(4, cpu):
        assert torch.get_num_threads() == max(1, min(2, os.cpu_count() - 1))
    monkeypatch.setenv(THREADS_ENV, "1")
    with runtime_settings(4, cpu):
        assert torch.get_num_threads() == 1
    with runtime_settings(64, cpu):
        assert torch.get_num_threads() == 1
    monkeypatch.setenv(THREADS_ENV, "lots")  # not a number: no cap
    with runtime_settings(64, cpu):
        assert torch.get_num_threads() == threads
    assert torch.get_num_threads() == threads


class FakeMachine:
    """A /proc/stat file, a wall clock and this process's CPU clock, all moved by hand."""

    def __init__(self, path):
        self.path, self.wall, self.own, self.busy_ticks, self.idle_ticks = path, 0.0, 0.0, 0, 0
        self.write()

    def write(self):
        self.path.write_text(f"cpu  {self.busy_ticks} 0 0 {self.idle_ticks} 0 0 0 0 0 0\n"
                             "cpu0 0 0 0 0 0 0 0 0 0 0\n")

    def run(self, seconds: float, ours: float, others: float, cores: int = 2):
        """`seconds` pass; this process uses `ours` cores of them, others `others`."""
        ticks = os.sysconf("SC_CLK_TCK")
        self.wall += seconds
        self.own += ours * seconds
        self.busy_ticks += round((ours + others) * seconds * ticks)
        self.idle_ticks += round((cores - ours - others) * seconds * ticks)
        self.write()

    def governor(self, **kwargs):
        return ThreadGovernor(1, 2, window_s=0.25, quiet=2, stat_path=str(self.path),
                              clock=lambda: self.wall, own_cpu_s=lambda: self.own, cores=2,
                              **kwargs)


@pytest.fixture
def threads_restored():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_two_threads_only_after_quiet_windows_and_one_as_soon_as_another_process_runs(
        tmp_path, threads_restored):
    machine = FakeMachine(tmp_path / "stat")
    governor = machine.governor()
    torch.set_num_threads(1)
    machine.run(0.25, ours=1, others=0)
    assert governor.update() == 1  # one quiet window is not enough
    machine.run(0.1, ours=1, others=0)
    assert governor.update() == 1  # within a window: nothing read, nothing changed
    machine.run(0.15, ours=1, others=0)
    assert governor.update() == 2 and torch.get_num_threads() == 2
    machine.run(0.25, ours=1.6, others=0.3)  # a browser wakes up
    assert governor.update() == 1 and torch.get_num_threads() == 1
    # The next rise waits twice as long: four quiet windows.
    for _ in range(3):
        machine.run(0.25, ours=1, others=0)
        assert governor.update() == 1
    machine.run(0.25, ours=1, others=0)
    assert governor.update() == 2


def test_a_busy_machine_keeps_one_thread_and_no_stat_file_changes_nothing(tmp_path,
                                                                           threads_restored):
    machine = FakeMachine(tmp_path / "stat")
    governor = machine.governor()
    torch.set_num_threads(1)
    for _ in range(10):
        machine.run(0.25, ours=1, others=0.5)
        assert governor.update() == 1
    assert torch.get_num_threads() == 1
    missing = ThreadGovernor(1, 2, stat_path=str(tmp_path / "missing"))
    assert missing.last is None and missing.update() == 1

"""cifar_core.training.speed.cpu: threads, oneDNN and the C allocator of a training process."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from conftest import in_memory_data

from cifar_core.training.config import TrainConfig
from cifar_core.training.loop import build_model, train
from cifar_core.training.speed import open_step
from cifar_core.training.speed.cpu import THREADS_ENV, keep_freed_memory


@pytest.fixture(scope="module")
def data():
    return in_memory_data(train_n=100, test_n=50)


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
    # glibc's M_MMAP_THRESHOLD (-3), then M_TRIM_THRESHOLD (-1), raised; once per process.
    assert [param for param, _ in libc.calls] == [-3, -1]
    assert all(value >= 1 << 20 for _, value in libc.calls)
    assert fresh_memory_setting() is True


def test_memory_limits_are_both_set_or_neither(monkeypatch, fresh_memory_setting):
    refusing = FakeLibc(accept=lambda param, value: param != -3)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr("ctypes.CDLL", lambda name: refusing)
    assert fresh_memory_setting() is False
    assert [param for param, _ in refusing.calls] == [-3], \
        "the trim limit alone would slow training"

    fresh_memory_setting.cache_clear()
    monkeypatch.setattr("ctypes.CDLL", lambda name: object())  # a C library without mallopt
    assert fresh_memory_setting() is False
    fresh_memory_setting.cache_clear()
    monkeypatch.setattr(sys, "platform", "darwin")
    assert fresh_memory_setting() is False


def threads_in_training(batch_size: int) -> int:
    config = TrainConfig(batch_size=batch_size, seed=0, device="cpu")
    with open_step(build_model(config), config, torch.device("cpu")):
        return torch.get_num_threads()


def test_training_keeps_within_the_cores_allowed_and_leaves_one_free_for_tiny_batches(
        monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.delenv(THREADS_ENV, raising=False)
    cores = os.cpu_count() or 1
    assert threads_in_training(4) <= max(1, cores - 1)  # the rest of the machine stays usable
    monkeypatch.setenv(THREADS_ENV, "1")  # the job runner's runs side by side
    assert threads_in_training(4) == threads_in_training(64) == 1
    monkeypatch.setenv(THREADS_ENV, "lots")  # not a number: no cap
    assert threads_in_training(64) == threads
    assert torch.get_num_threads() == threads

"""training.speed.split_batch: minibatches in two halves, one in a helper process; the same
weights as the tutorial's step to rounding, and bit for bit the same with or without the
helper."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest
import torch
from conftest import in_memory_data, largest_difference, tutorial_step, twin_nets
from torch import optim

from cifar_core.training.config import TrainConfig
from cifar_core.training.loop import build_model, train
from cifar_core.training.speed import split_batch as split_batch_module
from cifar_core.training.speed.split_batch import SplitBatchStep, second_process_possible

needs_helper = pytest.mark.skipif(not second_process_possible(),
                                  reason="no helper process on this machine (Linux, 2+ cores)")


def minibatches(batch: int, count: int, seed: int = 0, classes: int = 10):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 3, 32, 32, generator=generator),
             torch.randint(0, classes, (batch,), generator=generator)) for _ in range(count)]


def started(model, batch: int, lr=0.01, momentum=0.9) -> SplitBatchStep:
    step = SplitBatchStep(model, lr=lr, momentum=momentum, batch_size=batch)
    inputs, labels = minibatches(batch, 1, seed=99)[0]
    assert step.start(inputs, labels)
    return step


@pytest.fixture
def one_thread():
    """One thread, as training.speed.open_step sets it for split batches; put back after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@needs_helper
@pytest.mark.parametrize("batch", [4, 5, 2])
def test_halves_match_autograd_and_torch_sgd(batch, one_thread):
    ours, reference = twin_nets()
    step = started(ours, batch)
    try:
        optimizer = optim.SGD(reference.parameters(), lr=0.01, momentum=0.9)
        # The last minibatch is a single image (an epoch's short last one): no halves.
        for inputs, labels in minibatches(batch, 10) + minibatches(1, 1, seed=1):
            loss = step.step(inputs, labels)
            assert loss.item() == pytest.approx(
                tutorial_step(reference, optimizer, inputs, labels), rel=1e-5, abs=1e-6)
        assert step.helping
        assert largest_difference(ours, reference) < 1e-5
    finally:
        step.close()


@needs_helper
def test_the_helpers_cpu_time_is_read_while_it_works_and_is_zero_without_it(one_thread):
    """The governor subtracts it from the machine's busy time: a helper's work that went
    uncounted would look like another process, and send training to one core."""
    step = started(twin_nets()[0], 8)
    try:
        deadline = time.monotonic() + 10
        inputs, labels = minibatches(8, 1)[0]
        while step.second_process_cpu_s() == 0 and time.monotonic() < deadline:
            for _ in range(20):
                step.step(inputs, labels)
        busy = step.second_process_cpu_s()
        assert busy > 0
        for _ in range(200):
            step.step(inputs, labels)
        assert step.second_process_cpu_s() >= busy  # a clock: it only moves forward
    finally:
        step.close()
    assert step.second_process_cpu_s() == 0.0


@needs_helper
def test_with_and_without_the_helper_the_weights_are_the_same_bit_for_bit(one_thread):
    helped, alone = twin_nets(seed=1)
    step_helped = started(helped, 8)
    step_alone = SplitBatchStep(alone, lr=0.01, momentum=0.9, batch_size=8)
    try:
        for i, (inputs, labels) in enumerate(minibatches(8, 30, seed=2)):
            step_helped.use_second_process(i % 7 != 3)  # now and then without it
            step_helped.step(inputs, labels)
            step_alone.step(inputs, labels)
        assert all(torch.equal(a, b)
                   for a, b in zip(helped.parameters(), alone.parameters(), strict=True))
    finally:
        step_helped.close()


@needs_helper
@pytest.mark.parametrize("how", ["killed", "stuck"])
def test_a_helper_that_dies_or_stops_answering_is_replaced_with_the_same_result(
        how, one_thread, monkeypatch):
    monkeypatch.setattr(split_batch_module, "SECOND_PROCESS_TIMEOUT_S", 0.2)
    helped, alone = twin_nets(seed=2)
    step_helped = started(helped, 4)
    step_alone = SplitBatchStep(alone, lr=0.01, momentum=0.9, batch_size=4)
    batches = minibatches(4, 12, seed=3)
    try:
        for inputs, labels in batches[:6]:
            step_helped.step(inputs, labels)
            step_alone.step(inputs, labels)
        helper = step_helped.helper
        os.kill(helper.pid, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        for inputs, labels in batches[6:]:
            step_helped.step(inputs, labels)
            step_alone.step(inputs, labels)
        assert step_helped.helper is None and not step_helped.helping
        assert not helper.is_alive()  # a stuck one was killed, not left behind
        assert all(torch.equal(a, b)
                   for a, b in zip(helped.parameters(), alone.parameters(), strict=True))
    finally:
        step_helped.close()


@needs_helper
def test_a_helper_whose_half_differs_is_not_used(one_thread, monkeypatch):
    original = SplitBatchStep._serve

    def off_by_a_bit(self, parent):  # a helper whose arithmetic is not this process's
        compute = self.net.gradients

        def gradients(*args):
            loss = compute(*args)
            self.other[0] += 1e-6
            return loss

        self.net.gradients = gradients  # in the helper's copy of the step only
        original(self, parent)

    monkeypatch.setattr(SplitBatchStep, "_serve", off_by_a_bit)
    step = SplitBatchStep(twin_nets()[0], lr=0.01, momentum=0.9, batch_size=4)
    inputs, labels = minibatches(4, 1)[0]
    assert not step.start(inputs, labels)
    assert step.helper is None and not step.helping
    assert multiprocessing.active_children() == []


@needs_helper
@pytest.mark.parametrize("stop_after", [None, 3])
def test_training_leaves_no_helper_behind(stop_after):
    data = in_memory_data(train_n=60, test_n=20)
    config = TrainConfig(epochs=2, batch_size=4, log_every=2, seed=0, device="cpu")
    events = train(config, data, build_model(config))
    for i, _event in enumerate(events):
        if i == 0:
            assert len(multiprocessing.active_children()) == 1  # the helper
        if i == stop_after:
            events.close()  # the consumer walks away (a stopped or failed run)
            break
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert multiprocessing.active_children() == []

"""Speed: how a training step is computed, behind one entry point, `open_step`.

    with open_step(model, config, device) as step:
        loss = step(inputs, labels)   # zero_grad, forward, loss, backward, SGD
        step.tick(steps_done)         # now and then: lets the step adapt to the machine
        with step.paused():           # a while that is not training (the test after an epoch)
            ...

Which step it is (the training loop never asks): the tutorial's own autograd step everywhere
(with the config's recipe: cifar_core.training.recipe), except on a CPU in batches of up to
WRITTEN_OUT_MAX_BATCH images of a model registered with `written_out_step` (the tutorial's
Net) trained with the tutorial's recipe, which take the step with the backward pass written out
(written_out.py), split into two halves on two processes where the machine allows it
(split_batch.py, switched by governor.py). What each changes process-wide (threads, oneDNN) is
set on entering and put back on leaving (cpu.py). Every choice depends only on the settings,
the machine and CIFAR_CORE_THREADS, never on load: a seed gives the same run each time on one
machine with the same cores allowed. `step.description` and `step.cores` say which step ran,
and the run records them (DoneEvent).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from cifar_core.data.dataset import CIFAR_SHAPE
from cifar_core.training.averaging import WeightAverage
from cifar_core.training.config import plain_recipe
from cifar_core.training.models import model_spec
from cifar_core.training.speed import cpu
from cifar_core.training.speed.governor import CoreGovernor
from cifar_core.training.speed.split_batch import SplitBatchStep, second_process_possible
from cifar_core.training.speed.tutorial_step import TutorialStep, channels_last_for
from cifar_core.training.speed.written_out import NetStep

# CPU batches up to this size train through the written-out step: at batch 32 it still beat
# autograd with two threads and oneDNN, from 64 up it lost (bench/RESULTS.md, Session 4, "The
# step").
WRITTEN_OUT_MAX_BATCH = 32

# Cores that other processes may use while the halves still go on two cores. Beside a busy
# loop the second process made steps much slower than one core; beside a process busy 0.1 s
# in every second the halves kept the speed of whole minibatches or a little more. One busy
# 0.3 s in every second also sends them to one core (slower than whole minibatches) where two
# would still have been faster: a governor by speed alone did better there but far worse beside
# a busy loop (bench/bench_load.py; bench/RESULTS.md, Session 5, "Under load").
SPLIT_BATCH_MARGIN = 0.5


def splits_batches(batch_size: int, cap: int | None = None) -> bool:
    """Whether a CPU run with the written-out step computes each minibatch in two halves on
    two processes: on Linux machines with two cores or more, for batches of 2 to
    WRITTEN_OUT_MAX_BATCH images, unless CIFAR_CORE_THREADS allows one core only. It depends
    on nothing that changes while the machine runs, so that a seed gives the same run each
    time; but not the same as on a machine that does not split (float rounding). `cap`: a
    thread limit given instead of CIFAR_CORE_THREADS."""
    cap = cpu.thread_limit(cap)
    return 2 <= batch_size <= WRITTEN_OUT_MAX_BATCH and second_process_possible() \
        and (cap is None or cap >= 2)


def threads_for_background_runs(max_parallel: int, cores: int | None = None) -> int:
    """CIFAR_CORE_THREADS for runs the job runner starts, `max_parallel` side by side: the
    cores shared out so that they do not fight over them, within a cap already set. On a
    machine with two cores one of them is left to the dashboard and the browser that watch the
    run: a run that took both (split batches) trained clearly slower from the Train page
    than one on one core, as the page's redraws kept taking the second core back
    (bench/RESULTS.md, Session 5, "The dashboard"). With one core allowed, such runs train
    whole minibatches, so the same seed gives a slightly different run than from the CLI (the
    run records which step ran)."""
    cores = cores or os.cpu_count() or 1
    usable = cores - 1 if cores == 2 else cores
    share = max(1, usable // max(1, max_parallel))
    return min(share, cpu.thread_limit() or share)


class TrainingStep:
    """One minibatch's training, called as `step(inputs, labels)` -> the mean loss (a 0-d
    tensor left on the device). `tick` and `paused` let a step that adapts to the machine do
    so; for the others they only apply evaluation's CPU settings while paused. With weight
    averaging (`average`, training.averaging), each step updates the average, the tests
    while paused see it, and the model holds it once the last step is done or the step is
    closed."""

    description = "tutorial step (autograd)"

    def __init__(self, stepper, device: torch.device, cores: int, outer_threads: int):
        self.stepper, self.device, self._cores = stepper, device, cores
        self._outer_threads = outer_threads
        self.step = stepper.step  # no wrapper between the loop and the work
        self.average: WeightAverage | None = None

    @property
    def cores(self) -> int:
        """The cores that computed the minibatches."""
        return self._cores

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.average is None:
            return self.step(inputs, labels)
        self.average.before_step()
        loss = self.step(inputs, labels)
        self.average.after_step()
        return loss

    @property
    def compile_s(self) -> float:
        """Seconds spent compiling the step so far (0 where it is not compiled)."""
        compilation = getattr(self.stepper, "compilation", None)
        return compilation.compile_s if compilation is not None else 0.0

    def notes(self) -> list[str]:
        """Sentences for the run's message about how it trained (e.g. compiling)."""
        notes = getattr(self.stepper, "notes", None)
        return notes() if notes is not None else []

    def tick(self, steps: int) -> None:
        """Called every few dozen steps with the number done so far."""

    @contextmanager
    def paused(self, steps: int = 0) -> Iterator[None]:
        """A while that is not training: evaluation's settings (oneDNN on, the threads the
        process had), and the averaged weights where the run averages them; training's again
        afterwards."""
        with cpu.inference_settings(self.device, self._outer_threads), self._averaged():
            yield

    @contextmanager
    def _averaged(self) -> Iterator[None]:
        if self.average is None:
            yield
            return
        with self.average.averaged():
            yield

    def finish(self) -> None:
        """The end of the training: the average into the model for good, where there is one
        (the saved network is the averaged one, also for a run stopped early)."""
        if self.average is not None:
            self.average.finish()

    def close(self) -> None:
        """Release what the step holds (processes, shared memory)."""


class WrittenOutStep(TrainingStep):
    description = "written-out step (backward pass by hand)"


class SplitBatchTraining(TrainingStep):
    """The written-out step in two halves, the second on another core while a governor finds
    that core free. The second process starts with the first minibatch of two images or more
    (its start and its check count as training time, as the tutorial's DataLoader workers'
    start-ups do)."""

    description = "written-out step, each minibatch split over two processes"

    def __init__(self, stepper: SplitBatchStep, device: torch.device, outer_threads: int):
        super().__init__(stepper, device, cores=2, outer_threads=outer_threads)
        self.governor: CoreGovernor | None = None
        self.step = self._first_step

    @property
    def cores(self) -> int:
        """2 once the second process runs, 1 where it could not start (same results)."""
        return 1 if self.governor is None else 2

    def _first_step(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if len(labels) < 2:  # a single image is never split
            return self.stepper.step(inputs, labels)
        stepper = self.stepper
        if stepper.start(inputs, labels):
            self.governor = CoreGovernor(
                lambda count: stepper.use_second_process(count > 1), margin=SPLIT_BATCH_MARGIN,
                start_high=True,
                own_cpu_s=lambda: time.process_time() + stepper.second_process_cpu_s())
        self.step = stepper.step
        return self.step(inputs, labels)

    def tick(self, steps: int) -> None:
        if self.governor is not None:
            self.governor.update(steps)

    @contextmanager
    def paused(self, steps: int = 0) -> Iterator[None]:
        """The second process waits (one core for the test), then the count from before."""
        if self.governor is None:
            with super().paused(steps):
                yield
            return
        with self.governor.paused(steps), super().paused(steps):
            yield

    def close(self) -> None:
        self.stepper.close()


@contextmanager
def open_step(model: nn.Module, config, device: torch.device,
              total_steps: int = 0, threads: int | None = None,
              image_shape: tuple[int, int, int] = CIFAR_SHAPE) -> Iterator[TrainingStep]:
    """The fastest step measured for this model, config and device, with its process-wide
    settings in place until the block ends (then put back, and its processes stopped). The
    model trains in place; made before a training's clock starts, as the tutorial makes its
    optimizer before its loop (a first torch optimizer takes about a second of imports).
    `total_steps`: how many steps the training will take (a learning-rate schedule's length).
    `threads`: the most cores it may use, instead of CIFAR_CORE_THREADS (which a threaded
    caller must not set for everyone). `image_shape`: (channels, height, width) of the pictures
    it will be given (the data set's)."""
    model.to(device).train()
    spec = model_spec(config.model)
    if channels_last_for(config, device):
        model.to(memory_format=torch.channels_last)
    if device.type != "cpu":
        step = TrainingStep(TutorialStep(model, config, total_steps), device, cores=1,
                            outer_threads=torch.get_num_threads())
        _average_weights(step, model, config, total_steps)
        # cuDNN tries its convolution algorithms once per shape and keeps the fastest: the
        # shapes of a training repeat thousands of times.
        benchmark = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = device.type == "cuda" or benchmark
        try:
            yield step
        finally:
            torch.backends.cudnn.benchmark = benchmark
            step.finish()
            step.close()
        return
    cpu.keep_freed_memory()
    batch_size, outer_threads = config.batch_size, torch.get_num_threads()
    if threads is not None:  # the test after each epoch keeps within the cap too
        outer_threads = min(outer_threads, max(1, threads))
    # The written-out step knows only the tutorial's recipe (plain SGD and cross-entropy, not
    # Muon, not compiled: config.plain_recipe); weight averaging works beside any step.
    written_out = spec.written_out_step and batch_size <= WRITTEN_OUT_MAX_BATCH \
        and plain_recipe(config)
    split = written_out and splits_batches(batch_size, threads)
    # One thread in each process of a split batch, whether the second process runs or not.
    threads = 1 if split else cpu.training_threads(batch_size, threads)
    with cpu.settings(threads, onednn=cpu.onednn_convolutions(batch_size)):
        if split:
            step = SplitBatchTraining(SplitBatchStep(model, config.lr, config.momentum,
                                                     batch_size, image_shape),
                                      device, outer_threads)
        elif written_out:
            step = WrittenOutStep(NetStep(model, config.lr, config.momentum), device,
                                  cores=threads, outer_threads=outer_threads)
        else:
            step = TrainingStep(TutorialStep(model, config, total_steps), device,
                                cores=threads, outer_threads=outer_threads)
        # after the step is made: the written-out step moves the weights into its flat tensor
        _average_weights(step, model, config, total_steps)
        try:
            yield step
        finally:
            step.finish()
            step.close()


def _average_weights(step: TrainingStep, model: nn.Module, config, total_steps: int) -> None:
    """Give `step` the weight average the config asks for (training.averaging), if any."""
    mode = getattr(config, "averaging", "none")
    if mode != "none":
        step.average = WeightAverage(model, mode, total_steps)

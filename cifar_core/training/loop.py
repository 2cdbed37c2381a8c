"""Training a network: the tutorial's loop, yielding what it is doing as events.

As in the tutorial: for each epoch, for each minibatch, one step (zero_grad, forward, loss,
backward, SGD), and the mean loss reported every `log_every` minibatches. Beside that, a check
for a loss that became NaN every DIVERGENCE_CHECK_EVERY minibatches, and a test on the test
images after each epoch. How fast a step is computed is cifar_core.training.speed's business
(`open_step`); which minibatches come in which order is cifar_core.training.speed.minibatches'.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import nn

from cifar_core.data.dataset import CIFAR_SHAPE, ImageData
from cifar_core.errors import ConfigError
from cifar_core.training.checkpoint import Checkpoint
from cifar_core.training.config import TrainConfig
from cifar_core.training.devices import resolve_device
from cifar_core.training.evaluation import predict, predict_probabilities
from cifar_core.training.events import DoneEvent, EpochEvent, Event, StatsEvent
from cifar_core.training.models import model_spec
from cifar_core.training.reports import log_every_for
from cifar_core.training.speed import open_step
from cifar_core.training.speed.minibatches import Minibatches
from cifar_core.training.transfer import freeze_body, start_from

# How many minibatches may pass between two checks for a NaN loss (a check costs a device sync).
DIVERGENCE_CHECK_EVERY = 50
# How many test pictures the check after each epoch shows the network (its answers must be
# numbers): a few are enough, as weights that blew up spoil every answer.
FINITE_CHECK_IMAGES = 8


def _seed_of(config: TrainConfig) -> int:
    if config.seed is None:
        raise ConfigError("seed", "This needs a config with a seed, so that the weights and "
                                  "the training come from the same one: use "
                                  "config.with_seed().")
    return config.seed


def build_model(config: TrainConfig, num_classes: int = 10,
                shape: tuple[int, int, int] = CIFAR_SHAPE,
                start: Checkpoint | None = None,
                classes: tuple[str, ...] | None = None) -> nn.Module:
    """A freshly initialised network of the config's model for `num_classes` classes and
    pictures of `shape` (channels, height, width); the config's seed fixes its weights
    (ConfigError without one: call config.with_seed() first and train with that config too).
    `start`: the network the config's start_from names (runs.start.resolve_start loads it):
    its weights but the last layer's are copied in, and with config.freeze kept fixed
    (training.transfer); ConfigError('start_from', ...) if it does not fit. `classes`: the
    data's class names (a start network trained on these very classes keeps its last layer)."""
    spec = model_spec(config.model)
    problem = spec.shape_problem(shape)
    if problem:
        raise ConfigError("model", problem)
    if config.start_from is not None and start is None:
        raise ConfigError("start_from", "This config starts from another network: pass it "
                                        "(runs.start.resolve_start loads it).")
    torch.manual_seed(_seed_of(config))
    model = spec.build(num_classes, model_width(config), tuple(shape))
    if config.start_from is not None:
        start_from(model, config.model, start, tuple(shape), classes)
        if config.freeze:
            freeze_body(model, config.model)
    return model


def model_width(config: TrainConfig) -> int | None:
    """The width the config's network is built with: its own, else the model's standard one
    for the config's device (None for a network without a width)."""
    spec = model_spec(config.model)
    if spec.widths is None or config.width is not None:
        return config.width
    return spec.gpu_width if resolve_device(config.device).type == "cuda" else spec.cpu_width


def balanced_subset(labels: torch.Tensor, size: int | None, seed: int) -> torch.Tensor:
    """Indices of `size` training images, as equal a share per class as possible, fixed by seed."""
    if size is None or size >= len(labels):
        return torch.arange(len(labels))
    num_classes = int(labels.max()) + 1
    if size < num_classes:
        raise ConfigError("train_size", f"Use at least {num_classes} training images "
                                        "(one per class).")
    generator = torch.Generator().manual_seed(seed)
    per_class = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]
    per_class = [idx[torch.randperm(len(idx), generator=generator)] for idx in per_class]
    share, extra = divmod(size, num_classes)
    picked = [idx[: share + (1 if c < extra else 0)] for c, idx in enumerate(per_class)]
    chosen = torch.cat(picked)
    # A class with too few images leaves a gap; fill it from the rest so the size is exact.
    if len(chosen) < size:
        rest = torch.cat([idx[share + (1 if c < extra else 0):] for c, idx in enumerate(per_class)])
        chosen = torch.cat([chosen, rest[: size - len(chosen)]])
    return chosen.sort().values


def accuracy_on_test_images(model: nn.Module, data: ImageData, device: torch.device,
                            tta: str = "none", precision: str = "fp32") -> float:
    """Percent of the test images the model gets right."""
    return results_on_test_images(model, data, device, tta, precision).accuracy


class TestResults(NamedTuple):
    """What the test after an epoch finds."""

    accuracy: float  # percent right
    confusion: list[list[int]]  # counts[true class][predicted class]
    loss: float  # mean -log(probability of the true class)


def results_on_test_images(model: nn.Module, data: ImageData, device: torch.device,
                           tta: str = "none", precision: str = "fp32",
                           tta_unsure_below: float | None = None) -> TestResults:
    """The test images' accuracy, confusion matrix and loss, with test-time augmentation
    `tta` (only below `tta_unsure_below` where set) and the forward pass in `precision` (the
    config's)."""
    probabilities = predict_probabilities(model, data.test_images, device, tta=tta,
                                          precision=precision,
                                          tta_unsure_below=tta_unsure_below)
    predicted = probabilities.argmax(dim=1)
    k = len(data.classes)
    cells = torch.bincount(data.test_labels * k + predicted, minlength=k * k)
    accuracy = 100.0 * (predicted == data.test_labels).float().mean().item()
    true = probabilities[torch.arange(len(predicted)), data.test_labels]
    # (clamped: a probability rounded to 0 would make the mean infinite)
    loss = -torch.log(true.double().clamp_min(1e-12)).mean().item()
    return TestResults(accuracy, cells.view(k, k).tolist(), loss)


def train(config: TrainConfig, data: ImageData, model: nn.Module,
          stop: threading.Event | None = None, threads: int | None = None) -> Iterator[Event]:
    """Train `model` (from build_model with the same config) in place; yield a StatsEvent every
    log_every minibatches (reports.log_every_for), an EpochEvent after each epoch and a
    DoneEvent at the end. Setting `stop` ends it after the current minibatch. `threads`: the
    most cores it may use, instead of CIFAR_CORE_THREADS (training.speed.open_step).
    ConfigError if the config has no seed."""
    _seed_of(config)
    yield from _train_loop(config, data, model, resolve_device(config.device), stop, threads)


class _Clock:
    """The training's wall time as the user lives it: minibatches, shuffles and whatever the
    consumer does with each event before asking for the next (the run store's write, a printed
    line), all but the test after each epoch, which is timed apart. Left out, the event
    handling made a log_every-1 run report several times the speed its user saw (issue 12)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.testing_s = 0.0

    @contextmanager
    def testing(self) -> Iterator[None]:
        """Time spent in here is not training time."""
        since = time.perf_counter()
        try:
            yield
        finally:
            self.testing_s += time.perf_counter() - since

    @property
    def train_s(self) -> float:
        return self.elapsed_s() - self.testing_s

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start


def _train_loop(config: TrainConfig, data: ImageData, model: nn.Module, device: torch.device,
                stop: threading.Event | None, threads: int | None) -> Iterator[Event]:
    batches = Minibatches(data, balanced_subset(data.train_labels, config.train_size,
                                                config.seed), config.batch_size, device,
                          augment=config.augment, alternating_flip=config.alternating_flip)
    total_images = batches.images_per_epoch * config.epochs
    # Automatic, or the value set unless it gives a single report (said at the end).
    log_every, log_note = log_every_for(config.log_every, batches.per_epoch, config.epochs)
    prepare = model_spec(config.model).prepare
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    images_seen = steps = epochs_done = 0

    def done(status: str, message: str) -> DoneEvent:
        train_s = clock.train_s
        message = " ".join([message, *step.notes()])  # e.g. how long compiling took
        return DoneEvent(status=status, message=message, epochs_done=epochs_done,
                         images_seen=images_seen, train_s=train_s,
                         images_per_s=images_seen / max(train_s, 1e-9),
                         elapsed_s=clock.elapsed_s(), training_step=step.description,
                         cores=step.cores, compile_s=step.compile_s)

    with open_step(model, config, device, batches.per_epoch * config.epochs, threads,
                   data.shape) as step:
        clock = _Clock()
        # e.g. the fast network's whitening, from the training images (a network started from
        # another one has it from there)
        if prepare is not None and config.start_from is None:
            prepare(model, batches.first_images())
        for epoch in range(1, config.epochs + 1):
            running_loss, window = torch.zeros((), device=device), 0
            for i, (inputs, labels) in enumerate(batches.epoch(generator)):
                if stop is not None and stop.is_set():
                    yield done("stopped", f"Stopped on request after {images_seen:,} images "
                                          f"(epoch {epoch}, minibatch {i}).")
                    return
                running_loss += step(inputs, labels)
                window, steps, images_seen = window + 1, steps + 1, images_seen + len(labels)
                report_due = window == log_every or i == batches.per_epoch - 1
                check_due = report_due or window % DIVERGENCE_CHECK_EVERY == 0
                if not check_due:
                    continue
                step.tick(steps)
                window_loss = running_loss.item()  # waits for the device
                if not math.isfinite(window_loss):
                    yield done("diverged", _divergence_message(window_loss, epoch, config.lr))
                    return
                if report_due:
                    ips = images_seen / max(clock.train_s, 1e-9)
                    yield StatsEvent(
                        epoch=epoch, minibatch=i + 1, step=steps, images_seen=images_seen,
                        loss=window_loss / window, images_per_s=ips,
                        elapsed_s=clock.elapsed_s(), fraction_done=images_seen / total_images,
                        eta_s=(total_images - images_seen) / max(ips, 1e-9),
                        images_per_epoch=batches.images_per_epoch, reported_at=time.time())
                    running_loss.zero_()
                    window = 0
            epochs_done = epoch
            with clock.testing(), step.paused(steps):
                # A step can take the weights so far that the network answers NaN while the
                # loss it reported was still a number (a few near-alike pictures): checked once
                # an epoch, on a few test pictures.
                if not _answers_numbers(model, data, device):
                    yield done("diverged", _blown_up_message(epoch, config.lr))
                    return
                tested = results_on_test_images(model, data, device, config.tta,
                                                config.precision, config.tta_unsure_below)
            model.train()
            yield EpochEvent(epoch=epoch, test_accuracy=tested.accuracy,
                             images_seen=images_seen, elapsed_s=clock.elapsed_s(),
                             confusion=tested.confusion, train_s=clock.train_s,
                             test_loss=tested.loss)
        yield done("completed", f"Finished {config.epochs} epoch{'s' * (config.epochs != 1)} on "
                                f"{batches.images_per_epoch:,} images."
                                + (f" {log_note}" if log_note else ""))


def _answers_numbers(model: nn.Module, data: ImageData, device: torch.device) -> bool:
    """Whether the network's weights and its answers to a few test pictures are numbers."""
    if not all(bool(torch.isfinite(t).all()) for t in (*model.parameters(), *model.buffers())
               if t.is_floating_point()):
        return False
    _, confidence = predict(model, data.test_images[:FINITE_CHECK_IMAGES], device)
    return bool(torch.isfinite(confidence).all())


def _blown_up_message(epoch: int, lr: float) -> str:
    return (f"The network's weights grew past what can be computed with in epoch {epoch}: the "
            f"learning rate {lr:g} is too high for these pictures. Lower it (try {lr / 10:g}) "
            "and start again.")


def _divergence_message(loss: float, epoch: int, lr: float) -> str:
    return (f"The loss became {'NaN' if math.isnan(loss) else 'infinite'} in epoch {epoch}: "
            f"the learning rate {lr:g} is too high. Lower it (try {lr / 10:g}) and start again.")

"""Training the tutorial's network: a validated config, and a loop that yields what it is doing.

The loop reads like the tutorial (a step per minibatch, a report every `log_every`
minibatches). Its speed comes from four places. The data path: the training images sit on the
device as one uint8 tensor; each epoch shuffles them into one reused buffer, and a few hundred
at a time are normalised into a small reused float buffer (it stays in the CPU's caches) whose
slices are the minibatches. So there is no DataLoader, no worker process, no per-image
transform, and no 600 MB float copy of the training set to build and shuffle. And the step itself:
for the tutorial's Net, cifar_core.step does zero_grad/forward/backward/SGD with the backward
pass written out, which at batch 4 is about 1.5x autograd's speed. And the cores: each
minibatch is computed in two halves, the second by a helper process on another core while
nothing else needs it (cifar_core.halves; the same result with or without the helper, so a
governor can switch it as the machine gets busy), and the process keeps freed memory for the
next step instead of faulting in fresh pages (cifar_core.runtime).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

from cifar_core.data import CifarData, normalize
from cifar_core.errors import ConfigError, DeviceError
from cifar_core.evaluate import predict
from cifar_core.halves import HalvesStep, helper_possible
from cifar_core.model import Net, resolve_device
from cifar_core.runtime import SMALL_CPU_BATCH, CoreGovernor, runtime_settings, thread_limit
from cifar_core.step import AutogradStep, NetStep

# How many minibatches may pass between two checks for a NaN loss (a check costs a device sync).
DIVERGENCE_CHECK_EVERY = 50


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training. Defaults are the tutorial's."""

    epochs: int = 2
    lr: float = 0.001
    momentum: float = 0.9
    batch_size: int = 4
    log_every: int = 2000  # minibatches between two loss reports
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    seed: int | None = None  # None: a random one, chosen when the run starts
    train_size: int | None = None  # training images to use (class-balanced); None: all

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first setting that is out of range."""
        problems = config_problems(self.to_dict())
        if problems:
            field, message = next(iter(problems.items()))
            raise ConfigError(field, message)

    def with_seed(self) -> TrainConfig:
        """This config with a concrete seed (a random one if none was set)."""
        return self if self.seed is not None else replace(self, seed=random.randrange(2**31))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build from a dict, ignoring unknown keys (configs stored by other versions)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# How each setting is called on screen and in messages.
LABELS = {"epochs": "Epochs", "lr": "Learning rate", "momentum": "Momentum",
          "batch_size": "Batch size", "log_every": "Log every (minibatches)",
          "device": "Device", "seed": "Seed", "train_size": "Training images"}


def config_problems(values: dict) -> dict[str, str]:
    """Every out-of-range setting, field -> message (empty when all is well). The one place where
    settings are checked: TrainConfig, the CLI and the dashboard's form all use it."""
    problems: dict[str, str] = {}

    def whole(name: str, low: int, high: int, allow_none: bool = False) -> None:
        value = values.get(name)
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            problems[name] = f"{LABELS[name]} must be a whole number, not {value!r}."
        elif not low <= value <= high:
            problems[name] = (f"{LABELS[name]} must be between {low:,} and {high:,} "
                              f"(got {value:,}).")

    def number(name: str) -> float | None:
        value = values.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            problems[name] = f"{LABELS[name]} must be a number, not {value!r}."
            return None
        return value

    whole("epochs", 1, 1000)
    lr = number("lr")
    if lr is not None and lr <= 0:
        problems["lr"] = f"The learning rate must be above 0 (got {lr:g}); the tutorial uses 0.001."
    elif lr is not None and lr > 10:
        problems["lr"] = f"A learning rate of {lr:g} is far too high: try 0.001 to 0.1."
    momentum = number("momentum")
    if momentum is not None and not 0 <= momentum < 1:
        problems["momentum"] = (f"Momentum must be at least 0 and below 1 (got {momentum:g}); "
                                "the tutorial uses 0.9.")
    whole("batch_size", 1, 50_000)
    whole("log_every", 1, 1_000_000)
    whole("seed", 0, 2**31 - 1, allow_none=True)
    whole("train_size", 10, 10_000_000, allow_none=True)
    device = values.get("device")
    if not isinstance(device, str) or not device.strip():
        problems["device"] = "Device must be a name such as auto, cpu or cuda."
    return problems


# Starting points offered by the dashboard's Train page (the settings not named keep defaults).
PRESETS = {
    "Tutorial: 2 epochs, lr 0.001, momentum 0.9, batch 4": dict(
        epochs=2, lr=0.001, momentum=0.9, batch_size=4, log_every=2000, train_size=None),
    "Quick demo: about a minute on a laptop CPU": dict(
        epochs=3, lr=0.01, momentum=0.9, batch_size=16, log_every=250, train_size=None),
}


@dataclass(frozen=True)
class StatsEvent:
    """The mean loss of the last window of minibatches, like the tutorial's printed line."""

    epoch: int  # 1-based
    minibatch: int  # 1-based, within the epoch (the tutorial's i + 1)
    step: int  # minibatches since the start
    images_seen: int
    loss: float  # mean over the window (the tutorial's running_loss / 2000)
    images_per_s: float
    elapsed_s: float
    fraction_done: float
    eta_s: float
    images_per_epoch: int = 0  # training images in one epoch (for an x axis in epochs)
    kind: str = "stats"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EpochEvent:
    """End of an epoch, with the test accuracy at that point."""

    epoch: int
    test_accuracy: float  # percent
    images_seen: int
    elapsed_s: float
    kind: str = "epoch"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DoneEvent:
    """The end: completed, stopped (on request) or diverged (loss became NaN/inf)."""

    status: str
    message: str
    epochs_done: int
    images_seen: int
    train_s: float  # seconds spent in minibatches (not evaluating)
    images_per_s: float
    elapsed_s: float
    kind: str = "done"

    def to_dict(self) -> dict:
        return asdict(self)


Event = StatsEvent | EpochEvent | DoneEvent


def event_from_dict(values: dict) -> Event:
    """Rebuild an event from its to_dict() form (as stored in the run store)."""
    cls = {"stats": StatsEvent, "epoch": EpochEvent, "done": DoneEvent}[values["kind"]]
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def build_model(config: TrainConfig, num_classes: int = 10) -> Net:
    """A freshly initialised Net; the config's seed fixes its weights."""
    torch.manual_seed(config.with_seed().seed)
    return Net(num_classes)


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


# Images normalised at a time (rounded up to whole minibatches): about 3 MB of floats, which
# stay in the CPU's caches until their minibatches have used them.
NORMALIZE_CHUNK = 256

# CPU batches up to this size train through cifar_core.step.NetStep (bench/RESULTS.md: 1.05-1.2x
# autograd's speed at batch 32 with two threads and oneDNN, 0.77x at 64).
NETSTEP_MAX_BATCH = 32


def device_advice(device_name: str, batch_size: int) -> str | None:
    """A word of advice when the chosen device is a GPU and the batches are tiny (None: none
    needed, or the device does not exist, which config checks report)."""
    try:
        device = resolve_device(device_name)
    except DeviceError:
        return None
    if device.type == "cpu" or not isinstance(batch_size, int) or batch_size > SMALL_CPU_BATCH:
        return None
    return (f"A batch of {batch_size} is too small to keep a GPU busy: each step waits for "
            "the GPU to start its work. At the tutorial's batch of 4 an NVIDIA H200 trained "
            "about 2,000 images/s, a single CPU core about 8,000 (bench/RESULTS.md). Choose "
            "device cpu, or a batch of 32 or more to let the GPU pay off.")


def make_step(model: nn.Module, config: TrainConfig,
              device: torch.device) -> HalvesStep | NetStep | AutogradStep:
    """NetStep where it was measured faster (the tutorial's Net, exactly that class, in CPU
    batches of up to NETSTEP_MAX_BATCH images: about 1.5x autograd at batch 4, 2x at 16,
    bench/RESULTS.md), in two halves (HalvesStep, not started yet) where uses_halves says so;
    the tutorial's own autograd step everywhere else."""
    if type(model) is Net and device.type == "cpu" and config.batch_size <= NETSTEP_MAX_BATCH:
        if uses_halves(config):
            return HalvesStep(model, config.lr, config.momentum, config.batch_size)
        return NetStep(model, config.lr, config.momentum)
    return AutogradStep(model, config.lr, config.momentum)


def uses_halves(config: TrainConfig) -> bool:
    """Whether a CPU run of Net computes each minibatch in two halves (cifar_core.halves): on
    Linux machines with two cores or more, for batches of 2 to NETSTEP_MAX_BATCH images,
    unless CIFAR_CORE_THREADS allows one core only (the job runner's runs side by side, and
    all its runs on a 2-core machine: jobs.job_environment). It
    depends on nothing that changes while the machine runs, so that a seed gives the same run
    each time; but not the same as on a machine that does not split (float rounding)."""
    cap = thread_limit()
    return 2 <= config.batch_size <= NETSTEP_MAX_BATCH and helper_possible() \
        and (cap is None or cap >= 2)


# Cores that other processes may use while the halves still go on two cores. Beside a busy
# loop the helper made steps over 2x slower than one core; beside a process busy 0.1 s in every
# second the halves kept 1.0-1.2x the speed of whole minibatches. One busy 0.3 s in every
# second also sends them to one core (0.73-0.77x of whole minibatches) where the helper would
# still have been faster: a governor by speed alone did better there but far worse beside a
# busy loop (bench/bench_load.py, bench/RESULTS.md).
HALVES_MARGIN = 0.5


def start_helper(stepper: HalvesStep, inputs: torch.Tensor,
                 labels: torch.Tensor) -> CoreGovernor | None:
    """Start the halves' helper process and a CoreGovernor to switch it on and off; None
    where it did not start (the halves are then computed here, with the same result)."""
    if not stepper.start(inputs, labels):
        return None
    return CoreGovernor(lambda count: stepper.use_helper(count > 1), margin=HALVES_MARGIN,
                        start_high=True,
                        own_cpu_s=lambda: time.process_time() + stepper.helper_cpu_s())


def test_accuracy(model: nn.Module, data: CifarData, device: torch.device) -> float:
    """Percent of the test images the model gets right."""
    predicted, _ = predict(model, data.test_images, device)
    return 100.0 * (predicted == data.test_labels).float().mean().item()


def train(config: TrainConfig, data: CifarData, model: nn.Module,
          stop: threading.Event | None = None) -> Iterator[Event]:
    """Train `model` in place; yield a StatsEvent every log_every minibatches, an EpochEvent
    after each epoch and a DoneEvent at the end. Setting `stop` ends it after the current
    minibatch."""
    config = config.with_seed()
    device = resolve_device(config.device)
    with runtime_settings(config.batch_size, device):
        yield from _train_loop(config, data, model, device, stop)


def _train_loop(config: TrainConfig, data: CifarData, model: nn.Module, device: torch.device,
                stop: threading.Event | None) -> Iterator[Event]:
    # The images used, as positions in the training set: each epoch gathers them in its own
    # order straight from the (device's copy of the) whole set, so a subset is never copied.
    subset = balanced_subset(data.train_labels, config.train_size, config.seed).to(device)
    images_all, labels_all = data.train_images.to(device), data.train_labels.to(device)
    n = len(subset)
    batch_size = config.batch_size
    steps_per_epoch = math.ceil(n / batch_size)
    # Each epoch's shuffled copy (uint8), and the normalised images of the next `chunk`
    # minibatches' worth (float): both allocated once, reused.
    images_epoch = torch.empty((n, *images_all.shape[1:]), dtype=images_all.dtype, device=device)
    labels_epoch = torch.empty(n, dtype=labels_all.dtype, device=device)
    chunk = batch_size * max(1, NORMALIZE_CHUNK // batch_size)
    inputs_chunk = torch.empty((min(chunk, n), *images_all.shape[1:]), device=device)
    total_images = n * config.epochs
    generator = torch.Generator(device="cpu").manual_seed(config.seed)

    model.to(device).train()
    # zero_grad, forward, loss, backward, SGD step: for Net with the backward pass written out
    # (cifar_core.step explains why, and how it matches autograd). Set up before the clock
    # starts, as the tutorial makes its optimizer before its loop (a first optimizer takes
    # about a second of imports).
    stepper = make_step(model, config, device)

    start = time.perf_counter()
    # The halves' helper process (its start and check count as training time, as the
    # tutorial's DataLoader workers' start-ups do).
    governor = None
    if isinstance(stepper, HalvesStep) and n >= 2:  # (a single image is never split)
        first_batch = subset[:batch_size]
        governor = start_helper(stepper, normalize(images_all[first_batch]),
                                labels_all[first_batch])
    train_s, images_seen, step, epochs_done = time.perf_counter() - start, 0, 0, 0

    def stats(epoch: int, i: int, window_loss: float, window: int) -> StatsEvent:
        ips = images_seen / max(train_s, 1e-9)
        return StatsEvent(
            epoch=epoch, minibatch=i, step=step, images_seen=images_seen,
            loss=window_loss / window, images_per_s=ips,
            elapsed_s=time.perf_counter() - start, fraction_done=images_seen / total_images,
            eta_s=(total_images - images_seen) / max(ips, 1e-9), images_per_epoch=n,
        )

    def done(status: str, message: str) -> DoneEvent:
        return DoneEvent(status=status, message=message, epochs_done=epochs_done,
                         images_seen=images_seen, train_s=train_s,
                         images_per_s=images_seen / max(train_s, 1e-9),
                         elapsed_s=time.perf_counter() - start)

    try:
        for epoch in range(1, config.epochs + 1):
            # The shuffle counts as training time, as the tutorial's DataLoader does.
            window_start = time.perf_counter()
            # One shuffled copy per epoch makes every minibatch a contiguous slice (no gather).
            order = subset[torch.randperm(n, generator=generator).to(device)]
            torch.index_select(images_all, 0, order, out=images_epoch)
            torch.index_select(labels_all, 0, order, out=labels_epoch)
            running_loss = torch.zeros((), device=device)
            window = 0
            for i in range(steps_per_epoch):
                if stop is not None and stop.is_set():
                    train_s += time.perf_counter() - window_start
                    yield done("stopped", f"Stopped on request after {images_seen:,} images "
                                          f"(epoch {epoch}, minibatch {i}).")
                    return
                first = i * batch_size
                offset = first % chunk
                if offset == 0:
                    chunk_images = images_epoch[first:first + chunk]
                    normalize(chunk_images, out=inputs_chunk[:len(chunk_images)])
                labels = labels_epoch[first:first + batch_size]
                inputs = inputs_chunk[offset:offset + len(labels)]  # the last one may be short

                running_loss += stepper.step(inputs, labels)
                window += 1
                step += 1
                images_seen += len(labels)
                last = i == steps_per_epoch - 1
                if window == config.log_every or last or window % DIVERGENCE_CHECK_EVERY == 0:
                    if governor is not None:
                        governor.update(step)
                    window_loss = running_loss.item()
                    if not math.isfinite(window_loss):
                        train_s += time.perf_counter() - window_start
                        yield done("diverged", (
                            f"The loss became {'NaN' if math.isnan(window_loss) else 'infinite'} "
                            f"in epoch {epoch}: the learning rate {config.lr:g} is too high. "
                            f"Lower it (try {config.lr / 10:g}) and start again."))
                        return
                    if window == config.log_every or last:
                        now = time.perf_counter()
                        train_s += now - window_start
                        yield stats(epoch, i + 1, window_loss, window)
                        running_loss.zero_()
                        window = 0
                        window_start = time.perf_counter()
            epochs_done = epoch
            # The test on one core: the helper waits.
            with governor.paused(step) if governor is not None else nullcontext():
                accuracy = test_accuracy(model, data, device)
            model.train()
            yield EpochEvent(epoch=epoch, test_accuracy=accuracy, images_seen=images_seen,
                             elapsed_s=time.perf_counter() - start)
        yield done("completed", f"Finished {config.epochs} epoch(s) on {n:,} images.")
    finally:
        if isinstance(stepper, HalvesStep):
            stepper.close()

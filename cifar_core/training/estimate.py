"""How long a training will take on this machine: from earlier runs like it, else measured.

A training's speed (images per second) depends on the network (model and width), the batch
size, the number format, the device and the augmentation (and, for the tutorial's network,
whether the recipe lets the written-out step run), and on the data set's picture size, not on
the learning rate or the number of epochs. So the estimate takes the median speed of earlier
runs on the same data set that share those settings (`speed_key`); where there are none, it
times a few training steps of the config on random images of the data set's shape in this
process, through the same step a run would take (training.speed), within about a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from cifar_core.data.dataset import CIFAR_SHAPE
from cifar_core.data.registry import DEFAULT_DATASET
from cifar_core.errors import CifarError
from cifar_core.training.augment import augment
from cifar_core.training.config import TrainConfig, plain_recipe, with_role
from cifar_core.training.devices import resolve_device
from cifar_core.training.evaluation import predict
from cifar_core.training.loop import build_model, model_width
from cifar_core.training.models import model_spec
from cifar_core.training.speed import open_step
from cifar_core.training.transfer import freeze_body

if TYPE_CHECKING:  # (a run is only read here: runs/ stands above training/)
    from cifar_core.runs.store import Run

# Seconds of timed steps a measurement aims at; a warm-up step and one probe come on top.
MEASURE_BUDGET_S = 0.5
# Seconds of untimed steps at the measured size before the timed ones.
WARM_UP_S = 0.25
# Steps timed at the probe's size (the quickest is taken).
PROBE_STEPS = 3
# The first steps are timed with this many images at most, to learn how long an image takes
# before committing to a batch that might take seconds (ResNet-18 on a CPU).
PROBE_BATCH = 4
# A step of the measured batch may take at most this share of the budget; a larger batch is
# timed at the size that fits and its speed taken per image (small batches are slower per
# image, so the estimate errs long).
MAX_STEP_SHARE = 0.25

# One measurement at a time in this process: two would slow each other down and share the
# thread cap below.
_measuring = threading.Lock()


@dataclass(frozen=True)
class TimeEstimate:
    """A training's expected length here, and what it is based on."""

    seconds: float
    images_per_s: float
    source: str  # 'runs': earlier runs' speeds; 'measured': a few steps timed just now
    runs: int = 0  # how many earlier runs it is based on

    def sentence(self) -> str:
        """E.g. 'about 4 min of training here (from 3 of your earlier runs)'."""
        runs = "your earlier run" if self.runs == 1 else f"{self.runs} of your earlier runs"
        where = f"from {runs}" if self.source == "runs" else "measured just now"
        return f"about {rough_duration(self.seconds)} of training here ({where})"


def rough_duration(seconds: float) -> str:
    """A duration as an estimate says it: '40 s', '4 min', '1 h 05 min'."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def speed_key(config: TrainConfig) -> tuple:
    """The settings that decide how many images per second a training of `config` computes
    here (two configs with the same key train at the same speed): those whose Setting says
    speed=True, the width and the device as they will be (the model's standard width, 'auto'
    resolved), and whether the written-out step runs (only a model with it trains slower
    beyond the tutorial's recipe)."""
    actual = replace(config, width=model_width(config),
                     device=str(resolve_device(config.device)))
    written_out = model_spec(config.model).written_out_step and plain_recipe(config)
    return (*(getattr(actual, name) for name in with_role("speed")), written_out)


def earlier_speeds(runs: list[Run], config: TrainConfig,
                   dataset: str = DEFAULT_DATASET) -> list[float]:
    """The speeds (images per second) of the runs trained here on the data set `dataset`
    (its pictures' size sets the work per image) with the same speed_key as `config`; runs
    whose settings this machine cannot run (another version's model, a GPU it lacks) and
    imported networks are left out."""
    key = speed_key(config)
    speeds = []
    for run in runs:
        speed = (run.metrics or {}).get("images_per_s")
        if not speed or run.origin == "imported" or run.config.get("model") != config.model \
                or run.config.get("batch_size") != config.batch_size \
                or getattr(run, "dataset", DEFAULT_DATASET) != dataset:
            continue  # (the cheap checks first: a store may hold many runs)
        try:
            if speed_key(run.train_config) == key:
                speeds.append(float(speed))
        except CifarError:
            continue
    return speeds


def estimate_training_time(config: TrainConfig, images_per_epoch: int, runs: list[Run],
                           measure: Callable[[TrainConfig], float] | None = None,
                           dataset: str = DEFAULT_DATASET) -> TimeEstimate | None:
    """How long training `config` on `images_per_epoch` images of the data set `dataset`
    takes here (the tests after each epoch not included): by the median speed of earlier
    runs like it, else by `measure(config)` (images per second, e.g. measure_images_per_s
    with the data set's shape, cached); None when there are no such runs and no measure."""
    images = images_per_epoch * config.epochs
    speeds = sorted(earlier_speeds(runs, config, dataset))
    if speeds:
        speed = speeds[len(speeds) // 2]
        return TimeEstimate(images / speed, speed, "runs", len(speeds))
    if measure is None:
        return None
    speed = measure(config)
    return TimeEstimate(images / speed, speed, "measured")


def measure_images_per_s(config: TrainConfig, threads: int | None = None,
                         budget_s: float = MEASURE_BUDGET_S, num_classes: int = 10,
                         shape: tuple[int, int, int] = CIFAR_SHAPE) -> float:
    """Images per second of a few training steps of `config` on random images of `shape`
    (channels, height, width: the data set's) and `num_classes` classes, timed in this
    process through the step a run of it would take, with at most `threads` cores (what the
    dashboard gives its runs; None: the process's). The model is built afresh and dropped;
    the process's random numbers and settings are left as they were. ConfigError where the
    config's model cannot take such pictures."""
    device = resolve_device(config.device)
    # Uncompiled: compiling takes a minute or more on a CPU, which the page would wait for
    # (earlier runs with Compile on give their speed, compiling included).
    config = replace(config, compile=False)
    with torch.random.fork_rng(devices=[]):
        # A network started from another trains at the speed of a fresh one (with the same
        # layers kept fixed): its weights change nothing of the work.
        model = build_model(replace(config, seed=0, start_from=None, freeze=False), num_classes,
                            shape)
        if config.freeze:
            freeze_body(model, config.model)
    generator = torch.Generator().manual_seed(0)

    def batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.randn(size, *shape, generator=generator).to(device)
        labels = torch.randint(0, num_classes, (size,), generator=generator).to(device)
        return images, labels

    def timed_step(step, images, labels) -> float:
        start = time.perf_counter()
        float(step(augment(images, config.augment, generator), labels))  # waits for the device
        return time.perf_counter() - start

    with _measuring, open_step(model, config, device, total_steps=1_000_000,
                               threads=threads, image_shape=tuple(shape)) as step:
        probe = batch(min(config.batch_size, PROBE_BATCH))
        timed_step(step, *probe)  # the first step sets things up (kernels, buffers)
        # The quickest of a few: a step held up by other work would skew a speed told from it
        # (with the median, a batch of 512 once read 25x too fast, bench_estimate's round 4).
        probe_times = [timed_step(step, *probe) for _ in range(PROBE_STEPS)]
        probe_step_s = min(probe_times)
        size = min(config.batch_size, max(len(probe[1]), int(
            MAX_STEP_SHARE * budget_s * len(probe[1]) / max(probe_step_s, 1e-9))))
        images, labels = probe
        times = probe_times
        if size != len(probe[1]):
            images, labels = batch(size)
            times = []
        # A process's first steps are slower for a while (caches, allocations): the first
        # measurement in a process had the tutorial's batch of 16 at 1,431 images a second,
        # the next at 3,483, the run itself at about 3,800 (issue 26).
        warm_up = timed_step(step, images, labels)
        while warm_up < WARM_UP_S:
            warm_up += timed_step(step, images, labels)
        while not times or sum(times) < budget_s:
            times.append(timed_step(step, images, labels))
    if size == config.batch_size or size == len(probe[1]):
        return size * len(times) / sum(times)
    return speed_at_batch(config.batch_size, (len(probe[1]), probe_step_s), (size, min(times)))


def speed_at_batch(batch_size: int, small: tuple[int, float], large: tuple[int, float]) -> float:
    """Images per second at `batch_size` from two timed steps (images, seconds), a step taken
    to cost a fixed time plus a time per image (the fixed part is why small batches are
    slower per image). Timing the batch itself would take seconds on a CPU: taken per image
    at the smaller size, the fast network's batch of 512 was estimated 7x too slow
    (bench/RESULTS.md, "Issue 26: estimates")."""
    (n1, t1), (n2, t2) = small, large
    per_image = (t2 - t1) / (n2 - n1) if n2 != n1 else 0.0
    if per_image <= 0:  # noise hid the difference: the larger batch's speed, as before
        return n2 / t2
    fixed = max(0.0, t1 - n1 * per_image)
    return batch_size / (fixed + batch_size * per_image)


# --- the whole run: start-up, training, and the tests after each epoch -----------------------

# Seconds from a run's start to its first minibatch where no earlier run tells it: a process
# starts, imports torch and cifar_core, loads the data set and builds the network; and after
# the training, the network is saved. Measured on the project's 2-core reference machine with
# bench/bench_estimate.py (bench/RESULTS.md, "Issue 26: estimates"): 3-9 s for CIFAR-10,
# median 5 s, on a machine shared with other work.
STARTUP_S = 5.0
# How far off the start-up can be when it is not from earlier runs (a busy machine, a cold
# disk cache): the range shown is this factor either side (the same section).
STARTUP_SPREAD = 1.5
# Where the speeds come from a few steps timed just now, the training may be this factor
# slower or faster than them (a machine busy with other work; the steps of a short
# measurement run on warm caches): the range shown (the same section).
MEASURED_SPREAD = (0.8, 1.4)
# The start-up and tests of at most this many earlier runs like it are read (the newest; each
# is a read of its last epoch report).
MAX_OVERHEAD_RUNS = 10
# With fewer earlier runs like it than this, the range is at least this factor either side
# (one earlier run's start-up was 3.0-7.8 s the next time: bench/RESULTS.md, "Issue 26").
FEW_RUNS = 3
FEW_RUNS_SPREAD = 1.3
# Images timed for a test's speed (through the same predict a run's test uses).
TEST_PROBE_IMAGES = 512


@dataclass(frozen=True)
class RunOverhead:
    """What a run spends besides training, as an earlier run recorded it."""

    startup_s: float  # its start to its first minibatch, with its saving at the end
    test_s: float  # one test on the test images


@dataclass(frozen=True)
class RunTimeEstimate:
    """A whole run's expected length here: start-up, training and tests, with a range."""

    training: TimeEstimate
    startup_s: float
    test_s: float  # one test on the test images
    tests: int  # one after each epoch and the final one
    low_s: float
    high_s: float
    overhead_source: str  # 'runs' (earlier runs like it) or 'measured'

    @property
    def seconds(self) -> float:
        return self.startup_s + self.training.seconds + self.tests * self.test_s

    def sentence(self) -> str:
        """E.g. 'about 25 s here (20-31 s): 7 s to start, 14 s of training, 4 s of tests
        (from 3 of your earlier runs)'; the range where it differs in rough words."""
        spread = range_words(self.low_s, self.high_s)
        spread = "" if spread == rough_duration(self.seconds) else f" ({spread})"
        return f"about {rough_duration(self.seconds)} here{spread}: {self.parts()} " \
               f"({self._where()})"

    def parts(self) -> str:
        return (f"{rough_duration(self.startup_s)} to start, "
                f"{rough_duration(self.training.seconds)} of training, "
                f"{rough_duration(self.tests * self.test_s)} of tests")

    def _where(self) -> str:
        runs = self.training.runs
        if self.training.source == "runs" and self.overhead_source == "runs":
            return "from your earlier run" if runs == 1 else f"from {runs} of your earlier runs"
        if self.training.source == "runs":
            return "training from your earlier runs, the rest measured"
        return "measured just now"


def range_words(low_s: float, high_s: float) -> str:
    """'20-30 s', '40 s to 2 min', or '25 s' where low and high say the same in rough words."""
    low, high = rough_duration(low_s), rough_duration(high_s)
    if low == high:
        return low
    low_number, low_unit = low.rsplit(" ", 1)
    if low_unit == high.rsplit(" ", 1)[1] and low_number.isdigit():
        return f"{low_number}-{high}"
    return f"{low} to {high}"


def earlier_overheads(runs: list[Run], config: TrainConfig, last_epoch: Callable[[Run], object],
                      dataset: str = DEFAULT_DATASET) -> list[RunOverhead]:
    """Start-up and test times of earlier runs like `config` (earlier_speeds' choice) that
    completed: a run's time besides training (its duration less its train_s) is its start-up
    and its tests; its last epoch report (`last_epoch(run)`, an EpochEvent or None) says how
    long the tests after each epoch took (elapsed_s less train_s), and the final test takes
    as long as one of them."""
    key, found = speed_key(config), []
    for run in runs:
        metrics = run.metrics or {}
        if run.status != "completed" or run.origin == "imported" or not metrics.get("train_s") \
                or run.duration_s is None or run.config.get("model") != config.model \
                or run.config.get("batch_size") != config.batch_size \
                or getattr(run, "dataset", DEFAULT_DATASET) != dataset:
            continue
        try:
            if speed_key(run.train_config) != key:
                continue
        except CifarError:
            continue
        epoch = last_epoch(run)
        if epoch is None or getattr(epoch, "train_s", None) is None or not epoch.epoch:
            continue
        test_s = max(0.0, epoch.elapsed_s - epoch.train_s) / epoch.epoch
        startup_s = run.duration_s - metrics["train_s"] - (epoch.epoch + 1) * test_s
        found.append(RunOverhead(max(0.0, startup_s), test_s))
        if len(found) == MAX_OVERHEAD_RUNS:
            break
    return found


def estimate_run_time(config: TrainConfig, images_per_epoch: int, runs: list[Run],
                      test_images: int, measure: Callable[[TrainConfig], float] | None = None,
                      measure_test: Callable[[TrainConfig], float] | None = None,
                      last_epoch: Callable[[Run], object] | None = None,
                      dataset: str = DEFAULT_DATASET) -> RunTimeEstimate | None:
    """How long a run of `config` takes here from its start to its end: its training
    (estimate_training_time), its start-up and its tests (one after each epoch on
    `test_images` images, and the final one). Start-up and tests come from earlier runs like
    it (the median; `last_epoch(run)` reads a run's last EpochEvent), else from STARTUP_S and
    `measure_test(config)` (test images per second). The range: the earlier runs' spread,
    or the spreads above where measured. None where it cannot be told."""
    training = estimate_training_time(config, images_per_epoch, runs, measure, dataset)
    if training is None:
        return None
    tests = config.epochs + 1
    overheads = [] if last_epoch is None else earlier_overheads(runs, config, last_epoch,
                                                                dataset)
    if overheads:
        startups = sorted(o.startup_s for o in overheads)
        test_times = sorted(o.test_s for o in overheads)
        startup_s, test_s = startups[len(startups) // 2], test_times[len(test_times) // 2]
        low = startups[0] + tests * test_times[0]
        high = startups[-1] + tests * test_times[-1]
        if len(overheads) < FEW_RUNS:  # a spread of one or two runs says little
            low = min(low, (startup_s + tests * test_s) / FEW_RUNS_SPREAD)
            high = max(high, (startup_s + tests * test_s) * FEW_RUNS_SPREAD)
        source = "runs"
    else:
        if measure_test is None:
            return None
        startup_s, test_s = STARTUP_S, test_images / measure_test(config)
        low, high = startup_s / STARTUP_SPREAD, startup_s * STARTUP_SPREAD
        low, high = low + tests * test_s * MEASURED_SPREAD[0], high + tests * test_s * \
            MEASURED_SPREAD[1]
        source = "measured"
    speeds = sorted(earlier_speeds(runs, config, dataset))
    if training.source == "runs" and len(speeds) > 1:
        low += images_per_epoch * config.epochs / speeds[-1]
        high += images_per_epoch * config.epochs / speeds[0]
    elif training.source == "runs":
        low += training.seconds / FEW_RUNS_SPREAD
        high += training.seconds * FEW_RUNS_SPREAD
    else:
        low += training.seconds * MEASURED_SPREAD[0]
        high += training.seconds * MEASURED_SPREAD[1]
    return RunTimeEstimate(training, startup_s, test_s, tests, low, high, source)


def measure_test_images_per_s(config: TrainConfig, threads: int | None = None,
                              num_classes: int = 10,
                              shape: tuple[int, int, int] = CIFAR_SHAPE) -> float:
    """Test images per second of `config`'s network here (its test-time augmentation and
    number format), through the predict a run's test uses, on random pictures of `shape`;
    with at most `threads` cores. The process's random numbers are left as they were."""
    device = resolve_device(config.device)
    with torch.random.fork_rng(devices=[]):
        model = build_model(replace(config, seed=0, start_from=None, freeze=False), num_classes,
                            shape)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (TEST_PROBE_IMAGES, *shape), generator=generator,
                           dtype=torch.uint8)
    before = torch.get_num_threads()
    with _measuring:
        try:
            if threads is not None:
                torch.set_num_threads(threads)
            predict(model, images, device, tta=config.tta, precision=config.precision)
            start = time.perf_counter()
            predict(model, images, device, tta=config.tta, precision=config.precision)
            return len(images) / (time.perf_counter() - start)
        finally:
            torch.set_num_threads(before)

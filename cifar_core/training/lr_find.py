"""Finding a learning rate: the range test of Smith (2015), as fastai's `lr_find` runs it.

A network of the config's model trains for a few hundred minibatches while the learning rate
grows exponentially from very small to large; the loss is recorded against it. Too small a
rate and the loss hardly moves; a good one and it falls fast; too large and it shoots up (the
test then stops). The learning rate where the smoothed loss falls fastest is a good one to
train with; a tenth of the one where it was lowest is a cautious one.

The test builds its own network (cifar_core.training.loop.build_model) and puts torch's random state
back afterwards, so a run started after it gets the same weights and batches as without it.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch

from cifar_core.data.dataset import ImageData
from cifar_core.data.registry import DEFAULT_DATASET
from cifar_core.errors import ConfigError
from cifar_core.training.config import TrainConfig, settings
from cifar_core.training.devices import resolve_device
from cifar_core.training.loop import balanced_subset, build_model
from cifar_core.training.memory import check_memory
from cifar_core.training.models import model_spec
from cifar_core.training.speed.minibatches import Minibatches
from cifar_core.training.speed.tutorial_step import TutorialStep

DEFAULT_START_LR = 1e-6
DEFAULT_END_LR = 1.0
DEFAULT_STEPS = 100
MIN_STEPS = 5
MAX_STEPS = 10_000
# The largest learning rate a TrainConfig takes (its Setting's `high`): a suggestion must fit.
MAX_LR = float(settings()["lr"].high)
# fastai's smoothing of the loss: an exponential moving average, bias-corrected.
SMOOTHING = 0.98
# The test stops once the smoothed loss passes this multiple of its lowest value (fastai's).
DIVERGED_FACTOR = 4.0
# The first share of the points is left out of the search for the steepest descent: there the
# average rests on few losses and swings most (fastai leaves out the first tenth too).
SKIP_START_FRACTION = 0.1
# With no seed in the config ('random'), the test uses this one, so that it repeats.
SEED_WITHOUT_ONE = 0
# A curve suggests nothing where its smoothed loss fell less than this share of its level
# (from the end of the first tenth to its lowest). Chosen from range tests on real CIFAR-10
# (100-500 minibatches; figures in the issue 26 report): curves that learned nothing fell
# 0-2.2 % (the tutorial's network at batch 4 and 16, the fast network at width 8 with batch 4
# and 512: the 0.87 came from a 1.5 % fall); those where the loss began to fall
# clearly, 4.1 % (the fast network at width 32, batch 512) and 9.6 % (width 8, batch 64).
MIN_RELATIVE_DROP = 0.03
# ... or, where one minibatch's loss differs from the next by more than that share (their
# scatter: the spread of successive differences / sqrt 2; small batches), where it fell less
# than this multiple of the scatter: such a fall is the curve's noise. The smoothed loss
# averages about 50 minibatches, so its own scatter is about a tenth of that; a fall of the
# whole scatter is about ten of its own. On the same curves the fall was 0-0.54 scatters for
# those that learned nothing (scatter 0.04-0.09 at batch 4 and 16), 6-8 for those that began
# to learn.
MIN_DROP_IN_SCATTERS = 1.0

Progress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(frozen=True)
class LrFinding:
    """What a range test found: the loss at each learning rate and the two suggestions.

    `suggestion` is the steepest descent of the smoothed loss: Smith's choice, the rate at
    which the network learned fastest, which is usually near the best rate for training at a
    constant rate. Where the loss never fell it is None, and the suggestion is a tenth of the
    rate at the minimum (fastai's cautious rule), which stays clear of the divergence. Where
    the curve is too flat or too noisy to tell, or the rate would be more than the form
    takes, there is no suggestion (None, kind 'none') and the message says why and what to
    try (judge_suggestion)."""

    lrs: tuple[float, ...]  # the learning rate of each minibatch
    losses: tuple[float, ...]  # its loss
    smoothed: tuple[float, ...]  # the loss smoothed (exponential moving average)
    steepest_lr: float | None  # where the smoothed loss fell fastest (None: it never fell)
    min_loss_lr: float  # where the smoothed loss was lowest
    suggestion: float | None
    suggestion_kind: str  # 'steepest descent', 'minimum / 10' or 'none'
    ended: str  # 'completed', 'diverged' or 'stopped'
    message: str
    settings: dict = field(default_factory=dict)  # what it was run for (settings_that_matter)
    dataset: str = DEFAULT_DATASET  # the data set it ran on (its registered name)

    @property
    def tenth_of_min_loss_lr(self) -> float:
        """A tenth of the learning rate where the smoothed loss was lowest."""
        return self.min_loss_lr / 10

    def marks(self) -> list[tuple[str, float]]:
        """The suggestions to mark on a chart: (label, learning rate); none where the curve
        suggests nothing."""
        if self.suggestion is None:
            return []
        marks = [] if self.steepest_lr is None else [("steepest descent", self.steepest_lr)]
        return marks + [("minimum / 10", self.tenth_of_min_loss_lr)]

    def fits(self, values: dict, dataset: str) -> bool:
        """Whether this finding holds for the settings `values` (a form's or a config's) on
        the data set `dataset`: the same settings that matter, the same data set."""
        return dataset == self.dataset and settings_that_matter(values) == self.settings

    def to_dict(self) -> dict:
        return {**asdict(self), "tenth_of_min_loss_lr": self.tenth_of_min_loss_lr}


def settings_that_matter(values: dict) -> dict:
    """The settings a range test's result depends on (the form's values or a config's): all
    but those whose Setting says range_test=False (the learning rate, which the test sets
    itself, and what comes after its minibatches: epochs, reports, schedule, testing)."""
    specs = settings()
    return {k: v for k, v in values.items() if k not in specs or specs[k].range_test}


def rounded_lr(lr: float) -> float:
    """A learning rate to two significant figures, as a person would type it."""
    return float(f"{lr:.2g}")


class LossSmoother:
    """fastai's smoothing of the loss: an exponential moving average, divided by 1 - beta**n
    so that the first values are not pulled towards zero."""

    def __init__(self, beta: float = SMOOTHING):
        self.beta, self.average, self.count = beta, 0.0, 0

    def add(self, loss: float) -> float:
        """The smoothed loss with `loss` taken in."""
        self.average = self.beta * self.average + (1 - self.beta) * loss
        self.count += 1
        return self.average / (1 - self.beta ** self.count)


def smooth(losses: list[float], beta: float = SMOOTHING) -> list[float]:
    """Each loss smoothed with those before it (LossSmoother)."""
    smoother = LossSmoother(beta)
    return [smoother.add(loss) for loss in losses]


def suggestions(lrs: list[float], smoothed: list[float]) -> tuple[float | None, float]:
    """(where the smoothed loss falls fastest against log learning rate, where it is lowest).
    The steepest descent is looked for before the minimum only (after it the loss rises), and
    not among the first SKIP_START_FRACTION of the points; None where the loss never falls.
    The slope at each point is torch.gradient's (central differences)."""
    if len(lrs) != len(smoothed) or not lrs:
        raise ValueError("need as many smoothed losses as learning rates, at least one")
    loss = torch.tensor(smoothed, dtype=torch.float64)
    lowest = int(loss.argmin())
    if lowest == 0:
        return None, lrs[lowest]
    (slope,) = torch.gradient(loss, spacing=(torch.tensor(lrs, dtype=torch.float64).log(),))
    first = min(int(SKIP_START_FRACTION * len(lrs)), lowest - 1)
    steepest = first + int(slope[first:lowest].argmin())
    if slope[steepest] >= 0:
        return None, lrs[lowest]
    return lrs[steepest], lrs[lowest]


def judge_suggestion(lrs: list[float], losses: list[float], smoothed: list[float],
                     form_lr: float | None = None) -> tuple[float | None, str, str | None]:
    """(the suggestion or None, its kind, a sentence saying why there is none and what to try,
    or None). Nothing is suggested where the smoothed loss fell too little to tell
    (MIN_RELATIVE_DROP), or less than the minibatch losses scatter (MIN_DROP_IN_SCATTERS), or
    where the rate would be above what the form takes (MAX_LR). `form_lr`: the rate the
    settings have now, offered as the one to keep."""
    steepest, lowest = suggestions(lrs, smoothed)
    keep = "" if form_lr is None else f", or keep the learning rate you have ({form_lr:g})"
    more = min(MAX_STEPS, max(500, 5 * len(lrs)))
    first = min(max(1, int(SKIP_START_FRACTION * len(lrs))), len(lrs) - 1)
    level, fallen_to = smoothed[first], min(smoothed[first:])
    drop = level - fallen_to
    # The scatter before the lowest point: after it the loss may shoot up.
    before = losses[first:max(first + 3, smoothed.index(fallen_to) + 1)]
    steps = [b - a for a, b in zip(before, before[1:], strict=False)]
    scatter = statistics.pstdev(steps) / math.sqrt(2) if len(steps) > 1 else 0.0
    # A loss that rose clearly from the first rates on: they were already too high (the
    # ending message says to start lower; a tenth of its minimum is the cautious choice).
    rose = max(smoothed[first:]) - level
    if steepest is None and rose > max(MIN_RELATIVE_DROP * abs(level),
                                       MIN_DROP_IN_SCATTERS * scatter):
        return _within_the_form(lowest / 10, "minimum / 10", keep)
    # Where one minibatch's loss scatters by more than the least fall that counts, the fall
    # must also stand out from that scatter (small batches); else it only has to be there.
    if scatter > MIN_RELATIVE_DROP * abs(level) and drop < MIN_DROP_IN_SCATTERS * scatter:
        return None, "none", (
            f"The loss jumped around more than it fell: it fell {drop:.2g}, while one "
            f"minibatch's loss differs from the next by about {scatter:.2g}, so nothing is "
            f"suggested. Try a larger batch size or more minibatches (e.g. {more:,}){keep}.")
    if drop < MIN_RELATIVE_DROP * abs(level):
        return None, "none", (
            f"The loss hardly moved: it fell {drop / abs(level):.1%} (from {level:.3g} to "
            f"{fallen_to:.3g}) over the rates tried, too little to tell a good rate from a "
            f"bad one, so nothing is suggested. Try more minibatches (e.g. {more:,}) or a "
            f"larger last rate{keep}.")
    if steepest is None:
        return _within_the_form(lowest / 10, "minimum / 10", keep)
    return _within_the_form(steepest, "steepest descent", keep)


def _within_the_form(suggestion: float, kind: str, keep: str
                     ) -> tuple[float | None, str, str | None]:
    """The suggestion, or none where the form would refuse it (above MAX_LR)."""
    if suggestion > MAX_LR:
        return None, "none", (
            f"The loss fell fastest at {rounded_lr(suggestion):g}, above {MAX_LR:g}, the most "
            f"the form takes, so nothing is suggested: try rates up to {MAX_LR:g}{keep}.")
    return suggestion, kind, None


def check_range(start_lr: float, end_lr: float, steps: int) -> None:
    """ConfigError saying what to change if the range or the number of steps cannot be used."""
    numbers = (start_lr, end_lr)
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x)
           for x in numbers):
        raise ConfigError("start_lr", f"The learning rates must be numbers (got {start_lr!r} "
                                      f"and {end_lr!r}), e.g. from {DEFAULT_START_LR:g} to "
                                      f"{DEFAULT_END_LR:g}.")
    if start_lr <= 0:
        raise ConfigError("start_lr", f"The first learning rate must be above 0 (got "
                                      f"{start_lr:g}): try {DEFAULT_START_LR:g}.")
    if end_lr > MAX_LR:
        raise ConfigError("end_lr", f"The last learning rate can be at most {MAX_LR:g} (got "
                                    f"{end_lr:g}): try {DEFAULT_END_LR:g}.")
    if start_lr >= end_lr:
        raise ConfigError("end_lr", f"The last learning rate ({end_lr:g}) must be above the "
                                    f"first ({start_lr:g}): e.g. from {DEFAULT_START_LR:g} to "
                                    f"{DEFAULT_END_LR:g}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or not \
            MIN_STEPS <= steps <= MAX_STEPS:
        raise ConfigError("steps", f"The test needs a whole number of minibatches from "
                                   f"{MIN_STEPS} to {MAX_STEPS:,} (got {steps!r}): "
                                   f"{DEFAULT_STEPS} to 200 is usual.")


def find_learning_rate(config: TrainConfig, data: ImageData, start_lr: float = DEFAULT_START_LR,
                       end_lr: float = DEFAULT_END_LR, steps: int = DEFAULT_STEPS,
                       progress: Progress | None = None,
                       stop: threading.Event | None = None) -> LrFinding:
    """Train a fresh network of the config's model, its recipe, batch size and data for up to
    `steps` minibatches, the learning rate growing exponentially from `start_lr` to `end_lr`;
    stop early once the smoothed loss passes DIVERGED_FACTOR times its lowest (or `stop` is
    set). `progress(done, steps)` is called after each minibatch. Leaves torch's random state
    as it found it. ConfigError for a range or a number of steps that cannot be used."""
    check_range(start_lr, end_lr, steps)
    asked = settings_that_matter(config.to_dict())
    form_lr = config.lr
    if config.seed is None:
        config = replace(config, seed=SEED_WITHOUT_ONE)
    # The test's own rate and growth replace the config's rate and schedule; the optimizer,
    # loss and precision stay the config's (training.recipe, through the tutorial's step).
    # Start from and Keep fixed are not among the settings it depends on (range_test=False):
    # it tests a fresh network, as for the same settings without them. Nor is Compile (the
    # same arithmetic), which would make the page wait a minute or more for the compiling.
    config = replace(config, lr=start_lr, schedule="constant", start_from=None, freeze=False,
                     compile=False)
    # It runs in the dashboard's own process: refused, not started, where it would not fit.
    images = min(config.train_size or len(data.train_labels), len(data.train_labels))
    check_memory(config, len(data.classes), images, "Finding a learning rate", data.shape)
    device = resolve_device(config.device)
    forked = [device] if device.type == "cuda" else []
    # build_model seeds torch, and the step draws from it: a run after this one must not
    # notice (on a GPU build_model's seeding reaches the others lazily; each run seeds again).
    with torch.random.fork_rng(devices=forked):
        lrs, losses, ended = _range_test(config, data, device, end_lr, steps, progress, stop)
    smoothed = smooth(losses)
    if not lrs:
        raise ConfigError("start_lr", f"The loss was not a number from the first minibatch "
                                      f"on: start lower than {start_lr:g}.")
    steepest, lowest = suggestions(lrs, smoothed)
    suggestion, kind, why_none = judge_suggestion(lrs, losses, smoothed, form_lr)
    message = _ending_message(ended, len(lrs), steps, steepest)
    return LrFinding(
        lrs=tuple(lrs), losses=tuple(losses), smoothed=tuple(smoothed), steepest_lr=steepest,
        min_loss_lr=lowest, suggestion=suggestion, suggestion_kind=kind, ended=ended,
        message=message if why_none is None else f"{message} {why_none}",
        settings=asked, dataset=data.dataset)


def _range_test(config: TrainConfig, data: ImageData, device: torch.device, end_lr: float,
                steps: int, progress: Progress | None, stop: threading.Event | None):
    """(learning rates, losses, how it ended) of the minibatches trained."""
    model = build_model(config, len(data.classes), data.shape).to(device).train()
    spec = model_spec(config.model)
    if spec.channels_last and device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    batches = Minibatches(data, balanced_subset(data.train_labels, config.train_size,
                                                config.seed), config.batch_size, device,
                          augment=config.augment)
    if spec.prepare is not None:  # e.g. the fast network's whitening
        spec.prepare(model, batches.first_images())
    step = TutorialStep(model, config)
    # Each minibatch's rate is the one before times `growth`: start_lr ... end_lr.
    growth = (end_lr / config.lr) ** (1 / (steps - 1))
    schedule = torch.optim.lr_scheduler.ExponentialLR(step.optimizer, gamma=growth)
    # A model may train some weights at a multiple of the rate (its spec's lr_scales).
    scale = step.optimizer.param_groups[0]["lr"] / config.lr
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    lrs, losses, best, smoother = [], [], math.inf, LossSmoother()
    while True:  # as many epochs as the steps need
        for inputs, labels in batches.epoch(generator):
            lr = schedule.get_last_lr()[0] / scale
            loss = step.step(inputs, labels).item()
            if not math.isfinite(loss):
                return lrs, losses, "diverged"
            lrs.append(lr)
            losses.append(loss)
            smoothed = smoother.add(loss)
            best = min(best, smoothed)
            if progress is not None:
                progress(len(lrs), steps)
            if smoothed > DIVERGED_FACTOR * best:
                return lrs, losses, "diverged"
            if len(lrs) == steps:
                return lrs, losses, "completed"
            if stop is not None and stop.is_set():  # (after one minibatch at least)
                return lrs, losses, "stopped"
            schedule.step()


def _ending_message(ended: str, done: int, steps: int, steepest: float | None) -> str:
    if ended == "diverged":
        text = (f"Stopped after {done} of {steps} minibatches: the loss shot up (past "
                f"{DIVERGED_FACTOR:g} times its lowest, or no longer a number), so larger "
                "rates are too high.")
    elif ended == "stopped":
        text = f"Stopped on request after {done} of {steps} minibatches."
    else:
        text = f"Tried all {steps} learning rates; the loss did not shoot up."
    if steepest is None:
        text += (" The loss never fell, so the first learning rates were already too high: "
                 "start lower.")
    return text

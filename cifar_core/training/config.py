"""Every setting of one training, declared once, and the starting points (presets) offered.

Each TrainConfig field carries its label, help text, range or choices and command-line flag as
metadata (a `Setting`). The checks (`config_problems`), the CLI's flags, the Train page's form,
the Runs page's columns and the summaries are all derived from these declarations: adding a
setting means adding a field here and the code that uses it, nothing else.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace

from cifar_core.data.own_sets import is_own_set
from cifar_core.data.registry import DATASETS, DEFAULT_DATASET
from cifar_core.errors import ConfigError, DeviceError
from cifar_core.training.augment import AUGMENTATIONS, TEST_TIME_AUGMENTATIONS
from cifar_core.training.averaging import AVERAGINGS
from cifar_core.training.devices import available_devices, resolve_device
from cifar_core.training.models import MODELS, model_names
from cifar_core.training.recipe import PRECISIONS, SCHEDULES, precision_problem


@dataclass(frozen=True)
class Setting:
    """What the UI, the CLI and the checks know about one TrainConfig field."""

    label: str  # how it is called on screen and in messages
    help: str  # one or two sentences for people who do not program
    kind: type  # int, float, str or bool
    flag: str  # the command line's option
    low: float | None = None  # smallest allowed value (numbers)
    high: float | None = None  # largest allowed value (numbers)
    above_low: bool = False  # the value must be strictly above `low`
    below_high: bool = False  # the value must be strictly below `high`
    # The values allowed (a str setting): a tuple, or a function giving them (e.g. this
    # machine's devices). A setting without them takes any non-empty text.
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None
    strict_choices: bool = True  # False: the choices are suggestions (device: 'cuda:3')
    optional: bool = False  # None is allowed ...
    none_means: str = ""  # ... and means this, in words ('random', 'all')
    # Extra advice when a number is out of range, e.g. 'the tutorial uses 0.001'.
    advice: Callable[[float], str | None] | None = None
    step: float = 1  # the form's +/- step (numbers)
    format: str | None = None  # how the form and tables show a number, printf-style
    log_scale: bool = False  # spread over orders of magnitude (charts use a log axis)
    compare: bool = True  # a column on the Runs page and an axis of its scatter chart
    advanced: bool = False  # part of the training recipe beyond the tutorial's (its own section)
    # Roles, read by whoever needs to know which settings do what (declared here, not listed
    # again in those modules):
    # False: a sweep keeps it the same for all its runs, as one value (where runs train and how
    # often they report change nothing about what a network learns).
    sweepable: bool = True
    # False: the learning-rate range test does not depend on it (it sets its own learning
    # rate, and epochs, reports, the schedule and testing come after its minibatches).
    range_test: bool = True
    # True: it decides how many images per second a training computes here (estimate).
    speed: bool = False
    # True: a preset leaves it as the user chose it, unless the preset names it (the device,
    # the seed).
    kept_by_presets: bool = False

    def allowed(self) -> tuple[str, ...]:
        """The choices, called if they are computed."""
        choices = self.choices() if callable(self.choices) else self.choices
        return tuple(choices or ())


def setting(default, **meta) -> Field:
    """A TrainConfig field with its Setting."""
    return field(default=default, metadata={"setting": Setting(**meta)})


def _lr_advice(lr: float) -> str | None:
    if lr <= 0:
        return f"The learning rate must be above 0 (got {lr:g}); the tutorial uses 0.001."
    return f"A learning rate of {lr:g} is far too high: try 0.001 to 0.1."


def _momentum_advice(momentum: float) -> str | None:
    return (f"Momentum must be at least 0 and below 1 (got {momentum:g}); the tutorial uses "
            "0.9.")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training. Defaults are the tutorial's."""

    model: str = setting(
        "tutorial", label="Model", kind=str, flag="--model", choices=model_names,
        speed=True,
        help="Which network to train: the tutorial's small one, a fast modern one built for "
             "quick training, or the well-known (large, slow on a CPU) ResNet-18.")
    epochs: int = setting(
        2, label="Epochs", kind=int, flag="--epochs", low=1, high=1000,
        range_test=False,
        help="How many times the network sees every training image.")
    lr: float = setting(
        0.001, label="Learning rate", kind=float, flag="--lr", low=0, high=10, above_low=True,
        advice=_lr_advice, step=0.001, format="%.4f", log_scale=True,
        range_test=False,
        help="How big a step each correction takes. Too high and learning falls apart; too "
             "low and it crawls.")
    momentum: float = setting(
        0.9, label="Momentum", kind=float, flag="--momentum", low=0, high=1, below_high=True,
        advice=_momentum_advice, step=0.05, format="%.2f",
        help="How much of the previous step carries into the next (0 = none, 0.9 = a lot).")
    batch_size: int = setting(
        4, label="Batch size", kind=int, flag="--batch-size", low=1, high=50_000, log_scale=True,
        speed=True,
        help="Images looked at before each correction. Bigger is faster per image, but gives "
             "fewer corrections per epoch.")
    # None: automatic, sized to the run (cifar_core.training.reports). Runs stored before it
    # was optional keep the number they were given.
    log_every: int | None = setting(
        None, label="Log every (minibatches)", kind=int, flag="--log-every", low=1,
        high=1_000_000, optional=True, none_means="automatic", compare=False,
        sweepable=False, range_test=False,
        help="Report the average loss every this many batches (one point on the chart). "
             "Automatic: about 20 reports a run, whatever its size. A number that would give "
             "a run a single report is lowered to the automatic one.")
    device: str = setting(
        "auto", label="Device", kind=str, flag="--device", choices=lambda: tuple(
            available_devices()), strict_choices=False, compare=False,
        sweepable=False, speed=True, kept_by_presets=True,
        help="Where to compute: 'auto' picks a GPU when there is one.")
    seed: int | None = setting(
        None, label="Seed", kind=int, flag="--seed", low=0, high=2**31 - 1, optional=True,
        none_means="random", compare=False,
        kept_by_presets=True,
        help="Fixes the starting weights and the order of images, so a run can be repeated.")
    train_size: int | None = setting(
        None, label="Training images", kind=int, flag="--train-size", low=10,
        high=10_000_000, optional=True, none_means="all", step=1000, log_scale=True,
        help="How many training images to use, the same number from every class.")
    # The widest range a model allows (each model's own range is checked with the model).
    width: int | None = setting(
        None, label="Width", kind=int, flag="--width",
        low=min(m.widths[0] for m in MODELS.values() if m.widths),
        high=max(m.widths[1] for m in MODELS.values() if m.widths), optional=True,
        none_means="standard", step=8, log_scale=True,
        speed=True,
        help="How many pattern detectors the fast network's first layers have (the deeper "
             "ones have four times as many). Wider learns more and takes longer. Empty: the "
             "model's standard size for the device.")
    augment: str = setting(
        "none", label="Augmentation", kind=str, flag="--augment", choices=AUGMENTATIONS,
        advanced=True,
        speed=True,
        help="Show each training picture a little changed every epoch: mirrored (flip), and "
             "also shifted by a pixel or two (translate). The network then learns what a cat "
             "looks like rather than memorising these pictures.")
    alternating_flip: bool = setting(
        False, label="Alternate the mirroring", kind=bool, flag="--alternating-flip",
        advanced=True, range_test=False,
        help="With an augmentation that mirrors: mirror each picture every other epoch "
             "(which way it starts is drawn once per picture) instead of by a coin toss each "
             "epoch, so the network sees every picture both ways every two epochs.")
    label_smoothing: float = setting(
        0.0, label="Label smoothing", kind=float, flag="--label-smoothing", low=0, high=1,
        below_high=True, step=0.05, format="%.2f", advanced=True,
        help="Teach the network to be a little less than 100 % sure of each answer (0 = off, "
             "0.2 = the fast recipe's). An over-confident network does worse on pictures it "
             "has not seen.")
    weight_decay: float = setting(
        0.0, label="Weight decay", kind=float, flag="--weight-decay", low=0, high=1,
        step=0.0001, format="%.5f", advanced=True,
        help="Pull every weight slightly towards zero at each step, so the network keeps "
             "simple explanations (0 = off; 0.0005 is a common value).")
    nesterov: bool = setting(
        False, label="Nesterov momentum", kind=bool, flag="--nesterov", advanced=True,
        help="Look ahead along the momentum before correcting: usually a little better and "
             "steadier. Needs a momentum above 0.")
    # 0 for off, not None: the form's number fields take no empty float.
    muon_lr: float = setting(
        0.0, label="Muon learning rate (filters)", kind=float, flag="--muon-lr", low=0,
        high=10, step=0.01, format="%.3f", advanced=True, speed=True,
        help="Train the pattern detectors (the convolution filters) with Muon, which makes "
             "each step push all their directions alike, and every other weight as before. "
             "0.24 is the GPU speed records' value for the fast network. 0: off (SGD for "
             "every weight).")
    schedule: str = setting(
        "constant", label="Learning-rate schedule", kind=str, flag="--schedule",
        choices=SCHEDULES, advanced=True,
        range_test=False,
        help="How the learning rate changes during training: constant (the tutorial's); "
             "warm-up then linear decay (start gently, end with fine steps); one-cycle (up, "
             "then down along a curve).")
    averaging: str = setting(
        "none", label="Weight averaging", kind=str, flag="--averaging", choices=AVERAGINGS,
        advanced=True, range_test=False,
        help="Test and keep an average of the network's recent weights rather than its last "
             "ones, which jitter from step to step: ema (a running average over about the "
             "last 100 steps) or lookahead (every 5 steps the weights are pulled back to the "
             "average, as the GPU speed records do).")
    tta: str = setting(
        "none", label="Test-time augmentation", kind=str, flag="--tta",
        choices=TEST_TIME_AUGMENTATIONS, advanced=True,
        range_test=False,
        help="When testing, also ask the network about the mirror image of each picture "
             "(flip), and shifted copies (flip+translate), and average its answers: a little "
             "more accurate, two or six times the work.")
    tta_unsure_below: float = setting(
        1.0, label="Test-time augmentation only when unsure", kind=float,
        flag="--tta-unsure-below", low=0, high=1, above_low=True, step=0.05, format="%.2f",
        advanced=True, range_test=False,
        help="Ask about the mirrored and shifted copies only for the pictures the network is "
             "less sure of than this (its top answer's probability, e.g. 0.9); the pictures it "
             "is sure of keep their first answer. Nearly as accurate, much less work. 1: every "
             "picture.")
    precision: str = setting(
        "fp32", label="Precision", kind=str, flag="--precision", choices=PRECISIONS,
        advanced=True,
        speed=True,
        help="How precisely the heavy arithmetic is done: fp32 (full precision, the "
             "tutorial's), bf16 or fp16 (half the digits: much faster on hardware made for "
             "it, about as accurate; fp16 only on a GPU), auto (bf16 where this machine "
             "computes it faster, else fp32).")
    compile: bool = setting(
        False, label="Compile", kind=bool, flag="--compile", advanced=True, speed=True,
        range_test=False,
        help="Turn the network's arithmetic into code made for this machine before training "
             "(torch.compile): on a GPU each step is faster; on a 2-core CPU the fast "
             "network's steps were slower compiled, and the first step waits while the code "
             "is made (over a minute there); the run's message says how long. Same results.")
    start_from: str | None = setting(
        None, label="Start from", kind=str, flag="--start-from", optional=True,
        none_means="nothing (from scratch)", advanced=True, sweepable=False, range_test=False,
        help="Begin with the weights of a network trained before (a finished run's id, or a "
             ".pth file) instead of random ones: everything it learned to see is kept, and "
             "only its last layer is made new for this data set's classes. Its model, width "
             "and picture size must be this training's.")
    freeze: bool = setting(
        False, label="Keep the earlier layers fixed", kind=bool, flag="--freeze",
        advanced=True, sweepable=False, range_test=False,
        help="With a network to start from: train only its last layer, the one that decides "
             "between the classes, and keep every other weight as it was. Seconds instead of "
             "minutes, and good with a few pictures per class.")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first setting that is out of range."""
        problems = config_problems(self.to_dict())
        if problems:
            name, message = next(iter(problems.items()))
            raise ConfigError(name, message)

    def with_seed(self) -> TrainConfig:
        """This config with a concrete seed (a random one if none was set)."""
        return self if self.seed is not None else replace(self, seed=random.randrange(2**31))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build from a dict, ignoring unknown keys (configs stored by other versions) and
        taking the default for missing ones (settings added since)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def settings() -> dict[str, Setting]:
    """Every setting, in the order the form and tables show them: field name -> Setting."""
    return {f.name: f.metadata["setting"] for f in fields(TrainConfig)}


def with_role(role: str) -> tuple[str, ...]:
    """The names of the settings that have a role (a Setting flag: 'sweepable', 'range_test',
    'speed', 'kept_by_presets', ...) set, in declaration order."""
    return tuple(name for name, spec in settings().items() if getattr(spec, role))


def defaults() -> dict:
    """Each setting's default value."""
    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def compared_settings() -> tuple[str, ...]:
    """The settings a comparison of runs shows (Runs table, scatter chart, CSV)."""
    return tuple(name for name, s in settings().items() if s.compare)


def problem(name: str, spec: Setting, value) -> str | None:
    """What is wrong with `value` for the setting `name`, in words; None if it is fine."""
    if value is None and spec.optional:
        return None
    if spec.kind is bool:
        return None if isinstance(value, bool) else (f"{spec.label} must be on or off "
                                                     f"(True or False), not {value!r}.")
    if spec.kind is str:
        if not isinstance(value, str) or not value.strip():
            choices = spec.allowed()
            return (f"{spec.label} must be one of {', '.join(choices)}." if spec.strict_choices
                    else f"{spec.label} must be a name such as {', '.join(choices[:2])} or "
                         "cuda.")
        if spec.strict_choices and spec.choices is not None and value not in spec.allowed():
            return f"{spec.label} must be one of {', '.join(spec.allowed())} (got {value!r})."
        return None
    if spec.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        return f"{spec.label} must be a whole number, not {value!r}."
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{spec.label} must be a number, not {value!r}."
    too_low = spec.low is not None and (value <= spec.low if spec.above_low else value < spec.low)
    too_high = spec.high is not None and (value >= spec.high if spec.below_high
                                          else value > spec.high)
    if not (too_low or too_high):
        return None
    if spec.advice is not None:
        return spec.advice(value)
    if not (spec.above_low or spec.below_high):
        return f"{spec.label} must be between {spec.low:,} and {spec.high:,} (got {value:,})."
    # 'between 0 and 1 (got 1)' would read as if 1 were allowed: say which end is excluded.
    lowest = f"above {spec.low:,}" if spec.above_low else f"at least {spec.low:,}"
    highest = f"below {spec.high:,}" if spec.below_high else f"at most {spec.high:,}"
    return f"{spec.label} must be {lowest} and {highest} (got {value:,})."


def config_problems(values: dict) -> dict[str, str]:
    """Every out-of-range setting, field -> message (empty when all is well); a missing one
    takes its default. The one place where settings are checked: TrainConfig, the CLI and the
    dashboard's form all use it."""
    given = {**defaults(), **values}
    problems = {}
    for name, spec in settings().items():
        message = problem(name, spec, given.get(name))
        if message:
            problems[name] = message
    # A setting's message about the chosen model says more than its general range (Width:
    # the fast network's 4 to 256, or none at all for the tutorial's), so one message holds
    # for every wrong number.
    problems.update(_combination_problems(given))
    return problems


def shape_problems(values: dict | TrainConfig, shape: tuple[int, int, int]) -> dict[str, str]:
    """What in the settings (a config, or the form's values) cannot train on pictures of
    `shape` (channels, height, width: the data set's), field -> message; empty when all is
    well. For the pages and the CLI to ask before a run starts (build_model refuses the same
    with the same words). A model that is not registered is config_problems' to report."""
    given = values.to_dict() if isinstance(values, TrainConfig) else {**defaults(), **values}
    model = given.get("model")
    spec = MODELS.get(model) if isinstance(model, str) else None
    message = spec.shape_problem(tuple(shape)) if spec is not None else None
    return {"model": message} if message else {}


def _combination_problems(given: dict) -> dict[str, str]:
    """Settings that are each fine but do not go together, field -> message."""
    problems = {}
    spec = MODELS.get(given.get("model"))
    width = given.get("width")
    if spec is not None and isinstance(width, int) and not isinstance(width, bool):
        if spec.widths is None:
            problems["width"] = (f"The {spec.title.lower()} has no width setting: leave Width "
                                 "empty, or choose the fast network.")
        elif not spec.widths[0] <= width <= spec.widths[1]:
            problems["width"] = (f"For the {spec.title.lower()}, Width must be between "
                                 f"{spec.widths[0]} and {spec.widths[1]} (got {width}); "
                                 f"{spec.cpu_width} suits a CPU, {spec.gpu_width} a GPU.")
    if given.get("freeze") is True and given.get("start_from") is None:
        problems["freeze"] = ("Keeping the earlier layers fixed needs a network to start from: "
                              "choose one under Start from, or turn this off.")
    if given.get("alternating_flip") is True and given.get("augment") == "none":
        problems["alternating_flip"] = ("Alternating the mirroring needs an augmentation that "
                                        "mirrors: choose flip or flip+translate under "
                                        "Augmentation, or turn this off.")
    unsure = given.get("tta_unsure_below")
    if isinstance(unsure, (int, float)) and unsure < 1 and given.get("tta") == "none":
        problems["tta_unsure_below"] = ("Test-time augmentation only when unsure needs a "
                                        "test-time augmentation: choose flip or "
                                        "flip+translate under Test-time augmentation, or "
                                        "set this to 1.")
    momentum = given.get("momentum")
    if given.get("nesterov") is True and isinstance(momentum, (int, float)) and momentum <= 0:
        problems["nesterov"] = ("Nesterov momentum needs a momentum above 0: raise Momentum "
                                "(e.g. 0.9) or turn Nesterov off.")
    precision = given.get("precision")
    if precision in PRECISIONS:
        try:
            device = resolve_device(given.get("device"))
        except (DeviceError, TypeError, ValueError, RuntimeError):
            device = None  # the device's own message says what is wrong
        message = device is not None and precision_problem(precision, device)
        if message:
            problems["precision"] = message
    return problems


def plain_recipe(config: TrainConfig) -> bool:
    """Whether the config trains with the tutorial's recipe: plain SGD at a constant rate,
    plain cross-entropy, float32, every weight learning, not compiled (augmentation, test-time
    augmentation and weight averaging aside, which change the data, the test and the weights
    after each step, not the step)."""
    return (config.label_smoothing == 0 and config.weight_decay == 0 and not config.nesterov
            and config.schedule == "constant" and config.precision == "fp32"
            and not config.freeze and not config.muon_lr and not config.compile)


@dataclass(frozen=True)
class Preset:
    """A starting point for the Train page and `--preset`: the settings it names (the rest
    keep their defaults), and the data sets (registered names) its time and accuracy were
    measured on."""

    title: str
    values: dict
    needs_gpu: bool = False  # offered only where CUDA is present
    measured_on: tuple[str, ...] = (DEFAULT_DATASET,)
    # What it reached and in how long, on which machine (bench/RESULTS.md), in words; "" where
    # it was not measured.
    measured: str = ""


# The fast network's recipe (airbench94's, in this config's terms: its learning rate and
# weight decay are per example summed, ours for the batch's mean loss, hence lr = 0.0015 x
# batch size and weight decay 0.0013). The CPU presets' width, epochs and batch size were
# chosen by measurement (bench/bench_fast.py, bench/RESULTS.md): width 32 learned more in the
# same minutes than width 16 trained for more epochs.
FAST_RECIPE = dict(model="fast", momentum=0.85, nesterov=True, weight_decay=0.0013,
                   label_smoothing=0.2, schedule="warmup-linear", augment="flip+translate",
                   tta="flip", train_size=None, device="auto")


# The CPU presets (issue 28): the fast recipe with Muon for the filters, which reached 2.7
# points more in the same epochs and cost little time; weight averaging (lookahead), the
# alternating flip and multi-crop or selective test-time augmentation did not pay at these
# budgets (bench/bench_ablation.py; the table and why in bench/RESULTS.md, "Issue 28"). Their
# epochs and images were sized on the slower of this project's machines (a 2-core AMD EPYC
# with AVX2 only, about 500 pictures a second), so that each fits its minutes there; faster
# CPUs finish sooner.
CPU_RECIPE = dict(FAST_RECIPE, width=32, batch_size=512, lr=0.75, muon_lr=0.24,
                  log_every=None, precision="auto", device="cpu")

# The GPU's record path (issue 28): airbench94's size (width 64, 10 epochs, batch 1024) and
# the tricks its own ablation (KellerJordan/cifar10-zoo) found paying on a GPU: lookahead,
# alternating flip, multi-crop test-time augmentation, compiled (the first steps' compiling
# counted apart by bench/gpu_check.sh), bf16 in channels-last (training.speed).
GPU_RECORD = dict(FAST_RECIPE, width=64, epochs=10, batch_size=1024, lr=1.5, log_every=None,
                  precision="auto", device="cuda", averaging="lookahead",
                  alternating_flip=True, tta="flip+translate", compile=True)

# What each measured preset reached: bench/bench_presets.py, 3 seeds, on the machine named
# (bench/RESULTS.md, "Issue 28"; the minutes are training time as the CLI reports it).
_CPU = "mean of 3 seeds on a 2-core AMD EPYC with AVX2; faster CPUs take less"
MEASURED = {
    "cpu-1min": f"Measured: 72.0 % in 0.9 minutes of training ({_CPU}).",
    "cpu-2min": f"Measured: 79.4 % in 1.7 minutes of training ({_CPU}).",
    "cpu-5min": f"Measured: 84.4 % in 4.4 minutes of training ({_CPU}).",
    "gpu": "Not measured on a GPU yet: bench/gpu_check.sh is ready for one.",
}

# The fast network on Fashion-MNIST's 28 x 28 grey pictures: the fast recipe at the size the
# CIFAR-10 preset cpu-5min had before issue 28 (8 epochs), which reaches issue 24's accuracy
# target (94 %) there; sized on the faster of this project's machines (bench/bench_fast.py
# --dataset fashion-mnist; figures, minutes and the machines in bench/RESULTS.md, "Issue 24").
FASHION_5MIN = dict(FAST_RECIPE, width=32, epochs=8, batch_size=512, lr=0.75, log_every=None,
                    precision="auto", device="cpu")

# Teaching a few dozen pictures per class of your own (the Teach page, cifar_core.runs.teach):
# the start network's model and width and Start from come from the network chosen, and every
# layer learns: keeping the earlier layers fixed was faster but 6 to 17 points less accurate.
# Epochs, batch, learning rate and augmentation chosen by measurement for well under a minute
# of training on this project's 2-core CPU (bench/bench_teach.py; figures in bench/RESULTS.md,
# "Issue 25").
TEACH_1MIN = dict(model="fast", width=32, epochs=20, batch_size=16, lr=0.05, momentum=0.9,
                  augment="flip+translate", tta="flip", freeze=False, log_every=None,
                  train_size=None, device="cpu")

# Ids are stable: the CLI's --preset takes them. Log every: the tutorial's own 2,000 (6 reports
# an epoch of batch 4 on 50,000 images); the others automatic (about 20 a run, whatever the
# images and epochs chosen after the preset: cifar_core.training.reports).
PRESETS = {
    "tutorial": Preset("Tutorial: 2 epochs, lr 0.001, momentum 0.9, batch 4", dict(
        epochs=2, lr=0.001, momentum=0.9, batch_size=4, log_every=2000, train_size=None)),
    "quick": Preset("Quick demo: about a minute on a laptop CPU", dict(
        epochs=3, lr=0.01, momentum=0.9, batch_size=16, log_every=None, train_size=None)),
    "cpu-1min": Preset("Best in 1 minute on a CPU (fast network)", dict(
        CPU_RECIPE, epochs=1, train_size=25000), measured=MEASURED["cpu-1min"]),
    "cpu-2min": Preset("Best in 2 minutes on a CPU (fast network)", dict(
        CPU_RECIPE, epochs=1), measured=MEASURED["cpu-2min"]),
    "cpu-5min": Preset("Best in 5 minutes on a CPU (fast network)", dict(
        CPU_RECIPE, epochs=3, train_size=45000), measured=MEASURED["cpu-5min"]),
    "gpu": Preset("GPU: the record path, airbench94's recipe compiled (fast network)",
                  GPU_RECORD, needs_gpu=True, measured=MEASURED["gpu"]),
    "fashion-5min": Preset("Fashion-MNIST in 5 minutes on a CPU (fast network)",
                           FASHION_5MIN, measured_on=("fashion-mnist",)),
    # Measured on sets of your own pictures, which no registered name stands for.
    "teach-1min": Preset("Teach: about a minute", TEACH_1MIN, measured_on=()),
}


def preset_note(preset_id: str, dataset: str) -> str | None:
    """A sentence for a preset chosen for the data set `dataset` (a registered name) that it
    was not measured on (None where it was): its time and accuracy may differ there."""
    if preset_id not in PRESETS:
        raise ConfigError("preset", f"There is no preset '{preset_id}': choose one of "
                                    f"{', '.join(PRESETS)}.")
    measured_on = PRESETS[preset_id].measured_on
    if dataset in measured_on:
        return None
    if not measured_on:  # made for the sets of your own pictures (the Teach page's)
        if is_own_set(dataset):
            return None
        title = _dataset_title(dataset)
        return (f"These settings were made for a few dozen pictures per class of your own, "
                f"not for {title}: on {title} the training may take a different time and "
                "reach a different accuracy.")
    where, title = " and ".join(_dataset_title(n) for n in measured_on), _dataset_title(dataset)
    return (f"These settings were measured on {where}, not on {title}: on {title} the "
            "training may take a different time and reach a different accuracy.")


def presets_help(presets: dict[str, Preset] | None = None) -> str:
    """What each of `presets` (all where None) was measured to reach, a line each (those
    measured), for the presets' help on the page and in the CLI."""
    chosen = PRESETS if presets is None else presets
    return "\n".join(f"- {preset.title}: {preset.measured}" for preset in chosen.values()
                     if preset.measured)


def _dataset_title(name: str) -> str:
    spec = DATASETS.get(name)
    return spec.title if spec is not None else name


def offered_presets() -> dict[str, Preset]:
    """The presets this machine can run (the GPU one only where CUDA is present)."""
    import torch

    cuda = torch.cuda.is_available()
    return {key: p for key, p in PRESETS.items() if cuda or not p.needs_gpu}


def preset_values(preset_id: str) -> dict:
    """Every setting's value for a preset (defaults where it names none)."""
    if preset_id not in PRESETS:
        raise ConfigError("preset", f"There is no preset '{preset_id}': choose one of "
                                    f"{', '.join(PRESETS)}.")
    if preset_id not in offered_presets():
        raise ConfigError("preset", f"The preset '{preset_id}' needs a GPU (CUDA), and this "
                                    f"machine has none: choose one of "
                                    f"{', '.join(offered_presets())}.")
    return {**defaults(), **PRESETS[preset_id].values}


# From this batch size on a GPU trains faster than this CPU (batch 32 on an NVIDIA H200 against
# this machine's CPU, bench/RESULTS.md "On a GPU"); below it each step waits for the GPU to
# start its work. The advice below says this number.
GPU_PAYS_OFF_FROM_BATCH = 32


def device_advice(device_name: str, batch_size: int) -> str | None:
    """A word of advice when the chosen device is a GPU and the batches are too small to keep
    it busy (None: none needed, or the device does not exist, which the checks report)."""
    try:
        device = resolve_device(device_name)
    except DeviceError:
        return None
    if device.type == "cpu" or not isinstance(batch_size, int) \
            or batch_size >= GPU_PAYS_OFF_FROM_BATCH:
        return None
    return (f"A batch of {batch_size} is too small to keep a GPU busy: each step waits for "
            "the GPU to start its work, and the CPU trains such batches faster. Choose device "
            f"cpu, or a batch of {GPU_PAYS_OFF_FROM_BATCH} or more to let the GPU pay off.")

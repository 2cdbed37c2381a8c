"""What a sweep varies: for each setting a fixed value, a list of values or a range, and how
runs are drawn from that space (grid, random, smart), within a budget.

A space is checked in one place (`space_problems`), with the settings' own messages
(cifar_core.training.config): the CLI, a space file (TOML) and the Sweep page all use it. Grid and
random expansion are plain Python; the smart strategy asks Optuna (cifar_core.sweeps.smart).

Repeats (issue 26): with `repeats` N, every setting the strategy draws is run N times, with the
seeds seed, seed + 1, ... (a sweep's runs otherwise all share one seed), so that the answer can
tell a difference from the seed's noise (cifar_core.sweeps.groups). A setting's repeats are
consecutive runs. The smart strategy asks Optuna for a setting once and runs it N times; each
run is told to the study as its own trial of the same values, so its sampler learns from every
seed (cifar_core.sweeps.engine). Early stopping is refused with repeats: stopping some seeds of a
setting early would leave its mean to the lucky ones.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

from cifar_core.errors import ConfigError
from cifar_core.runs.repeats import repeats_problem
from cifar_core.training.config import config_problems, defaults, problem, settings

STRATEGIES = ("grid", "random", "smart")
PRUNERS = ("none", "median", "halving")
# A sweep of more runs than this is refused: at minutes per run it would take days, and the
# charts that answer it stop being readable.
MAX_RUNS = 500
# A range's points for a grid, and a list's values: at most this many per setting. (A random
# draw over lists of 1,000 values was made by building the whole grid first: gigabytes.)
MAX_POINTS = 50
# The space's seed (random and smart draws), as a run's seed (cifar_core.training.config).
MAX_SEED = 2**31 - 1


class SweepError(ConfigError):
    """A search space or sweep that cannot run, naming the setting (or 'strategy', 'runs',
    'minutes', 'prune', 'space') and saying what to do."""


@dataclass(frozen=True)
class Axis:
    """One setting of a sweep: a single value (fixed), several (a list), or a range from low
    to high (for a grid, `count` points, evenly or on a log scale)."""

    name: str
    values: tuple = ()  # fixed (one value) or a list
    low: float | None = None
    high: float | None = None
    count: int | None = None
    log: bool = False

    @property
    def kind(self) -> str:
        if self.low is not None or self.high is not None:
            return "range"
        return "fixed" if len(self.values) == 1 else "list"

    @property
    def is_int(self) -> bool:
        return settings()[self.name].kind is int

    def points(self) -> tuple:
        """The values a grid takes: the list, or `count` points of the range (whole numbers
        rounded for whole-number settings, repeats dropped)."""
        if self.kind != "range":
            return self.values
        count = self.count or 0
        if count < 2:
            return (self.low,) if count == 1 else ()
        if self.log:
            step = (math.log(self.high) - math.log(self.low)) / (count - 1)
            raw = [math.exp(math.log(self.low) + i * step) for i in range(count)]
        else:
            raw = [self.low + i * (self.high - self.low) / (count - 1) for i in range(count)]
        raw[0], raw[-1] = self.low, self.high  # exact ends, not exp(log(x))
        if self.is_int:
            return tuple(dict.fromkeys(int(round(v)) for v in raw))
        return tuple(float(f"{v:.6g}") for v in raw)

    def sample(self, rng: random.Random):
        """One value drawn at random: from the list, or uniformly from the range (on a log
        scale for a log range)."""
        if self.kind != "range":
            return rng.choice(self.values)
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return int(round(value)) if self.is_int else float(f"{value:.6g}")

    def to_dict(self) -> dict:
        if self.kind == "range":
            return {"low": self.low, "high": self.high, "count": self.count, "log": self.log}
        return {"values": list(self.values)}

    @classmethod
    def from_dict(cls, name: str, values: dict) -> Axis:
        if "values" in values:
            return cls(name, tuple(values["values"]))
        return cls(name, low=values.get("low"), high=values.get("high"),
                   count=values.get("count"), log=bool(values.get("log", False)))


@dataclass(frozen=True)
class SearchSpace:
    """A sweep's settings (the fixed ones and the varied ones), strategy and budget."""

    axes: tuple[Axis, ...] = ()  # every setting given; the others keep their defaults
    strategy: str = "grid"
    runs: int | None = None  # at most this many runs (random and smart: how many to draw)
    minutes: float | None = None  # no run starts after this many minutes
    seed: int = 0  # the random and smart strategies' draws
    prune: str = "none"  # stop hopeless runs after an epoch: Optuna's median or halving pruner
    base: dict = field(default_factory=dict)  # settings from a preset, under the axes
    repeats: int = 1  # each setting drawn runs this many times, seeds seed, seed + 1, ...

    def axis(self, name: str) -> Axis | None:
        return next((a for a in self.axes if a.name == name), None)

    @property
    def varied(self) -> tuple[Axis, ...]:
        """The settings that take more than one value."""
        return tuple(a for a in self.axes if a.kind != "fixed")

    @property
    def fixed(self) -> dict:
        """Every setting's value in all runs: defaults, the base, the fixed axes."""
        return {**defaults(), **self.base,
                **{a.name: a.values[0] for a in self.axes if a.kind == "fixed"}}

    def grid_size(self) -> int:
        return math.prod(len(a.points()) for a in self.varied)

    def settings_count(self) -> int:
        """How many settings (combinations of values) the sweep draws at most: for a grid the
        combinations (at most `runs`), else `runs`."""
        if self.strategy == "grid":
            return min(self.grid_size(), self.runs) if self.runs else self.grid_size()
        return self.runs or 0

    def size(self) -> int:
        """How many runs the sweep makes at most: each setting drawn, `repeats` times."""
        return self.settings_count() * self._repeats

    @property
    def _repeats(self) -> int:
        # (a value an edited record holds that is not a number counts as 1: space_problems
        # names it)
        ok = isinstance(self.repeats, int) and not isinstance(self.repeats, bool)
        return self.repeats if ok and self.repeats >= 1 else 1

    def repeated(self, config: dict, repeat: int) -> dict:
        """A setting's `repeat`-th run (from 0): its seed moved on by `repeat` (a seed left to
        chance stays so)."""
        seed = config.get("seed")
        if repeat == 0 or seed is None:
            return config
        return {**config, "seed": seed + repeat}

    def run_config(self, index: int) -> dict:
        """The settings of the sweep's index-th run (grid and random): its setting's, with its
        repeat's seed."""
        number, repeat = divmod(index, self._repeats)
        if self.strategy == "grid":
            return self.repeated(self.grid_config(number), repeat)
        return self.configs()[index]

    def configs(self) -> list[dict]:
        """The settings of every run, in order (each setting's repeats one after another)."""
        return [self.repeated(config, repeat) for config in self._setting_configs()
                for repeat in range(self._repeats)]

    def _setting_configs(self) -> list[dict]:
        """The settings drawn, in order, each once (grid and random; smart asks Optuna as it
        goes, so only its first run's fixed settings are known). Runs are picked by their
        index in the grid, which is never built whole: a few runs of a grid of millions cost
        what a few runs cost."""
        fixed = self.fixed
        if self.strategy == "grid":
            points = self._grid_points()
            return [self._combination(i, fixed, points) for i in range(self.settings_count())]
        if self.strategy == "random":
            rng = random.Random(self.seed)
            if all(a.kind == "list" for a in self.varied) and (self.runs or 0) <= self.grid_size():
                # Only lists: draw combinations without drawing one twice (repeats, with
                # their own seeds, are `repeats`).
                # (The same draw as sampling the built grid: sample() only indexes it.)
                points = self._grid_points()
                picks = rng.sample(range(self.grid_size()), self.runs or 0)
                return [self._combination(i, fixed, points) for i in picks]
            return [{**fixed, **{a.name: a.sample(rng) for a in self.varied}}
                    for _ in range(self.runs or 0)]
        return []

    def grid_config(self, index: int) -> dict:
        """The settings of the grid's index-th combination (the last varied setting changing
        fastest, as itertools.product orders them)."""
        return self._combination(index, self.fixed, self._grid_points())

    def _grid_points(self) -> list[tuple[str, tuple]]:
        return [(a.name, a.points()) for a in self.varied]

    @staticmethod
    def _combination(index: int, fixed: dict, points: list[tuple[str, tuple]]) -> dict:
        chosen = {}
        for name, values in reversed(points):
            index, position = divmod(index, len(values))
            chosen[name] = values[position]
        return {**fixed, **{name: chosen[name] for name, _ in points}}

    def to_dict(self) -> dict:
        return {"axes": {a.name: a.to_dict() for a in self.axes}, "strategy": self.strategy,
                "runs": self.runs, "minutes": self.minutes, "seed": self.seed,
                "prune": self.prune, "base": dict(self.base), "repeats": self.repeats}

    @classmethod
    def from_dict(cls, values: dict) -> SearchSpace:
        axes = tuple(Axis.from_dict(name, a) for name, a in values.get("axes", {}).items())
        return cls(axes=axes, strategy=values.get("strategy", "grid"), runs=values.get("runs"),
                   minutes=values.get("minutes"), seed=values.get("seed", 0),
                   prune=values.get("prune", "none"), base=dict(values.get("base") or {}),
                   repeats=values.get("repeats", 1))  # (sweeps kept before repeats: 1)

    def validate(self) -> SearchSpace:
        """This space, or SweepError naming the first thing wrong with it."""
        problems = space_problems(self)
        if problems:
            name, message = next(iter(problems.items()))
            raise SweepError(name, message)
        return self


def _axis_problem(axis: Axis) -> str | None:
    declared = settings()
    spec = declared.get(axis.name)
    if spec is None:
        return (f"'{axis.name}' is not a setting: choose from "
                f"{', '.join(declared)}.")
    if axis.kind == "range":
        if spec.kind not in (int, float):
            return (f"{spec.label} is not a number: give a list of values instead of a "
                    "range.")
        for end in (axis.low, axis.high):
            message = problem(axis.name, spec, end)
            if end is None or message:
                return (f"{spec.label}: the range's ends must both be given. " if end is None
                        else f"{spec.label}, in the range: {message}")
        if axis.low >= axis.high:
            return (f"{spec.label}: the range must go from a lower to a higher value "
                    f"(got {axis.low:g} to {axis.high:g}).")
        if axis.log and axis.low <= 0:
            return f"{spec.label}: a log range must start above 0 (got {axis.low:g})."
        if axis.count is not None and (isinstance(axis.count, bool)
                                       or not isinstance(axis.count, int)
                                       or not 1 <= axis.count <= MAX_POINTS):
            return (f"{spec.label}: the number of points must be a whole number from 1 to "
                    f"{MAX_POINTS} (got {axis.count!r}).")
        return None
    if not axis.values:
        return f"{spec.label}: give at least one value."
    if len(axis.values) > MAX_POINTS:
        return (f"{spec.label}: a list takes at most {MAX_POINTS} values (got "
                f"{len(axis.values):,}). Give fewer, or a range with the random or smart "
                "strategy.")
    for value in axis.values:
        message = problem(axis.name, spec, value)
        if message:
            return message if len(axis.values) == 1 else f"{spec.label}, in the list: {message}"
    if len(set(map(repr, axis.values))) < len(axis.values):
        return f"{spec.label}: the list has a value twice; give each value once."
    return None


def space_problems(space: SearchSpace) -> dict[str, str]:
    """Everything wrong with a space, name -> message (empty when it can run): each setting's
    values with the settings' own messages, the strategy, the budget, the count, and the runs'
    combinations (e.g. a width for a network without one)."""
    problems: dict[str, str] = {}
    seen = set()
    for axis in space.axes:
        if axis.name in seen:
            problems.setdefault(axis.name, f"'{axis.name}' is given twice.")
        seen.add(axis.name)
        message = _axis_problem(axis)
        if message:
            problems.setdefault(axis.name, message)
    if space.strategy not in STRATEGIES:
        problems["strategy"] = (f"The strategy must be one of {', '.join(STRATEGIES)} "
                                f"(got {space.strategy!r}).")
    if space.prune not in PRUNERS:
        problems["prune"] = (f"Early stopping must be one of {', '.join(PRUNERS)} "
                             f"(got {space.prune!r}).")
    if space.runs is not None and (isinstance(space.runs, bool) or not isinstance(space.runs, int)
                                   or not 1 <= space.runs <= MAX_RUNS):
        problems["runs"] = f"The number of runs must be from 1 to {MAX_RUNS} (got {space.runs!r})."
    if space.minutes is not None and (isinstance(space.minutes, bool)
                                      or not isinstance(space.minutes, (int, float))
                                      or not 0 < space.minutes <= 7 * 24 * 60):
        problems["minutes"] = ("The time budget must be a number of minutes above 0, at most a "
                               f"week (got {space.minutes!r}).")
    if seed_problem(space):
        problems["seed"] = seed_problem(space)
    repeats = _repeats_problem(space)
    if repeats:
        problems["repeats"] = repeats
    if problems:
        return problems
    return _shape_problems(space)


def seed_problem(space: SearchSpace) -> str | None:
    """What is wrong with the space's seed (the random and smart draws), or None."""
    if (isinstance(space.seed, bool) or not isinstance(space.seed, int)
            or not 0 <= space.seed <= MAX_SEED):
        return f"The seed must be a whole number from 0 to {MAX_SEED:,} (got {space.seed!r})."
    return None


def _repeats_problem(space: SearchSpace) -> str | None:
    """What is wrong with the space's repeats, or None: a number from 1 to MAX_REPEATS, whose
    seeds stay seeds; with more than one, no varied seed (the repeats choose the seeds) and no
    early stopping (it would stop some of a setting's seeds and leave its mean to the
    others)."""
    seed = space.fixed.get("seed")
    problem = repeats_problem(space.repeats, seed if isinstance(seed, int) else None)
    if problem:
        return problem
    if space.repeats == 1:
        return None
    seed_axis = space.axis("seed")
    if seed_axis is not None and seed_axis.kind != "fixed":
        return ("Repeats give each setting the seeds seed, seed + 1, ...: the seed cannot vary "
                "too. Give the seed one value (or none), or set repeats to 1.")
    if space.prune != "none":
        return ("Early stopping and repeats do not go together: stopping some of a setting's "
                "seeds early would leave its mean to the lucky ones. Turn early stopping off, "
                "or set repeats to 1.")
    return None


def _shape_problems(space: SearchSpace) -> dict[str, str]:
    """Problems of the space as a whole, once every setting in it is fine."""
    if not space.varied:  # one run is a training, not a sweep (README, the Sweep page)
        return {"space": "Nothing varies: give a setting a list or a range of values. (One "
                         "training with these settings is a run: start it from Train.)"}
    if space.strategy == "grid":
        for axis in space.varied:
            if axis.kind == "range" and not axis.count:
                label = settings()[axis.name].label
                return {axis.name: f"{label}: say how many points of the range a grid takes "
                                   "(e.g. 3), or choose the random or smart strategy."}
        if space.grid_size() > MAX_RUNS and not space.runs:
            return {"space": f"This grid has {space.grid_size():,} runs; at most {MAX_RUNS} are "
                             "allowed. Give fewer values, or choose random or smart with a "
                             "number of runs."}
    elif not space.runs:
        return {"runs": f"Say how many runs the {space.strategy} strategy makes (e.g. 12)."}
    if space.size() < 1:
        return {"space": "The space is empty: give every setting at least one value."}
    if space.size() > MAX_RUNS:
        return {"repeats": f"{space.settings_count():,} settings {space.repeats} times each "
                           f"make {space.size():,} runs; at most {MAX_RUNS} are allowed. Give "
                           "fewer repeats or fewer values."}
    if space.prune != "none" and space.fixed.get("epochs", 1) < 2 and (
            space.axis("epochs") is None or space.axis("epochs").kind == "fixed"):
        return {"prune": "Early stopping judges runs after each epoch: it needs runs of 2 "
                         "epochs or more. Raise Epochs, or turn early stopping off."}
    # Settings that are each fine may still not go together (cifar_core.training.config).
    for config in _corners(space):
        problems = config_problems(config)
        if problems:
            name, message = next(iter(problems.items()))
            return {name: message}
    return {}


def _corners(space: SearchSpace) -> list[dict]:
    """Configs enough to find a combination that cannot run: the grid (at most MAX_RUNS),
    else every setting's extremes with the others fixed."""
    if space.strategy == "grid":
        return space.configs()
    fixed, configs = space.fixed, []
    for axis in space.varied:
        ends = (axis.low, axis.high) if axis.kind == "range" else axis.values
        for value in ends:
            if axis.is_int and isinstance(value, float):
                value = int(round(value))
            configs.append({**fixed, axis.name: value})
    return configs or [fixed]


def _parse_value(name: str, text: str):
    """A value for setting `name` from its text ('0.01', '4', 'on', 'none')."""
    spec = settings()[name]
    text = text.strip()
    if spec.optional and text.lower() in ("none", spec.none_means, ""):
        return None
    if spec.kind is bool:
        lowered = text.lower()
        if lowered in ("on", "true", "yes", "1"):
            return True
        if lowered in ("off", "false", "no", "0"):
            return False
        raise SweepError(name, f"{spec.label}: '{text}' is not on or off.")
    if spec.kind is str:
        return text
    try:
        number = float(text)
    except ValueError:
        raise SweepError(name, f"{spec.label}: '{text}' is not a number.") from None
    if spec.kind is int:
        if not number.is_integer():
            raise SweepError(name, f"{spec.label}: '{text}' is not a whole number.")
        return int(number)
    return number


def parse_axis(name: str, text: str) -> Axis:
    """An axis from the command line's text: '0.01' (fixed), '0.001,0.01,0.1' (a list),
    '0.0001:0.1' (a range), '0.0001:0.1:5' (5 points), '0.0001:0.1:5:log' (on a log scale)."""
    if name not in settings():
        raise SweepError(name, f"'{name}' is not a setting.")
    label = settings()[name].label
    if ":" in text and settings()[name].kind in (int, float):  # ('cuda:1' is a device)
        parts = text.split(":")
        log = parts[-1].strip().lower() == "log"
        if log:
            parts = parts[:-1]
        if len(parts) not in (2, 3):
            raise SweepError(name, f"{label}: write a range as LOW:HIGH, LOW:HIGH:COUNT or "
                                   f"LOW:HIGH:COUNT:log (got '{text}').")
        low, high = (_parse_value(name, p) for p in parts[:2])
        count = None
        if len(parts) == 3:
            try:
                count = int(parts[2])
            except ValueError:
                raise SweepError(name, f"{label}: the number of points '{parts[2]}' is not a "
                                       "whole number.") from None
        return Axis(name, low=low, high=high, count=count, log=log)
    values = [p for p in text.split(",")]
    if any(not p.strip() for p in values) and not settings()[name].optional:
        raise SweepError(name, f"{label}: '{text}' has an empty value; separate values by "
                               "commas, e.g. 0.001,0.01.")
    return Axis(name, tuple(_parse_value(name, p) for p in values))


def space_from_toml(text: str, base: dict | None = None) -> SearchSpace:
    """A space from a TOML file's text:

        strategy = "grid"      # or "random", "smart"
        runs = 12              # optional for a grid (random, smart: settings drawn)
        repeats = 3            # optional: each setting 3 times, seeds seed, seed+1, seed+2
        minutes = 30           # optional
        prune = "median"       # optional: "none", "median", "halving"
        seed = 0               # optional
        [settings]
        lr = [0.001, 0.01, 0.1]                            # a list
        momentum = {low = 0.8, high = 0.95, count = 2}     # a range (log = true for a log one)
        epochs = 1                                         # fixed
    """
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError("space", f"The space file is not valid TOML: {exc}.") from None
    known = {"strategy", "runs", "minutes", "prune", "seed", "settings", "repeats"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SweepError("space", f"The space file has '{unknown[0]}', which is not one of "
                                  f"{', '.join(sorted(known))}.")
    if not isinstance(data.get("settings", {}), dict):
        raise SweepError("space", "In the space file, settings must be a table: a line "
                                  "[settings], then one line per setting (e.g. lr = [0.001, "
                                  f"0.01]); got settings = {data['settings']!r}.")
    axes = []
    for name, value in (data.get("settings") or {}).items():
        if isinstance(value, dict):
            extra = sorted(set(value) - {"low", "high", "count", "log"})
            if extra:
                raise SweepError(name, f"A range takes low, high, count and log, not "
                                       f"'{extra[0]}'.")
            axes.append(Axis.from_dict(name, value))
        elif isinstance(value, list):
            axes.append(Axis(name, tuple(value)))
        else:
            axes.append(Axis(name, (value,)))
    space = SearchSpace(axes=tuple(axes), strategy=data.get("strategy", "grid"),
                        runs=data.get("runs"), minutes=data.get("minutes"),
                        seed=data.get("seed", 0), prune=data.get("prune", "none"),
                        base=dict(base or {}), repeats=data.get("repeats", 1))
    return space.validate()


def with_axis(space: SearchSpace, axis: Axis) -> SearchSpace:
    """The space with this setting's axis added or replaced."""
    return replace(space, axes=tuple(a for a in space.axes if a.name != axis.name) + (axis,))

"""Repeats: the same settings trained several times with different seeds, so that a difference
can be told from the noise of the seed (issue 26). Train's "repeat N times" starts them
(`start_repeats`); a group's accuracies as a mean and a spread (`spread_of`), and whether two
groups can be told apart (`within_noise`), which the sweeps' tables and charts use too; the
Runs page's groups of repeated runs (`repeat_groups`).

The spread is the standard deviation of the accuracies (the sample's, n - 1); of two runs it
is half their difference, so that mean ± spread reaches from the one to the other.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from cifar_core.errors import ConfigError
from cifar_core.runs.jobs import JobRunner
from cifar_core.runs.store import Run
from cifar_core.training.config import TrainConfig, settings

# At most this many runs of the same settings at once (the Train page's field, a sweep's
# repeats): more seeds narrow the spread slowly (as 1/sqrt(N)) and cost N times the time.
MAX_REPEATS = 10
# The largest seed a run takes (cifar_core.training.config's Seed).
MAX_SEED = 2**31 - 1


class RepeatError(ConfigError):
    """A number of repeats that cannot be started, in words."""

    def __init__(self, message: str):
        super().__init__("repeats", message)


def repeats_problem(times, seed: int | None = None) -> str | None:
    """What is wrong with repeating settings `times` times from `seed` on, or None."""
    if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= MAX_REPEATS:
        return (f"Repeats must be a whole number from 1 to {MAX_REPEATS} (got {times!r}): how "
                "many times each setting trains, each time with the next seed.")
    if seed is not None and isinstance(seed, int) and seed + times - 1 > MAX_SEED:
        return (f"Repeats take the seeds {seed:,} to {seed + times - 1:,}, past the largest "
                f"seed {MAX_SEED:,}: give a smaller seed.")
    return None


@dataclass(frozen=True)
class Spread:
    """A group's accuracies: their mean, spread (standard deviation; of two runs half their
    difference; 0 for one run), the error bar's ends (low, high) and how many runs."""

    mean: float
    spread: float
    low: float
    high: float
    n: int

    @property
    def text(self) -> str:
        """'54.0 ± 5.3 %', or '54.0 %' for one run."""
        if self.n < 2:
            return f"{self.mean:.1f} %"
        return f"{self.mean:.1f} ± {self.spread:.1f} %"


def spread_of(values: list[float]) -> Spread:
    """The mean and spread of some accuracies (at least one)."""
    values = [float(v) for v in values]
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Spread(mean, 0.0, mean, mean, n)
    if n == 2:
        half = abs(values[0] - values[1]) / 2
        return Spread(mean, half, min(values), max(values), n)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Spread(mean, sd, mean - sd, mean + sd, n)


def within_noise(a: Spread, b: Spread) -> bool:
    """Whether two groups' means are closer than their spreads can tell apart: their error bars
    overlap (the difference of the means is at most the sum of the spreads). A simple, lenient
    check (two bars of one standard deviation overlap for differences a two-sample test would
    often call real), so that a difference it lets through is one the seeds did not make.
    Groups of one run cannot be judged: False."""
    if a.n < 2 or b.n < 2:
        return False
    return abs(a.mean - b.mean) <= a.spread + b.spread


def seeds_for(config: TrainConfig, times: int) -> list[int]:
    """The seeds of `times` repeats: the config's seed and the next ones (a seed drawn at
    random where it has none, low enough that the last stays a seed)."""
    first = config.seed if config.seed is not None else random.randrange(MAX_SEED + 2 - times)
    return [first + i for i in range(times)]


def start_repeats(runner: JobRunner, config: TrainConfig, data_dir: Path | str | None,
                  times: int, origin: str = "dashboard", dataset: str = "cifar10") -> list[Run]:
    """Start `times` runs of the same settings with the seeds seed, seed + 1, ... (queued where
    no slot is free); RepeatError for a number out of range. Returns the runs, first seed
    first."""
    problem = repeats_problem(times, config.seed)
    if problem:
        raise RepeatError(problem)
    return [runner.start(replace(config, seed=seed), data_dir, origin=origin, dataset=dataset)
            for seed in seeds_for(config, times)]


@dataclass(frozen=True)
class RepeatGroup:
    """Runs of the same settings and data set, trained with different seeds (not in a sweep):
    the runs (first seed first), the spread of those with an accuracy, and a title."""

    runs: list[Run]
    spread: Spread | None

    @property
    def seeds(self) -> list[int]:
        return [r.settings.get("seed") for r in self.runs]

    @property
    def title(self) -> str:
        """'3 runs, seeds 5 to 7' (or 'seeds 5, 9' where they do not follow each other)."""
        seeds = self.seeds
        follow = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
        shown = (f"seeds {seeds[0]} to {seeds[-1]}" if follow
                 else "seeds " + ", ".join(map(str, seeds)))
        return f"{len(self.runs)} runs, {shown}"


def repeat_groups(runs: list[Run]) -> list[RepeatGroup]:
    """The groups of runs outside sweeps that share every setting but the seed, and their data
    set, with at least two different seeds; the newest group first. (A sweep's repeats are
    its own answer's: cifar_core.sweeps.groups.)"""
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        seed = run.settings.get("seed")
        if run.sweep_id is not None or seed is None:
            continue
        others = {k: v for k, v in run.settings.items() if k != "seed"}
        key = repr((run.dataset, sorted(others.items(), key=lambda kv: kv[0])))
        by_key.setdefault(key, []).append(run)
    groups = []
    for members in by_key.values():
        if len({r.settings.get("seed") for r in members}) < 2:
            continue
        members = sorted(members, key=lambda r: (r.settings.get("seed"), r.created))
        done = [r.accuracy for r in members if r.accuracy is not None]
        groups.append(RepeatGroup(members, spread_of(done) if done else None))
    groups.sort(key=lambda g: -max(r.created for r in g.runs))
    return groups


# What a group's row says of its settings (the others are in the Runs table).
GROUP_SETTINGS = ("model", "lr", "batch_size", "epochs")


def repeats_table(groups: list[RepeatGroup]) -> pd.DataFrame:
    """A row per group of repeated runs, as the Runs page shows them: group ('3 runs, seeds 5
    to 7'), settings (a few in words), finished (how many with an accuracy), accuracy ('42.0 ±
    2.0 %', '-' while none has one), mean, spread, accuracies (each run's, in seed order),
    runs (their ids)."""
    declared = settings()
    rows = []
    for group in groups:
        first = group.runs[0].settings
        words = ", ".join(f"{declared[n].label.lower()} {_value(first.get(n))}"
                          for n in GROUP_SETTINGS if n in declared)
        spread = group.spread
        rows.append({
            "group": group.title, "settings": words, "finished": spread.n if spread else 0,
            "accuracy": spread.text if spread else "-",
            "mean": spread.mean if spread else None, "spread": spread.spread if spread else None,
            "accuracies": ", ".join(f"{r.accuracy:.1f}" if r.accuracy is not None else "-"
                                    for r in group.runs),
            "runs": ", ".join(r.id for r in group.runs)})
    return pd.DataFrame(rows, columns=["group", "settings", "finished", "accuracy", "mean",
                                       "spread", "accuracies", "runs"])


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)

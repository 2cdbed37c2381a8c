"""A sweep's runs grouped by setting: where each setting ran several times with different seeds
(repeats), its mean accuracy and spread (cifar_core.runs.repeats.spread_of), the table and the
error bars that show them, and the sentence that says whether the best two settings can be
told apart from the noise of the seed (issue 26).

A setting is the values of the settings the sweep varies (the seed aside). Whether two settings
are within the noise is cifar_core.runs.repeats.within_noise: their error bars overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from cifar_core.runs.repeats import Spread, spread_of, within_noise
from cifar_core.runs.store import Run
from cifar_core.sweeps.answer import answered_runs, value_order, value_text, varied_names
from cifar_core.sweeps.space import SearchSpace
from cifar_core.training.config import settings

# What the page and the report say under a chart or table with error bars.
SPREAD_CAPTION = ("Where a setting ran more than once (with different seeds), its mean and "
                  "spread: ± is the standard deviation of its runs' accuracies (of two runs, "
                  "half their difference), and the bar reaches that far either side of the mean.")


@dataclass(frozen=True)
class SettingGroup:
    """The runs of one setting (the same values of every varied setting): the values, the runs
    with an accuracy, and their spread."""

    values: dict
    runs: list[Run]
    spread: Spread

    def words(self) -> str:
        """'learning rate 0.01, momentum 0.9'."""
        declared = settings()
        return ", ".join(f"{declared[n].label.lower()} {value_text(n, v)}"
                         for n, v in self.values.items())


def setting_names(space: SearchSpace) -> list[str]:
    """The settings that tell a sweep's settings apart: those it varies, but the seed."""
    return [n for n in varied_names(space) if n != "seed"]


def setting_groups(space: SearchSpace, runs: list[Run]) -> list[SettingGroup]:
    """The answered runs (answer.answered_runs) grouped by setting, the best mean first."""
    names = setting_names(space)
    by_key: dict[str, tuple[dict, list[Run]]] = {}
    for run in answered_runs(runs):
        values = {n: run.settings.get(n) for n in names}
        by_key.setdefault(repr(list(values.values())), (values, []))[1].append(run)
    groups = [SettingGroup(values, members, spread_of([r.accuracy for r in members]))
              for values, members in by_key.values()]
    groups.sort(key=lambda g: (-g.spread.mean, [value_order(v) for v in g.values.values()]))
    return groups


def has_repeats(groups: list[SettingGroup]) -> bool:
    """Whether any setting ran more than once."""
    return any(g.spread.n > 1 for g in groups)


def groups_table(space: SearchSpace, runs: list[Run]) -> pd.DataFrame:
    """A row per setting, the best mean first: each varied setting (as text), setting (all of
    them in words), runs (how many with an accuracy), mean, spread, low, high (the error bar's
    ends), text ('54.0 ± 5.3 %'), best."""
    names = setting_names(space)
    rows = [{**{n: value_text(n, g.values[n]) for n in names}, "setting": g.words(),
             "runs": g.spread.n,
             "mean": g.spread.mean, "spread": g.spread.spread, "low": g.spread.low,
             "high": g.spread.high, "text": g.spread.text, "best": i == 0}
            for i, g in enumerate(setting_groups(space, runs))]
    return pd.DataFrame(rows, columns=[*names, "setting", "runs", "mean", "spread", "low",
                                       "high", "text", "best"])


def value_spreads(runs: list[Run], name: str) -> pd.DataFrame:
    """For one setting: a row per value of the runs with an accuracy (value, value_text, runs,
    mean, spread, low, high), in the setting's order: the error bars of accuracy against it."""
    by_value: dict[str, tuple[object, list[float]]] = {}
    for run in runs:
        if run.accuracy is not None:
            value = run.settings.get(name)
            by_value.setdefault(repr(value), (value, []))[1].append(run.accuracy)
    rows = []
    for value, accuracies in sorted(by_value.values(), key=lambda va: value_order(va[0])):
        s = spread_of(accuracies)
        rows.append({"value": value, "value_text": value_text(name, value), "runs": s.n,
                     "mean": s.mean, "spread": s.spread, "low": s.low, "high": s.high})
    return pd.DataFrame(rows, columns=["value", "value_text", "runs", "mean", "spread", "low",
                                       "high"])


def seed_noise(space: SearchSpace, runs: list[Run]) -> float | None:
    """How far runs of the same setting lie apart: the pooled standard deviation of the
    settings run more than once (None where none was)."""
    squares, freedom = 0.0, 0
    for group in setting_groups(space, runs):
        accuracies = [r.accuracy for r in group.runs]
        if len(accuracies) > 1:
            mean = sum(accuracies) / len(accuracies)
            squares += sum((a - mean) ** 2 for a in accuracies)
            freedom += len(accuracies) - 1
    return math.sqrt(squares / freedom) if freedom else None


def best_two_answer(space: SearchSpace, runs: list[Run]) -> str:
    """Whether the best two settings can be told apart, in a sentence: within the noise where
    their error bars overlap (runs.repeats.within_noise), else by how much more than their
    spreads; with one run per setting, that one seed per setting cannot tell. Empty with fewer
    than two settings."""
    groups = setting_groups(space, runs)
    if len(groups) < 2:
        return ""
    first, second = groups[0], groups[1]
    if not has_repeats(groups):
        return ("Each setting ran once, with one seed: one seed per setting cannot tell a real "
                "difference from the seed's noise. Repeat each setting (Repeats, or --repeats) to "
                "know.")
    a, b = first.spread, second.spread
    gap = a.mean - b.mean
    both = (f"The best setting, {first.words()} ({a.text}), and the next, {second.words()} "
            f"({b.text})")
    if a.n < 2 or b.n < 2:
        alone = first if a.n < 2 else second
        return (f"{both}: {alone.words()} has only one finished run, so their {gap:.1f}-point "
                "difference cannot be told from the seed's noise.")
    if within_noise(a, b):
        return (f"{both}, are within the noise: their means are {gap:.1f} points apart, no "
                f"more than their spreads together ({a.spread + b.spread:.1f}), so these seeds "
                "cannot tell which is better.")
    return (f"{both}, are {gap:.1f} points apart, more than their spreads together "
            f"({a.spread + b.spread:.1f}): a difference the seeds alone did not make.")


def best_setting_text(space: SearchSpace, runs: list[Run]) -> str | None:
    """Where settings ran more than once: the best setting by its mean, e.g. 'Best setting:
    learning rate 0.01, 54.0 ± 5.3 % over 3 runs' (Markdown bold on the figure); else None
    (the best run says it)."""
    groups = setting_groups(space, runs)
    if not has_repeats(groups):
        return None
    best = groups[0]
    n = best.spread.n
    return (f"Best setting: {best.words() or 'the settings given'}, **{best.spread.text}** of "
            f"the test images right over {n} run{'s' * (n != 1)}")

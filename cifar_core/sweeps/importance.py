"""Which settings of a sweep mattered, in a form that agrees with its pictures: from few
finished runs the mean accuracy of each value (the heatmap's numbers) and a sentence saying
that so few runs cannot say much; from enough, Optuna's importance with its range over
resamples of the runs (cifar_core.sweeps.smart), and a sentence on what it means (issue 26:
a 2 x 2 grid read 50 % / 50 % under a heatmap where the learning rate clearly mattered more).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cifar_core.runs.store import Run
from cifar_core.sweeps.answer import answered_runs, value_order, value_text, varied_names
from cifar_core.sweeps.groups import seed_noise
from cifar_core.sweeps.smart import importance_ranges, parameter_importance
from cifar_core.sweeps.space import SearchSpace
from cifar_core.training.config import settings


def importance_table(importance: dict[str, float]) -> pd.DataFrame:
    """Parameter importance as bars: setting (its label), importance (a fraction), label
    ('62 %'), most important first."""
    declared = settings()
    rows = [{"setting": declared[n].label if n in declared else n, "importance": v,
             "label": f"{100 * v:.0f} %"} for n, v in sorted(importance.items(),
                                                            key=lambda kv: -kv[1])]
    return pd.DataFrame(rows, columns=["setting", "importance", "label"])


def importance_missing(space: SearchSpace, runs: list[Run]) -> str:
    """Why parameter importance cannot be told yet, in words."""
    finished = [r for r in runs if r.status == "completed" and r.accuracy is not None]
    if len(finished) < 3:
        return (f"Parameter importance needs at least 3 runs that finished their training "
                f"({len(finished)} so far).")
    return "Parameter importance needs settings whose values differ between the finished runs."


# Fewer finished runs than this: the mean accuracy of each value, not Optuna's importance. Its
# evaluator compares the best runs (at least two, at most half) with the rest: of 4 runs two
# are the best, and issue 26's 2 x 2 grid read 50 % / 50 % where the learning rate's values
# were 4.4 points apart and momentum's 0.3. From 10 runs one run more or less moves it less,
# and the range over resamples says how much it still does.
FEW_RUNS = 10


@dataclass(frozen=True)
class ImportanceAnswer:
    """'Which settings mattered', as the Sweep page and the report show it.

    few: shown as each value's mean (too few finished runs, or one setting only).
    note: a sentence saying what is shown and how far to trust it.
    means: a row per setting and value (name, setting's label, value as text, mean accuracy,
    runs, the spread of the setting's means), the widest spread first.
    lines: those means in words, a line per setting.
    importance: from enough runs, importance_table's rows with low and high (the range over
    resamples of the runs)."""

    few: bool
    note: str
    means: pd.DataFrame
    lines: list[str]
    importance: pd.DataFrame | None = None


def setting_means(runs: list[Run], names: list[str]) -> pd.DataFrame:
    """For each setting in `names`, the mean test accuracy of the runs with each of its values
    (the heatmap's cells averaged over the other setting) and the spread between its best and
    worst value's means: name, setting, value, mean, runs, spread; the settings whose means lie
    furthest apart first, each one's values in order."""
    declared = settings()
    done = [r for r in runs if r.accuracy is not None]
    groups = []
    for name in names:
        by_value: dict[str, tuple[object, list[float]]] = {}
        for r in done:
            value = r.settings.get(name)
            by_value.setdefault(repr(value), (value, []))[1].append(r.accuracy)
        rows = [{"name": name, "setting": declared[name].label, "value": value_text(name, v),
                 "mean": sum(a) / len(a), "runs": len(a)}
                for v, a in sorted(by_value.values(), key=lambda va: value_order(va[0]))]
        spread = max(r["mean"] for r in rows) - min(r["mean"] for r in rows) if rows else 0.0
        groups.append([{**row, "spread": spread} for row in rows])
    groups.sort(key=lambda rows: -(rows[0]["spread"] if rows else 0.0))
    return pd.DataFrame([row for rows in groups for row in rows],
                        columns=["name", "setting", "value", "mean", "runs", "spread"])


def means_lines(means: pd.DataFrame, noise: float | None = None) -> list[str]:
    """setting_means in words, a line per setting: 'Learning rate: 0.002 16.4 %, 0.02 20.8 %
    (4.4 points apart)'. Given the seeds' noise (groups.seed_noise: how far runs of the same
    settings lie apart), whether the means lie further apart than that ('more than the seeds'
    ± 1.2') or 'within' it."""
    lines = []
    for _, rows in means.groupby("name", sort=False):
        values = ", ".join(f"{r.value} {r.mean:.1f} %" for r in rows.itertuples())
        spread = rows["spread"].iloc[0]
        judged = ""
        if noise is not None:
            judged = (f", more than the seeds' ± {noise:.1f}" if spread > noise else
                      f", within the seeds' ± {noise:.1f}: it may not matter")
        lines.append(f"{rows['setting'].iloc[0]}: {values} ({spread:.1f} points apart{judged})")
    return lines


def noise_note(noise: float | None) -> str:
    """A sentence on the seeds' noise for the importance's note ('' without repeats)."""
    if noise is None:
        return ""
    return (f" Settings ran more than once, with different seeds: runs of the same settings "
            f"lay ± {noise:.1f} points apart (their standard deviation), so a setting whose "
            "values' means lie closer than that is within the noise.")


def _few_note(count: str, n: int, few: int, what: str) -> str:
    """The sentence saying that `few` runs or settings are too few for a share."""
    return (f"{count} finished {'their' if n != 1 else 'its'} training: too few to say how "
            f"much each setting mattered (with {few} {what}, one more or less can change the "
            "answer), so you cannot yet trust a ranking. Below, the mean test accuracy of the "
            "runs with each value, as in the pictures above, the setting whose values are "
            f"furthest apart first. About {FEW_RUNS} {what} or more give a share for each "
            "setting.")


def importance_answer(space: SearchSpace, runs: list[Run]) -> ImportanceAnswer:
    """Which settings mattered: with fewer than FEW_RUNS finished runs the mean accuracy of
    each value and a sentence saying that so few runs cannot say much; from FEW_RUNS on,
    Optuna's importance with its range over resamples of the runs, explained in a sentence."""
    answered = answered_runs(runs)
    means = setting_means(answered, varied_names(space, answered))
    noise = seed_noise(space, runs)
    lines = means_lines(means, noise)
    finished = [r for r in runs if r.status == "completed" and r.accuracy is not None]
    n = len(finished)
    # Repeats of a setting are one setting: 12 runs of a 2 x 2 grid tell 4 settings apart.
    names = [a.name for a in space.varied if a.name != "seed"]
    distinct = len({repr([r.settings.get(name) for name in names]) for r in finished})
    if n < FEW_RUNS:
        count = f"Only {n} run{'s' * (n != 1)}" if n else "No run"
        return ImportanceAnswer(True, _few_note(count, n, n, "runs") + noise_note(noise),
                                means, lines)
    if len(means["name"].unique()) == 1:  # a share of 100 % would say nothing
        note = ("Only one setting differs between the finished runs: every difference between "
                "their accuracies comes with it. Below, the mean test accuracy of the runs with "
                "each of its values.")
        return ImportanceAnswer(True, note + noise_note(noise), means, lines)
    if distinct < FEW_RUNS:
        count = f"Only {distinct} setting{'s' * (distinct != 1)} ({n} runs with the repeats)"
        return ImportanceAnswer(True, _few_note(count, n, distinct, "settings")
                                + noise_note(noise), means, lines)
    found = parameter_importance(space, runs)
    ranges = importance_ranges(space, runs) if found else None
    if not found or not ranges:
        return ImportanceAnswer(True, importance_missing(space, runs), means, lines)
    table = importance_table(found)
    names = {settings()[n].label if n in settings() else n: n for n in found}
    # (the share from all the runs stays inside its range, as the bar inside its line)
    table["low"] = [min(ranges[names[r.setting]][0], r.importance) for r in table.itertuples()]
    table["high"] = [max(ranges[names[r.setting]][1], r.importance) for r in table.itertuples()]
    table["label"] = [f"{100 * r.importance:.0f} % ({100 * r.low:.0f} to {100 * r.high:.0f} %)"
                      for r in table.itertuples()]
    note = (f"How much each setting mattered to the test accuracy of the {n} finished runs: "
            "the share of the differences between their accuracies that each one explains. "
            "The thin line (the range in brackets) is where that share fell when the runs were "
            "drawn again at random, many times: a wide range means these runs cannot pin it "
            "down, and where two ranges overlap they cannot tell which setting mattered more.")
    return ImportanceAnswer(False, note + noise_note(noise), means, lines, table)

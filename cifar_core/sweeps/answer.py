"""The sweep's answer, as numbers and tables: its runs sorted by accuracy, the pictures
(parallel coordinates with their brushed ranges, a heatmap of two settings, accuracy against
one setting), and the best run's settings taken to the Train page (which settings mattered:
cifar_core.sweeps.importance).

Kept out of the page so that every figure on screen comes from a tested function; the page
only draws these tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from cifar_core.errors import CifarError
from cifar_core.runs.names import short_name
from cifar_core.runs.repeats import spread_of
from cifar_core.runs.store import SAVED, Run
from cifar_core.runs.views import status_text
from cifar_core.sweeps.engine import best_run
from cifar_core.sweeps.space import SearchSpace
from cifar_core.sweeps.store import Sweep
from cifar_core.training.config import TrainConfig, settings

# The accuracy axis of the parallel-coordinates chart, after the settings' axes.
ACCURACY_AXIS = "Test accuracy"
# At most this many ticks with their values on a number axis with more distinct values.
TICKS = 5
# Labels on an axis at least this far apart (a share of its height): about a label's height
# on the chart, so that close values' labels do not print over each other.
TICK_GAP = 0.05


def varied_names(space: SearchSpace, runs: list[Run] | None = None) -> list[str]:
    """The settings the sweep varies, in the space's order; given runs, only those whose value
    differs between them."""
    names = [a.name for a in space.varied]
    if runs is None:
        return names
    return [n for n in names if len({repr(r.settings.get(n)) for r in runs}) > 1]


def answered_runs(runs: list[Run]) -> list[Run]:
    """The runs that answer the sweep's question: those that finished their training with an
    accuracy (a run stopped early or by hand only if none did, as for the best run)."""
    for statuses in (("completed",), SAVED):
        done = [r for r in runs if r.status in statuses and r.accuracy is not None]
        if done:
            return done
    return []


def value_text(name: str, value) -> str:
    """A setting's value as the Sweep page shows it: 0.01, 16, on, all, fast, 931748790 (a
    seed)."""
    spec = settings()[name]
    if value is None:
        return spec.none_means or "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):  # (a seed is a name for a draw, not an amount: no commas)
        return str(value) if name == "seed" else f"{value:,}"
    return str(value)


def table_names(space: SearchSpace) -> list[str]:
    """The settings the runs' table shows: those the sweep varies, and the seed where each
    setting runs more than once (its repeats differ only in it)."""
    names = varied_names(space)
    return names + ["seed"] if space.repeats != 1 and "seed" not in names else names


def sweep_runs_table(space: SearchSpace, runs: list[Run]) -> pd.DataFrame:
    """One row per run, best first (by test accuracy; runs without one after, in trial order):
    run, trial, status, each setting of table_names (as text), accuracy, duration_s, message,
    best."""
    best = best_run(runs)
    names = table_names(space)
    rows = [{"run": r.id, "trial": r.trial, "status": status_text(r),
             **{n: value_text(n, r.settings.get(n)) for n in names},
             "accuracy": r.accuracy, "duration_s": r.duration_s, "message": r.message,
             "best": best is not None and r.id == best.id} for r in runs]
    frame = pd.DataFrame(rows, columns=["run", "trial", "status", *names, "accuracy",
                                        "duration_s", "message", "best"])
    order = sorted(range(len(runs)), key=lambda i: (runs[i].accuracy is None,
                                                    -(runs[i].accuracy or 0),
                                                    runs[i].trial or 0, runs[i].created))
    return frame.iloc[order].reset_index(drop=True)


# --- the answer's pictures ------------------------------------------------------------------

def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)


def value_order(value):
    """Numbers by size, then None, then text and switches by their text."""
    if _is_number(value):
        return (0, float(value), "")
    return (1 if value is None else 2, 0.0, repr(value))


@dataclass(frozen=True)
class Scale:
    """How one setting's values sit on a 0-1 axis: numbers linearly (log10 where the setting
    spreads over orders of magnitude), other values evenly spaced in order."""

    name: str
    numeric: bool
    log: bool
    low: float = 0.0  # (numbers: the ends, log10 for a log axis)
    high: float = 0.0
    categories: tuple = ()

    @classmethod
    def of(cls, name: str, values: list, log: bool) -> Scale:
        if values and all(_is_number(v) for v in values):
            log = log and all(v > 0 for v in values)
            ts = [math.log10(v) if log else float(v) for v in values]
            return cls(name, True, log, min(ts), max(ts))
        return cls(name, False, False, categories=tuple(sorted(
            {repr(v): v for v in values}.values(), key=value_order)))

    def position(self, value) -> float:
        if self.numeric:
            t = math.log10(value) if self.log else float(value)
            return 0.5 if self.high == self.low else (t - self.low) / (self.high - self.low)
        index = [repr(c) for c in self.categories].index(repr(value))
        return 0.5 if len(self.categories) == 1 else index / (len(self.categories) - 1)

    def ticks(self, distinct: list) -> list[tuple[float, object]]:
        """(position, value) for the axis's labels: every distinct value where there are few,
        else TICKS evenly spaced values."""
        # (distinct values counted once: a sweep's repeats give each value several runs)
        if not self.numeric or len({repr(v) for v in distinct}) <= TICKS + 2:
            return [(self.position(v), v) for v in sorted(
                {repr(v): v for v in distinct}.values(), key=value_order)]
        ticks = []
        for i in range(TICKS):
            t = self.low + i * (self.high - self.low) / (TICKS - 1)
            ticks.append((i / (TICKS - 1), 10 ** t if self.log else t))
        return ticks


def spaced_ticks(ticks: list[tuple[float, str]], gap: float = TICK_GAP
                 ) -> list[tuple[float, str]]:
    """(position, label) ticks of one axis with no label twice and none closer than `gap` to
    another, the lowest and the highest kept (labels that would crowd the highest go)."""
    if not ticks:
        return []
    top = max(position for position, _ in ticks)

    def clashes(position: float, label: str) -> bool:
        return bool(kept) and (position - kept[-1][0] < gap or label == kept[-1][1])

    kept: list[tuple[float, str]] = []
    for position, label in sorted(ticks):  # (equal labels are neighbours: values in order)
        if clashes(position, label):
            if position < top:
                continue
            while len(kept) > 1 and clashes(position, label):
                kept.pop()
            if clashes(position, label):  # as good as equal to the lowest: one label
                continue
        kept.append((position, label))
    return kept


def _axis_log(space: SearchSpace, name: str) -> bool:
    axis = space.axis(name)
    return settings()[name].log_scale or bool(axis is not None and axis.log)


@dataclass(frozen=True)
class ParallelCoordinates:
    """The parallel-coordinates chart's tables: `lines` (a row per run and axis: run, status,
    accuracy, axis, axis_index, position 0-1, value as text), `ticks` (axis_index, position,
    label) and the axes' titles in order (the varied settings' labels, then accuracy)."""

    lines: pd.DataFrame
    ticks: pd.DataFrame
    axes: list[str]
    names: list[str]  # the settings of the axes (accuracy not included)


def parallel_coordinates(space: SearchSpace, runs: list[Run],
                         names: list[str]) -> ParallelCoordinates:
    """A line per run with an accuracy through an axis per setting in `names` and the
    accuracy, each axis normalised to 0-1 (log10 positions for settings spread over orders of
    magnitude, evenly spaced choices), with ticks that show the real values."""
    runs = [r for r in runs if r.accuracy is not None]
    declared = settings()
    scales = [Scale.of(n, [r.settings.get(n) for r in runs], _axis_log(space, n))
              for n in names]
    accuracies = [r.accuracy for r in runs]
    accuracy_scale = Scale.of("accuracy", accuracies, False) if runs else None
    axes = [declared[n].label for n in names] + [ACCURACY_AXIS]
    rows, ticks = [], []
    for run in runs:
        for i, scale in enumerate(scales):
            value = run.settings.get(scale.name)
            rows.append({"run": run.id, "status": status_text(run), "accuracy": run.accuracy,
                         "axis": axes[i], "axis_index": i, "position": scale.position(value),
                         "value": value_text(scale.name, value)})
        rows.append({"run": run.id, "status": status_text(run), "accuracy": run.accuracy,
                     "axis": ACCURACY_AXIS, "axis_index": len(scales),
                     "position": accuracy_scale.position(run.accuracy),
                     "value": f"{run.accuracy:.1f} %"})
    for i, scale in enumerate(scales):
        distinct = [r.settings.get(scale.name) for r in runs]
        for position, label in spaced_ticks([(p, value_text(scale.name, v))
                                             for p, v in scale.ticks(distinct)]):
            ticks.append({"axis_index": i, "position": position, "label": label})
    if accuracy_scale is not None:
        for position, label in spaced_ticks([(p, f"{v:.1f} %")
                                             for p, v in accuracy_scale.ticks(accuracies)]):
            ticks.append({"axis_index": len(scales), "position": position, "label": label})
    return ParallelCoordinates(
        pd.DataFrame(rows, columns=["run", "status", "accuracy", "axis", "axis_index",
                                    "position", "value"]),
        pd.DataFrame(ticks, columns=["axis_index", "position", "label"]), axes, list(names))


def brushed_ranges(chart: ParallelCoordinates, brush: dict | None) -> dict[str, tuple]:
    """The ranges a box drawn on the chart selects, axis title -> (low, high) on the 0-1
    scale: the box's height on every axis it covers. `brush`: the chart's interval selection
    as Streamlit returns it ({'axis_index': [from, to], 'position': [low, high]}; either may
    be missing: the whole width or height)."""
    if not brush:
        return {}
    xs = brush.get("axis_index") or [-math.inf, math.inf]
    ys = brush.get("position") or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    low, high = min(ys), max(ys)
    return {title: (low, high) for i, title in enumerate(chart.axes) if x0 <= i <= x1}


def runs_in_ranges(chart: ParallelCoordinates, ranges: dict[str, tuple]) -> list[str]:
    """The runs whose line passes through every given range (axis title -> (low, high) on the
    0-1 scale), in the chart's order; every run when no range is given."""
    lines = chart.lines
    ids = list(dict.fromkeys(lines["run"]))
    for title, (low, high) in ranges.items():
        on_axis = lines[lines["axis"] == title]
        inside = set(on_axis[(on_axis["position"] >= low - 1e-9)
                             & (on_axis["position"] <= high + 1e-9)]["run"])
        ids = [i for i in ids if i in inside]
    return ids


def range_text(chart: ParallelCoordinates, ranges: dict[str, tuple]) -> str:
    """What the brushed ranges mean in the settings' values, e.g. 'Learning rate 0.01 to 0.1'
    (the values of the runs inside each range)."""
    parts = []
    lines = chart.lines
    for title, (low, high) in ranges.items():
        on_axis = lines[(lines["axis"] == title) & (lines["position"] >= low - 1e-9)
                        & (lines["position"] <= high + 1e-9)].sort_values("position")
        if on_axis.empty:
            parts.append(f"{title}: none")
            continue
        first, last = on_axis["value"].iloc[0], on_axis["value"].iloc[-1]
        parts.append(f"{title} {first}" if first == last else f"{title} {first} to {last}")
    return "; ".join(parts)


def accuracy_by_setting(runs: list[Run], name: str) -> pd.DataFrame:
    """For one varied setting: a row per run with an accuracy (run, status, value, value_text,
    accuracy), in the setting's order."""
    rows = [{"run": r.id, "status": status_text(r), "value": r.settings.get(name),
             "value_text": value_text(name, r.settings.get(name)), "accuracy": r.accuracy}
            for r in runs if r.accuracy is not None]
    rows.sort(key=lambda row: value_order(row["value"]))
    return pd.DataFrame(rows, columns=["run", "status", "value", "value_text", "accuracy"])


def heatmap_table(runs: list[Run], x: str, y: str) -> pd.DataFrame:
    """The mean test accuracy of the runs for each pair of values of two settings: x, y (the
    values as text), x_order, y_order (their places in the settings' order), accuracy, runs
    (how many), spread (runs.repeats.spread_of: 0 for one run), label ('45.2 %'; of several
    runs '45.2 ± 0.8 %')."""
    done = [r for r in runs if r.accuracy is not None]
    order = {}
    for name in (x, y):
        values = sorted({repr(r.settings.get(name)): r.settings.get(name) for r in done}.values(),
                        key=value_order)
        order[name] = {repr(v): i for i, v in enumerate(values)}
    cells: dict[tuple, list[float]] = {}
    for run in done:
        key = (repr(run.settings.get(x)), repr(run.settings.get(y)))
        cells.setdefault(key, []).append(run.accuracy)
    rows = []
    for run in done:
        key = (repr(run.settings.get(x)), repr(run.settings.get(y)))
        if key not in cells:
            continue
        spread = spread_of(cells.pop(key))
        rows.append({"x": value_text(x, run.settings.get(x)),
                     "y": value_text(y, run.settings.get(y)),
                     "x_order": order[x][key[0]], "y_order": order[y][key[1]],
                     "accuracy": spread.mean, "runs": spread.n, "spread": spread.spread,
                     "label": spread.text})
    rows.sort(key=lambda row: (row["y_order"], row["x_order"]))
    return pd.DataFrame(rows, columns=["x", "y", "x_order", "y_order", "accuracy", "runs",
                                       "spread", "label"])


def train_form_values(run: Run) -> dict:
    """Every setting of a run, as the Train page's form takes them."""
    values = run.settings
    try:  # a setting this version refuses (e.g. a model it does not know) keeps the default
        return TrainConfig(**values).to_dict()
    except CifarError:
        return {n: v for n, v in values.items() if n in settings()}


def best_settings_note(sweep: Sweep, run: Run) -> str:
    """What the Train page says of a form filled with a sweep's best run's settings: which
    sweep and run they came from."""
    name = short_name(sweep.name)
    accuracy = f", {run.accuracy:.1f} % of the test images right" \
        if run.accuracy is not None else ""
    trial = f"trial {run.trial}, " if run.trial is not None else ""
    return (f"These settings are those of the best run of sweep {name} ({trial}run "
            f"{run.id}{accuracy}). Change any of them, or choose a preset to start over.")

"""How far a sweep has got: its progress bar's numbers and words, the sweep in menus, and which
runs' loss curves the small charts draw, each with its title.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cifar_core.runs.names import short_name
from cifar_core.runs.store import ACTIVE, FINISHED, Run
from cifar_core.runs.views import status_text
from cifar_core.sweeps.engine import best_run
from cifar_core.sweeps.store import Sweep


@dataclass(frozen=True)
class SweepProgress:
    """How far a sweep has got, for a progress bar."""

    finished: int
    running: int
    queued: int
    planned: int
    fraction: float
    text: str


def sweep_progress(sweep: Sweep, runs: list[Run]) -> SweepProgress:
    """Runs finished of those planned, and how many run or wait now."""
    finished = sum(r.status in FINISHED for r in runs)
    running = sum(r.status == "running" for r in runs)
    queued = sum(r.status == "queued" for r in runs)
    planned = max(sweep.space.size(), len(runs))
    if not sweep.is_active:
        return SweepProgress(finished, running, queued, planned, 1.0,
                             f"{sweep.status.capitalize()}: {sweep.message}".strip(": "))
    parts = [f"{finished} of {planned} runs finished"]
    if running:
        parts.append(f"{running} running")
    if queued:
        parts.append(f"{queued} waiting")
    if sweep.stop_requested:
        parts.append("stopping")
    return SweepProgress(finished, running, queued, planned,
                         min(1.0, finished / planned) if planned else 0.0, " · ".join(parts))


def curve_runs(runs: list[Run], limit: int) -> list[Run]:
    """The runs whose loss curves the small multiples draw: in trial order, at most `limit`
    (the running ones always among them)."""
    ordered = sorted(runs, key=lambda r: (r.trial if r.trial is not None else 1 << 30,
                                          r.created))
    if len(ordered) <= limit:
        return ordered
    active = [r for r in ordered if r.status in ACTIVE]
    rest = [r for r in ordered if r.status not in ACTIVE][:max(0, limit - len(active))]
    keep = {r.id for r in active + rest}
    return [r for r in ordered if r.id in keep]


def sweep_label(sweep: Sweep, runs: list[Run]) -> str:
    """A sweep in a menu: its name, how it stands, its runs and the best accuracy."""
    best = best_run(runs)
    name = short_name(sweep.name)
    accuracy = f", best {best.accuracy:.1f} %" if best else ""
    return (f"{name} ({sweep.status}, {len(runs)} of {sweep.space.size()} "
            f"run{'s' * (sweep.space.size() != 1)}{accuracy})")


def sweep_menu_label(sweep: Sweep) -> str:
    """A sweep in a menu, in words that do not change while it runs (a menu keeps showing
    the label its choice had when it was made): its name and when it started."""
    started = datetime.fromtimestamp(sweep.created).strftime("%d %b, %H:%M")
    return sweep.id if sweep.name == sweep.id else f"{short_name(sweep.name)} (started {started})"


def panel_title(run: Run) -> str:
    """A run's small chart's title: its trial number and accuracy or status."""
    trial = f"Trial {run.trial}" if run.trial is not None else run.id
    return f"{trial} · {run.accuracy:.1f} %" if run.accuracy is not None else \
        f"{trial} · {status_text(run)}"

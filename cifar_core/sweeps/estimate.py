"""How long a sweep takes here: the runs it plans, each timed at its speed (earlier runs like it,
or a short measurement once per speed setting) with its start-up and tests (training.estimate's
estimate_run_time), side by side, within its minutes budget.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from cifar_core.runs.store import Run
from cifar_core.sweeps.space import SearchSpace
from cifar_core.training.config import TrainConfig
from cifar_core.training.estimate import (
    estimate_run_time,
    estimate_training_time,
    range_words,
    rough_duration,
    speed_key,
)

# At most this many different speed settings are timed for an estimate (about a second each);
# the others are taken to train at the median of those.
MAX_TIMED = 6


@dataclass(frozen=True)
class SweepEstimate:
    """How long a sweep takes here, and what that is based on."""

    runs: int
    seconds: float  # the runs' training time, side by side, within the budget
    parallel: int
    capped: bool = False  # the minutes budget ends it sooner
    # The range, where start-up and tests are counted (None: the training alone is counted).
    low_s: float | None = None
    high_s: float | None = None

    def sentence(self) -> str:
        """E.g. '12 runs, about 4 min here (2 side by side)', or '4 runs, about 40 s here
        (30-55 s; 2 side by side), start-up and tests included'."""
        notes = [] if self.low_s is None or self.high_s is None or self.capped else \
            [range_words(self.low_s, self.high_s)]
        notes = [n for n in notes if n != rough_duration(self.seconds)]
        if self.parallel > 1:
            notes.append(f"{self.parallel} side by side")
        notes = f" ({'; '.join(notes)})" if notes else ""
        counted = "" if self.low_s is None else ", start-up and tests included"
        capped = ", the time budget ends it then" if self.capped else ""
        return (f"{self.runs} run{'s' * (self.runs != 1)}, about {rough_duration(self.seconds)} "
                f"here{notes}{counted}{capped}")


def planned_configs(space: SearchSpace) -> list[dict]:
    """The settings of the sweep's runs as far as they can be known now: a grid's or random
    draw's own; for the smart strategy, a random draw of as many runs (its sampler chooses
    as it goes)."""
    if space.strategy == "smart":
        return replace(space, strategy="random").configs()
    return space.configs()


def sweep_estimate(space: SearchSpace, max_train: int, earlier: list[Run],
                   measure: Callable[[TrainConfig], float] | None, parallel: int,
                   test_images: int | None = None,
                   measure_test: Callable[[TrainConfig], float] | None = None,
                   last_epoch: Callable[[Run], object] | None = None,
                   cores: int | None = None) -> SweepEstimate | None:
    """The sweep's time here: each run's images at its speed (earlier runs like it, else
    `measure`, once per speed setting: training.estimate), with, given `test_images`, each
    run's start-up and tests (estimate_run_time: earlier runs like it through `last_epoch`,
    else `measure_test`), summed, divided by the runs side by side, at most its minutes
    budget. Start-ups overlap only as far as the machine has a core for each (its `cores`,
    default os.cpu_count(): a start-up's imports and loading keep one core busy): on a
    2-core machine two runs side by side start together, on one core one after the other
    (bench/RESULTS.md, "Issue 26: estimates": the quiet round; taking them one after the
    other made a 4-run sweep's estimate 1.7x too long). None when it cannot be told."""
    configs = [TrainConfig(**c) for c in planned_configs(space)]
    if not configs:
        return None
    measure, measure_test = _timed_once(measure), _timed_once(measure_test)
    seconds = low = high = startups = 0.0
    for config in configs:
        images = min(config.train_size or max_train, max_train)
        if test_images is None:
            found = estimate_training_time(config, images, earlier, measure)
            if found is None:
                return None
            seconds, low, high = (seconds + found.seconds, low + found.seconds,
                                  high + found.seconds)
            continue
        run = estimate_run_time(config, images, earlier, test_images, measure, measure_test,
                                last_epoch)
        if run is None:
            return None
        seconds, low, high = seconds + run.seconds, low + run.low_s, high + run.high_s
        startups += run.startup_s
    side_by_side = min(max(1, parallel), len(configs))
    starting = min(side_by_side, max(1, cores or os.cpu_count() or 1))
    total = (seconds - startups) / side_by_side + startups / starting
    seconds, low, high = total, low / seconds * total, high / seconds * total
    capped = space.minutes is not None and seconds > space.minutes * 60
    counted = test_images is not None
    return SweepEstimate(len(configs), min(seconds, space.minutes * 60) if capped else seconds,
                         max(1, parallel), capped, low if counted else None,
                         high if counted else None)


def _timed_once(measure: Callable[[TrainConfig], float] | None
                ) -> Callable[[TrainConfig], float] | None:
    """`measure`, called once per speed setting, and for at most MAX_TIMED of them (about a
    second each); the others are taken to go at the median of those."""
    if measure is None:
        return None
    speeds: dict[tuple, float] = {}

    def once(config: TrainConfig) -> float:
        key = speed_key(config)
        if key not in speeds:
            if len(speeds) >= MAX_TIMED:
                return sorted(speeds.values())[len(speeds) // 2]
            speeds[key] = measure(config)
        return speeds[key]

    return once

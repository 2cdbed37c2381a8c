"""How long a sweep takes here: the runs it plans, each timed at its speed (earlier runs like it,
or a short measurement once per speed setting), side by side, within its minutes budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from cifar_core.runs.store import Run
from cifar_core.sweeps.space import SearchSpace
from cifar_core.training.config import TrainConfig
from cifar_core.training.estimate import estimate_training_time, rough_duration, speed_key

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

    def sentence(self) -> str:
        """E.g. '12 runs, about 4 min here (2 side by side)'."""
        side = f" ({self.parallel} side by side)" if self.parallel > 1 else ""
        capped = ", the time budget ends it then" if self.capped else ""
        return (f"{self.runs} run{'s' * (self.runs != 1)}, about {rough_duration(self.seconds)} "
                f"here{side}{capped}")


def planned_configs(space: SearchSpace) -> list[dict]:
    """The settings of the sweep's runs as far as they can be known now: a grid's or random
    draw's own; for the smart strategy, a random draw of as many runs (its sampler chooses
    as it goes)."""
    if space.strategy == "smart":
        return replace(space, strategy="random").configs()
    return space.configs()


def sweep_estimate(space: SearchSpace, max_train: int, earlier: list[Run],
                   measure: Callable[[TrainConfig], float] | None, parallel: int
                   ) -> SweepEstimate | None:
    """The sweep's training time here: each run's images at its speed (earlier runs like it,
    else `measure`, once per speed setting: training.estimate), summed, divided by the runs
    side by side, at most its minutes budget. None when it cannot be told."""
    configs = [TrainConfig(**c) for c in planned_configs(space)]
    if not configs:
        return None
    speeds: dict[tuple, float] = {}
    for config in configs:
        key = speed_key(config)
        if key in speeds or len(speeds) >= MAX_TIMED:
            continue
        found = estimate_training_time(config, 1, earlier, measure)
        if found is None:
            return None
        speeds[key] = found.images_per_s
    median = sorted(speeds.values())[len(speeds) // 2]
    seconds = 0.0
    for config in configs:
        images = min(config.train_size or max_train, max_train) * config.epochs
        seconds += images / speeds.get(speed_key(config), median)
    parallel = max(1, parallel)
    seconds /= min(parallel, len(configs))
    capped = space.minutes is not None and seconds > space.minutes * 60
    return SweepEstimate(len(configs), min(seconds, space.minutes * 60) if capped else seconds,
                         parallel, capped)

"""Sweeps: many runs over a search space, started, advanced, judged and stopped together.

`space` says what a sweep varies and how runs are drawn (grid, random, smart), checked with the
settings' own messages; `store` keeps sweeps beside the runs; `engine` starts, advances, stops
and deletes them on this machine; `smart` is what Optuna does for them (the smart strategy,
early stopping, which settings mattered); `ray_engine` runs a sweep on a Ray cluster. What the
Sweep page shows, by concept: `form` (the space its form describes), `estimate` (how long the
sweep takes here), `progress` (how far it has got), `answer` (the runs best first and the
pictures of which settings pay off).
"""

from cifar_core.sweeps.engine import best_run, delete_sweep, start_sweep, stop_sweep
from cifar_core.sweeps.space import SearchSpace, SweepError, space_problems
from cifar_core.sweeps.store import Sweep, SweepStore

__all__ = ["SearchSpace", "Sweep", "SweepError", "SweepStore", "best_run", "delete_sweep",
           "space_problems", "start_sweep", "stop_sweep"]

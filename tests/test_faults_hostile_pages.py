"""Issue 29 (what a hostile user and a load test found), the pages' part, through AppTest:

22. Try it with many huge pictures: each upload is decoded once, not on every widget change.
24. The Runs page with many runs and sweeps: what it draws does not grow with the sweeps (one
    table per sweep made opening take 8.5 s and every click 3 s; bench/bench_runs_page.py
    times it, figures in bench/RESULTS.md).
"""

from __future__ import annotations

import os

from test_app import app_at, no_traceback

from cifar_core.config import TrainConfig
from cifar_core.runs import RunStore
from cifar_core.search_space import Axis, SearchSpace
from cifar_core.sweep_store import SweepStore

RUNS = "pages/runs.py"


def finished(store: RunStore, run, accuracy: float) -> None:
    store.set_running(run.id, os.getpid())
    store.finish(run.id, "completed", "", {"accuracy": accuracy, "per_class": {}})


def store_of_many_sweeps(runs_dir, data_dir, sweeps: int, alone: int) -> list[str]:
    """`sweeps` finished sweeps of two runs each and `alone` runs outside them (made through
    the store, not trained); the sweeps' ids, newest first."""
    store = RunStore(runs_dir)
    sweep_store = SweepStore(store)
    config = TrainConfig(epochs=1, batch_size=10, log_every=2, seed=0).to_dict()
    space = SearchSpace(axes=(Axis("lr", (0.01, 0.02)),))
    for s in range(sweeps):
        sweep = sweep_store.create(f"sweep {s}", space, str(data_dir), "cli")
        for trial, lr in enumerate((0.01, 0.02)):
            run = sweep_store.add_run(sweep, {**config, "lr": lr}, trial)
            finished(store, run, 30.0 + s + trial)
        sweep_store.finish(sweep.id, "completed", "")
    for i in range(alone):
        finished(store, store.create({**config, "lr": 0.001 * (i + 1)}, str(data_dir), "cli"),
                 20.0 + i)
    return [s.id for s in sweep_store.list()]


# --- item 24 --------------------------------------------------------------------------------

def test_the_runs_page_draws_two_tables_however_many_sweeps_and_reaches_each(data_dir,
                                                                             runs_dir):
    sweep_ids = store_of_many_sweeps(runs_dir, data_dir, sweeps=30, alone=3)
    at = app_at(RUNS)
    no_traceback(at)
    # The runs outside sweeps, and the chosen sweep's (the newest first): not 31 tables.
    assert len(at.dataframe) == 2
    assert len(at.expander) == 0
    store = SweepStore(RunStore(runs_dir))
    shown = set(at.dataframe[1].value["run"])
    assert shown == {r.id for r in store.runs(sweep_ids[0])}
    # Any sweep's runs are one choice away.
    menu = at.selectbox(key="runs_sweep")
    assert len(menu.options) == len(sweep_ids)
    oldest = sweep_ids[-1]
    menu.set_value(oldest).run()
    no_traceback(at)
    assert set(at.dataframe[1].value["run"]) == {r.id for r in store.runs(oldest)}
    assert len(at.dataframe) == 2

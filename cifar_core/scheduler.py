"""Who starts the next run: one `tick` that advances the sweeps and fills the free slots.

A run waits in the store as 'queued' until a tick starts it (or `JobRunner.start`, which
starts the run it queues at once where a slot is free). Each process ticks from one place:
the dashboard from its heartbeat (app.py: on every page, every 2 s while anything is queued,
running or sweeping), a job process once its run has ended (a slot is free: the next queued
run starts with no browser open), and the CLI before it shows runs and in its wait loops.

This module stands above runs/ and sweeps/: neither imports the other's way back.
"""

from __future__ import annotations

import time

from cifar_core.runs.jobs import JobRunner
from cifar_core.runs.store import FINISHED, Run, RunStore
from cifar_core.sweeps import engine


def tick(store: RunStore) -> list[Run]:
    """Mark dead jobs failed, advance the running sweeps (their next runs queued, a Ray
    sweep's driver started again if it is gone), then start queued runs in the free slots;
    returns the runs started. (Nothing, in a store that can only be read.)"""
    if store.read_only:
        return []
    runner = JobRunner(store)
    runner.reap()
    engine.advance(store)
    engine.revive_drivers(store)
    return runner.launch_queued()


def wait(store: RunStore, run_id: str, timeout: float = 60.0, poll: float = 0.25) -> Run:
    """Tick until the run has ended, or for `timeout` seconds (the CLI's and tests' wait)."""
    deadline = time.monotonic() + timeout
    while True:
        tick(store)
        run = store.get(run_id)
        if run.status in FINISHED or time.monotonic() > deadline:
            return run
        time.sleep(poll)

"""Loss curves of long runs: which of a run's loss reports a chart draws, and a run's curve kept
up to date by reading only the events that are new.

A run with log_every 1 reports after every minibatch: 25,000 reports an epoch at the tutorial's
settings. A browser draws a few thousand points at once and 100,000 slowly, and the chart is no
clearer for them, so a chart draws a spread (spread_positions): the first report, the most
recent ones and every stride-th of the rest. The stride is a power of two, so the spread of a
longer run keeps only reports that the shorter run's spread kept, plus new ones: a page keeps
one RunCurve per run and updates it from the new events alone, and the run store picks the same
reports without reading the others (RunStore.spread_events). Timings in bench/RESULTS.md
("Pages with long runs").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from cifar_core.runs.spread import spread_positions
from cifar_core.runs.store import Run, RunStore
from cifar_core.training.events import EpochEvent, StatsEvent


@dataclass
class RunCurve:
    """What a page shows of one run's events, kept small and current: a spread of its loss
    reports (spread_positions), every epoch's test, and where reading stopped. read() fills it
    from the store's spread, update() adds the events since."""

    run_id: str
    limit: int  # loss reports kept at most
    recent: int = 0  # the most recent reports, all kept
    reports: int = 0  # loss reports so far, kept or not
    last_seq: int = 0  # the store's sequence number of the last event read
    epochs: list[EpochEvent] = field(default_factory=list)
    # The kept reports by their position among all the run's reports.
    _kept: dict[int, StatsEvent] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def read(cls, store: RunStore, run_id: str, limit: int, recent: int = 0) -> RunCurve:
        """The run's curve from the store, reading the JSON of the kept reports only."""
        curve = cls(run_id, limit, recent)
        curve.reports, spread = store.spread_events(run_id, "stats", limit, recent)
        curve._kept = {position: event for position, _, event in spread}
        curve.last_seq = spread[-1][1] if spread else 0
        curve.epochs = [event for seq, event in store.events(run_id, kind="epoch")
                        if seq <= curve.last_seq]
        curve.update(store)  # what came while the spread was read (and everything if none)
        return curve

    def update(self, store: RunStore) -> bool:
        """Add the run's events after the last one read; True if there were any."""
        new = store.events(self.run_id, since=self.last_seq)
        if not new:
            return False
        for _, event in new:
            if isinstance(event, StatsEvent):
                self._kept[self.reports] = event
                self.reports += 1
            elif isinstance(event, EpochEvent):
                self.epochs.append(event)
        self.last_seq = new[-1][0]
        if self.reports > self.limit:
            # Every position of the new spread is one kept before or a new one (the stride
            # only grows), so thinning what is kept gives the spread of all the reports.
            self._kept = {p: self._kept[p]
                          for p in spread_positions(self.reports, self.limit, self.recent)
                          if p in self._kept}
        return True

    @property
    def stats(self) -> list[StatsEvent]:
        """The kept loss reports, oldest first (the latest one always among them)."""
        return [self._kept[p] for p in sorted(self._kept)]

    @property
    def thinned(self) -> bool:
        """Whether the chart shows fewer reports than there are."""
        return len(self._kept) < self.reports


def accuracy_marks(run: Run, epochs: list[EpochEvent], images_per_epoch: int) -> pd.DataFrame:
    """The run's test accuracies as a chart marks them, oldest first: the test after each epoch
    and, for a run that ended between two epochs' ends (stopped by hand or by its sweep), the
    test of the network it kept, where it stopped. Columns: epochs (x, in epochs), test_accuracy
    (%), when (which test, in words). The last row is the run's latest result: for a stopped run
    the accuracy its status reports, not the last whole epoch's."""
    rows = [{"epochs": float(e.epoch), "test_accuracy": e.test_accuracy,
             "when": f"after epoch {e.epoch}"} for e in epochs]
    metrics = run.metrics or {}
    seen, accuracy = metrics.get("images_seen"), metrics.get("accuracy")
    last_test = epochs[-1].images_seen if epochs else 0
    if (not run.is_active and accuracy is not None and seen and images_per_epoch
            and seen > last_test):
        rows.append({"epochs": seen / images_per_epoch, "test_accuracy": accuracy,
                     "when": f"when it stopped, after {seen:,} images"})
    return pd.DataFrame(rows, columns=["epochs", "test_accuracy", "when"])

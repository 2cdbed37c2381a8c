"""A run's curves as one CSV file, for a spreadsheet, pandas or R: every loss report and the
test after every epoch, not a chart's spread of them.

The layout is tidy: one row per measurement, one column per quantity, a row's kind in `row`:
- "loss report": the mean training loss of the minibatches since the report before (`loss`),
  at `epoch`, `minibatch` (within the epoch), `minibatches` (since the start) and
  `images_seen` (training images since the start);
- "epoch end": the test after the epoch: `test_loss` (mean -log probability of the true
  class; empty in runs from before it was measured), `test_accuracy` (%) and `train_seconds`
  (training time to the epoch's end, its tests left out; empty in older runs), at `epoch`,
  `minibatches` and `images_seen` (its `minibatch` and `loss` empty).
Rows in the order they were measured; `run` (the run's id) in every row, so that the files of
several runs can be put one under the other.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pandas as pd

from cifar_core.errors import CifarError
from cifar_core.runs.curves import minibatches_at
from cifar_core.runs.store import Run, RunStore
from cifar_core.training.events import EpochEvent, StatsEvent

CURVE_COLUMNS = ["run", "row", "epoch", "minibatch", "minibatches", "images_seen", "loss",
                 "test_loss", "test_accuracy", "train_seconds"]
LOSS_REPORT, EPOCH_END = "loss report", "epoch end"


def curves_table(store: RunStore, run: Run) -> pd.DataFrame:
    """The run's curves in the layout above (CURVE_COLUMNS), every event read."""
    events = [event for _, event in store.events(run.id)]
    per_epoch = next((e.images_per_epoch for e in reversed(events)
                      if isinstance(e, StatsEvent) and e.images_per_epoch), 0)
    batch_size = run.settings.get("batch_size")
    rows = []
    for e in events:
        if isinstance(e, StatsEvent):
            rows.append((run.id, LOSS_REPORT, e.epoch, e.minibatch, e.step, e.images_seen,
                         e.loss, None, None, None))
        elif isinstance(e, EpochEvent):
            rows.append((run.id, EPOCH_END, e.epoch, None,
                         minibatches_at(e.images_seen, per_epoch, batch_size), e.images_seen,
                         None, e.test_loss, e.test_accuracy, e.train_s))
    table = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    # Counts stay whole numbers in the file (an empty cell would make pandas write 3.0).
    for column in ("epoch", "minibatch", "minibatches", "images_seen"):
        table[column] = table[column].astype("Int64")
    return table


def curves_csv(store: RunStore, run: Run) -> str:
    """The run's curves as the text of a CSV file (curves_table)."""
    return curves_table(store, run).to_csv(index=False)


def write_curves_csv(store: RunStore, run_ids: list[str], target: Path | str) -> list[Path]:
    """Write the runs' curves: one run into the file `target` (or into <run>-curves.csv in it
    when it is a folder), several runs each into <run>-curves.csv in the folder `target`
    (made if need be). The files written. CifarError in one sentence for an unknown run,
    several runs into one .csv file, or a place that cannot be written; a file is whole or
    not there (written aside, then renamed)."""
    runs = [store.get(run_id) for run_id in run_ids]
    target = Path(target)
    if len(runs) > 1 and target.suffix.lower() == ".csv":
        raise CifarError(f"{len(runs)} runs do not go into one file ({target}): give a folder, "
                         "and each run's curves go into a file of their own there.")
    into_folder = len(runs) > 1 or target.is_dir()
    written = []
    for run in runs:
        path = target / f"{run.id}-curves.csv" if into_folder else target
        partial = path.with_name(f".{path.name}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(curves_csv(store, run), encoding="utf-8")
            os.replace(partial, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise CifarError(f"The curves of run {run.id} cannot be written to {path}: "
                             f"{(exc.strerror or str(exc)).lower()}. Choose another place."
                             ) from None
        written.append(path)
    return written

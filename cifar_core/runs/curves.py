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

What a loss chart draws (loss_lines): the training loss of those reports and the test loss
after each epoch, each with its place on every x axis a chart offers (LossView): minibatches,
images seen or epochs; and the training loss smoothed as TensorBoard smooths it (smoothed).
"""

from __future__ import annotations

import math
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
    test of the network it kept, where it stopped. Columns: epochs, images_seen, minibatches
    (where it is on each x axis, X_AXES), test_accuracy (%), when (which test, in words). The
    last row is the run's latest result: for a stopped run the accuracy its status reports,
    not the last whole epoch's."""
    batch_size = run.settings.get("batch_size")
    rows = [{"epochs": float(e.epoch), "images_seen": e.images_seen,
             "minibatches": minibatches_at(e.images_seen, images_per_epoch, batch_size),
             "test_accuracy": e.test_accuracy, "when": f"after epoch {e.epoch}"} for e in epochs]
    metrics = run.metrics or {}
    seen, accuracy = metrics.get("images_seen"), metrics.get("accuracy")
    last_test = epochs[-1].images_seen if epochs else 0
    if (not run.is_active and accuracy is not None and seen and images_per_epoch
            and seen > last_test):
        rows.append({"epochs": seen / images_per_epoch, "images_seen": seen,
                     "minibatches": minibatches_at(seen, images_per_epoch, batch_size),
                     "test_accuracy": accuracy,
                     "when": f"when it stopped, after {seen:,} images"})
    return pd.DataFrame(rows, columns=["epochs", "images_seen", "minibatches", "test_accuracy",
                                       "when"])


def epoch_ends(run: Run, images_per_epoch: int) -> pd.DataFrame:
    """Where each of the run's planned epochs ends on each x axis (X_AXES), epoch 1 to the
    last: a chart marks the ends and spans the whole run. images_seen and minibatches are NaN
    where the epoch's size is not known (runs from before it was reported)."""
    planned = int(run.settings.get("epochs") or 0)
    batch_size = run.settings.get("batch_size")
    return pd.DataFrame(
        [{"epochs": float(e),
          "images_seen": e * images_per_epoch if images_per_epoch else float("nan"),
          "minibatches": minibatches_at(e * images_per_epoch, images_per_epoch, batch_size)}
         for e in range(1, planned + 1)], columns=["epochs", "images_seen", "minibatches"])


# --- what a loss chart draws --------------------------------------------------------------------

# The x axes a loss chart offers: name -> (the lines' column, the axis title).
X_AXES = {"minibatches": ("minibatches", "minibatches"),
          "images": ("images_seen", "images seen"),
          "epochs": ("epochs", "epochs")}
TRAINING, TEST = "training loss", "test loss"  # the lines' series
# TensorBoard's slider ends at 0.99: at 1 the average would never move from its first point.
MOST_SMOOTHING = 0.99
LINE_COLUMNS = ["run", "series", "epochs", "images_seen", "minibatches", "epoch", "minibatch",
                "loss"]


@dataclass(frozen=True)
class LossView:
    """How a loss chart is drawn: smoothing (0 none .. 0.99, TensorBoard's slider), the loss on
    a log scale or not, and the x axis (a key of X_AXES). TensorBoard's default smoothing."""

    smoothing: float = 0.6
    log_scale: bool = False
    x: str = "epochs"

    def __post_init__(self) -> None:
        _check_weight(self.smoothing)
        if self.x not in X_AXES:
            raise ValueError(f"no x axis {self.x!r}: one of {', '.join(X_AXES)}")

    @property
    def x_field(self) -> str:
        return X_AXES[self.x][0]

    @property
    def x_title(self) -> str:
        return X_AXES[self.x][1]


def _check_weight(weight: float) -> None:
    if not 0 <= weight <= MOST_SMOOTHING:
        raise ValueError(f"smoothing is between 0 and {MOST_SMOOTHING}, not {weight}")


def smoothed(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing of a curve: an exponential moving average with weight `weight`
    (0 none .. 0.99) that starts at 0 and is divided by 1 - weight**n after n points (its
    debiasing: the first points are not pulled towards 0). A point that is not a finite
    number is kept as it is and leaves the average alone. It averages the points given: on a
    long run's spread of reports (RunCurve) a chart smooths the points it draws, so the same
    weight smooths over more minibatches where the spread is thinner (TensorBoard, too,
    smooths the points it sampled)."""
    _check_weight(weight)
    out, last, count = [], 0.0, 0
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        out.append(last / (1 - weight ** count))
    return out


def minibatches_at(images_seen: int, images_per_epoch: int, batch_size) -> float:
    """Minibatches trained when `images_seen` images were (an epoch's last minibatch may hold
    fewer images); NaN where the epoch's size or the batch size is not known."""
    if not images_per_epoch or not batch_size:
        return float("nan")
    whole, rest = divmod(images_seen, images_per_epoch)
    return whole * math.ceil(images_per_epoch / batch_size) + math.ceil(rest / batch_size)


def loss_lines(run: Run, stats: list[StatsEvent], epochs: list[EpochEvent]) -> pd.DataFrame:
    """The lines of a run's loss chart, one row per point (columns LINE_COLUMNS): its loss
    reports (series 'training loss'; minibatch within the epoch) and the test loss after each
    epoch that measured it (series 'test loss'; older runs did not), each placed on every x
    axis (X_AXES). Empty for a run without loss reports."""
    per_epoch = stats[-1].images_per_epoch if stats else 0
    batch_size = run.settings.get("batch_size")
    rows = [(run.id, TRAINING, e.images_seen / e.images_per_epoch if e.images_per_epoch
             else float(e.epoch), e.images_seen, e.step, e.epoch, e.minibatch, e.loss)
            for e in stats]
    if rows:
        rows += [(run.id, TEST, e.images_seen / per_epoch if per_epoch else float(e.epoch),
                  e.images_seen, minibatches_at(e.images_seen, per_epoch, batch_size),
                  e.epoch, None, e.test_loss) for e in epochs if e.test_loss is not None]
    return pd.DataFrame(rows, columns=LINE_COLUMNS)


def smoothed_lines(lines: pd.DataFrame, weight: float) -> pd.DataFrame:
    """`lines` (loss_lines of one or more runs) with a column 'smoothed': each run's training
    loss smoothed (smoothed(), over the points drawn), the test loss as it is (a point per
    epoch is too few to average)."""
    out = lines.reset_index(drop=True)  # frames put together repeat their positions
    out["smoothed"] = out["loss"].astype(float)
    training = out["series"] == TRAINING
    for _, rows in out[training].groupby("run", sort=False):
        out.loc[rows.index, "smoothed"] = smoothed(rows["loss"].astype(float).tolist(), weight)
    return out

"""What a training reports while it runs: loss reports, epoch ends and how it ended.

Frozen dataclasses; the run store keeps them as their to_dict() form and gives them back as
these objects (event_from_dict).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class StatsEvent:
    """The mean loss of the last window of minibatches, like the tutorial's printed line."""

    epoch: int  # 1-based
    minibatch: int  # 1-based, within the epoch (the tutorial's i + 1)
    step: int  # minibatches since the start
    images_seen: int
    loss: float  # mean over the window (the tutorial's running_loss / 2000)
    # Images per second of training as the user lives it: the loop's wall time so far with the
    # handling of every event (the run store's write, a printed line), without the tests after
    # each epoch (cifar_core.training.loop's _Clock).
    images_per_s: float
    elapsed_s: float  # wall time since training started, tests included
    fraction_done: float
    eta_s: float  # the images left at images_per_s (the tests still to come not included)
    images_per_epoch: int = 0  # training images in one epoch (for an x axis in epochs)
    # Unix time of the report (None in runs from before it was kept): a page can tell a run
    # that stopped reporting (frozen, or the machine asleep) from one that is only slow.
    reported_at: float | None = None
    kind: str = "stats"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EpochEvent:
    """End of an epoch, with the test accuracy at that point and the confusion behind it."""

    epoch: int
    test_accuracy: float  # percent
    images_seen: int
    elapsed_s: float
    # counts[true class][predicted class] on the test images (None in runs from before it was
    # kept): how the network's mistakes changed from epoch to epoch.
    confusion: list[list[int]] | None = None
    # Seconds of training up to this epoch's end, its tests left out (None in older runs):
    # accuracy against training time, e.g. what a run reached after 1, 2, 3 minutes.
    train_s: float | None = None
    # The mean cross-entropy on the test images, -log(probability given to the true class)
    # (None in older runs): beside the training loss it shows over-fitting.
    test_loss: float | None = None
    kind: str = "epoch"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DoneEvent:
    """The end: completed, stopped (on request) or diverged (loss became NaN/inf)."""

    status: str
    message: str
    epochs_done: int
    images_seen: int
    # Seconds of training: the loop's wall time with the handling of its events, without the
    # tests after each epoch; images_per_s is images_seen / train_s.
    train_s: float
    images_per_s: float
    elapsed_s: float
    # How the minibatches were computed (cifar_core.training.speed): which step, on how many cores.
    # A seed gives the same weights only with the same step and cores (float rounding).
    training_step: str = ""
    cores: int = 1
    # Of train_s, the seconds spent compiling the step (Compile on: training.compiled), 0 if none.
    compile_s: float = 0.0
    kind: str = "done"

    def to_dict(self) -> dict:
        return asdict(self)


Event = StatsEvent | EpochEvent | DoneEvent
EVENT_TYPES = {"stats": StatsEvent, "epoch": EpochEvent, "done": DoneEvent}


def event_from_dict(values: dict) -> Event:
    """Rebuild an event from its to_dict() form (as stored in the run store); fields it does
    not know (from a newer version) are ignored. ValueError for an unknown kind or for
    something that is not a dict."""
    if not isinstance(values, dict):
        raise ValueError(f"not a training event: {type(values).__name__}")
    cls = EVENT_TYPES.get(values.get("kind"))
    if cls is None:
        raise ValueError(f"not a training event: kind {values.get('kind')!r}")
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})

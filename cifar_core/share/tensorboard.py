"""Runs as TensorBoard event files, for people who already use TensorBoard.

Each run gets its own folder (named by its id) holding its loss reports (train/loss) and its
test accuracy and test loss after each epoch (test/accuracy, test/loss), all against the number
of training pictures seen, and its settings as HParams with the final accuracy. They are
written by TensorBoard's own writer (through torch.utils.tensorboard, which needs the optional
tensorboard package), into a temporary folder that replaces the run's folder when it is complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cifar_core.errors import CifarError
from cifar_core.runs.store import Run, RunStore
from cifar_core.training.events import EpochEvent, StatsEvent

LOSS_TAG, ACCURACY_TAG, TEST_LOSS_TAG = "train/loss", "test/accuracy", "test/loss"


def _summary_api():
    """TensorBoard's writer and its HParams summary; CifarError saying how to install it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams
    except ImportError:
        raise CifarError("Writing TensorBoard files needs the tensorboard package: "
                         "pip install tensorboard, then run this again.") from None
    return SummaryWriter, hparams


def hparam_values(run: Run) -> dict:
    """The run's settings and data set as HParams take them (numbers, text, on/off)."""
    values = {"dataset": run.dataset}
    for name, value in run.settings.items():
        if isinstance(value, (bool, int, float, str)):
            values[name] = value
        else:  # None (the setting's automatic choice), or a list
            values[name] = "auto" if value is None else str(value)
    return values


def write_tensorboard(store: RunStore, run_ids: list[str], folder: Path | str) -> list[Path]:
    """Write the runs `run_ids` into `folder`/<run id> (replacing what an earlier export left
    there); the folders written. CifarError in one sentence, before anything is written, for
    an unknown run, a missing tensorboard package or a folder that cannot be made."""
    runs = [store.get(run_id) for run_id in run_ids]
    SummaryWriter, hparams = _summary_api()
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CifarError(f"The TensorBoard files cannot be written into {folder}: "
                         f"{(exc.strerror or str(exc)).lower()}. Choose another folder.") from None
    written = []
    for run in runs:
        target = folder / run.id
        partial = folder / f".{run.id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            _write_run(SummaryWriter, hparams, store, run, partial)
            if target.exists():
                shutil.rmtree(target)
            partial.rename(target)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise CifarError(f"The TensorBoard files of run {run.id} could not be written "
                             f"into {folder}: {(exc.strerror or str(exc)).lower()}.") from None
        written.append(target)
    return written


def _write_run(SummaryWriter, hparams, store: RunStore, run: Run, folder: Path) -> None:
    """One run's curves and settings into `folder`."""
    events = [event for _, event in store.events(run.id)]
    start = run.started or run.created
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for event in events:
            if isinstance(event, StatsEvent):
                writer.add_scalar(LOSS_TAG, event.loss, event.images_seen,
                                  walltime=start + event.elapsed_s)
            elif isinstance(event, EpochEvent):
                writer.add_scalar(ACCURACY_TAG, event.test_accuracy, event.images_seen,
                                  walltime=start + event.elapsed_s)
                if event.test_loss is not None:  # (None in runs from before it was kept)
                    writer.add_scalar(TEST_LOSS_TAG, event.test_loss, event.images_seen,
                                      walltime=start + event.elapsed_s)
        # The HParams dashboard lists each run's settings beside its final accuracy (the
        # metric's values are the test/accuracy points above).
        for summary in hparams(hparam_values(run), {ACCURACY_TAG: run.accuracy or 0.0}):
            writer.file_writer.add_summary(summary)
    finally:
        writer.close()

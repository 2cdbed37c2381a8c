"""Tables and phrases built from runs and their events: what the dashboard and CLI show.

Kept here, not in the pages, so every number on screen comes from a tested function.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cifar_core.data.registry import DATASETS, DEFAULT_DATASET
from cifar_core.runs.naming import display_names
from cifar_core.runs.store import ACTIVE, SAVED, Run
from cifar_core.training.config import compared_settings, settings
from cifar_core.training.events import EpochEvent, Event, StatsEvent
from cifar_core.training.reports import log_every_for, minibatches_per_epoch

# The settings a comparison of runs shows, as declared in cifar_core.training.config.
SETTINGS = compared_settings()
# The origin of a network brought from elsewhere (explain.network_imports): it was not trained
# here, so it has no training settings, time or speed to show or compare.
IMPORTED = "imported"


def format_duration(seconds: float | None) -> str:
    """12 s, 3 min 05 s, 1 h 02 min; '-' when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def status_text(run: Run) -> str:
    """A run's status in words: 'stopped early' for one its sweep stopped (pruned), 'imported'
    for a network brought from elsewhere."""
    if is_import(run) and run.status == "completed":
        return IMPORTED
    return "stopped early" if run.status == "pruned" else run.status


def is_import(run: Run) -> bool:
    """True for a network brought from elsewhere (explain.network_imports), not trained here."""
    return run.origin == IMPORTED


def training_settings(run: Run) -> dict | None:
    """The settings the run trained with (Run.settings); None for an import, which has none:
    the model it holds is no training setting."""
    return None if is_import(run) else run.settings


def trained_runs(runs: list[Run]) -> list[Run]:
    """The runs trained here, in the given order: imports left out (what compares settings)."""
    return [r for r in runs if not is_import(r)]


def latest_trained(runs: list[Run]) -> Run | None:
    """The newest run trained here (runs come newest first), an import never: the one a page
    follows when nothing is training."""
    trained = trained_runs(runs)
    return trained[0] if trained else None


def run_label(run: Run) -> str:
    """A short name for menus: id, status, key settings and accuracy; and the data set's
    title where it is not the default (CIFAR-10), so runs of two data sets are told apart."""
    other = "" if run.dataset == DEFAULT_DATASET else f"{run_dataset_title(run)}, "
    if is_import(run):  # not trained here: its file, not settings it never had
        accuracy = f", {run.accuracy:.1f} %" if run.accuracy is not None else ", not tested"
        return (f"{run.config.get('imported_from', 'network')} (imported, {other}"
                f"{run.config.get('model', '?')}{accuracy}; {run.id})")
    c = run.settings
    acc = f", {run.accuracy:.1f} %" if run.accuracy is not None else ""
    model = "" if c["model"] == "tutorial" else f"{c['model']}, "
    return (f"{run.id} ({status_text(run)}{acc}; {other}{model}{c['epochs']} ep, "
            f"lr {c['lr']:g}, batch {c['batch_size']})")


def named_label(run: Run, names: dict[str, str]) -> str:
    """A run as a menu shows it: its display name (naming.display_names of all the runs),
    then its status and accuracy."""
    accuracy = f", {run.accuracy:.1f} %" if run.accuracy is not None else ""
    return f"{names.get(run.id, run.id)} ({status_text(run)}{accuracy})"


def dataset_title(name: str) -> str:
    """The title of the data set called `name` (e.g. 'CIFAR-10'); the name itself where that
    data set is not registered here (a folder data set since removed)."""
    spec = DATASETS.get(name)
    return spec.title if spec is not None else name


def run_dataset_title(run: Run) -> str:
    """The title of the data set the run trained on (dataset_title of its recorded name)."""
    return dataset_title(run.dataset)


def run_classes(run: Run) -> tuple[str, ...]:
    """The class names of the run's data, in label order: those the run recorded once its data
    was loaded, else its data set's declared ones (empty where only the data names them)."""
    if run.classes:
        return tuple(run.classes)
    spec = DATASETS.get(run.dataset)
    return spec.classes if spec is not None else ()


def why_not_comparable(runs: list[Run]) -> str | None:
    """Why the accuracies of these runs cannot be compared, in one sentence (they were trained
    and tested on different data sets); None when they share one."""
    counts: dict[str, int] = {}
    for run in runs:
        title = run_dataset_title(run)
        counts[title] = counts.get(title, 0) + 1
    if len(counts) < 2:
        return None
    listed = "; ".join(f"{title}: {n} run{'s' * (n != 1)}" for title, n in counts.items())
    return (f"These runs were trained and tested on different data sets ({listed}), so their "
            "accuracies are not comparable: each data set's pictures and classes make it easier "
            "or harder. Compare runs of one data set.")


def run_setting_text(run: Run, name: str) -> str:
    """A run's setting in words for a table: '-' where it does not apply to the run's network
    (a width for the tutorial's, which has none), else setting_text."""
    from cifar_core.training.models import MODELS

    if is_import(run):  # no training settings
        return "-"
    spec = MODELS.get(run.settings.get("model"))
    if name == "width" and spec is not None and spec.widths is None:
        return "-"
    return setting_text(name, run.settings.get(name))


def setting_text(name: str, value) -> str:
    """A setting's value in words, e.g. 'all' for every training image."""
    spec = settings()[name]
    if value is None or value != value:  # NaN: a table column's None beside numbers
        return spec.none_means or "-"
    # (A table column of whole numbers and Nones holds floats: 4.0 is shown as 4.)
    return f"{int(value):,}" if spec.kind is int else str(value)


def how_it_trained(run: Run) -> str | None:
    """Which training step computed the run, on how many cores (training.speed), in words;
    None for a run that did not record it. The same seed gives the same weights only with the
    same step and cores (float rounding)."""
    metrics = run.metrics or {}
    if not metrics.get("training_step"):
        return None
    cores = metrics.get("cores") or 1
    return f"Trained with the {metrics['training_step']} on {cores} core{'s' * (cores != 1)}."


def active_runs(runs: list[Run]) -> list[Run]:
    """The queued and running runs, those training before those waiting, each group in the
    given order: a page that follows the first follows a training, not the run waiting for it."""
    return sorted((r for r in runs if r.status in ACTIVE), key=lambda r: r.status != "running")


def runs_with_network(runs: list[Run]) -> list[Run]:
    """The runs that saved a network to inspect (completed, stopped or pruned): those whose network
    file is still there first, each group in the given order (a page that shows the first
    one by default shows one it can draw, not a deleted file's error)."""
    saved = [r for r in runs if r.checkpoint and r.status in SAVED]
    return sorted(saved, key=lambda r: not Path(r.checkpoint).is_file())


def runs_table(runs: list[Run], names: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per run: its name (`names`, else naming.display_names of these runs), test
    accuracy, status, tags, data set (its title), settings, duration, images/s, when it was
    made, its id, note and message. An import's settings and duration are None (it was not
    trained here) and its status 'imported'."""
    names = names if names is not None else display_names(runs)
    rows = []
    for run in runs:
        metrics, config = run.metrics or {}, training_settings(run)
        rows.append({
            "name": names.get(run.id, run.id),
            "accuracy": metrics.get("accuracy"),
            "run": run.id,
            "status": IMPORTED if is_import(run) else run.status,
            "tags": ", ".join(run.tags),
            "note": run.note,
            "dataset": run_dataset_title(run),
            "created": datetime.fromtimestamp(run.created),
            **{k: None if config is None else config[k] for k in SETTINGS},
            "duration_s": None if config is None else run.duration_s,
            "images_per_s": metrics.get("images_per_s"),
            "message": run.message,
        })
    columns = ["name", "accuracy", "status", "tags", "dataset", *SETTINGS, "duration_s",
               "images_per_s", "created", "run", "note", "message"]
    return pd.DataFrame(rows, columns=columns)


# What the Runs table can be filtered and grouped by: these two, and each compared setting.
STATUS, TAG = "status", "tag"
NO_TAG = "no tag"  # the group of the runs without tags


def field_title(field: str) -> str:
    """A filter's or group's field in words: 'Status', 'Tag', or the setting's label."""
    return {STATUS: "Status", TAG: "Tag"}.get(field) or settings()[field].label


def run_field_values(run: Run, field: str) -> tuple[str, ...]:
    """What a run has for a field, as the filters show it: its status in words, its tags
    (NO_TAG for none), or its setting in words (run_setting_text)."""
    if field == STATUS:
        return (status_text(run),)
    if field == TAG:
        return run.tags or (NO_TAG,)
    return (run_setting_text(run, field),)


def _in_order(value: str):
    """Numbers by their size, before words; words alphabetically, NO_TAG last."""
    try:
        return (0, float(value.replace(",", "")), "")
    except ValueError:
        return (2 if value == NO_TAG else 1, 0.0, value)


def filter_choices(runs: list[Run], field: str) -> list[str]:
    """The values the runs have for a field (run_field_values), each once, in order."""
    found = {v for run in runs for v in run_field_values(run, field)}
    return sorted(found, key=_in_order)


def filter_runs(runs: list[Run], field: str, values) -> list[Run]:
    """The runs (in the given order) that have one of these values for the field; every run
    when no value is chosen."""
    wanted = set(values)
    if not wanted:
        return list(runs)
    return [r for r in runs if wanted & set(run_field_values(r, field))]


def group_table(runs: list[Run], field: str) -> pd.DataFrame:
    """A row per value of the field (a run with two tags counts in both): group, runs (how
    many), mean_accuracy and best_accuracy (%) of those tested (NaN where none was)."""
    rows = []
    for value in filter_choices(runs, field):
        members = filter_runs(runs, field, [value])
        tested = [r.accuracy for r in members if r.accuracy is not None]
        rows.append({"group": value, "runs": len(members),
                     "mean_accuracy": float(np.mean(tested)) if tested else float("nan"),
                     "best_accuracy": max(tested) if tested else float("nan")})
    return pd.DataFrame(rows, columns=["group", "runs", "mean_accuracy", "best_accuracy"])


def settings_table(runs: list[Run], names: dict[str, str] | None = None) -> pd.DataFrame:
    """runs_table of the runs trained here, for comparing settings ("which settings pay off"):
    an import has no settings to be evidence for."""
    return runs_table(trained_runs(runs), names)


def loss_curve(events: list[Event], run_id: str | None = None) -> pd.DataFrame:
    """The stats events as rows: epochs (fractional, for the x axis), loss, images_seen, ..."""
    rows = [{"epochs": (e.images_seen / e.images_per_epoch
                        if e.images_per_epoch else float(e.epoch)),
             "loss": e.loss, "epoch": e.epoch, "minibatch": e.minibatch,
             "images_seen": e.images_seen, "images_per_s": e.images_per_s}
            for e in events if isinstance(e, StatsEvent)]
    frame = pd.DataFrame(rows, columns=["epochs", "loss", "epoch", "minibatch", "images_seen",
                                        "images_per_s"])
    if run_id is not None:
        frame.insert(0, "run", run_id)
    return frame


def epoch_confusions(events: list[Event]) -> dict[int, np.ndarray]:
    """epoch -> the confusion matrix (counts[true, predicted]) of the test after it, for the
    epochs that kept one (runs from before it was kept have none)."""
    return {e.epoch: np.asarray(e.confusion, dtype=np.int64) for e in events
            if isinstance(e, EpochEvent) and e.confusion}


def per_class_by_epoch(events: list[Event], classes: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Each class's test accuracy (%) after each epoch that kept its confusion: epoch, class,
    accuracy."""
    rows = []
    for epoch, matrix in sorted(epoch_confusions(events).items()):
        totals = matrix.sum(axis=1)
        for c, name in enumerate(classes[:len(matrix)]):
            if totals[c]:
                rows.append({"epoch": epoch, "class": name,
                             "accuracy": 100.0 * matrix[c, c] / totals[c]})
    return pd.DataFrame(rows, columns=["epoch", "class", "accuracy"])


def epoch_accuracies(events: list[Event]) -> pd.DataFrame:
    """Test accuracy after each epoch: epoch, test_accuracy (%)."""
    rows = [{"epoch": e.epoch, "test_accuracy": e.test_accuracy}
            for e in events if isinstance(e, EpochEvent)]
    return pd.DataFrame(rows, columns=["epoch", "test_accuracy"])


@dataclass(frozen=True)
class Progress:
    """Where a run is, for a progress bar and one line of text."""

    fraction: float  # 0..1
    text: str
    images_per_s: float | None
    eta_s: float | None
    last_loss: float | None


# A running run with no loss report after this long is said to be slow to report, and why.
SILENT_AFTER_S = 60.0
# A running run whose last loss report is this many times older than the usual time between
# its reports (and at least STALLED_AFTER_S old) has stopped reporting: its last speed and
# time left are stale (a frozen process kept "about 10 min 39 s left" on screen; issue 29).
STALLED_FACTOR = 5
STALLED_AFTER_S = 30.0


def run_progress(run: Run, events: list[Event], now: float | None = None) -> Progress:
    """Progress of a run from its latest events (`now`: the time to measure waits against)."""
    stats = [e for e in events if isinstance(e, StatsEvent)]
    epochs = run.settings["epochs"]
    if run.status == "queued":
        return Progress(0.0, "Waiting for a free slot: another run is training.", None, None,
                        None)
    if not stats:
        if run.status == "running":
            waited = max(0.0, (now or time.time()) - (run.started or run.created))
            if waited < SILENT_AFTER_S:
                return Progress(0.0, "Starting: loading the data and building the network "
                                     f"({format_duration(waited)} so far) ...", None, None,
                                None)
            every = run.settings["log_every"]
            first = ("a twentieth of the run (Log every: automatic)" if every is None else
                     f"{every:,} minibatch{'es' * (every != 1)} (Log every)")
            return Progress(0.0, f"Training, no loss report yet after "
                                 f"{format_duration(waited)}: the first comes after {first}, "
                                 "and a first run on new data also prepares the data.", None,
                            None, None)
        return Progress(1.0 if run.status == "completed" else 0.0,
                        run.message or run.status, None, None, None)
    last = stats[-1]
    fraction = 1.0 if run.status == "completed" else min(1.0, last.fraction_done)
    quiet = _quiet_for(run, last, now)
    if run.status == "running" and quiet is not None:
        silent_s, usual_s = quiet
        why = "the training may be stuck or the machine busy"
        if last.images_per_epoch and last.images_seen >= last.epoch * last.images_per_epoch:
            # The last report of an epoch: its test comes next.
            why = (f"it may be testing the network after epoch {last.epoch}, which takes a "
                   "while, or be stuck")
        text = (f"Epoch {last.epoch} of {epochs} · {last.images_seen:,} images seen · no loss "
                f"report for {format_duration(silent_s)} (one usually comes every "
                f"{format_duration(usual_s)}): {why}. Stop it on the Train page if it does not "
                "go on.")
        return Progress(fraction, text, None, None, last.loss)
    if run.status == "running":
        text = (f"Epoch {last.epoch} of {epochs} · {last.images_seen:,} images seen · "
                f"{last.images_per_s:,.0f} images/s · about "
                f"{format_duration(last.eta_s)} left")
    else:
        # Where it ended: a stop comes between two loss reports, after the last one's count.
        seen = (run.metrics or {}).get("images_seen") or last.images_seen
        text = (f"{status_text(run).capitalize()} after {seen:,} images · "
                f"{last.images_per_s:,.0f} images/s · {format_duration(run.duration_s)}")
    return Progress(fraction, text, last.images_per_s, last.eta_s, last.loss)


def _quiet_for(run: Run, last: StatsEvent, now: float | None) -> tuple[float, float] | None:
    """(seconds since the last loss report, the usual seconds between reports) for a run whose
    reports stopped coming (STALLED_FACTOR times the usual gap, at least STALLED_AFTER_S);
    None while they come as usual, or for a report that carries no time."""
    if last.reported_at is None or last.step <= 0:
        return None
    every, _ = log_every_for(run.settings["log_every"], minibatches_per_epoch(
        last.images_per_epoch or 1, run.settings["batch_size"]), run.settings["epochs"])
    reports = max(1.0, last.step / max(1, every))
    usual = last.elapsed_s / reports  # the tests after each epoch included: they recur too
    silent = (now or time.time()) - last.reported_at
    if silent < max(STALLED_AFTER_S, STALLED_FACTOR * usual):
        return None
    return silent, usual


def per_class_comparison(runs: list[Run], names: dict[str, str] | None = None) -> pd.DataFrame:
    """Long table run, class, accuracy (%) for the runs that have metrics; a run is called by
    its name in `names` (naming.display_names), else by its id."""
    names = names or {}
    rows = [{"run": names.get(run.id, run.id), "class": name, "accuracy": value}
            for run in runs if run.metrics
            for name, value in run.metrics.get("per_class", {}).items()]
    return pd.DataFrame(rows, columns=["run", "class", "accuracy"])


def metrics_csv(run: Run) -> str:
    """A run's metrics as tidy CSV: one row per class plus an 'overall' row, each with the run's
    id and settings, so several runs' files can simply be concatenated."""
    metrics = run.metrics or {}
    per_class = metrics.get("per_class", {})
    confusion = metrics.get("confusion") or []
    rows = []
    for i, (name, value) in enumerate(per_class.items()):
        fits = len(confusion) == len(per_class)
        rows.append({"class": name, "accuracy_percent": value,
                     "correct": confusion[i][i] if fits else None,
                     "total": sum(confusion[i]) if fits else None})
    rows.append({"class": "overall", "accuracy_percent": metrics.get("accuracy"),
                 "correct": sum(confusion[i][i] for i in range(len(confusion))) or None,
                 "total": sum(map(sum, confusion)) or None})
    frame = pd.DataFrame(rows)
    frame.insert(0, "run", run.id)
    config = training_settings(run)
    for key in SETTINGS:
        frame[key] = None if config is None else config[key]
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue()


def default_network(runs: list[Run]) -> Run | None:
    """The run whose network a page shows first (Evaluate, Try it): the newest one with a
    network, its file still there if any has one, one that trained to its end before one that
    was stopped; None when no run has a network. The newest, not the best: a person who has
    just trained a network goes on to look at that one (a sweep's best has its own button);
    not a stopped one, whose network may have barely begun to learn."""
    with_network = runs_with_network(sorted(runs, key=lambda r: (-r.created, r.id)))
    # A stable sort: within each group, files that are there first, then the newest.
    with_network.sort(key=lambda r: (not Path(r.checkpoint).is_file(), r.status != "completed"))
    return with_network[0] if with_network else None


def network_file_name(run: Run) -> str:
    """The name a run's network downloads under: the run's own, so that two downloads do not
    overwrite each other and the file says where it came from."""
    return f"{run.id}-network.pth"

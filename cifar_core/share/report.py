"""A run or a sweep as one HTML file that opens offline in any browser: its settings, charts
(interactive Vega-Lite, the library inlined once, each chart's spec beside it), tables and
pictures (data: URLs), with the date, the machine that made it and the data set. Nothing
in it asks another host for anything, and every text from the store is escaped."""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import time
import warnings
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import torch

from cifar_core.data.grids import tiles, tiles_html, verdict_tiles
from cifar_core.data.load import load_data
from cifar_core.errors import CifarError, RunError
from cifar_core.runs.curves import TEST, LossView, RunCurve, loss_lines
from cifar_core.runs.store import ACTIVE, Run, RunStore
from cifar_core.runs.views import (
    dataset_title,
    epoch_accuracies,
    epoch_confusions,
    format_duration,
    how_it_trained,
    is_import,
    per_class_by_epoch,
    run_setting_text,
    status_text,
)
from cifar_core.share import charts, sweep_charts
from cifar_core.share.offline_page import OfflinePage, escaped
from cifar_core.sweeps.answer import (
    accuracy_by_setting,
    answered_runs,
    heatmap_table,
    parallel_coordinates,
    sweep_runs_table,
    table_names,
    value_text,
    varied_names,
)
from cifar_core.sweeps.engine import best_run
from cifar_core.sweeps.groups import (
    SPREAD_CAPTION,
    best_setting_text,
    best_two_answer,
    groups_table,
    has_repeats,
    setting_groups,
    setting_names,
    value_spreads,
)
from cifar_core.sweeps.importance import importance_answer
from cifar_core.sweeps.progress import curve_runs, panel_title
from cifar_core.sweeps.store import Sweep, SweepStore
from cifar_core.training.checkpoint import load_checkpoint
from cifar_core.training.config import settings
from cifar_core.training.evaluation import Evaluation, evaluate

# A report's loss chart: at most this many loss reports (an even spread of the run's), drawn
# against epochs, smoothed as TensorBoard's default with the loss as measured faint behind.
LOSS_POINTS = 1000
LOSS_VIEW = LossView(smoothing=0.6, log_scale=False, x="epochs")
# The pictures: this many of a fixed random draw of the test split, and as many of the
# mistakes the network was surest of. The draw's seed makes two reports of a run alike.
PICTURES = 24
PICTURE_SEED = 0
# A sweep's small loss charts: at most this many runs, of this many points each.
PANELS = 48
PANEL_POINTS = 30
# The heatmaps of a sweep: one per pair of its first varied settings, at most this many.
HEATMAPS = 3
class ReportError(CifarError):
    """A report that cannot be made or written, in one sentence saying what to do."""


# --- what a report is made of -------------------------------------------------------------------

def made_on(now: float | None = None) -> str:
    """When and where a report is made, in words: the date (UTC), this machine's processor,
    cores and system, and the PyTorch that tested the network."""
    stamp = time.strftime("%d %B %Y, %H:%M UTC", time.gmtime(now or time.time())).lstrip("0")
    cores = os.cpu_count() or 1
    return (f"Made on {stamp} on {cpu_name()} ({cores} core{'s' * (cores != 1)}), "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"PyTorch {torch.__version__} on the CPU.")


def cpu_name() -> str:
    """The processor's name as the system tells it (e.g. 'AMD EPYC 7B13'), else its kind."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "an unknown processor"


# --- a run ---------------------------------------------------------------------------------------

def refusal(run: Run) -> str | None:
    """Why this run cannot have a report, in one sentence saying what to do; None when it can.
    A run still training (or waiting to) has none yet: its network and curves are not final."""
    if run.status in ACTIVE:
        return (f"Run {run.id} is still {'training' if run.status == 'running' else 'waiting'}"
                ": make its report once it has finished (or stop it on the Train page).")
    if not run.checkpoint:
        return (f"Run {run.id} {status_text(run)} without saving a network, so there is "
                "nothing to test: make a report of a run that finished.")
    if not Path(run.checkpoint).is_file():
        return (f"Run {run.id} has no saved network (its file {run.checkpoint} is gone), so "
                "there is nothing to test: make a report of another run.")
    return None


def run_evaluation(run: Run, data_dir: Path | str | None):
    """The run's data and its network tested on that data's test split; ReportError (or the
    data's own error) when it cannot be."""
    problem = refusal(run)
    if problem:
        raise ReportError(problem)
    checkpoint = load_checkpoint(run.checkpoint)
    data = load_data(run.dataset, data_dir, download=False)
    misfit = checkpoint.misfit(data)
    if misfit:
        raise ReportError(f"Run {run.id}: {misfit[:1].lower()}{misfit[1:]}")
    return data, evaluate(checkpoint.model, data, **checkpoint.prediction_options())


def run_report(store: RunStore, run: Run, data_dir: Path | str | None = None, *,
               data=None, evaluation: Evaluation | None = None,
               now: float | None = None) -> str:
    """The run as one HTML page. Its network is tested on its data set's test split (in
    `data_dir`), unless the page that asks passes the data and evaluation it already has."""
    problem = refusal(run)
    if problem:
        raise ReportError(problem)
    if data is None or evaluation is None:
        data, evaluation = run_evaluation(run, data_dir)
    page = OfflinePage(f"Run {run.id}")
    page.add(f"<h1>Run {escaped(run.id)}</h1>")
    page.paragraph(made_on(now), "made")
    page.heading("Summary")
    page.facts(_run_facts(run, evaluation, data))
    page.heading("Settings")
    _settings_section(page, run)
    events = list(store.events(run.id, kind="epoch"))
    _learning_section(page, store, run, [e for _, e in events])
    _tested_section(page, evaluation, [e for _, e in events])
    _pictures_section(page, evaluation, data)
    return page.html()


def _run_facts(run: Run, evaluation: Evaluation, data) -> list[tuple[str, str]]:
    started = run.started or run.created
    facts = [("Status", status_text(run)),
             ("Test accuracy", f"{evaluation.accuracy:.1f} % of {len(evaluation.labels):,} "
                               f"test pictures (guessing: {100 / len(evaluation.classes):.0f} %)"),
             ("Data set", f"{dataset_title(run.dataset)}: {len(data.classes)} classes, "
                          f"{len(data.train_labels):,} training and {len(data.test_labels):,} "
                          "test pictures"),
             ("Classes", ", ".join(evaluation.classes)),
             ("Started", time.strftime("%d %B %Y, %H:%M UTC", time.gmtime(started)).lstrip("0")),
             ("Took", format_duration(run.duration_s))]
    trained = how_it_trained(run)
    if trained:
        facts.append(("Training", trained))
    if run.sweep_id:
        facts.append(("Sweep", f"{run.sweep_id}, trial {run.trial}"))
    if run.message:
        facts.append(("Note", run.message))
    return facts


def _settings_section(page: OfflinePage, run: Run) -> None:
    if is_import(run):
        page.paragraph(f"A network brought from elsewhere "
                       f"({run.config.get('imported_from', 'a file')}, model "
                       f"{run.config.get('model', '?')}): it was not trained here, so it has "
                       "no training settings.")
        return
    declared = settings()
    rows = [(spec.label, run_setting_text(run, name)) for name, spec in declared.items()
            if name in run.settings]
    page.facts(rows)


def _learning_section(page: OfflinePage, store: RunStore, run: Run, epochs: list) -> None:
    page.heading("How it learned")
    curve = RunCurve.read(store, run.id, LOSS_POINTS)
    lines = loss_lines(run, curve.stats, curve.epochs)
    if lines.empty:
        page.paragraph("No loss reports: this network was not trained here.", "note")
    else:
        dots = True if len(lines) <= 100 else alt.OverlayMarkDef(opacity=0)
        tested = (" and, orange, the loss on the test images after each epoch"
                  if (lines["series"] == TEST).any() else "")
        page.chart(charts.loss_chart(lines, dots, LOSS_VIEW, color=charts.SERIES_COLOUR),
                   f"The training loss as it learned (an even spread of its reports, smoothed; "
                   f"faint: as measured){tested}.")
    accuracies = epoch_accuracies(epochs).dropna()
    if not accuracies.empty:
        page.chart(charts.epoch_accuracy_chart(accuracies),
                   "The test accuracy after each epoch.")


def _tested_section(page: OfflinePage, evaluation: Evaluation, epochs: list) -> None:
    classes = tuple(evaluation.classes)
    page.heading("Accuracy per class")
    table = evaluation.per_class_accuracy()
    page.chart(charts.per_class_chart(table),
               "How often it is right for each class; the dashed line is guessing.")
    page.table(table, {"class": "Class", "correct": "Right", "total": "Pictures",
                       "accuracy": "Accuracy (%)"})
    page.heading("Mistaken for what")
    page.chart(charts.confusion_chart(evaluation.confusion_matrix(), classes),
               "Rows: the true class. Columns: what the network said. The diagonal is right; "
               "every other square is a kind of mistake.")
    lines = per_class_by_epoch(epochs, classes)
    confusions = epoch_confusions(epochs)
    if not lines.empty and len(confusions) > 1:
        page.chart(charts.per_class_by_epoch_chart(lines, classes),
                   "Each class's accuracy on the test after each epoch.")


def _pictures_section(page: OfflinePage, evaluation: Evaluation, data) -> None:
    page.heading("Right and wrong")
    count = min(PICTURES, len(evaluation.labels))
    indices = np.random.default_rng(PICTURE_SEED).choice(len(evaluation.labels), count,
                                                         replace=False)
    rows = evaluation.rows(indices)
    captions = [f"{'✓' if r.correct else '✗'} {r.predicted} ({r.confidence:.0%})"
                + ("" if r.correct else f" · is {r.label}") for r in rows.itertuples()]
    images = data.images_at("test", indices)
    page.add(tiles_html(verdict_tiles(images, rows["correct"].tolist(), scale=3), captions))
    page.paragraph(f"Test pictures drawn at random: green frame right, red wrong; the "
                   f"percentage is how sure the network was. {int(rows['correct'].sum())} of "
                   f"{len(rows)} right.", "note")
    worst = evaluation.most_confident_mistakes(PICTURES)
    page.heading("Most confident mistakes")
    if worst.empty:
        page.paragraph("No mistakes at all.")
        return
    page.add(tiles_html(tiles(data.images_at("test", worst["index"]), scale=3),
                        [f"{p} ({c:.0%}) · is {t}" for p, c, t in
                         zip(worst["predicted"], worst["confidence"], worst["label"],
                             strict=True)]))


# --- a sweep -------------------------------------------------------------------------------------

def sweep_report(store: RunStore, sweep: Sweep, now: float | None = None) -> str:
    """The sweep as one HTML page: its runs, best first, and which settings paid off. A sweep
    still running gets the runs finished so far; one with no finished run gets none."""
    runs = SweepStore(store).runs(sweep.id)
    answered = answered_runs(runs)
    if not answered:
        raise ReportError(f"Sweep {sweep.id} has no finished run with a test accuracy yet: "
                          "make its report once one has finished.")
    page = OfflinePage(f"Sweep {sweep.name}")
    page.add(f"<h1>Sweep {escaped(sweep.name)}</h1>")
    page.paragraph(made_on(now), "made")
    page.heading("Summary")
    page.facts(_sweep_facts(sweep, runs))
    names = varied_names(sweep.space, answered)
    best = best_run(runs)
    if best is not None:
        declared = settings()
        chosen = ", ".join(f"{declared[n].label.lower()} {value_text(n, best.settings.get(n))}"
                           for n in names)
        best_text = (f"trial {best.trial} (run {best.id}), {best.accuracy:.1f} % of the test "
                     "pictures right" + (f", with {chosen}" if chosen else ""))
        setting = best_setting_text(sweep.space, runs)
        page.paragraph(f"{setting.replace('**', '')} (its best run: {best_text})." if setting
                       else f"Best: {best_text}.")
        noise = best_two_answer(sweep.space, runs)
        if noise:
            page.paragraph(noise)
    if has_repeats(setting_groups(sweep.space, runs)):
        page.heading("Each setting, over its repeats")
        declared = settings()
        page.table(groups_table(sweep.space, runs),
                   {**{n: declared[n].label for n in setting_names(sweep.space)},
                    "text": "Test accuracy (mean ± spread)", "runs": "Runs"})
        page.paragraph(SPREAD_CAPTION, "note")
    page.heading("Its runs")
    table = sweep_runs_table(sweep.space, runs)
    table["took"] = [format_duration(s) for s in table["duration_s"]]
    declared = settings()
    page.table(table, {"trial": "Trial", "status": "Status",
                       **{n: declared[n].label for n in table_names(sweep.space)},
                       "accuracy": "Test accuracy (%)", "took": "Took", "run": "Run",
                       "message": "Note"})
    _loss_panels(page, store, runs)
    _answer_section(page, sweep, runs, answered, names)
    return page.html()


def _sweep_facts(sweep: Sweep, runs: list[Run]) -> list[tuple[str, str]]:
    finished = sum(r.status not in ACTIVE for r in runs)
    return [("Sweep", sweep.id),
            ("Status", sweep.status + (" (the report holds the runs finished so far)"
                                       if sweep.is_active else "")),
            ("Data set", dataset_title(sweep.dataset)),
            ("Started", time.strftime("%d %B %Y, %H:%M UTC",
                                      time.gmtime(sweep.created)).lstrip("0")),
            ("Runs", f"{len(runs)} ({finished} finished)"),
            ("Search", f"{sweep.space.strategy}, on {sweep.engine} engine"),
            *([("Note", sweep.message)] if sweep.message else [])]


def _loss_panels(page: OfflinePage, store: RunStore, runs: list[Run]) -> None:
    shown = curve_runs(runs, PANELS)
    frames = []
    for run in shown:
        read = RunCurve.read(store, run.id, PANEL_POINTS)
        curve = loss_lines(run, read.stats, read.epochs)
        if not curve.empty:
            frames.append(curve.assign(title=panel_title(run), status=status_text(run)))
    if frames:
        page.heading("Each run's loss")
        frame = pd.concat(frames)
        more = f" The first {PANELS} of {len(runs)} runs." if len(runs) > len(shown) else ""
        tested = ("; dashed: the loss on the test images after each epoch"
                  if (frame["series"] == TEST).any() else "")
        page.chart(charts.loss_panels_chart(frame, [panel_title(r) for r in shown], LOSS_VIEW),
                   f"Training loss of each run, coloured by its status, smoothed (faint: as "
                   f"measured){tested}.{more}")


def _answer_section(page: OfflinePage, sweep: Sweep, runs: list[Run], answered: list[Run],
                    names: list[str]) -> None:
    declared = settings()
    page.heading("Which settings pay off")
    if len(names) >= 2 and has_repeats(setting_groups(sweep.space, runs)):
        page.chart(sweep_charts.settings_chart(groups_table(sweep.space, runs)),
                   "Each setting's mean test accuracy, the best on top. " + SPREAD_CAPTION)
    if len(names) >= 2:
        best = best_run(runs)
        page.chart(sweep_charts.parallel_chart(parallel_coordinates(sweep.space, answered, names),
                                         best.id if best else None),
                   "One line per run, through the value of each setting it varied and its "
                   "test accuracy, coloured by that accuracy from dark purple (lowest) to "
                   "yellow (highest); the thick line is the best run.")
        pairs = [(x, y) for i, x in enumerate(names) for y in names[i + 1:]][:HEATMAPS]
        for x, y in pairs:
            page.chart(sweep_charts.heatmap_chart(heatmap_table(answered, x, y), declared[x].label,
                                            declared[y].label),
                       f"Mean test accuracy of the runs with each pair of values of "
                       f"{declared[x].label.lower()} and {declared[y].label.lower()}.")
    elif len(names) == 1:
        name = names[0]
        spreads = value_spreads(answered, name)
        repeated = f" {SPREAD_CAPTION}" if (spreads["runs"] > 1).any() else ""
        page.chart(sweep_charts.one_setting_chart(accuracy_by_setting(answered, name),
                                                  declared[name], spreads),
                   f"Test accuracy of each run against its {declared[name].label.lower()}; the "
                   f"dashed line joins the means.{repeated}")
    else:
        page.paragraph("The finished runs do not differ in any setting the sweep varies.")
    if not names:
        return
    page.heading("Which settings mattered")
    with warnings.catch_warnings():  # equal importances are an answer, not a warning
        warnings.simplefilter("ignore", UserWarning)
        answer = importance_answer(sweep.space, runs)
    if answer.importance is None:
        page.paragraph(answer.note, "note")
        for line in answer.lines:
            page.paragraph(line)
        return
    page.chart(sweep_charts.importance_chart(answer.importance), answer.note)


# --- a run or a sweep, by id; the file ------------------------------------------------------

def report_for(store: RunStore, target: str, data_dir: Path | str | None = None,
               now: float | None = None) -> tuple[str, str]:
    """('run' or 'sweep', the HTML) for a run's or a sweep's id; ReportError for neither."""
    try:
        return "sweep", sweep_report(store, SweepStore(store).get(target), now)
    except RunError as sweep_missing:
        if "There is no sweep" not in str(sweep_missing):
            raise
    try:
        run = store.get(target)
    except RunError as exc:
        if "There is no run" not in str(exc):
            raise
        raise ReportError(f"There is no run or sweep '{target}'. List them with 'python -m "
                          "cifar_core runs list' and 'python -m cifar_core sweep list'.") from None
    return "run", run_report(store, run, data_dir, now=now)


def write_report(text: str, out: Path | str) -> int:
    """Write the report to `out` whole or not at all (a temporary file beside it, then moved
    into place); its size in bytes. ReportError in a sentence when it cannot be written."""
    out = Path(out)
    data = text.encode("utf-8")
    if out.is_dir():
        raise ReportError(f"{out} is a folder: give a file name ending in .html.")
    # A name of its own beside the file, made as any file here (the umask's permissions; a
    # NamedTemporaryFile would leave the report readable by its owner only).
    temporary = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    try:
        with open(temporary, "xb") as file:
            file.write(data)
        os.replace(temporary, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        raise ReportError(f"Cannot write the report to {out} ({reason.lower()}): choose a "
                          "file in a folder you can write to.") from None
    return len(data)


def size_text(size: int) -> str:
    """A file's size in words: 850 KB, 1.4 MB."""
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{max(1, round(size / 1e3))} KB"

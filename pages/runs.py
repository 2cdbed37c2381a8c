"""Runs page: every training so far, side by side; cause and effect of the settings."""

import functools
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from cifar_core import CifarError
from cifar_core.runs.annotations import clean_name, clean_note, clean_tags
from cifar_core.runs.names import markdown_text
from cifar_core.runs.naming import display_names
from cifar_core.runs.picked import ticked_rows, ticks_applied
from cifar_core.runs.store import Run
from cifar_core.runs.views import (
    SETTINGS,
    STATUS,
    TAG,
    field_title,
    filter_choices,
    filter_runs,
    format_duration,
    group_table,
    metrics_csv,
    named_label,
    network_file_name,
    per_class_comparison,
    run_dataset_title,
    run_setting_text,
    runs_table,
    settings_table,
    status_text,
    why_not_comparable,
)
from cifar_core.share import charts, links
from cifar_core.share.curves_csv import curves_csv
from cifar_core.sweeps.progress import sweep_label
from cifar_core.sweeps.store import SweepStore
from cifar_core.training.config import Setting, settings
from pages.shared import access, layout, links_ui, loss_ui, navigation
from pages.shared.export_ui import export_ui
from pages.shared.repeats_ui import repeats_ui
from pages.shared.report_ui import run_report_ui

# The loss chart draws at most this many reports in all, an even spread of each run's
# (cifar_core.runs.curves): a browser draws a few thousand points at once, 100,000 in seconds.
CHART_POINTS = 2000
# Below this many points per run each report is drawn as a dot too.
DOTS_UP_TO = 100
# The scatter's points (area in square pixels), and the room kept around the plot for their
# radius: a run at the best accuracy was cut in half by the chart's top edge.
POINT_SIZE = 120
POINT_ROOM = 8
COMPARED = "compare_runs"  # the runs compared, by id: the box's value and the tables' ticks


def run_loss_curve(run: Run, points: int, name: str | None = None) -> pd.DataFrame:
    """The run's loss lines from at most `points` of its loss reports, with its test loss (a
    finished run's read once per server process), called `name` in the legend."""
    lines = loss_ui.run_loss_lines(run, points)
    return lines if name is None or "run" not in lines else lines.assign(run=name)


def setting_column(name: str, spec: Setting):
    """A Runs-table column for a setting, from its declaration."""
    if spec.kind is bool:  # on or off, e.g. Nesterov momentum
        return st.column_config.CheckboxColumn(spec.label, help=spec.help)
    if spec.kind is str or spec.optional:  # text: choices, or 'all'/'random' for none
        return st.column_config.TextColumn(spec.label, help=spec.help)
    return st.column_config.NumberColumn(spec.label, format=spec.format, help=spec.help)


def runs_table_ui(runs: list[Run], names: dict[str, str], key: str = "runs_table") -> None:
    """These runs as a table, their names and accuracies first, a column per compared
    setting, the runs being compared ticked; ticking or unticking a row adds its run to the
    comparison or takes it out."""
    table = runs_table(runs, names)
    table["status"] = [status_text(r) for r in runs]  # 'stopped early' for a pruned run
    table["duration"] = [format_duration(s) for s in table["duration_s"]]
    # Text, so that a run without a speed (queued, failed) shows '-', not a table's "None".
    table["images_per_s"] = ["-" if v != v or v is None else f"{v:,.0f}"
                             for v in table["images_per_s"]]
    declared = settings()
    for name in SETTINGS:
        if declared[name].optional:  # '-' where it does not apply (a tutorial run's width)
            table[name] = [run_setting_text(run, name) for run in runs]
    shown = table[["name", "accuracy", "status", "tags", "dataset", *SETTINGS, "duration",
                   "images_per_s", "created", "run", "note", "message"]]
    ids = [r.id for r in runs]
    # The ticks follow the runs compared, by id: rows move when a run is deleted.
    rows = ticked_rows(ids, st.session_state.get(COMPARED, []))
    if sorted(selected_rows(st.session_state.get(key))) != rows:  # (rows in click order)
        st.session_state[key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    st.dataframe(
        shown, hide_index=True, width="stretch", selection_mode="multi-row", key=key,
        # The rows the browser sends are positions in the table it shows: this one's ids.
        on_select=functools.partial(_ticked, key, ids),
        column_config={
            "name": st.column_config.TextColumn(
                "Name", pinned=True, help="Its own name, or one made from what differs from "
                "the runs around it. Change it under 'One run' below."),
            "run": "Run", "status": "Status", "tags": "Tags", "note": "Note",
            "dataset": st.column_config.TextColumn(
                "Data set", help="What it trained and was tested on: accuracies of different "
                "data sets are not comparable."),
            **{name: setting_column(name, declared[name]) for name in SETTINGS},
            "accuracy": st.column_config.ProgressColumn("Test accuracy", format="%.1f %%",
                                                        min_value=0, max_value=100),
            "duration": "Took",
            "images_per_s": st.column_config.TextColumn(
                "Images/s", help="Training images per second of the run's wall "
                "time, writing its loss reports included, the tests after each epoch not."),
            "created": st.column_config.DatetimeColumn("Started", format="D MMM, HH:mm"),
            "message": "Message",
        })


def selected_rows(state) -> list[int]:
    """The row positions a table's selection state holds (none for no state)."""
    return list(((state or {}).get("selection") or {}).get("rows") or [])


def _ticked(key: str, ids: list[str]) -> None:
    """Rows ticked or unticked in a table that showed these runs: the comparison takes in the
    ticked runs and lets go of the unticked ones of this table (the others stay)."""
    st.session_state[COMPARED] = ticks_applied(
        st.session_state.get(COMPARED, []), ids, selected_rows(st.session_state.get(key)))


def filter_group_ui(runs: list[Run]) -> list[Run]:
    """Filter the tables by a setting, a tag or the status, and group the runs by a setting
    or a tag (a table of groups: how many runs, their mean and best accuracy); returns the
    runs the filter lets through."""
    fields = [None, STATUS, TAG, *SETTINGS]
    c1, c2, c3 = st.columns([1, 2, 1])
    field = c1.selectbox("Show only runs by", fields, key="runs_filter_field",
                         format_func=lambda f: "every run" if f is None else field_title(f))
    if field is not None:
        values = c2.multiselect(f"{field_title(field)} is", filter_choices(runs, field),
                                key="runs_filter_values", placeholder="any")
        runs = filter_runs(runs, field, values)
    grouped = c3.selectbox("Group by", [None, TAG, *SETTINGS], key="runs_group_by",
                           format_func=lambda f: "no groups" if f is None else field_title(f))
    if grouped is not None and runs:
        st.dataframe(
            group_table(runs, grouped), hide_index=True, width="stretch", key="runs_groups",
            column_config={
                "group": field_title(grouped), "runs": "Runs",
                "mean_accuracy": st.column_config.NumberColumn("Mean test accuracy",
                                                               format="%.1f %%"),
                "best_accuracy": st.column_config.NumberColumn("Best test accuracy",
                                                               format="%.1f %%")})
        st.caption("A run with two tags counts in both groups; runs not tested yet count, "
                   "but have no accuracy.")
    if not runs:
        st.caption("No run matches: choose other values, or show every run.")
    return runs


def grouped_tables_ui(runs: list[Run], names: dict[str, str],
                      address: links.Address) -> str | None:
    """The runs outside sweeps in one table, and one sweep's runs in another: the sweep
    chosen in a menu (the address's, else the newest); returns its id (None: no sweep). One
    table per sweep made every click redraw hundreds of them (bench/RESULTS.md, issue 29)."""
    sweeps = SweepStore(access.store()).list()
    named = links.checked_sweep(address, existing={s.id for s in sweeps})
    links_ui.notices_ui(named)
    if named.value:
        st.session_state.runs_sweep = named.value
    members: dict[str, list[Run]] = {}
    for run in runs:
        members.setdefault(run.sweep_id, []).append(run)
    alone = [r for r in runs if r.sweep_id not in {s.id for s in sweeps}]
    if alone:
        runs_table_ui(alone, names)
    with_runs = [s for s in sweeps if members.get(s.id)]
    if not with_runs:
        return None
    st.markdown(f"**Runs of a sweep** ({len(with_runs):,} "
                f"sweep{'s' * (len(with_runs) != 1)})")
    labels = {s.id: f"Sweep {sweep_label(s, members[s.id])}" for s in with_runs}
    if st.session_state.get("runs_sweep") not in labels:
        st.session_state.runs_sweep = next(iter(labels))
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    sweep_id = c1.selectbox("Sweep", list(labels), format_func=labels.get, key="runs_sweep")
    if c2.button("Open it on the Sweep page", icon=":material/travel_explore:",
                 key="open_sweep"):
        st.session_state.sw_chosen = sweep_id
        st.switch_page(navigation.SWEEP)
    runs_table_ui(members[sweep_id], names, key="runs_table_sweep")
    return sweep_id


def keep_picked(runs: list[Run]) -> None:
    """The runs compared, by id (the newest three at first), before the tables tick them: the
    box and the tables' ticks hold the same runs, and a deleted run leaves both."""
    there = {r.id for r in runs}
    picked = [i for i in st.session_state.get(COMPARED, [r.id for r in runs[:3]])
              if i in there]
    if st.session_state.get(COMPARED) != picked:
        st.session_state[COMPARED] = picked


def compare_ui(runs: list[Run], names: dict[str, str]) -> None:
    by_id = {r.id: r for r in runs}
    labels = {r.id: named_label(r, names) for r in runs}
    chosen = st.multiselect("Runs to compare (or tick rows above)", list(by_id),
                            format_func=labels.get, key=COMPARED)
    if not chosen:
        return
    different = why_not_comparable([by_id[i] for i in chosen])
    if different:
        st.warning(different, icon=":material/compare_arrows:")
    points = max(2, CHART_POINTS // len(chosen))
    curves = [run_loss_curve(by_id[i], points, names.get(i)) for i in chosen]
    curves = [c for c in curves if not c.empty]
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Loss**")
        if curves:
            frame = pd.concat(curves)
            view = loss_ui.loss_view_ui("compare_loss")
            # Many dots hide the lines; invisible ones still carry the tooltips.
            dots = True if max(map(len, curves)) <= DOTS_UP_TO else alt.OverlayMarkDef(opacity=0)
            st.altair_chart(charts.loss_chart(frame, dots, view), width="stretch")
            st.caption("A long run's loss is drawn from an even spread of its reports, so "
                       "that the chart stays quick. "
                       + loss_ui.lines_caption(frame, view))
        else:
            st.caption("No loss reports yet.")
    with c2:
        st.markdown("**Test accuracy per class**")
        per_class = per_class_comparison([by_id[i] for i in chosen], names)
        if per_class.empty:
            st.caption("No run among these has been tested on the test images yet.")
        else:
            st.altair_chart(charts.per_class_comparison_chart(per_class), width="stretch")


def scatter_ui(runs: list[Run], names: dict[str, str]) -> None:
    st.subheader("Which settings pay off")
    titles = list(dict.fromkeys(run_dataset_title(r) for r in runs if r.accuracy is not None))
    if len(titles) > 1:  # accuracies of two data sets do not compare: one at a time
        shown = st.radio("Data set", titles, horizontal=True, key="scatter_dataset",
                         help="Each data set's pictures make it easier or harder, so only runs "
                              "of one data set are compared here.")
        runs = [r for r in runs if run_dataset_title(r) == shown]
    # (imports have no settings)
    table = settings_table(runs, names).dropna(subset=["accuracy"])
    if len(table) < 2:
        st.caption("Finish at least two runs with different settings to see a pattern here.")
        return
    declared = settings()
    setting = st.radio("Setting", list(SETTINGS), format_func=lambda n: declared[n].label,
                       horizontal=True, key="scatter_setting")
    spec = declared[setting]
    if spec.kind in (str, bool):  # a choice, e.g. the model, or on/off: a column per value
        x = alt.X(f"{setting}:N", title=spec.label, axis=alt.Axis(labelAngle=0))
    else:
        x = alt.X(f"{setting}:Q", title=spec.label,
                  scale=alt.Scale(type="log" if spec.log_scale else "linear", zero=False))
    # Every field typed: Altair would otherwise read each column of a thousand runs to guess.
    chart = alt.Chart(table).mark_circle(size=POINT_SIZE, opacity=0.8).encode(
        x=x, y=alt.Y("accuracy:Q", title="test accuracy (%)",
                     scale=alt.Scale(padding=POINT_ROOM)),
        color=alt.Color("status:N"),
        tooltip=[alt.Tooltip("name:N", title="run"),
                 *[alt.Tooltip(f"{n}:N", title=declared[n].label) for n in SETTINGS],
                 alt.Tooltip("accuracy:Q", format=".1f")])
    st.altair_chart(chart.properties(height=300), width="stretch")


def annotate_ui(run: Run, names: dict[str, str]) -> None:
    """The run's name (empty: the one made from its settings), tags and note, kept when
    saved; what is wrong with them said in words."""
    keys = {field: f"run_{field}_{run.id}" for field in ("name", "tags", "note")}
    for field, value in (("name", run.name or ""), ("tags", ", ".join(run.tags)),
                         ("note", run.note)):
        st.session_state.setdefault(keys[field], value)
    c1, c2 = st.columns([2, 1])
    c1.text_input("Name", key=keys["name"], placeholder=names.get(run.id, ""), max_chars=200,
                  help="Empty: a name made from what differs from the runs around it.")
    c2.text_input("Tags", key=keys["tags"], placeholder="e.g. baseline, lr-search",
                  help="Short words, separated by commas or spaces, to filter and group runs "
                       "by.")
    st.text_area("Note", key=keys["note"], height=80,
                 placeholder="What you tried, and what came of it")
    st.button("Save name, tags and note", icon=":material/save:", key="run_save",
              on_click=_save_annotations, args=(run.id, keys))
    problem = st.session_state.pop("run_save_problem", None)
    if problem:
        st.error(problem, icon=":material/error:")


def _save_annotations(run_id: str, keys: dict[str, str]) -> None:
    """Keep what the name, tags and note fields hold (before the page is drawn again, so that
    its tables and menus show the new name); the fields then show what was kept."""
    store, state = access.store(), st.session_state
    try:  # all three checked before any is kept: a bad tag keeps the name from changing too
        clean_name(state[keys["name"]])
        clean_tags(state[keys["tags"]].replace(",", " ").split())
        clean_note(state[keys["note"]])
        store.set_name(run_id, state[keys["name"]])
        store.set_tags(run_id, state[keys["tags"]].replace(",", " ").split())
        run = store.set_note(run_id, state[keys["note"]])
    except CifarError as exc:
        state["run_save_problem"] = str(exc)
        return
    state[keys["name"]], state[keys["tags"]] = run.name or "", ", ".join(run.tags)
    state[keys["note"]] = run.note
    st.toast(f"Saved: {markdown_text(run.name or 'name made from its settings')}",
             icon=":material/save:")


def files_ui(runs: list[Run], names: dict[str, str]) -> None:
    st.subheader("One run: its name, note and files")
    by_id = {r.id: r for r in runs}
    labels = {r.id: named_label(r, names) for r in runs}
    run_id = st.selectbox("Run", list(by_id), format_func=labels.get, key="files_run")
    run = by_id[run_id]
    annotate_ui(run, names)
    c1, c2, c3 = st.columns([2, 1, 1])  # the network's button names its file: room for it
    if run.checkpoint and Path(run.checkpoint).is_file():
        name = network_file_name(run)
        # Read when clicked, not on every visit (a large network is tens of MB).
        c1.download_button(f"Network ({name})", lambda: Path(run.checkpoint).read_bytes(),
                           file_name=name, icon=":material/download:",
                           mime="application/octet-stream", key="dl_checkpoint")
    else:
        c1.caption("No saved network for this run.")
    if run.metrics:
        c2.download_button("Metrics (CSV)", metrics_csv(run), file_name=f"{run.id}-metrics.csv",
                           mime="text/csv", icon=":material/table:", key="dl_metrics")
    if run.started is not None:  # every loss report and epoch's test: read when clicked
        c2.download_button("Curves (CSV)", lambda: curves_csv(access.store(), run),
                           file_name=f"{run.id}-curves.csv", mime="text/csv",
                           icon=":material/show_chart:", key="dl_curves",
                           help="Every loss report and the test after each epoch (loss and "
                                "accuracy), a row each, for a spreadsheet or pandas.")
    if run.status == "running":
        c3.caption("A running run cannot be deleted: stop it on the Train page first.")
    else:
        layout.delete_with_confirmation_ui(
            c3, run.id, f"Delete run {run.id} and its files for good?", "Delete this run ...",
            lambda: access.runner().delete(run.id), f"Deleted run {run.id}.")
    export_ui(run, key="runs")
    run_report_ui(run, key="runs")


@layout.guard
def main() -> None:
    layout.page_header("Runs", "Every training so far, a sweep's runs under their sweep. Tick "
                       "rows to compare them: the loss curves show how fast each one learned, "
                       "the bars what each one learned.")
    runs = access.store().list()
    if not runs:
        st.info("No runs yet: start one on the Train page.", icon=":material/info:")
        st.page_link(navigation.TRAIN, label="Go to Train", icon=":material/model_training:")
        return
    address = links_ui.new_address()  # a link opened: the runs compared and the sweep shown
    compared = links.checked_runs(address, existing={r.id for r in runs})
    links_ui.notices_ui(compared)
    if compared.value:
        st.session_state[COMPARED] = list(compared.value)
    keep_picked(runs)
    names = display_names(runs)  # of every run, so that each reads as it does on other pages
    sweep_id = grouped_tables_ui(filter_group_ui(runs), names, address)
    repeats_ui(runs)
    compare_ui(runs, names)
    links_ui.keep_address(compare=st.session_state.get(COMPARED), sweep=sweep_id)
    scatter_ui(runs, names)
    files_ui(runs, names)


navigation.run_inside_app(main)

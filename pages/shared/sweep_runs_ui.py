"""The Sweep page's view of a sweep's runs: a small loss chart per run coloured by its status,
and the runs in a table, the best first and highlighted (the tables from sweeps.progress
and sweeps.answer)."""

import zlib

import pandas as pd
import streamlit as st

from cifar_core.runs.store import Run
from cifar_core.runs.views import format_duration, status_text
from cifar_core.share import charts
from cifar_core.sweeps.answer import sweep_runs_table, table_names
from cifar_core.sweeps.groups import (
    SPREAD_CAPTION,
    groups_table,
    has_repeats,
    setting_groups,
    setting_names,
)
from cifar_core.sweeps.progress import curve_runs, panel_title
from cifar_core.sweeps.store import Sweep
from cifar_core.training.config import settings
from pages.shared import loss_ui

# The small loss charts: at most this many runs, of this many points each.
PANELS = 48
PANEL_POINTS = 30

def run_curve(run: Run, points: int) -> pd.DataFrame:
    """A run's loss lines from at most `points` of its loss reports, with its test loss."""
    return loss_ui.run_loss_lines(run, points)


def small_multiples_ui(runs: list[Run]) -> None:
    """A small loss chart per run, coloured by how it stands."""
    shown = curve_runs(runs, PANELS)
    frames = []
    for run in shown:
        curve = run_curve(run, PANEL_POINTS)
        if not curve.empty:
            frames.append(curve.assign(title=panel_title(run), status=status_text(run),
                                       trial=run.trial))
    if not frames:
        st.caption("The loss charts start with the runs' first reports.")
        return
    frame = pd.concat(frames)
    order = [panel_title(r) for r in shown]
    present = [s for s in charts.STATUS_COLOURS if s in set(frame["status"])]
    view = loss_ui.loss_view_ui("sw_panels")
    chart = charts.loss_panels_chart(frame, order, view)
    # A key that changes with the panels: Streamlit kept drawing a faceted chart's old panels
    # after the sweep's last runs finished (seen in Chromium), a new element draws them afresh.
    panels = zlib.crc32("|".join(order + present).encode())
    st.altair_chart(chart, width="content", key=f"sw_panels_{panels}")
    more = f" The first {PANELS} of {len(runs)} runs." if len(runs) > len(shown) else ""
    st.caption(f"Training loss of each run, coloured by its status.{more} "
               + loss_ui.lines_caption(frame, view))


def runs_table_ui(sweep: Sweep, runs: list[Run], key: str) -> None:
    """The sweep's runs, best first, the best one highlighted."""
    table = sweep_runs_table(sweep.space, runs)
    table["took"] = [format_duration(s) for s in table["duration_s"]]
    declared = settings()
    names = table_names(sweep.space)
    styled = table.style.apply(
        lambda row: ["background-color: rgba(84, 162, 75, 0.25)" if row["best"] else ""]
        * len(row), axis=1)
    st.dataframe(
        styled, hide_index=True, width="stretch", key=key,
        column_order=["trial", "status", *names, "accuracy", "took", "run", "message"],
        column_config={
            "trial": st.column_config.NumberColumn("Trial", format="%d"),
            "status": "Status",
            **{n: st.column_config.TextColumn(declared[n].label) for n in names},
            "accuracy": st.column_config.ProgressColumn("Test accuracy", format="%.1f %%",
                                                        min_value=0, max_value=100),
            "took": "Took", "run": "Run", "message": "Note"})


def settings_table_ui(sweep: Sweep, runs: list[Run], key: str) -> None:
    """Where settings ran more than once: a row per setting, its mean and spread, the best mean
    first and highlighted (nothing otherwise: the runs' table says it all)."""
    if not has_repeats(setting_groups(sweep.space, runs)):
        return
    table = groups_table(sweep.space, runs)
    declared = settings()
    names = setting_names(sweep.space)
    styled = table.style.apply(
        lambda row: ["background-color: rgba(84, 162, 75, 0.25)" if row["best"] else ""]
        * len(row), axis=1)
    st.markdown("**Each setting, over its repeats**")
    st.dataframe(
        styled, hide_index=True, width="stretch", key=key,
        column_order=[*names, "text", "runs", "low", "high"],
        column_config={
            **{n: st.column_config.TextColumn(declared[n].label) for n in names},
            "text": "Test accuracy (mean ± spread)",
            "runs": st.column_config.NumberColumn("Runs", format="%d"),
            "low": st.column_config.NumberColumn("Bar from", format="%.1f %%"),
            "high": st.column_config.NumberColumn("Bar to", format="%.1f %%")})
    st.caption(SPREAD_CAPTION)

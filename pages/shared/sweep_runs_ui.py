"""The Sweep page's view of a sweep's runs: a small loss chart per run coloured by its status,
and the runs in a table, the best first and highlighted (the tables from sweeps.progress
and sweeps.answer)."""

import zlib

import altair as alt
import pandas as pd
import streamlit as st

from cifar_core.runs.store import Run
from cifar_core.runs.views import format_duration, loss_curve, status_text
from cifar_core.sweeps.answer import sweep_runs_table, varied_names
from cifar_core.sweeps.progress import curve_runs, panel_title
from cifar_core.sweeps.store import Sweep
from cifar_core.training.config import settings
from pages.shared import access

STATUS_COLOURS = {"completed": "#54A24B", "running": "#4C78A8", "queued": "#9D9D9D",
                  "stopped": "#F58518", "stopped early": "#B279A2", "diverged": "#E45756",
                  "failed": "#E45756"}
STATUS_COLOUR = alt.Color("status:N", title="status", scale=alt.Scale(
    domain=list(STATUS_COLOURS), range=list(STATUS_COLOURS.values())))
# The small loss charts: at most this many runs, of this many points each.
PANELS = 48
PANEL_POINTS = 30

def run_curve(run: Run, points: int) -> pd.DataFrame:
    """A run's loss reports, at most `points` of them (an even spread)."""
    return loss_curve(access.loss_reports(run, points))


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
    present = [s for s in STATUS_COLOURS if s in set(frame["status"])]
    chart = alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=alt.X("epochs:Q", title="epochs", axis=alt.Axis(format="~g")),
        y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False),
                  axis=alt.Axis(format=".3~f")),
        # Only the statuses there are, each in its own colour whichever others are missing.
        color=alt.Color("status:N", title="status", legend=alt.Legend(orient="top"),
                        scale=alt.Scale(domain=present,
                                        range=[STATUS_COLOURS[s] for s in present])),
        tooltip=["title:N", "status:N", alt.Tooltip("epochs:Q", format=".2f"),
                 alt.Tooltip("loss:Q", format=".3f")],
    ).properties(width=150, height=90).facet(
        facet=alt.Facet("title:N", sort=order, title=None), columns=4)
    # A key that changes with the panels: Streamlit kept drawing a faceted chart's old panels
    # after the sweep's last runs finished (seen in Chromium), a new element draws them afresh.
    panels = zlib.crc32("|".join(order + present).encode())
    st.altair_chart(chart, width="content", key=f"sw_panels_{panels}")
    more = f" The first {PANELS} of {len(runs)} runs." if len(runs) > len(shown) else ""
    st.caption(f"Training loss of each run, coloured by its status.{more}")


def runs_table_ui(sweep: Sweep, runs: list[Run], key: str) -> None:
    """The sweep's runs, best first, the best one highlighted."""
    table = sweep_runs_table(sweep.space, runs)
    table["took"] = [format_duration(s) for s in table["duration_s"]]
    declared = settings()
    names = varied_names(sweep.space)
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

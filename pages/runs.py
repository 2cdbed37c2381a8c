"""Runs page: every training so far, side by side; cause and effect of the settings."""

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from cifar_core.config import Setting, settings
from cifar_core.curves import RunCurve
from cifar_core.runs import Run
from cifar_core.summaries import (
    SETTINGS,
    format_duration,
    loss_curve,
    metrics_csv,
    per_class_comparison,
    run_label,
    run_setting_text,
    runs_table,
    settings_table,
    status_text,
)
from cifar_core.sweep_store import SweepStore
from cifar_core.sweep_views import sweep_label
from pages.shared import access, layout, navigation

# Run ids are long: a legend under the chart leaves the plot its full width.
RUN_COLOR = alt.Color("run:N", title="run", legend=alt.Legend(orient="bottom", columns=1))
# The loss chart draws at most this many reports in all, an even spread of each run's
# (cifar_core.curves): a browser draws a few thousand points at once, 100,000 in seconds.
CHART_POINTS = 2000
# Below this many points per run each report is drawn as a dot too.
DOTS_UP_TO = 100


# A finished run's curve never changes: its spread is read once per server process, not on
# every click (an active run's is read each time).
@st.cache_data(max_entries=64, show_spinner=False)
def finished_loss_curve(runs_dir: str, run_id: str, finished: float, points: int) -> pd.DataFrame:
    curve = RunCurve.read(access.get_store(runs_dir), run_id, points)
    return loss_curve(curve.stats, run_id=run_id)


def run_loss_curve(run: Run, points: int) -> pd.DataFrame:
    """The run's loss reports as a curve of at most `points` points."""
    if run.finished is not None and not run.is_active:
        return finished_loss_curve(access.runs_dir(), run.id, run.finished, points)
    return loss_curve(RunCurve.read(access.store(), run.id, points).stats, run_id=run.id)


def setting_column(name: str, spec: Setting):
    """A Runs-table column for a setting, from its declaration."""
    if spec.kind is bool:  # on or off, e.g. Nesterov momentum
        return st.column_config.CheckboxColumn(spec.label, help=spec.help)
    if spec.kind is str or spec.optional:  # text: choices, or 'all'/'random' for none
        return st.column_config.TextColumn(spec.label, help=spec.help)
    return st.column_config.NumberColumn(spec.label, format=spec.format, help=spec.help)


def runs_table_ui(runs: list[Run], key: str = "runs_table") -> list[str]:
    """These runs as a table, a column per compared setting; returns the ids of ticked rows."""
    table = runs_table(runs)
    table["status"] = [status_text(r) for r in runs]  # 'stopped early' for a pruned run
    table["duration"] = [format_duration(s) for s in table["duration_s"]]
    # Text, so that a run without a speed (queued, failed) shows '-', not a table's "None".
    table["images_per_s"] = ["-" if v != v or v is None else f"{v:,.0f}"
                             for v in table["images_per_s"]]
    declared = settings()
    for name in SETTINGS:
        if declared[name].optional:  # '-' where it does not apply (a tutorial run's width)
            table[name] = [run_setting_text(run, name) for run in runs]
    shown = table[["run", "status", *SETTINGS, "accuracy", "duration", "images_per_s",
                   "created", "message"]]
    event = st.dataframe(
        shown, hide_index=True, width="stretch", on_select="rerun",
        selection_mode="multi-row", key=key,
        column_config={
            "run": "Run", "status": "Status",
            **{name: setting_column(name, declared[name]) for name in SETTINGS},
            "accuracy": st.column_config.ProgressColumn("Test accuracy", format="%.1f %%",
                                                        min_value=0, max_value=100),
            "duration": "Took",
            "images_per_s": st.column_config.TextColumn(
                "Images/s", help="Training images per second of the run's wall "
                "time, writing its loss reports included, the tests after each epoch not."),
            "created": st.column_config.DatetimeColumn("Started", format="D MMM, HH:mm"),
            "message": "Note",
        })
    rows = (event or {}).get("selection", {}).get("rows", [])
    return [table.iloc[i]["run"] for i in rows]


def grouped_tables_ui(runs: list[Run]) -> list[str]:
    """The runs outside sweeps in one table, each sweep's runs under it in their own (newest
    sweep first); returns the ids of the rows ticked in any of them."""
    sweeps = SweepStore(access.store()).list()
    known = {s.id for s in sweeps}
    alone = [r for r in runs if r.sweep_id not in known]
    picked = runs_table_ui(alone) if alone else []
    for sweep in sweeps:
        members = [r for r in runs if r.sweep_id == sweep.id]
        if not members:
            continue
        with st.expander(f"Sweep {sweep_label(sweep, members)}", icon=":material/travel_explore:"):
            picked += runs_table_ui(members, key=f"runs_table_{sweep.id}")
            if st.button("Open it on the Sweep page", icon=":material/travel_explore:",
                         key=f"open_sweep_{sweep.id}"):
                st.session_state.sw_chosen = sweep.id
                st.switch_page(navigation.SWEEP)
    return picked


def compare_ui(runs: list[Run], picked: list[str]) -> None:
    by_id = {r.id: r for r in runs}
    default = picked or [r.id for r in runs[:3]]
    # Ticking rows replaces the choice (the box keeps its own state otherwise); the box can
    # still change it afterwards.
    if picked and picked != st.session_state.get("compare_ticked"):
        st.session_state.compare_ticked = picked
        st.session_state.compare_runs = [i for i in picked if i in by_id]
    chosen = st.multiselect("Runs to compare (or tick rows above)", list(by_id),
                            default=[d for d in default if d in by_id],
                            format_func=lambda i: run_label(by_id[i]), key="compare_runs")
    if not chosen:
        return
    points = max(2, CHART_POINTS // len(chosen))
    curves = [run_loss_curve(by_id[i], points) for i in chosen]
    curves = [c for c in curves if not c.empty]
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Training loss**")
        if curves:
            frame = pd.concat(curves)
            # Many dots hide the lines; invisible ones still carry the tooltips.
            dots = True if max(map(len, curves)) <= DOTS_UP_TO else alt.OverlayMarkDef(opacity=0)
            chart = alt.Chart(frame).mark_line(point=dots).encode(
                x=alt.X("epochs:Q", title="epochs"),
                y=alt.Y("loss:Q", title="training loss", scale=alt.Scale(zero=False)),
                color=RUN_COLOR,
                tooltip=["run", "epoch", alt.Tooltip("loss:Q", format=".3f")])
            st.altair_chart(chart.properties(height=320), width="stretch")
            st.caption("A long run's loss is drawn from an even spread of its reports, so "
                       "that the chart stays quick.")
        else:
            st.caption("No loss reports yet.")
    with c2:
        st.markdown("**Test accuracy per class**")
        per_class = per_class_comparison([by_id[i] for i in chosen])
        if per_class.empty:
            st.caption("No finished run among these.")
        else:
            chart = alt.Chart(per_class).mark_bar().encode(
                x=alt.X("class:N", title=None), y=alt.Y("accuracy:Q", title="accuracy (%)",
                                                       scale=alt.Scale(domain=[0, 100])),
                color=RUN_COLOR, xOffset="run:N",
                tooltip=["run", "class", alt.Tooltip("accuracy:Q", format=".1f")])
            st.altair_chart(chart.properties(height=320), width="stretch")


def scatter_ui(runs: list[Run]) -> None:
    st.subheader("Which settings pay off")
    table = settings_table(runs).dropna(subset=["accuracy"])  # imports have no settings
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
    chart = alt.Chart(table).mark_circle(size=120, opacity=0.8).encode(
        x=x, y=alt.Y("accuracy:Q", title="test accuracy (%)"),
        color=alt.Color("status:N"),
        tooltip=["run", *SETTINGS, alt.Tooltip("accuracy:Q", format=".1f")])
    st.altair_chart(chart.properties(height=300), width="stretch")


def files_ui(runs: list[Run]) -> None:
    st.subheader("Download or delete a run")
    by_id = {r.id: r for r in runs}
    run_id = st.selectbox("Run", list(by_id), format_func=lambda i: run_label(by_id[i]),
                          key="files_run")
    run = by_id[run_id]
    c1, c2, c3 = st.columns(3)
    if run.checkpoint and Path(run.checkpoint).is_file():
        c1.download_button("Network (cifar_net.pth)", Path(run.checkpoint).read_bytes(),
                           file_name="cifar_net.pth", icon=":material/download:",
                           mime="application/octet-stream", key="dl_checkpoint")
    else:
        c1.caption("No saved network for this run.")
    if run.metrics:
        c2.download_button("Metrics (CSV)", metrics_csv(run), file_name=f"{run.id}-metrics.csv",
                           mime="text/csv", icon=":material/table:", key="dl_metrics")
    if run.status == "running":
        c3.caption("A running run cannot be deleted: stop it on the Train page first.")
    else:
        layout.delete_with_confirmation_ui(
            c3, run.id, f"Delete run {run.id} and its files for good?", "Delete this run ...",
            lambda: access.runner().delete(run.id), f"Deleted run {run.id}.")


@layout.guard
def main() -> None:
    layout.page_header("Runs", "Every training so far, a sweep's runs under their sweep. Tick "
                       "rows to compare them: the loss curves show how fast each one learned, "
                       "the bars what each one learned.")
    access.runner().schedule()
    runs = access.store().list()
    if not runs:
        st.info("No runs yet: start one on the Train page.", icon=":material/info:")
        st.page_link(navigation.TRAIN, label="Go to Train", icon=":material/model_training:")
        return
    picked = grouped_tables_ui(runs)
    compare_ui(runs, picked)
    scatter_ui(runs)
    files_ui(runs)


navigation.run_inside_app(main)

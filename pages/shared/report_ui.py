"""A run or a sweep as one HTML file (Runs, Evaluate and Sweep pages), made by
cifar_core.share.report only when asked: a report takes a second or more."""

from __future__ import annotations

import streamlit as st

from cifar_core import CifarError
from cifar_core.runs.store import Run
from cifar_core.share.report import refusal, run_report, size_text, sweep_report
from cifar_core.sweeps.store import Sweep
from pages.shared import access, layout

HELP = ("One file with the settings, charts, tables and pictures, that opens in any browser "
        "without this dashboard or the internet: to keep, mail or show.")


@layout.guard
def run_report_ui(run: Run, key: str) -> None:
    """A button that makes the run `run` into one HTML file, then one that downloads it (`key`
    keeps two pages' widgets apart)."""
    if st.button("Make a report of this run", icon=":material/description:",
                 key=f"report_make_{key}", help=HELP):
        problem = refusal(run)
        if problem:
            st.warning(problem, icon=":material/info:")
            return
        with st.spinner("Making the report: testing the network on the test pictures ..."):
            try:
                data = access.get_data(run.dataset, access.data_dir())
                evaluation = access.run_evaluation(run)
                page = run_report(access.store(), run, data=data, evaluation=evaluation)
            except CifarError as exc:
                st.error(str(exc), icon=":material/error:")
                return
        st.session_state[f"report_{key}"] = (run.id, page.encode("utf-8"))
    download_ui(key, run.id)


@layout.guard
def sweep_report_ui(sweep: Sweep, key: str) -> None:
    """A button that makes the sweep `sweep` into one HTML file, then one that downloads it."""
    if st.button("Make a report of this sweep", icon=":material/description:",
                 key=f"report_make_{key}", help=HELP):
        with st.spinner("Making the report ..."):
            try:
                page = sweep_report(access.store(), sweep)
            except CifarError as exc:
                st.warning(str(exc), icon=":material/info:")
                return
        st.session_state[f"report_{key}"] = (sweep.id, page.encode("utf-8"))
    download_ui(key, sweep.id)


def download_ui(key: str, made_of: str) -> None:
    """The download button of the report made on this page of `made_of` (a run's or a
    sweep's id), once it has been made."""
    made = st.session_state.get(f"report_{key}")
    if not made or made[0] != made_of:
        return
    st.download_button(f"Download the report ({size_text(len(made[1]))})", made[1],
                       file_name=f"{made_of}-report.html", mime="text/html",
                       icon=":material/download:", key=f"report_download_{key}",
                       on_click="ignore")

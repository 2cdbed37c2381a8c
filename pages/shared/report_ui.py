"""A run or a sweep as one HTML file (Runs, Evaluate and Sweep pages), made by
cifar_core.share.report."""

from __future__ import annotations

import streamlit as st

from cifar_core.runs.store import Run
from cifar_core.sweeps.store import Sweep


def run_report_ui(run: Run, key: str) -> None:
    """A button that gives the run `run` as one HTML file."""
    st.caption("Reports are being built (issue 27).")  # replaced by the report's helper


def sweep_report_ui(sweep: Sweep, key: str) -> None:
    """A button that gives the sweep `sweep` as one HTML file."""
    st.caption("Reports are being built (issue 27).")  # replaced by the report's helper

"""Export a run's network (Runs and Evaluate pages): one button per format, each giving a zip
made by cifar_core.share.network."""

from __future__ import annotations

import streamlit as st

from cifar_core.runs.store import Run


def export_ui(run: Run, key: str) -> None:
    """The export buttons for `run`'s network (`key` keeps two pages' widgets apart)."""
    st.caption("Export is being built (issue 27).")  # replaced by the export's helper

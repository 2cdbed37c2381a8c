"""The Runs page's groups of repeated runs: the same settings trained with different seeds
(Train's Repeat), each group's mean accuracy and spread (cifar_core.runs.repeats)."""

import streamlit as st

from cifar_core.runs.repeats import repeat_groups, repeats_table
from cifar_core.runs.store import Run


def repeats_ui(runs: list[Run]) -> None:
    """The groups of runs outside sweeps that share every setting but the seed (nothing where
    there are none)."""
    groups = repeat_groups(runs)
    if not groups:
        return
    st.markdown(f"**Repeated runs** ({len(groups):,} group{'s' * (len(groups) != 1)})")
    st.dataframe(
        repeats_table(groups), hide_index=True, width="stretch", key="runs_repeats",
        column_order=["group", "accuracy", "accuracies", "settings", "runs"],
        column_config={"group": "Runs", "accuracy": "Test accuracy (mean ± spread)",
                       "accuracies": "Each run's (%)", "settings": "Settings",
                       "runs": "Run ids"})
    st.caption("Runs of the same settings with different seeds: their mean test accuracy and "
               "its spread (the standard deviation of their accuracies; of two runs, half "
               "their difference). Two settings whose ranges overlap are too close for these "
               "seeds to tell apart.")

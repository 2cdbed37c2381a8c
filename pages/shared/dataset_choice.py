"""The data-set choice that Data, Train and Sweep share: one menu of the registered data sets
(cifar_core.data.registry), the choice kept for the browser session from page to page."""

from __future__ import annotations

import streamlit as st

from cifar_core.data.registry import DEFAULT_DATASET, dataset_names, dataset_spec
from pages.shared.access import data_dir

# The choice itself lives under its own key: Streamlit forgets a widget's value on a page that
# does not draw it (Evaluate, Runs), and the choice must outlive those pages.
CHOSEN = "chosen_dataset"
WIDGET = "dataset_choice"


def chosen_dataset() -> str:
    """The data set chosen in this browser session (CIFAR-10 until another is chosen, or when
    the chosen one is no longer registered)."""
    chosen = st.session_state.get(CHOSEN, DEFAULT_DATASET)
    return chosen if chosen in dataset_names(data_dir()) else DEFAULT_DATASET


def _keep_choice() -> None:
    st.session_state[CHOSEN] = st.session_state[WIDGET]


def dataset_choice_ui(where=st) -> str:
    """The menu of data sets by title (the built-in ones and those recorded in the data
    folder), on the chosen one; returns its name."""
    folder = data_dir()
    names = list(dataset_names(folder))
    st.session_state[WIDGET] = chosen_dataset()
    where.selectbox("Data set", names, key=WIDGET, on_change=_keep_choice,
                    format_func=lambda name: dataset_spec(name, folder).title,
                    help="Which pictures to look at, train on or sweep over. A run remembers "
                         "its data set: Evaluate and Try it test it on its own.")
    return chosen_dataset()

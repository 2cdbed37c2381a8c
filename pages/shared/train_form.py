"""The Train page's form as session state: each setting's field is `cfg_<name>`, and an
optional setting's 'none' box `cfg_<name>_none`. Filled by the Train page's presets and by the
Sweep page's "Use the best settings" (before the Train page is drawn: a field's value can only
be set before its widget is)."""

from __future__ import annotations

import streamlit as st

from cifar_core.training.config import settings

# Where the form's values came from when another page filled it (e.g. a sweep's best run): a
# note the Train page shows until a preset is chosen.
FORM_FROM = "cfg_from"


def fallback(name: str, max_train: int):
    """The number shown (greyed out) for an optional setting left at its 'none' meaning."""
    return max_train if name == "train_size" else 0


def fill_form(values: dict, names) -> None:
    """Put these settings' values into the form (an optional one left at its 'none' meaning
    ticks its box and shows a greyed-out number)."""
    max_train = st.session_state.get("max_train", 50_000)
    declared = settings()
    for name in names:
        value = values[name]
        if declared[name].optional:
            st.session_state[f"cfg_{name}_none"] = value is None
            value = fallback(name, max_train) if value is None else value
        st.session_state[f"cfg_{name}"] = value


def form_values() -> dict | None:
    """The settings the Train page's form holds in this session (None: it was not opened)."""
    if "cfg_epochs" not in st.session_state:
        return None
    values = {}
    for name, spec in settings().items():
        if f"cfg_{name}" not in st.session_state:
            return None
        none = spec.optional and bool(st.session_state.get(f"cfg_{name}_none"))
        values[name] = None if none else st.session_state[f"cfg_{name}"]
    return values

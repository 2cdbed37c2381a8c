"""The password gate in front of every page: where a password is set (cifar_core.password),
a session sees only the password form, and no page runs, until it has given the right one."""

from __future__ import annotations

import streamlit as st

from cifar_core.password import dashboard_password, password_matches

_PASSED = "gate_passed"


def _secrets() -> dict:
    # Having no .streamlit/secrets.toml is the usual case, not an error.
    return st.secrets.to_dict() if st.secrets.load_if_toml_exists() else {}


def is_open() -> bool:
    """True when this session may use the dashboard: no password is set, or it gave it."""
    return dashboard_password(_secrets()) is None or st.session_state.get(_PASSED, False)


def password_ui() -> None:
    """The password form; the right password opens the dashboard for this session (tab)."""
    st.title("CIFAR-10 dashboard")
    st.caption("Whoever runs this dashboard has shared it with a password.")
    with st.form("gate"):
        guess = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Open the dashboard", type="primary",
                                          icon=":material/lock_open:")
    if submitted:
        password = dashboard_password(_secrets())
        if password is None or password_matches(guess, password):
            st.session_state[_PASSED] = True
            st.rerun()
        st.error("That is not the password.", icon=":material/lock:")

"""The password gate in front of every page: where a password is set (cifar_core.password),
a session sees only the password form, and no page runs, until it has given the right one.
The server refuses such a session's uploads and other traffic too (server_guard.py)."""

from __future__ import annotations

import math

import streamlit as st

from cifar_core.password import GuessLimiter, dashboard_password, password_matches

PASSED = "gate_passed"


def secrets() -> dict:
    """The dashboard's secrets (.streamlit/secrets.toml); having none is the usual case."""
    return st.secrets.to_dict() if st.secrets.load_if_toml_exists() else {}


def is_open() -> bool:
    """True when this session may use the dashboard: no password is set, or it gave it."""
    return dashboard_password(secrets()) is None or st.session_state.get(PASSED, False)


# One count of wrong guesses per server process, shared by every tab: guesses spread over many
# tabs from one address are counted together.
@st.cache_resource
def _guesses() -> GuessLimiter:
    return GuessLimiter()


def _address() -> str:
    # Streamlit gives no address for this machine's own connections (and a stand-in under
    # AppTest): those count as one address.
    address = st.context.ip_address
    return address if isinstance(address, str) else "this machine"


def password_ui() -> None:
    """The password form; the right password opens the dashboard for this session (tab)."""
    st.title("CIFAR-10 dashboard")
    st.caption("Whoever runs this dashboard has shared it with a password.")
    with st.form("gate"):
        guess = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Open the dashboard", type="primary",
                                          icon=":material/lock_open:")
    if not submitted:
        return
    guesses, address = _guesses(), _address()
    wait = guesses.wait_s(address)
    if wait > 0:
        st.error(f"Too many wrong passwords from here: wait {math.ceil(wait)} s, then try "
                 "again.", icon=":material/lock_clock:")
        return
    password = dashboard_password(secrets())
    if password is None or password_matches(guess, password):
        guesses.record_right(address)
        st.session_state[PASSED] = True
        st.rerun()
    guesses.record_wrong(address)
    st.error("That is not the password.", icon=":material/lock:")

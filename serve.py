"""The dashboard shown to others: `streamlit run serve.py` (README, "Showing it to others").
The same app as app.py, with the password's guard (pages/shared/server_guard.py) put into the
server before it answers anyone; under `streamlit run app.py` the guard comes with the first
page run, so a tab that connects first could upload for the few seconds that run takes to
start (what it uploaded is let go then)."""

import contextlib

import streamlit as st

from pages.shared import server_guard


@contextlib.asynccontextmanager
async def _guarded(_app):
    server_guard.install()
    yield


app = st.App("app.py", lifespan=_guarded)

"""The pages' files, and drawing each page inside app.py's navigation (Home, Data, Train,
Sweep, Evaluate, Try it, Teach, Runs), whichever way the page was reached."""

from __future__ import annotations

import contextlib
import contextvars
import types
from collections.abc import Callable, Iterator
from pathlib import Path

DATA, TRAIN, EVALUATE, RUNS = ("pages/data.py", "pages/train.py", "pages/evaluate.py",
                               "pages/runs.py")
TRY_IT = "pages/try_it.py"
TEACH = "pages/teach.py"
SWEEP = "pages/sweep.py"
APP = Path(__file__).resolve().parents[2] / "app.py"

_inside_app: contextvars.ContextVar[bool] = contextvars.ContextVar("inside_app", default=False)


@contextlib.contextmanager
def inside_app() -> Iterator[None]:
    """app.py runs the page st.navigation chose inside this, so the page knows it is framed."""
    token = _inside_app.set(True)
    try:
        yield
    finally:
        _inside_app.reset(token)


def run_inside_app(main: Callable[[], None]) -> None:
    """Draw a page: `main()` when app.py chose it, otherwise app.py itself, which chooses it."""
    if _inside_app.get():
        main()
        return
    # Until any session has run st.navigation, Streamlit (1.67: script_runner._mpa_v1) treats an
    # app with a pages/ folder as an old-style multipage app: a fresh server's first request for
    # an inner page (a bookmark, a reload after a restart) runs that file directly, under a menu
    # of the folder's file names. For Home it runs app.py, whose st.navigation replaces that menu
    # and turns the old mode off for every session; this does the same for the other pages.
    # st.navigation picks this same page (its id is its URL path in both modes), so the page is
    # drawn once, inside app.py, and a button press in this run still counts, which a rerun would
    # drop (AppTest re-enters the old mode before every run, so page tests take this path).
    # Run as Streamlit runs a page file; runpy would swap sys.modules["__main__"] and sys.argv
    # for the whole server meanwhile.
    app = types.ModuleType("__main__")
    app.__file__ = str(APP)
    exec(compile(APP.read_text(encoding="utf-8"), str(APP), "exec"), app.__dict__)

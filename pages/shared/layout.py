"""How every page draws: the error guard that keeps tracebacks off the page, the page header,
the data or why it is missing (with the download and its progress), and picture tiles."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

import streamlit as st

from cifar_core import CifarError, ImageData
from cifar_core.data.dataset import OFFLINE_HELP
from cifar_core.data.download import data_status, download_status, start_data_download
from cifar_core.data.grids import tiles_html
from cifar_core.data.load import load_data
from cifar_core.data.registry import DatasetSpec, dataset_spec
from cifar_core.errors import DataNotFoundError
from pages.shared.access import data_dir, get_data
from pages.shared.dataset_choice import chosen_dataset

log = logging.getLogger("cifar_dashboard")


def guard(fn):
    """Show a user mistake as st.error and any other failure as a short message, never as a
    traceback (the traceback goes to the server log)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CifarError as exc:
            st.error(str(exc), icon=":material/error:")
        except Exception as exc:
            log.exception("page failed")
            st.error(f"Something went wrong: {type(exc).__name__}: {exc}. Reload the page; if it "
                     "happens again, the server log has the details.", icon=":material/error:")
        return None
    return wrapper


def data_or_status_ui(dataset: str | None = None, notes: str = "once") -> ImageData | None:
    """The data set's data (None: the one chosen in this session) if it is there; otherwise
    say why not and offer the download where it has one. `notes`: when to show what loading
    the data noticed (e.g. checksums that are not the official ones): 'once' a browser
    session, on the first page that loads it, or 'always' (the Data page)."""
    folder = data_dir()
    spec = dataset_spec(dataset or chosen_dataset(), folder)
    if download_status(folder, spec.name) is not None:
        download_progress_ui(spec.name)
        return None
    try:
        data = open_data_ui(spec, folder)
    except DataNotFoundError:
        missing_data_ui(spec, folder)
        return None
    except CifarError as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    told = st.session_state.setdefault("data_notes_told", set())
    if notes == "always" or (spec.name, folder) not in told:
        told.add((spec.name, folder))
        for warning in data.warnings:
            st.caption(f":material/info: {warning}")
    return data


def missing_data_ui(spec: DatasetSpec, folder: str) -> None:
    """Why the data set is not here, what to put where, and its download button if it has one."""
    status = data_status(folder, spec.name)
    size = f"{spec.download_bytes / 1e6:,.0f} MB" if spec.download_bytes else ""
    if status.downloadable:
        st.warning(f"{status.message} The button below downloads it"
                   + (f" ({size}, once)" if size else " (once)")
                   + "; or put a copy you already have into that folder.",
                   icon=":material/folder_off:")
    else:
        st.warning(f"{status.message} The details below say where a copy goes.",
                   icon=":material/folder_off:")
    with st.expander("Details: using a copy you already have", icon=":material/info:"):
        st.caption(spec.offline_help or OFFLINE_HELP)
    if status.downloadable and st.button(f"Download {spec.title}" + (f" ({size})" if size else ""),
                                         type="primary", icon=":material/download:"):
        start_data_download(folder, spec.name)
        st.rerun()


# The data sets and folders this server process has opened: after that, a rerun costs nothing
# (the data is cached in memory, and no look at the files at all).
_opened: set[tuple[str, str]] = set()
# One first decode at a time: a second tab waits for it, then reads what it cached.
_decoding = threading.Lock()


def open_data_ui(spec: DatasetSpec, folder: str) -> ImageData:
    """The data, decoded first where it never was (tens of seconds: said, with a bar). Raises
    what load_data raises."""
    if (spec.name, folder) in _opened:
        return get_data(spec.name, folder)
    if data_status(folder, spec.name).state == "found":
        with _decoding:
            if data_status(folder, spec.name).state == "found":
                decode_ui(spec, folder)
    data = get_data(spec.name, folder)
    _opened.add((spec.name, folder))
    return data


def decode_ui(spec: DatasetSpec, folder: str) -> None:
    """Decode the data into its cache with a bar that follows it, then say it is done."""
    slot = st.empty()
    with slot.container():
        st.info(f"Preparing {spec.title} for its first use: decoding its pictures into a cache "
                "next to the data. This happens once; afterwards the data opens in about a "
                "second.", icon=":material/hourglass_top:")
        bar = st.progress(0.0, text="Reading the files ...")

    def counted(done: int, total: int, what: str) -> None:
        bar.progress(done / max(total, 1), text=f"{done:,} of {total:,} {what}")

    try:
        load_data(spec.name, folder, download=False, counted=counted)
    except Exception:
        slot.empty()  # the page says what went wrong instead
        raise
    slot.caption(f":material/check_circle: {spec.title} is decoded and cached, once: from now "
                 "on it opens in about a second.")


@st.fragment(run_every=1.0)
def download_progress_ui(dataset: str) -> None:
    status = data_status(data_dir(), dataset)
    if status.state != "downloading":
        st.rerun()  # finished (or failed): redraw the whole page with the new state
    st.progress(status.fraction or 0.0, text=status.message)
    # A bar alone left a newcomer wondering what comes after it.
    st.caption("This page fills in by itself once the data is there; the download goes on if "
               "you leave it.")


def show_tiles(images: list, captions: list[str]) -> None:
    """Images in rows with a caption under each, at their own size (already enlarged sharply:
    letting the browser scale them would blur them)."""
    if images:
        st.html(tiles_html(images, captions))


def open_section(label: str, icon: str, key: str):
    """An expander whose content the caller makes only while it is open: its container, or
    None while it is closed. Content drawn hidden in a closed expander still costs the browser
    its drawing on every visit (bench/RESULTS.md, issue 16); a click on it reruns the page."""
    section = st.expander(label, icon=icon, key=key, on_change="rerun")
    return section if section.open else None


def keep_values(keys) -> None:
    """Widgets' values (by key) kept through runs that do not draw them: Streamlit forgets an
    undrawn widget's value, but not one the page has set."""
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def percent(value: float, digits: int = 1) -> str:
    """A percentage for a sentence, e.g. '48.8 %': the space before the sign does not break,
    so a line never starts with '%.'."""
    return f"{value:.{digits}f}\u00a0%"


def page_header(title: str, intro: str) -> None:
    st.title(title)
    st.caption(intro)


def delete_with_confirmation_ui(where, target: str, question: str, label: str,
                                delete: Callable[[], None], done: str, prefix: str = "",
                                widths: tuple[int, ...] = (1, 1)) -> None:
    """A Delete button (`label`) in `where` that asks `question` first, and on "Yes, delete"
    calls `delete` and says `done`. `target`: what it deletes (the question stays with it);
    `prefix`: this button's keys ('<prefix>delete_ask', '..._yes', '..._no')."""
    pending = f"{prefix}confirm_delete"
    if st.session_state.get(pending) == target:
        where.warning(question)
        yes, no, *_ = where.columns(widths)
        if yes.button("Yes, delete", type="primary", key=f"{prefix}delete_yes"):
            delete()
            st.session_state.pop(pending, None)
            st.toast(done)
            st.rerun()
        if no.button("Cancel", key=f"{prefix}delete_no"):
            st.session_state.pop(pending, None)
            st.rerun()
    elif where.button(label, icon=":material/delete:", key=f"{prefix}delete_ask"):
        st.session_state[pending] = target
        st.rerun()

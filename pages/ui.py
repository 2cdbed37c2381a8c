"""What every page shares: cached access to the data, the run store and checkpoints, the error
guard that keeps tracebacks off the page, and small drawing helpers. No computation here."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import streamlit as st

from cifar_core import (
    CifarData,
    CifarError,
    JobRunner,
    RunStore,
    default_data_dir,
    default_runs_dir,
    load_checkpoint,
    load_cifar10,
)
from cifar_core.data import OFFLINE_HELP, data_status, download_status
from cifar_core.errors import DataNotFoundError
from cifar_core.evaluate import Evaluation, evaluate
from cifar_core.jobs import start_data_download
from cifar_core.runs import Run

log = logging.getLogger("cifar_dashboard")

DATA, TRAIN, EVALUATE, RUNS = ("pages/data.py", "pages/train.py", "pages/evaluate.py",
                               "pages/runs.py")


def data_dir() -> str:
    return str(default_data_dir().resolve())


def runs_dir() -> str:
    return str(default_runs_dir().resolve())


# Decoding takes seconds the first time in a process: keep one copy per data folder.
@st.cache_resource(show_spinner="Loading CIFAR-10 ...")
def get_data(folder: str) -> CifarData:
    return load_cifar10(folder, download=False)


# One store object per runs folder; it opens a short connection per call, so sharing is safe.
@st.cache_resource
def get_store(folder: str) -> RunStore:
    return RunStore(folder)


def store() -> RunStore:
    return get_store(runs_dir())


def runner() -> JobRunner:
    return JobRunner(store())


# A checkpoint is read once per file version (the mtime is part of the key).
@st.cache_resource(max_entries=16, show_spinner=False)
def get_checkpoint(path: str, mtime: float):
    return load_checkpoint(path)


# Evaluating 10,000 images takes about a second: once per run and data folder.
@st.cache_data(max_entries=16, show_spinner="Testing the network on the test images ...")
def get_evaluation(run_id: str, checkpoint: str, mtime: float, folder: str) -> Evaluation:
    return evaluate(get_checkpoint(checkpoint, mtime).model, get_data(folder))


def run_evaluation(run: Run) -> Evaluation:
    """The run's network tested on the test split (cached); CifarError if it cannot be."""
    if not run.checkpoint or not Path(run.checkpoint).is_file():
        raise CifarError(f"Run {run.id} has no saved network (its checkpoint file is gone). "
                         "Train a new run on the Train page.")
    mtime = os.path.getmtime(run.checkpoint)
    checkpoint = get_checkpoint(run.checkpoint, mtime)
    data = get_data(data_dir())
    if len(checkpoint.classes) != len(data.classes):
        raise CifarError(f"Run {run.id} was trained on {len(checkpoint.classes)} classes but the "
                         f"current data has {len(data.classes)}: pick another run.")
    return get_evaluation(run.id, run.checkpoint, mtime, data_dir())


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


def data_or_status_ui() -> CifarData | None:
    """The data if it is there; otherwise say why not and offer the download."""
    folder = data_dir()
    if download_status(folder) is not None:
        download_progress_ui()
        return None
    try:
        # Cached after the first load, so a rerun costs nothing (no look at the files at all).
        data = get_data(folder)
    except DataNotFoundError:
        st.warning(f"{data_status(folder).message} " + OFFLINE_HELP,
                   icon=":material/folder_off:")
        if st.button("Download CIFAR-10 (170 MB)", type="primary", icon=":material/download:"):
            start_data_download(folder)
            st.rerun()
        return None
    except CifarError as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    for warning in data.warnings:
        st.caption(f":material/info: {warning}")
    return data


@st.fragment(run_every=1.0)
def download_progress_ui() -> None:
    status = data_status(data_dir())
    if status.state != "downloading":
        st.rerun()  # finished (or failed): redraw the whole page with the new state
    st.progress(status.fraction or 0.0, text=status.message)


def show_tiles(images: list, captions: list[str]) -> None:
    """Images in rows with a caption under each, at their own size (already enlarged sharply:
    letting the browser scale them would blur them)."""
    if images:
        st.image(images, caption=captions, width=int(images[0].shape[1]))


def page_header(title: str, intro: str) -> None:
    st.title(title)
    st.caption(intro)

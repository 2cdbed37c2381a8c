"""Cached access to what the pages show: the data, the run store, the job runner, checkpoints,
evaluations, measured speeds and finished runs' loss reports. No computation here: cifar_core
computes, this keeps one copy per process, shared by every page."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from cifar_core import (
    CifarError,
    ImageData,
    JobRunner,
    RunStore,
    default_data_dir,
    default_runs_dir,
    load_checkpoint,
)
from cifar_core.data.dataset import CIFAR_SHAPE
from cifar_core.data.load import load_data
from cifar_core.data.own_sets import watch_runs_folder
from cifar_core.explain.network_imports import record_test
from cifar_core.runs.store import Run
from cifar_core.runs.views import is_import
from cifar_core.training import estimate
from cifar_core.training.config import TrainConfig
from cifar_core.training.evaluation import Evaluation, evaluate


def data_dir() -> str:
    return str(default_data_dir().resolve())


def runs_dir() -> str:
    return str(default_runs_dir().resolve())


# Decoding takes seconds the first time in a process: keep one copy per data set and folder.
@st.cache_resource(show_spinner="Loading the pictures ...")
def get_data(dataset: str, folder: str) -> ImageData:
    return load_data(dataset, folder, download=False)


# One store object per runs folder; it opens a short connection per call, so sharing is safe.
@st.cache_resource
def get_store(folder: str) -> RunStore:
    opened = RunStore(folder)
    # The sets kept in this runs folder (the Teach page's) are data sets on every page.
    watch_runs_folder(opened.root)
    return opened


def store() -> RunStore:
    opened = get_store(runs_dir())
    store_notices_ui(opened)
    return opened


def store_notices_ui(opened: RunStore) -> None:
    """Say once per browser session what opening the store had to do or cannot do (a damaged
    file moved aside, a read-only folder) and which runs are left out as damaged: one message
    each, which stays until closed, on whichever page comes first. app.py calls it before any
    fragment runs: a toast sent from inside a fragment that reruns by itself came back on later
    pages after it had been closed or had timed out (issue 16)."""
    told = st.session_state.setdefault("store_notices_told", set())
    if str(opened.root) in told:
        return
    told.add(str(opened.root))
    for notice in [*opened.notices, *opened.damaged_runs()]:
        st.toast(notice, icon=":material/warning:", duration="infinite")


def runner() -> JobRunner:
    return JobRunner(store())


# A checkpoint is read once per file version (the mtime is part of the key).
@st.cache_resource(max_entries=16, show_spinner=False)
def get_checkpoint(path: str, mtime: float):
    return load_checkpoint(path)


# Evaluating 10,000 images takes about a second: once per run, data set and data folder.
@st.cache_data(max_entries=16, show_spinner="Testing the network on the test images ...")
def get_evaluation(run_id: str, checkpoint: str, mtime: float, dataset: str,
                   folder: str) -> Evaluation:
    loaded = get_checkpoint(checkpoint, mtime)
    return evaluate(loaded.model, get_data(dataset, folder), **loaded.prediction_options())


def run_evaluation(run: Run) -> Evaluation:
    """The run's network tested on the test split of its own data set (cached); CifarError if
    it cannot be."""
    if not run.checkpoint or not Path(run.checkpoint).is_file():
        raise CifarError(f"Run {run.id} has no saved network (its checkpoint file is gone). "
                         "Train a new run on the Train page.")
    mtime = os.path.getmtime(run.checkpoint)
    checkpoint = get_checkpoint(run.checkpoint, mtime)
    data = get_data(run.dataset, data_dir())
    misfit = checkpoint.misfit(data)
    if misfit:
        raise CifarError(f"Run {run.id}: {misfit[:1].lower()}{misfit[1:]}")
    evaluation = get_evaluation(run.id, run.checkpoint, mtime, run.dataset, data_dir())
    if is_import(run) and run.metrics is None:  # imported before the data: kept, once
        record_test(store(), run, checkpoint, evaluation.metrics(), data_dir())
    return evaluation


# A few timed training steps (about a second): once per combination of the settings that decide
# the speed (estimate.speed_key) and the cores, whichever page asks (Train, Sweep).
@st.cache_data(max_entries=64, show_spinner="Timing a few training steps on this machine ...")
def _measured_speed(key: tuple, threads: int, shape: tuple[int, int, int],
                    num_classes: int, _config: TrainConfig) -> float:
    return estimate.measure_images_per_s(_config, threads, num_classes=num_classes,
                                         shape=shape)


def measured_speed(config: TrainConfig, threads: int,
                   shape: tuple[int, int, int] = CIFAR_SHAPE, num_classes: int = 10) -> float:
    """Images per second of `config` here with `threads` cores on pictures of `shape`, timed
    once per speed key, shape and number of classes."""
    return _measured_speed(estimate.speed_key(config), threads, tuple(shape), num_classes,
                           config)


# A test's speed (test images per second, about half a second): once per speed key, test-time
# augmentation and cores, whichever page asks (Train, Sweep).
@st.cache_data(max_entries=64, show_spinner="Timing a test on this machine ...")
def _measured_test_speed(key: tuple, tta: str, threads: int, shape: tuple[int, int, int],
                         num_classes: int, _config: TrainConfig) -> float:
    return estimate.measure_test_images_per_s(_config, threads, num_classes, shape)


def measured_test_speed(config: TrainConfig, threads: int, shape: tuple[int, int, int],
                        num_classes: int) -> float:
    """Test images per second of `config`'s network here with `threads` cores."""
    return _measured_test_speed(estimate.speed_key(config), config.tta, threads, tuple(shape),
                                num_classes, config)


def last_epoch_report(run: Run):
    """A run's last epoch report (an EpochEvent), or None: how long its tests took."""
    return store().latest_event(run.id, "epoch")

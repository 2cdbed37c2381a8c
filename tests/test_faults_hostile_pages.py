"""Issue 29 (what a hostile user and a load test found), the pages' part, through AppTest:

22. Try it with many huge pictures: each upload is decoded once, not on every widget change.
24. The Runs page with many runs and sweeps: what it draws does not grow with the sweeps (one
    table per sweep made opening take 8.5 s and every click 3 s; bench/bench_runs_page.py
    times it, figures in bench/RESULTS.md).
"""

from __future__ import annotations

import io
import os

import pytest
from conftest import app_at, finish_run, no_traceback
from PIL import Image

import cifar_core.explain.photos
from cifar_core.runs.store import RunStore
from cifar_core.sweeps.space import Axis, SearchSpace
from cifar_core.sweeps.store import SweepStore
from cifar_core.training.config import TrainConfig

RUNS = "pages/runs.py"


def finished(store: RunStore, run, accuracy: float) -> None:
    store.set_running(run.id, os.getpid())
    store.finish(run.id, "completed", "", {"accuracy": accuracy, "per_class": {}})


def store_of_many_sweeps(runs_dir, data_dir, sweeps: int, alone: int) -> list[str]:
    """`sweeps` finished sweeps of two runs each and `alone` runs outside them (made through
    the store, not trained); the sweeps' ids, newest first."""
    store = RunStore(runs_dir)
    sweep_store = SweepStore(store)
    config = TrainConfig(epochs=1, batch_size=10, log_every=2, seed=0).to_dict()
    space = SearchSpace(axes=(Axis("lr", (0.01, 0.02)),))
    for s in range(sweeps):
        sweep = sweep_store.create(f"sweep {s}", space, str(data_dir), "cli")
        for trial, lr in enumerate((0.01, 0.02)):
            run = sweep_store.add_run(sweep, {**config, "lr": lr}, trial)
            finished(store, run, 30.0 + s + trial)
        sweep_store.finish(sweep.id, "completed", "")
    for i in range(alone):
        finished(store, store.create({**config, "lr": 0.001 * (i + 1)}, str(data_dir), "cli"),
                 20.0 + i)
    return [s.id for s in sweep_store.list()]


# --- item 24 --------------------------------------------------------------------------------

def test_the_runs_page_draws_two_tables_however_many_sweeps_and_reaches_each(data_dir,
                                                                             runs_dir):
    sweep_ids = store_of_many_sweeps(runs_dir, data_dir, sweeps=30, alone=3)
    at = app_at(RUNS)
    no_traceback(at)
    # The runs outside sweeps, and the chosen sweep's (the newest first): not 31 tables.
    assert len(at.dataframe) == 2
    assert len(at.expander) == 0
    store = SweepStore(RunStore(runs_dir))
    shown = set(at.dataframe[1].value["run"])
    assert shown == {r.id for r in store.runs(sweep_ids[0])}
    # Any sweep's runs are one choice away.
    menu = at.selectbox(key="runs_sweep")
    assert len(menu.options) == len(sweep_ids)
    oldest = sweep_ids[-1]
    menu.set_value(oldest).run()
    no_traceback(at)
    assert set(at.dataframe[1].value["run"]) == {r.id for r in store.runs(oldest)}
    assert len(at.dataframe) == 2


# --- item 22 --------------------------------------------------------------------------------

def big_png(side: int, colour: int) -> bytes:
    """A picture of side x side pixels in one colour: a small file that decodes large."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), (colour, 255 - colour, 90)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """The names of the pictures read (decoded) so far."""
    read, names = cifar_core.explain.photos.read_photo, []

    def counted(file, name=None):
        names.append(getattr(file, "name", name))
        return read(file, name)

    monkeypatch.setattr(cifar_core.explain.photos, "read_photo", counted)
    return names


def test_uploaded_pictures_are_decoded_once_not_on_every_change(data_dir, runs_dir, decodes):
    finish_run(runs_dir, data_dir)
    at = app_at("pages/try_it.py")
    at.radio(key="try_source").set_value("upload").run()
    pictures = [(f"big{i}.png", big_png(3000, 40 * i), "image/png") for i in range(3)]
    bad = ("notes.png", b"not a picture", "image/png")
    next(u for u in at.get("file_uploader") if u.label.startswith("Pictures")).set_value(
        [*pictures, bad]).run()
    no_traceback(at)
    assert sorted(decodes) == sorted(["big0.png", "big1.png", "big2.png", "notes.png"])
    # Another picture to look closer at, another map: the pictures are not read again, and
    # the refused file still says why.
    at.selectbox(key="try_closer").set_value(2).run()
    at.radio(key="try_method").set_value(at.radio(key="try_method").options[1]).run()
    no_traceback(at)
    assert len(decodes) == 4
    assert any("notes.png is not a picture" in e.value for e in at.error)

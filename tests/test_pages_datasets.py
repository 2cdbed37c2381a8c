"""The pages with more than one data set (issue 24), through streamlit.testing.v1.AppTest: the
data-set choice on Data, Train and Sweep (kept across pages), runs started on the chosen one,
Evaluate and Try it on each run's own data set, and the sentences that name the data set.

Besides the tiny CIFAR-10 look-alike (conftest's data_dir), a made-up data set of 28 × 28 grey
pictures of three classes, registered for the test from an image-folder tree in a temp folder
(data.catalog.folder_dataset): the pages must take it with no edit of their own.
"""

from __future__ import annotations

import pytest
import streamlit as st
from conftest import (
    APP,
    TIMEOUT,
    app_at,
    no_traceback,
    shown_tiles,
    texts,
    write_image_folders,
)
from streamlit.testing.v1 import AppTest

from cifar_core import CifarError
from cifar_core.data.catalog import folder_dataset
from cifar_core.data.registry import DatasetSpec, register, unregister
from cifar_core.runs.store import RunStore

GREY = "grey-test"
GREY_TITLE = "Grey things"
# Folder names, so in the order the folder data set sorts them.
GREY_CLASSES = ("Ankle boot", "Sandal", "Trouser")
NOWHERE = "nowhere-test"


@pytest.fixture
def grey_set(tmp_path) -> str:
    """A registered data set of 28 × 28 grey pictures in three classes (its own folder)."""
    folder = write_image_folders(tmp_path / "grey", classes=GREY_CLASSES, train_per_class=10,
                                 test_per_class=6)
    register(folder_dataset(GREY, folder, title=GREY_TITLE, shape=(1, 28, 28)), replace=True)
    yield GREY
    unregister(GREY)


@pytest.fixture
def missing_set() -> str:
    """A registered data set whose pictures are nowhere and that cannot be downloaded."""
    register(DatasetSpec(name=NOWHERE, title="Nowhere pictures", classes=("a", "b"),
                         shape=(1, 28, 28), find=lambda _root: None,
                         read=lambda *_: {}, offline_help="Put the nowhere files in place."),
             replace=True)
    yield NOWHERE
    unregister(NOWHERE)


def grey_run(runs_dir, data_dir, **settings) -> str:
    """A run trained for real, in this process, on the grey data set."""
    from cifar_core.runs.pipeline import execute_run
    from cifar_core.training.config import TrainConfig

    store = RunStore(runs_dir)
    config = TrainConfig(**{"epochs": 1, "batch_size": 40, "log_every": 1, "seed": 0,
                            "lr": 0.01, **settings})
    run = store.create(config.to_dict(), str(data_dir), origin="test", status="running",
                       dataset=GREY)
    return execute_run(store, run.id).id


def choose(at: AppTest, dataset: str) -> AppTest:
    at.selectbox(key="dataset_choice").select(dataset).run()
    no_traceback(at)
    return at


def at_page(page: str) -> AppTest:
    return app_at(page)


# --- the choice ---------------------------------------------------------------------------------

def test_the_data_page_offers_every_data_set_by_title_and_shows_the_chosen_one(
        data_dir, runs_dir, grey_set):
    at = at_page("pages/data.py")
    box = at.selectbox(key="dataset_choice")
    assert box.value == "cifar10"
    assert GREY in box.options or GREY_TITLE in box.options
    choose(at, GREY)
    assert {caption for _, caption in shown_tiles(at)} <= set(GREY_CLASSES)
    assert at.multiselect[0].options == list(GREY_CLASSES)
    body = texts(at)
    assert GREY_TITLE in body and "28 × 28" in body
    assert "CIFAR-10" not in body


def test_the_choice_is_kept_from_page_to_page(data_dir, runs_dir, grey_set):
    at = choose(at_page("pages/data.py"), GREY)
    for page in ("pages/train.py", "pages/sweep.py", "pages/data.py"):
        at.switch_page(page).run()
        no_traceback(at)
        assert at.selectbox(key="dataset_choice").value == GREY, page


def test_a_data_set_that_is_not_here_says_what_to_do_in_its_own_words(data_dir, runs_dir,
                                                                      missing_set):
    at = choose(at_page("pages/data.py"), NOWHERE)
    warning = " ".join(w.value for w in at.warning)
    assert "Nowhere pictures" in warning
    assert "CIFAR-10" not in warning
    details = " ".join(c.value for e in at.expander for c in e.caption)
    assert "Put the nowhere files in place." in details
    assert not [b for b in at.button if b.label.startswith("Download")], \
        "a data set without a download offers none"


def test_a_data_set_that_can_be_downloaded_offers_its_own_download(data_dir, runs_dir,
                                                                    monkeypatch):
    import pages.shared.layout

    started = []
    monkeypatch.setattr(pages.shared.layout, "start_data_download",
                        lambda folder, dataset: started.append(dataset))
    register(DatasetSpec(name=NOWHERE, title="Nowhere pictures", classes=("a", "b"),
                         shape=(1, 28, 28), find=lambda _root: None, read=lambda *_: {},
                         download=lambda root, progress: None, download_bytes=31_000_000),
             replace=True)
    try:
        at = choose(at_page("pages/data.py"), NOWHERE)
        assert "No Nowhere pictures data" in " ".join(w.value for w in at.warning)
        [button] = [b for b in at.button if b.label.startswith("Download")]
        assert button.label == "Download Nowhere pictures (31 MB)"
        button.click().run()
        assert started == [NOWHERE]
    finally:
        unregister(NOWHERE)


# --- Train --------------------------------------------------------------------------------------

def test_train_and_sweep_time_steps_on_the_chosen_data_sets_pictures(data_dir, runs_dir,
                                                                     grey_set, monkeypatch):
    # The estimate's speed is of pictures as the data set has them (28 x 28 grey, three
    # classes), not of CIFAR-10's: a network computes a different amount on each.
    import cifar_core.training.estimate

    asked = []
    monkeypatch.setattr(cifar_core.training.estimate, "measure_images_per_s",
                        lambda config, threads=None, num_classes=10, shape=None, **_:
                        asked.append((tuple(shape or ()), num_classes)) or 1000.0)
    for page in ("pages/train.py", "pages/sweep.py"):
        asked.clear()
        st.cache_data.clear()  # (a speed is timed once per process)
        at = choose(at_page(page), GREY)
        if page == "pages/sweep.py":  # (estimated once the space is whole)
            at.radio(key="sw_lr_mode").set_value("list").run()
            at.text_input(key="sw_lr_list").input("0.001, 0.01").run()
        assert asked and asked[-1] == ((1, 28, 28), 3), (page, asked)  # (first: CIFAR-10's)


def test_train_starts_the_run_on_the_chosen_data_set(data_dir, runs_dir, grey_set, monkeypatch):
    from cifar_core.runs.jobs import JobRunner

    started = {}

    def start(self, config, data_dir, origin="dashboard", dataset=None, **kwargs):
        started["dataset"] = dataset
        return self.store.create(config.to_dict(), str(data_dir), origin, dataset=dataset)

    monkeypatch.setattr(JobRunner, "start", start)
    at = choose(at_page("pages/train.py"), GREY)
    assert "28 × 28" in texts(at) or GREY_TITLE in texts(at)
    at.number_input(key="cfg_epochs").set_value(1).run()
    next(b for b in at.button if b.label == "Start training").click().run()
    no_traceback(at)
    assert started["dataset"] == GREY
    [run] = RunStore(runs_dir).list()
    assert run.dataset == GREY


def test_a_network_that_cannot_take_the_pictures_is_marked_and_start_waits(
        data_dir, runs_dir, tmp_path):
    folder = write_image_folders(tmp_path / "small", train_per_class=4, test_per_class=2)
    register(folder_dataset("small-test", folder, title="Small pictures", shape=(1, 12, 12)),
             replace=True)
    try:
        at = choose(at_page("pages/train.py"), "small-test")
        assert at.selectbox(key="cfg_model").value == "tutorial"
        errors = " ".join(e.value for e in at.error)
        assert "needs pictures of at least 16 × 16" in errors and "12 × 12" in errors, errors
        assert next(b for b in at.button if b.label == "Start training").disabled
    finally:
        unregister("small-test")


def test_a_preset_measured_on_another_data_set_says_so(data_dir, runs_dir, grey_set):
    at = at_page("pages/train.py")
    assert "measured on" not in texts(at)  # the tutorial's preset, on CIFAR-10
    choose(at, GREY)
    assert f"were measured on CIFAR-10, not on {GREY_TITLE}" in texts(at)


def test_a_finished_runs_sentence_counts_its_own_classes(data_dir, runs_dir, grey_set):
    run_id = grey_run(runs_dir, data_dir)
    at = at_page("pages/train.py")
    finished = next(s.value for s in at.success if run_id in texts(at) and "Finished" in s.value)
    assert "guessing would get 33\u00a0%" in finished, finished


# --- Sweep --------------------------------------------------------------------------------------

def test_a_sweep_runs_on_the_chosen_data_set(data_dir, runs_dir, grey_set, monkeypatch):
    import cifar_core.sweeps.engine
    import cifar_core.training.estimate

    monkeypatch.setattr(cifar_core.training.estimate, "measure_images_per_s",
                        lambda config, threads=None, **_: 1000.0)
    asked = {}

    def start_sweep(store, space, data_dir, **kwargs):
        asked.update(kwargs)
        raise CifarError("not started: the test only asks what it was given")

    monkeypatch.setattr(cifar_core.sweeps.engine, "start_sweep", start_sweep)
    at = choose(at_page("pages/sweep.py"), GREY)
    at.number_input(key="sw_epochs").set_value(1).run()
    at.radio(key="sw_lr_mode").set_value("list").run()
    at.text_input(key="sw_lr_list").input("0.001, 0.01").run()
    at.button(key="sw_start_button").click().run()
    assert asked.get("dataset") == GREY, asked


def test_a_sweep_of_a_network_that_cannot_take_the_pictures_says_so(data_dir, runs_dir,
                                                                     tmp_path, monkeypatch):
    import cifar_core.training.estimate
    from cifar_core.sweeps.store import SweepStore

    monkeypatch.setattr(cifar_core.training.estimate, "measure_images_per_s",
                        lambda config, threads=None, **_: 1000.0)
    folder = write_image_folders(tmp_path / "small", train_per_class=4, test_per_class=2)
    register(folder_dataset("small-test", folder, title="Small pictures", shape=(1, 12, 12)),
             replace=True)
    try:
        at = choose(at_page("pages/sweep.py"), "small-test")
        at.number_input(key="sw_epochs").set_value(1).run()
        at.radio(key="sw_lr_mode").set_value("list").run()
        at.text_input(key="sw_lr_list").input("0.001, 0.01").run()
        errors = " ".join(e.value for e in at.error)
        assert "needs pictures of at least 16 × 16" in errors, errors
        assert at.button(key="sw_start_button").disabled
        assert not SweepStore(RunStore(runs_dir)).list()
    finally:
        unregister("small-test")


def test_a_sweep_says_which_data_set_its_runs_train_on(data_dir, runs_dir, grey_set):
    from cifar_core.sweeps.space import Axis, SearchSpace
    from cifar_core.sweeps.store import SweepStore

    space = SearchSpace(axes=(Axis("lr", (0.001, 0.01)), Axis("epochs", (1,))))
    sweep = SweepStore(RunStore(runs_dir)).create("greys", space, str(data_dir), "cli",
                                                  dataset=GREY)
    SweepStore(RunStore(runs_dir)).finish(sweep.id, "stopped", "Stopped on request.")
    at = at_page("pages/sweep.py")
    assert f"Its runs train on {GREY_TITLE}" in texts(at), texts(at)


# --- Evaluate and Try it: each run on its own data set ------------------------------------------

def test_evaluate_tests_a_run_on_its_own_data_set(data_dir, runs_dir, grey_set):
    run_id = grey_run(runs_dir, data_dir)
    at = at_page("pages/evaluate.py")  # the choice is CIFAR-10: the run's is what counts
    assert at.selectbox(key="eval_run").value == run_id
    assert not at.warning, [w.value for w in at.warning]
    tiles = shown_tiles(at)
    assert len(tiles) == 16
    named = {caption.split(" (")[0].lstrip("✓✗ ") for _, caption in tiles}
    assert named <= set(GREY_CLASSES), named
    assert [m.value for m in at.metric if m.label == "Guessing would get"] == ["33 %"]
    assert GREY_TITLE in texts(at)


def test_try_it_shows_a_runs_own_test_pictures_and_class_names(data_dir, runs_dir, grey_set):
    grey_run(runs_dir, data_dir)
    at = at_page("pages/try_it.py")
    assert at.selectbox(key="try_class").options == ["any class", *GREY_CLASSES]
    body = texts(at)
    assert any(name in body for name in GREY_CLASSES), body
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert any("what the network sees, 28 × 28 pixels" in c for c in captions), captions
    assert "CIFAR-10" not in body
    # Where it looked and the inside of the network are drawn for grey pictures too.
    assert "Something went wrong" not in body and not at.error, [e.value for e in at.error]
    assert any("maps of" in c for c in captions), captions
    from cifar_core.explain.attribution import ATTRIBUTION_METHODS

    for method in ATTRIBUTION_METHODS:  # every map, on a grey picture
        at.radio(key="try_method").set_value(method).run()
        no_traceback(at)
        assert not at.error, (method, [e.value for e in at.error])


def test_try_it_answers_an_uploaded_photo_with_a_grey_network(data_dir, runs_dir, grey_set):
    from conftest import jpeg

    grey_run(runs_dir, data_dir)
    at = at_page("pages/try_it.py")
    at.radio(key="try_source").set_value("upload").run()
    uploader = next(u for u in at.get("file_uploader") if u.label.startswith("Pictures"))
    uploader.set_value(("holiday.jpg", jpeg(), "image/jpeg")).run()
    no_traceback(at)
    body = texts(at)
    assert "Something went wrong" not in body and not at.error, [e.value for e in at.error]
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert "What the network sees: 28 × 28 pixels" in captions, captions
    assert any(name in body for name in GREY_CLASSES), body


def test_a_network_of_another_data_set_is_imported_once_its_data_set_is_chosen(
        data_dir, runs_dir, grey_set, tmp_path, monkeypatch):
    from pathlib import Path

    run = RunStore(runs_dir).get(grey_run(runs_dir, data_dir))
    content = Path(run.checkpoint).read_bytes()
    # Into another dashboard's store: only the file travels.
    other_runs = tmp_path / "other-runs"
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(other_runs))
    at = at_page("pages/try_it.py")

    def import_file(name: str) -> None:
        uploader = next(u for u in at.get("file_uploader") if u.label == "Network file")
        uploader.set_value((name, content, "application/octet-stream")).run()
        no_traceback(at)

    import_file("grey.pth")  # tested on CIFAR-10, the choice so far: refused, saying what to do
    refused = " ".join(e.value for e in at.error)
    assert f"choose {GREY_TITLE} as the data set" in refused, refused
    choose(at, GREY)  # the menu beside the upload: the file still there is imported now
    assert not at.error, [e.value for e in at.error]
    [imported] = RunStore(other_runs).list()
    assert imported.dataset == GREY and imported.accuracy is not None


# --- the sentences that name the data set -------------------------------------------------------

def test_home_describes_the_chosen_data_set(data_dir, runs_dir, grey_set):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["chosen_dataset"] = GREY  # as the Data page's menu leaves it
    at.run()
    no_traceback(at)
    body = texts(at)
    assert GREY_TITLE in body and "3 classes" in body and "28 × 28" in body
    assert "CIFAR-10" not in body
    assert {caption for _, caption in shown_tiles(at)} == set(GREY_CLASSES)


def test_home_still_describes_cifar10_by_default(data_dir, runs_dir):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    no_traceback(at)
    body = texts(at)
    assert "CIFAR-10" in body and "10 classes" in body and "32 × 32" in body


# --- Runs ---------------------------------------------------------------------------------------

def test_runs_shows_each_runs_data_set_and_why_runs_of_two_are_not_comparable(
        data_dir, runs_dir, grey_set):
    from conftest import finish_run

    cifar = finish_run(runs_dir, data_dir)
    grey = grey_run(runs_dir, data_dir)
    at = at_page("pages/runs.py")
    table = at.dataframe[0].value
    titles = dict(zip(table["run"], table["dataset"], strict=True))
    assert titles == {cifar: "CIFAR-10", grey: GREY_TITLE}
    at.multiselect(key="compare_runs").set_value([cifar, grey]).run()
    no_traceback(at)
    warned = " ".join(w.value for w in at.warning)
    assert "not comparable" in warned and GREY_TITLE in warned, warned
    at.multiselect(key="compare_runs").set_value([cifar]).run()
    assert "not comparable" not in " ".join(w.value for w in at.warning)


def test_home_names_the_data_set_the_latest_run_was_tested_on(data_dir, runs_dir, grey_set):
    run_id = grey_run(runs_dir, data_dir)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    no_traceback(at)
    body = texts(at)
    assert run_id in body and f"on the {GREY_TITLE} test images" in body, body


def test_the_best_settings_of_a_sweep_bring_its_data_set_to_train(data_dir, runs_dir, grey_set):
    """'Use the best settings' of a sweep on another data set opens Train on that data set (the
    settings were found there), not on whatever was chosen before."""
    from cifar_core.runs.pipeline import execute_run
    from cifar_core.sweeps.space import Axis, SearchSpace
    from cifar_core.sweeps.store import SweepStore
    from cifar_core.training.config import TrainConfig

    store = RunStore(runs_dir)
    sweeps = SweepStore(store)
    space = SearchSpace(axes=(Axis("lr", (0.01,)), Axis("epochs", (1,))))
    sweep = sweeps.create("greys", space, str(data_dir), "cli", dataset=GREY)
    config = TrainConfig(epochs=1, batch_size=40, log_every=1, seed=0, lr=0.01)
    run = store.create(config.to_dict(), str(data_dir), "test", status="running",
                       sweep_id=sweep.id, trial=0, dataset=GREY)
    assert execute_run(store, run.id).status == "completed"
    sweeps.finish(sweep.id, "completed", "Done.")
    at = at_page("pages/sweep.py")
    at.button(key="sw_use_best").click().run()
    no_traceback(at)
    assert at.title[0].value == "Train"
    assert at.selectbox(key="dataset_choice").value == GREY


def test_which_settings_pay_off_shows_one_data_set_at_a_time(data_dir, runs_dir, grey_set):
    """Accuracies of two data sets on one chart would compare what cannot be compared: with
    runs of several data sets, the chart asks which one to show."""
    from conftest import finish_run

    finish_run(runs_dir, data_dir)
    grey_run(runs_dir, data_dir)
    grey_run(runs_dir, data_dir, lr=0.02)
    at = at_page("pages/runs.py")
    choice = at.radio(key="scatter_dataset")
    assert set(choice.options) == {"CIFAR-10", GREY_TITLE}
    choice.set_value(GREY_TITLE).run()
    no_traceback(at)
    assert "Finish at least two runs" not in " ".join(c.value for c in at.caption)

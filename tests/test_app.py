"""Every page of the dashboard through streamlit.testing.v1.AppTest, on tiny generated data and
runs made by cifar_core itself."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import (
    APP,
    CLASSES,
    TIMEOUT,
    app_at,
    finish_run,
    no_traceback,
    open_section,
    shown_tiles,
    store_with_every_state,
    texts,
)
from streamlit.testing.v1 import AppTest

from cifar_core import scheduler
from cifar_core.runs.store import RunStore
from cifar_core.runs.views import SETTINGS
from cifar_core.training.config import PRESETS, TrainConfig, settings
from cifar_core.training.events import EpochEvent, StatsEvent
from cifar_core.training.models import model_spec

# --- Home ---------------------------------------------------------------------------------------

def test_home_shows_examples_data_source_and_latest_run(data_dir, runs_dir):
    run_id = finish_run(runs_dir, data_dir)
    at = app_at()
    no_traceback(at)
    body = texts(at)
    assert "CIFAR-10" in body
    assert "One example of each class" in body
    assert str(data_dir) in body
    assert run_id in body and "reached" in body


def test_home_without_data_says_what_to_do(tmp_path, monkeypatch, runs_dir):
    monkeypatch.setenv("CIFAR_DATA_DIR", str(tmp_path / "empty"))
    at = app_at()
    no_traceback(at)
    assert at.warning, "the missing data must be explained"
    message = at.warning[0].value
    assert "No CIFAR-10 data" in message
    # Where a copy goes, for whoever has one: in the details fold.
    assert "cifar-10-batches-py" in at.expander[0].caption[0].value
    assert "*" not in message, "a '*' in a message turns the text after it into italics"
    assert any("Download CIFAR-10" in b.label for b in at.button)
    assert "No runs yet" in texts(at)


# --- Data ---------------------------------------------------------------------------------------

def test_data_page_has_controls_and_new_batch_changes_the_batch(data_dir, runs_dir):
    at = app_at("pages/data.py")
    no_traceback(at)
    assert at.radio[0].options == ["training set", "test set"]
    assert at.slider[0].value == 16
    assert at.multiselect[0].options == CLASSES
    first_seed = at.number_input(key="data_seed").value
    before = shown_tiles(at)
    assert len(before) == 16
    next(b for b in at.button if b.label == "New batch").click().run()
    no_traceback(at)
    assert at.number_input(key="data_seed").value != first_seed
    after = shown_tiles(at)
    assert len(after) == 16
    assert after != before, "New batch must show other pictures, not only another seed"


def test_data_page_class_filter_and_counts(data_dir, runs_dir):
    at = app_at("pages/data.py")
    at.multiselect[0].set_value(["cat"]).run()
    at.slider[0].set_value(8).run()
    no_traceback(at)
    assert [caption for _, caption in shown_tiles(at)] == ["cat"] * 8
    assert "Images per class" in texts(at)


def test_data_page_without_data(tmp_path, monkeypatch, runs_dir):
    monkeypatch.setenv("CIFAR_DATA_DIR", str(tmp_path / "nothing"))
    at = app_at("pages/data.py")
    no_traceback(at)
    assert "No CIFAR-10 data" in at.warning[0].value


def test_data_page_with_damaged_data_shows_the_file(data_dir, runs_dir):
    (data_dir / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04 truncated")
    at = app_at("pages/data.py")
    no_traceback(at)
    assert any("data_batch_3" in e.value for e in at.error)


# --- Train --------------------------------------------------------------------------------------

def start_button(at: AppTest):
    return next(b for b in at.button if b.label == "Start training")


def test_train_form_has_every_setting_and_presets(data_dir, runs_dir):
    at = app_at("pages/train.py")
    no_traceback(at)
    at.session_state["advanced_open"] = True  # the Advanced section opened, as a click does
    at.run()
    # A widget for every declared setting, labelled as declared (cifar_core.training.config).
    for name, spec in settings().items():
        widget = (at.toggle(key=f"cfg_{name}") if spec.kind is bool
                  else at.selectbox(key=f"cfg_{name}")
                  if spec.choices is not None or name == "start_from"  # a menu of runs
                  else at.number_input(key=f"cfg_{name}"))
        assert widget.label.startswith(spec.label) and widget.help == spec.help
        if spec.optional and name != "start_from":  # e.g. a random seed, all training images
            # (with the number it stands for here where it has one: Log every's automatic)
            assert at.checkbox(key=f"cfg_{name}_none").label.startswith(
                f"{spec.label}: {spec.none_means}")
    assert at.selectbox(key="cfg_device").options[0] == "auto"
    assert "cpu" in at.selectbox(key="cfg_device").options
    # The tutorial preset is the default; the quick demo changes the values.
    assert at.number_input(key="cfg_batch_size").value == 4
    assert at.selectbox(key="preset").value == "tutorial"
    at.selectbox(key="preset").set_value("quick").run()
    assert at.number_input(key="cfg_batch_size").value == PRESETS["quick"].values["batch_size"]
    assert not start_button(at).disabled
    assert "No runs yet" in texts(at)


@pytest.mark.parametrize("key, value, words", [
    ("cfg_lr", 0.0, "above 0"),
    ("cfg_momentum", 1.0, "below 1"),
    ("cfg_epochs", 0, "Epochs"),
    ("cfg_batch_size", 0, "Batch size"),
    ("cfg_train_size", 3, "Training images"),
])
def test_train_bad_values_get_a_message_and_no_run(data_dir, runs_dir, key, value, words):
    at = app_at("pages/train.py")
    if key == "cfg_train_size":
        at.checkbox(key="cfg_train_size_none").uncheck().run()  # not all: this many
    at.number_input(key=key).set_value(value).run()
    no_traceback(at)
    assert any(words in e.value for e in at.error), [e.value for e in at.error]
    assert start_button(at).disabled
    assert RunStore(runs_dir).list() == []


def test_the_model_choice_says_what_each_model_is_and_a_run_records_it(data_dir, runs_dir):
    at = app_at("pages/train.py")
    model = at.selectbox(key="cfg_model")
    assert model.value == "tutorial" and set(model.options) >= {
        model_spec("tutorial").title, model_spec("tutorial-wide").title}
    assert f"{model_spec('tutorial').parameter_count():,} weights" in texts(at)
    model.set_value("tutorial-wide").run()
    wide = model_spec("tutorial-wide")
    assert wide.description in texts(at) and f"{wide.parameter_count():,} weights" in texts(at)
    at.number_input(key="cfg_epochs").set_value(50).run()
    start_button(at).click().run()
    no_traceback(at)
    run = RunStore(runs_dir).list()[0]
    assert run.train_config.model == "tutorial-wide"
    from cifar_core.runs.jobs import JobRunner

    JobRunner(RunStore(runs_dir)).stop(run.id)
    assert scheduler.wait(RunStore(runs_dir), run.id, timeout=60).status == "stopped"


def test_train_start_launches_a_background_run_that_can_be_stopped(data_dir, runs_dir):
    at = app_at("pages/train.py")
    at.number_input(key="cfg_epochs").set_value(50).run()
    start_button(at).click().run()
    no_traceback(at)
    runs = RunStore(runs_dir).list()
    assert len(runs) == 1 and runs[0].status in ("queued", "running")
    assert runs[0].config["epochs"] == 50 and runs[0].origin == "dashboard"
    assert runs[0].id in texts(at)
    stop = next(b for b in at.button if b.label == "Stop")
    stop.click().run()
    assert RunStore(runs_dir).get(runs[0].id).stop_requested

    final = scheduler.wait(RunStore(runs_dir), runs[0].id, timeout=60)
    assert final.status == "stopped"
    # What Stop said does not outlive its moment: no toast on the pages opened afterwards.
    for page in ("pages/runs.py", "pages/evaluate.py", "pages/train.py"):
        at.switch_page(page).run()
        no_traceback(at)
        assert not [t.value for t in at.toast], page


def test_any_page_notices_a_dead_job_and_starts_the_next_queued_run(data_dir, runs_dir):
    import subprocess
    import sys


    store = RunStore(runs_dir)
    config = TrainConfig(epochs=1, batch_size=10, log_every=2, seed=0).to_dict()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = store.create(config, str(data_dir), "dashboard", status="running", pid=gone.pid)
    waiting = store.create(config, str(data_dir), "dashboard")

    at = app_at()  # Home: only the sidebar looks at the runs
    no_traceback(at)
    assert store.get(dead.id).status == "failed"
    assert store.get(waiting.id).status in ("running", "completed")
    assert scheduler.wait(store, waiting.id, timeout=60).status == "completed"


def test_train_page_advises_the_cpu_for_tiny_batches_on_a_gpu(data_dir, runs_dir, monkeypatch):
    import importlib

    import torch

    config_module = importlib.import_module("cifar_core.training.config")
    monkeypatch.setattr(config_module, "resolve_device", lambda name: torch.device("cuda"))
    at = app_at("pages/train.py")  # the defaults: the tutorial's batch of 4
    assert any("too small to keep a GPU busy" in i.value for i in at.info)
    assert not start_button(at).disabled  # advice, not an error
    at.number_input(key="cfg_batch_size").set_value(64).run()
    assert not any("too small to keep a GPU busy" in i.value for i in at.info)


def test_train_page_shows_a_finished_run(data_dir, runs_dir):
    run_id = finish_run(runs_dir, data_dir)
    at = app_at("pages/train.py")
    no_traceback(at)
    assert run_id in texts(at)
    assert at.success and "test images right" in at.success[0].value
    assert at.get("vega_lite_chart"), "the loss chart is drawn"
    # Which step trained it, on how many cores: why the same seed can differ elsewhere.
    step = RunStore(runs_dir).get(run_id).metrics["training_step"]
    assert f"Trained with the {step} on" in texts(at)


def add_long_run(runs_dir: Path, data_dir: Path, reports: int) -> str:
    """A completed run with `log_every` 1 and this many loss reports over two epochs, written
    with one insert (add_event would open a connection per event)."""
    store = RunStore(runs_dir)
    config = TrainConfig(epochs=2, batch_size=4, log_every=1, seed=0)
    run = store.create(config.to_dict(), str(data_dir), origin="test", status="running")
    per_epoch = reports // 2
    events = [StatsEvent(epoch=1 + i // per_epoch, minibatch=1 + i % per_epoch, step=i + 1,
                         images_seen=4 * (i + 1), loss=2.3 - i / reports, images_per_s=9e3,
                         elapsed_s=i / 2e3, fraction_done=(i + 1) / reports, eta_s=1.0,
                         images_per_epoch=4 * per_epoch) for i in range(reports)]
    events.insert(per_epoch, EpochEvent(epoch=1, test_accuracy=45.0, images_seen=4 * per_epoch,
                                        elapsed_s=1.0))
    events.append(EpochEvent(epoch=2, test_accuracy=52.0, images_seen=4 * reports,
                             elapsed_s=2.0))
    with closing(sqlite3.connect(store.db_path)) as con, con:
        con.executemany("INSERT INTO events(run_id, kind, data) VALUES(?, ?, ?)",
                        [(run.id, e.kind, json.dumps(e.to_dict())) for e in events])
    store.finish(run.id, "completed", "Finished 2 epochs.",
                 {"accuracy": 52.0, "per_class": dict.fromkeys(CLASSES, 52.0),
                  "images_per_s": 9e3})
    return run.id


def chart_rows(chart) -> int:
    """How many rows of data a drawn chart sends to the browser."""
    tables = [d.data.data for d in chart.proto.datasets] + [chart.proto.data.data]
    return sum(pa.ipc.open_stream(t).read_all().num_rows for t in tables if t)


def test_train_and_runs_pages_draw_a_run_of_100000_reports_as_a_spread(data_dir, runs_dir):
    run_id = add_long_run(runs_dir, data_dir, 100_000)
    at = app_at("pages/train.py")
    no_traceback(at)
    assert run_id in texts(at)
    chart = at.get("vega_lite_chart")[0]
    assert 1_000 < chart_rows(chart) <= 2_000 + 10  # the reports drawn, epoch marks beside them
    assert "100,000 loss reports, one every batch" in texts(at)
    assert "The chart draws" in texts(at)
    at = app_at("pages/runs.py")
    no_traceback(at)
    assert at.multiselect(key="compare_runs").value == [run_id]
    assert chart_rows(at.get("vega_lite_chart")[0]) <= 2_000
    # The spread is said in words, not as the budget divided by the runs compared ("Up to 666").
    assert "drawn from an even spread of its reports" in texts(at)
    assert "Up to" not in texts(at)


def test_train_page_explains_a_diverged_run(data_dir, runs_dir):
    store = RunStore(runs_dir)
    run = store.create(TrainConfig(lr=5).to_dict(), str(data_dir), "test", status="running")
    store.finish(run.id, "diverged", "The loss became NaN in epoch 1: the learning rate 5 is "
                                     "too high. Lower it (try 0.5) and start again.")
    at = app_at("pages/train.py")
    no_traceback(at)
    assert any("Lower it" in e.value for e in at.error)
    # It ended before any report: said once, no bar repeating the message, no empty figures.
    assert "ended before its first loss report" in texts(at)
    assert "starts with the first report" not in texts(at)
    assert not at.get("progress") and not at.metric


def test_train_page_shows_no_test_accuracy_before_the_first_epoch_ends(data_dir, runs_dir):
    # A run that reported its loss but has not finished epoch 1: "after epoch 1" as the value
    # read as if it were a measurement; a dash, and the help says when it comes.
    import os

    store = RunStore(runs_dir)
    config = TrainConfig(epochs=2, batch_size=10, log_every=2, seed=0).to_dict()
    run = store.create(config, str(data_dir), "dashboard", status="running", pid=os.getpid())
    store.add_event(run.id, StatsEvent(epoch=1, minibatch=2, step=2, images_seen=20, loss=2.3,
                                       images_per_s=100.0, elapsed_s=0.2, fraction_done=0.05,
                                       eta_s=4.0, images_per_epoch=200))
    at = app_at("pages/train.py")
    no_traceback(at)
    accuracy = next(m for m in at.metric if m.label == "Test accuracy")
    assert accuracy.value == "-"
    assert "after each epoch" in accuracy.proto.help and "epoch 1" in accuracy.proto.help


def test_train_page_and_sidebar_follow_the_training_run_not_the_one_waiting(data_dir, runs_dir):
    import os

    store = RunStore(runs_dir)
    config = TrainConfig(epochs=1, batch_size=10, log_every=2, seed=0).to_dict()
    training = store.create(config, str(data_dir), "dashboard", status="running", pid=os.getpid())
    waiting = store.create(config, str(data_dir), "dashboard")  # newer, queued behind it
    at = app_at("pages/train.py")
    no_traceback(at)
    assert any(f"Run {training.id} · running" in h.value for h in at.subheader)
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert training.id in sidebar and waiting.id not in sidebar
    assert "1 more waiting or running" in sidebar


# --- Evaluate -----------------------------------------------------------------------------------

def test_evaluate_shows_accuracy_per_class_and_confusions(data_dir, runs_dir):
    run_id = finish_run(runs_dir, data_dir)
    run = RunStore(runs_dir).get(run_id)
    at = app_at("pages/evaluate.py")
    no_traceback(at)
    assert at.selectbox(key="eval_run").value == run_id
    accuracy = next(m for m in at.metric if m.label == "Test accuracy")
    assert accuracy.value == f"{run.metrics['accuracy']:.1f} %"
    # A visit draws the first section only: 16 test pictures with their verdicts.
    assert len(shown_tiles(at)) == 16
    assert not at.dataframe and not at.get("vega_lite_chart")
    open_section(at, "Accuracy per class")
    table = at.dataframe[0].value
    assert list(table["class"]) == CLASSES
    assert table["total"].sum() == 50
    assert not at.get("html"), "the first section's pictures are not drawn under another tab"
    open_section(at, "Mistaken for what")
    assert at.selectbox(key="cell_true").options == CLASSES
    at.selectbox(key="cell_true").set_value("cat").run()
    at.selectbox(key="cell_predicted").set_value("cat").run()
    no_traceback(at)
    assert re.search(r"cat images? called cat", texts(at))
    open_section(at, "Most confident mistakes")
    assert "surest about and still got wrong" in texts(at)
    open_section(at, "Truth and prediction")
    assert len(shown_tiles(at)) == 16


def test_evaluate_shows_how_the_mistakes_changed_epoch_by_epoch(data_dir, runs_dir):
    run_id = finish_run(runs_dir, data_dir, epochs=3)
    at = app_at("pages/evaluate.py")
    no_traceback(at)
    open_section(at, "How it learned")
    assert "The test after each epoch" in texts(at)
    slider = at.select_slider(key=f"learn_epoch_{run_id}")
    assert slider.value == 3 and list(slider.options) == ["1", "2", "3"]
    slider.set_value(1).run()
    no_traceback(at)
    assert at.select_slider(key=f"learn_epoch_{run_id}").value == 1


def test_evaluate_without_runs_points_to_train(data_dir, runs_dir):
    at = app_at("pages/evaluate.py")
    no_traceback(at)
    assert "No finished run" in at.info[0].value


def test_evaluate_with_a_deleted_checkpoint_says_so(data_dir, runs_dir):
    run_id = finish_run(runs_dir, data_dir)
    Path(RunStore(runs_dir).get(run_id).checkpoint).unlink()
    at = app_at("pages/evaluate.py")
    no_traceback(at)
    # Nothing broke: a calm warning that says what to do, not an error box.
    assert any("checkpoint file is gone" in w.value for w in at.warning)
    assert not at.error


# --- Runs ---------------------------------------------------------------------------------------

def test_runs_table_compare_download_and_delete(data_dir, runs_dir):
    first = finish_run(runs_dir, data_dir, lr=0.01)
    second = finish_run(runs_dir, data_dir, lr=0.05, momentum=0.5, model="tutorial-wide")
    at = app_at("pages/runs.py")
    no_traceback(at)
    table = at.dataframe[0].value
    assert set(table["run"]) == {first, second}
    assert set(table["lr"]) == {0.01, 0.05}
    assert set(at.multiselect(key="compare_runs").value) == {first, second}
    assert "Which settings pay off" in texts(at)
    # The name and accuracy first (issue 26), the data set (issue 24), then every compared
    # setting as declared.
    assert list(table.columns[:2]) == ["name", "accuracy"]
    assert list(table.columns[4:5 + len(SETTINGS)]) == ["dataset", *SETTINGS]
    assert set(table["dataset"]) == {"CIFAR-10"}
    assert set(table["train_size"]) == {"all"}  # not 'None'
    for setting in SETTINGS:  # every compared setting, a choice (the model) too, as an axis
        at.radio(key="scatter_setting").set_value(setting).run()
        no_traceback(at)
    labels = [b.label for b in at.get("download_button")]
    assert f"Network ({second}-network.pth)" in labels and "Metrics (CSV)" in labels

    at.selectbox(key="files_run").set_value(first).run()
    at.button(key="delete_ask").click().run()
    assert RunStore(runs_dir).get(first)  # asking is not deleting
    at.button(key="delete_yes").click().run()
    no_traceback(at)
    assert [r.id for r in RunStore(runs_dir).list()] == [second]


def test_runs_page_empty(data_dir, runs_dir):
    at = app_at("pages/runs.py")
    no_traceback(at)
    assert "No runs yet" in at.info[0].value


def test_an_inner_page_opened_first_is_drawn_inside_the_app(data_dir, runs_dir):
    # A bookmark of /runs as a fresh server's first request: Streamlit runs the page's file
    # straight from pages/ until st.navigation has run once; the page must still get app.py's
    # frame (the sidebar's run in progress here, the navigation in the browser test).
    import os

    config = TrainConfig(epochs=1, batch_size=10, log_every=2, seed=0).to_dict()
    run = RunStore(runs_dir).create(config, str(data_dir), "dashboard", status="running",
                                    pid=os.getpid())  # alive, so the run stays "running"
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/runs.py")
    at.run()
    no_traceback(at)
    assert at.title[0].value == "Runs"
    assert any(run.id in c.value for c in at.sidebar.caption), "app.py's sidebar is missing"


def test_no_page_says_none_or_nan_for_runs_in_every_state(data_dir, runs_dir):
    """A store with a run in every state (and an older run without newer settings): no page
    shows Python's None or a float's nan to the user. (Runs' accuracy column is a progress
    bar, left empty for a run without one.)"""
    import os
    import re

    done = store_with_every_state(runs_dir, data_dir, running_pid=os.getpid())
    word = re.compile(r"\b(None|nan|NaN)\b")
    for page in (None, "pages/data.py", "pages/train.py", "pages/evaluate.py",
                 "pages/try_it.py", "pages/runs.py"):
        at = app_at(page)
        no_traceback(at)
        shown = texts(at).replace("The loss became NaN", "")  # the diverged run's own words
        assert not word.search(shown), (page, word.findall(shown))
        for frame in at.dataframe:  # a missing value shows as "None" in a table's cell
            missing = frame.value.drop(columns=["accuracy"], errors="ignore").isna().any()
            assert not missing.any(), (page, list(missing[missing].index))
    assert done

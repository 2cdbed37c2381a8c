"""The Train page's Start from (a network trained before) and Keep the earlier layers fixed,
through streamlit.testing.v1.AppTest on tiny generated data (issue 25)."""

from __future__ import annotations

import pytest
import streamlit as st
import torch
from conftest import finish_run
from streamlit.testing.v1 import AppTest

from cifar_core import scheduler
from cifar_core.runs.naming import display_names
from cifar_core.runs.store import RunStore
from cifar_core.training.checkpoint import load_checkpoint
from cifar_core.training.config import TrainConfig
from tests.conftest import APP, TIMEOUT, texts

NOTHING = "Nothing (from scratch)"


@pytest.fixture(autouse=True)
def fresh_caches():
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def train_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/train.py").run()
    at.session_state["advanced_open"] = True
    at.run()
    no_traceback(at)
    return at


def no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in texts(at) and "Something went wrong" not in texts(at)


def start_button(at: AppTest):
    return next(b for b in at.button if b.label == "Start training")


def errors(at: AppTest) -> list[str]:
    """The error messages, the shown run's own ('This run failed: ...') left out."""
    return [e.value for e in at.error if not e.value.startswith("This run")]


def test_start_from_offers_the_finished_runs_and_trains_their_model_and_width(
        data_dir, runs_dir):
    fast = finish_run(runs_dir, data_dir, model="fast", width=8)
    store = RunStore(runs_dir)
    failed = store.create(TrainConfig(seed=0).to_dict(), str(data_dir), origin="test",
                          status="running")
    store.finish(failed.id, "failed", "The training process never started.")
    at = train_page()
    menu = at.selectbox(key="cfg_start_from")
    assert menu.label == "Start from"
    assert menu.options[0] == NOTHING and menu.value is None
    [label] = menu.options[1:]  # the failed run has no network to start from
    accuracy = store.get(fast).accuracy
    name = display_names(store.list())[fast]  # by its name (issue 26), not its id
    assert label.startswith(name) and "CIFAR-10" in label and f"{accuracy:.1f} %" in label
    assert at.selectbox(key="cfg_model").value == "tutorial"
    menu.set_value(fast).run()
    no_traceback(at)
    # The start network's model and width are this run's.
    assert at.selectbox(key="cfg_model").value == "fast"
    assert at.number_input(key="cfg_width").value == 8
    at.toggle(key="cfg_freeze").set_value(True).run()
    at.number_input(key="cfg_epochs").set_value(1).run()
    at.number_input(key="cfg_batch_size").set_value(10).run()
    assert not errors(at), errors(at)
    start_button(at).click().run()
    no_traceback(at)
    run = next(r for r in RunStore(runs_dir).list() if r.id not in (fast, failed.id))
    config = run.train_config
    assert (config.model, config.width, config.start_from, config.freeze) == (
        "fast", 8, fast, True)
    finished = scheduler.wait(RunStore(runs_dir), run.id, timeout=120)
    assert finished.status == "completed", finished.message
    before = load_checkpoint(store.checkpoint_path(fast)).model.group1.conv1.weight
    after = load_checkpoint(finished.checkpoint).model.group1.conv1.weight
    assert torch.equal(before, after)  # kept fixed


def test_a_start_network_that_does_not_fit_the_settings_is_refused_under_the_field(
        data_dir, runs_dir):
    fast = finish_run(runs_dir, data_dir, model="fast", width=8)
    at = train_page()
    at.selectbox(key="cfg_start_from").set_value(fast).run()
    at.selectbox(key="cfg_model").set_value("tutorial").run()
    at.checkbox(key="cfg_width_none").check().run()  # the tutorial's network has no width
    no_traceback(at)
    assert any("start from is the fast network" in e and "tutorial network" in e
               for e in errors(at)), errors(at)
    assert start_button(at).disabled
    at.selectbox(key="cfg_start_from").set_value(None).run()
    no_traceback(at)
    assert not errors(at) and not start_button(at).disabled


def test_keeping_layers_fixed_without_a_network_to_start_from_waits(data_dir, runs_dir):
    at = train_page()
    at.toggle(key="cfg_freeze").set_value(True).run()
    no_traceback(at)
    assert any("needs a network to start from" in e for e in errors(at)), errors(at)
    assert start_button(at).disabled


def test_a_start_network_named_elsewhere_that_is_gone_is_said_in_words(data_dir, runs_dir):
    fast = finish_run(runs_dir, data_dir, model="fast", width=8)
    at = train_page()
    at.selectbox(key="cfg_start_from").set_value(fast).run()
    RunStore(runs_dir).checkpoint_path(fast).unlink()  # its file deleted meanwhile
    at.run()
    no_traceback(at)
    assert any("start from" in e.lower() or fast in e for e in errors(at)), errors(at)
    assert start_button(at).disabled

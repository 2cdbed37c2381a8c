"""The Train page's "Find a learning rate" section (pages/shared/lr_find_ui.py), through
streamlit.testing.v1.AppTest on tiny generated data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import cifar_core.training.estimate
from cifar_core.training.lr_find import rounded_lr

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 60


@pytest.fixture(autouse=True)
def quick_page(monkeypatch):
    """No timed training steps for the estimate (they are not what is tested here), and no
    cached values from other tests."""
    monkeypatch.setattr(cifar_core.training.estimate, "measure_images_per_s",
                        lambda config, threads=None, **_: 50.0)
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error]
    return "\n".join(str(p) for p in parts)


def no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Something went wrong" not in texts(at)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def train_page_with_the_section_open() -> AppTest:
    """The Train page with "Find a learning rate" opened (its state, as a click sets it)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/train.py").run()
    at.session_state["lrf_open"] = True
    at.run()
    no_traceback(at)
    return at


def train_page_with_a_finding(steps: int = 20) -> AppTest:
    at = train_page_with_the_section_open()
    assert not charts(at)  # no run yet, no finding yet
    at.number_input(key="lrf_steps").set_value(steps).run()
    button(at, "Find a learning rate").click().run()
    no_traceback(at)
    return at


def test_the_test_draws_its_chart_and_use_it_fills_the_learning_rate(data_dir, runs_dir):
    at = train_page_with_a_finding()
    assert len(charts(at)) == 1
    finding = at.session_state["lr_finding"]
    if finding.suggestion is None:  # the tiny data's curve told nothing: as if it had told one
        at.session_state["lr_finding"] = finding = replace(
            finding, suggestion=finding.lrs[5], suggestion_kind="steepest descent",
            steepest_lr=finding.lrs[5])
        at.run()
    assert len(finding.lrs) <= 20
    suggestion = rounded_lr(finding.suggestion)
    assert f"Suggested: **{suggestion:g}** ({finding.suggestion_kind})" in texts(at)
    spec = charts(at)[0].proto.spec
    assert '"log"' in spec  # the learning rate on a log axis
    for label, lr in finding.marks():  # both suggestions marked, with their values
        assert f"{label}: {rounded_lr(lr):g}" in str(charts(at)[0].proto)

    button(at, "Use it").click().run()
    no_traceback(at)
    assert at.number_input(key="cfg_lr").value == pytest.approx(suggestion)
    # The learning rate does not change what the test measured: the finding stays.
    assert len(charts(at)) == 1


def test_the_finding_is_cleared_when_a_setting_it_depends_on_changes(data_dir, runs_dir):
    at = train_page_with_a_finding(steps=10)
    assert len(charts(at)) == 1
    at.number_input(key="cfg_epochs").set_value(3).run()  # epochs: the test does not use them
    assert len(charts(at)) == 1
    at.number_input(key="cfg_batch_size").set_value(8).run()
    no_traceback(at)
    assert not charts(at)
    assert "lr_finding" not in at.session_state


def test_a_bad_range_shows_what_to_do_not_a_traceback(data_dir, runs_dir):
    at = train_page_with_the_section_open()
    at.number_input(key="lrf_start").set_value(1.0).run()
    at.number_input(key="lrf_end").set_value(0.1).run()
    button(at, "Find a learning rate").click().run()
    no_traceback(at)
    assert any("must be above the first" in e.value for e in at.error)
    assert not charts(at)


def test_the_button_waits_for_the_settings_marked_in_red(data_dir, runs_dir):
    at = train_page_with_the_section_open()
    at.number_input(key="cfg_momentum").set_value(1.0).run()
    no_traceback(at)
    assert button(at, "Find a learning rate").disabled
    assert "Fix the settings marked in red first." in texts(at)


def test_the_closed_section_draws_nothing_and_keeps_what_was_typed(data_dir, runs_dir):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/train.py").run()
    no_traceback(at)
    # Closed (as a visit finds it): its fields and button are not made at all.
    assert "lrf_steps" not in [n.key for n in at.number_input]
    assert not [b for b in at.button if b.label == "Find a learning rate"]
    at.session_state["lrf_open"] = True
    at.run()
    at.number_input(key="lrf_steps").set_value(30).run()
    at.number_input(key="lrf_end").set_value(0.5).run()
    at.session_state["lrf_open"] = False
    at.run()
    at.number_input(key="cfg_epochs").set_value(3).run()  # other reruns while it is closed
    at.session_state["lrf_open"] = True
    at.run()
    no_traceback(at)
    assert at.number_input(key="lrf_steps").value == 30
    assert at.number_input(key="lrf_end").value == pytest.approx(0.5)


def test_a_finding_that_would_not_fit_in_memory_is_refused_in_words(data_dir, runs_dir,
                                                                    monkeypatch):
    """Issue 29 item 12: the finder runs in the server's process; one that would not fit is
    refused before it starts, saying how large a batch fits."""
    import cifar_core.training.memory
    monkeypatch.setattr(cifar_core.training.memory, "available_bytes", lambda device: 2**20)
    at = train_page_with_the_section_open()
    at.number_input(key="lrf_steps").set_value(10).run()
    button(at, "Find a learning rate").click().run()
    no_traceback(at)
    said = " ".join(e.value for e in at.error)
    assert "Finding a learning rate with a batch of" in said and "memory" in said, said
    assert "lr_finding" not in at.session_state and not charts(at)


def test_a_curve_too_flat_to_tell_shows_why_and_offers_nothing_to_use(data_dir, runs_dir):
    """Issue 26: 'Use it' put 0.87 from an almost flat curve into the form with no caution."""
    at = train_page_with_a_finding(steps=10)
    flat = "The loss hardly moved: ... so nothing is suggested. Try more minibatches."
    finding = at.session_state["lr_finding"]
    at.session_state["lr_finding"] = replace(finding, suggestion=None, suggestion_kind="none",
                                             message=flat)
    at.run()
    no_traceback(at)
    assert len(charts(at)) == 1  # the curve is still drawn
    assert any(flat in w.value for w in at.warning)
    assert "Use it" not in [b.label for b in at.button]
    assert "Suggested:" not in texts(at)


def test_the_finding_is_cleared_when_the_data_set_changes(data_dir, runs_dir):
    at = train_page_with_a_finding(steps=10)
    finding = at.session_state["lr_finding"]
    at.session_state["lr_finding"] = replace(finding, dataset="fashion-mnist")
    at.run()
    no_traceback(at)
    assert not charts(at) and "lr_finding" not in at.session_state

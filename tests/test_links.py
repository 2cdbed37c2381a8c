"""Links that reopen a view (cifar_core.share.links): an address's query parameters checked into
a page's choices, hostile ones refused with a sentence; and the pages through AppTest, opened
at such an address."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cifar_core.share import links

RUN = "20261206-101500-a1b2"
OTHER = "20261206-111500-c3d4"
GONE = "20261101-090000-ffff"
SWEEP = "sweep-20261206-101500-a1b2"


def address(**values) -> dict[str, list[str]]:
    """A query as the page reads it: every key with all the values it was given."""
    return {key: value if isinstance(value, list) else [value] for key, value in values.items()}


# --- the library ------------------------------------------------------------------------------

def test_a_run_the_page_offers_is_taken_from_the_address():
    choice = links.checked_run(address(run=RUN), offered=[OTHER, RUN], existing=[OTHER, RUN])
    assert choice == links.Choice(RUN, None)


def test_no_run_in_the_address_is_no_choice_and_no_sentence():
    assert links.checked_run({}, offered=[RUN], existing=[RUN]) == links.Choice(None, None)


def test_a_deleted_run_is_said_calmly_and_the_page_falls_back():
    choice = links.checked_run(address(run=GONE), offered=[RUN], existing=[RUN])
    assert choice.value is None
    assert GONE in choice.notice and "not here" in choice.notice
    assert "newest" in choice.notice


def test_a_run_that_exists_but_has_no_network_is_told_apart_from_a_deleted_one():
    choice = links.checked_run(address(run=OTHER), offered=[RUN], existing=[RUN, OTHER])
    assert choice.value is None
    assert OTHER in choice.notice and "not here" not in choice.notice
    assert "network" in choice.notice


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "..", "<script>alert(1)</script>",
                                     "20261206-101500-a1b2/../../x", "a" * 10_000, "",
                                     "20261206-101500-a1b2\n"])
def test_a_value_that_is_no_run_id_is_refused_before_any_look_at_the_runs(hostile):
    class Untouchable(list):
        def __contains__(self, item):
            raise AssertionError(f"looked up {item!r}")

    choice = links.checked_run(address(run=hostile), offered=Untouchable(),
                               existing=Untouchable())
    assert choice.value is None
    assert choice.notice and len(choice.notice) < 300  # one sentence, not the value repeated
    assert "\n" not in choice.notice


def test_a_key_given_twice_is_refused_not_guessed():
    choice = links.checked_run(address(run=[RUN, OTHER]), offered=[RUN, OTHER],
                               existing=[RUN, OTHER])
    assert choice.value is None and "twice" in choice.notice


def test_an_echoed_value_is_cut_short_and_loses_its_control_characters():
    notice = links.checked_tab(address(tab="x" * 500 + "\x00\r\n<b>"), links.EVALUATE_TABS).notice
    assert len(notice) < 300 and "\x00" not in notice and "\n" not in notice


def test_a_tab_by_its_short_name_gives_its_label_an_unknown_one_a_sentence():
    assert links.checked_tab(address(tab="confusion"), links.EVALUATE_TABS).value == \
        "Mistaken for what"
    refused = links.checked_tab(address(tab="secrets"), links.EVALUATE_TABS)
    assert refused.value is None and "secrets" in refused.notice


def test_sweeps_are_checked_by_their_own_id_pattern_and_existence():
    assert links.checked_sweep(address(sweep=SWEEP), existing=[SWEEP]).value == SWEEP
    assert links.checked_sweep(address(sweep=RUN), existing=[RUN]).value is None  # a run's id
    gone = links.checked_sweep(address(sweep="sweep-20261101-090000-ffff"), existing=[SWEEP])
    assert gone.value is None and "not here" in gone.notice


def test_runs_compared_keep_those_here_and_name_those_not():
    choice = links.checked_runs(address(compare=f"{RUN},{GONE},{OTHER}"),
                                existing=[RUN, OTHER])
    assert choice.value == (RUN, OTHER)
    assert GONE in choice.notice and RUN not in choice.notice


def test_too_many_runs_compared_is_refused():
    many = ",".join(f"20261206-1015{i:02d}-a1b2" for i in range(links.MAX_COMPARED + 1))
    choice = links.checked_runs(address(compare=many), existing=many.split(","))
    assert choice.value is None and str(links.MAX_COMPARED) in choice.notice


def test_a_data_set_must_be_registered():
    assert links.checked_dataset(address(dataset="fashion-mnist"),
                                 ["cifar10", "fashion-mnist"]).value == "fashion-mnist"
    refused = links.checked_dataset(address(dataset="imagenet"), ["cifar10"])
    assert refused.value is None and "imagenet" in refused.notice


def test_classes_are_the_data_sets_own_even_with_a_comma_in_a_name():
    classes = ("cat", "dog", "cat, big")
    assert links.checked_classes(address(classes="dog,cat, big"), classes).value == \
        ("dog", "cat, big")
    refused = links.checked_classes(address(classes="dog,unicorn"), classes)
    assert refused.value == ("dog",) and "unicorn" in refused.notice


@pytest.mark.parametrize("value, expected", [("7", 7), ("0", 0), ("-1", None), ("1e9", None),
                                             ("99999999999999999999", None), ("seven", None)])
def test_a_number_within_its_range_or_refused(value, expected):
    choice = links.checked_number(address(seed=value), "seed", 0, 2**31 - 1)
    assert choice.value == expected
    assert (choice.notice is None) == (expected is not None)


def test_a_number_off_its_steps_is_refused():
    assert links.checked_number(address(size="12"), "size", 4, 64, step=4).value == 12
    refused = links.checked_number(address(size="13"), "size", 4, 64, step=4)
    assert refused.value is None and "steps of 4" in refused.notice


def test_a_views_address_round_trips_through_the_checks():
    params = links.view_address(run=RUN, tab="Mistaken for what", compare=(RUN, OTHER),
                                classes=("cat", "cat, big"), seed=3, sweep=None)
    assert "sweep" not in params
    raw = address(**params)
    assert links.checked_run(raw, offered=[RUN], existing=[RUN]).value == RUN
    assert links.checked_tab(raw, links.EVALUATE_TABS).value == "Mistaken for what"
    assert links.checked_runs(raw, existing=[RUN, OTHER]).value == (RUN, OTHER)
    assert links.checked_classes(raw, ("cat", "cat, big")).value == ("cat", "cat, big")
    assert links.checked_number(raw, "seed", 0, 10).value == 3


# --- the pages, opened at an address (AppTest) -------------------------------------------------

def opened_at(page: str, **params: str):
    """A fresh session whose first request is `page` at an address with these parameters."""
    from conftest import APP, TIMEOUT
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def warnings(at) -> str:
    return "\n".join(w.value for w in at.warning)


def nothing_rendered_from(at, text: str) -> None:
    """`text` (from the address) is in no Markdown or HTML the page drew, as it was given."""
    for element in [*at.markdown, *at.caption, *at.warning, *at.info, *at.error, *at.success]:
        assert text not in element.value, element.value
    for element in at.get("html"):
        assert text not in element.proto.body


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, str, str]:
    """Two runs trained once for this module on the tiny data: (data folder, runs folder,
    the older run, the newer)."""
    from conftest import finish_run, write_cifar_batches
    root = tmp_path_factory.mktemp("links")
    data, runs = write_cifar_batches(root / "data"), root / "runs"
    return data, runs, finish_run(runs, data), finish_run(runs, data, seed=1)


@pytest.fixture
def two_runs(trained, tmp_path, monkeypatch) -> tuple[str, str]:
    """A copy of the two runs as the dashboard's runs folder: (the older, the newer)."""
    data, runs, older, newer = trained
    shutil.copytree(runs, tmp_path / "runs")
    monkeypatch.setenv("CIFAR_DATA_DIR", str(data))
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "runs"))
    return older, newer


def test_evaluate_opened_at_an_address_shows_its_run_and_tab(two_runs):
    older, _ = two_runs
    at = opened_at("pages/evaluate.py", run=older, tab="confusion")
    assert at.selectbox(key="eval_run").value == older
    assert at.session_state["eval_section"] == "Mistaken for what"
    assert any("Click a square" in c.value for c in at.caption)  # that section is drawn
    assert not at.warning
    assert at.query_params == {"run": older, "tab": "confusion"}


def test_evaluates_sections_are_the_ones_an_address_names(two_runs):
    at = opened_at("pages/evaluate.py")
    assert [t.label for t in at.tabs] == list(links.EVALUATE_TABS.values())


def test_choosing_another_run_or_tab_puts_it_into_the_address(two_runs):
    older, newer = two_runs
    at = opened_at("pages/evaluate.py")
    assert at.query_params["run"] == newer  # the default, written down
    at.selectbox(key="eval_run").set_value(older).run()
    assert at.query_params["run"] == older
    at.session_state["eval_section"] = "How it learned"  # a click on the tab
    at.run()
    assert at.query_params == {"run": older, "tab": "learning"}


def test_an_address_naming_a_deleted_run_says_so_and_shows_the_newest(two_runs):
    _, newer = two_runs
    at = opened_at("pages/evaluate.py", run=GONE, tab="mistakes")
    assert GONE in warnings(at) and "not here" in warnings(at)
    assert at.selectbox(key="eval_run").value == newer
    assert at.session_state["eval_section"] == "Most confident mistakes"
    assert at.query_params["run"] == newer  # the address now says what is shown


MARKUP = "<script>alert(1)</script>"
PICTURE = "![x](http://example.com/x.png)"


@pytest.mark.parametrize("run, tab", [(MARKUP, "../../etc/passwd"),
                                      ("../../etc/passwd", PICTURE)])
def test_hostile_values_are_refused_with_a_sentence_and_never_rendered(two_runs, run, tab):
    _, newer = two_runs
    at = opened_at("pages/evaluate.py", run=run, tab=tab)
    assert len(at.warning) == 2, warnings(at)
    assert "not the name of a run" in warnings(at) and "does not have" in warnings(at)
    nothing_rendered_from(at, MARKUP)
    nothing_rendered_from(at, PICTURE)
    assert at.selectbox(key="eval_run").value == newer
    assert at.query_params == {"run": newer}


def test_a_huge_or_repeated_value_is_refused_calmly(two_runs):
    older, newer = two_runs
    at = opened_at("pages/evaluate.py", run=[older, older], tab="x" * 100_000)
    assert "times" in warnings(at) and "characters long" in warnings(at)
    assert len(warnings(at)) < 1000
    assert at.selectbox(key="eval_run").value == newer


def test_another_page_does_not_take_evaluates_parameters(two_runs):
    older, newer = two_runs
    at = opened_at("pages/evaluate.py", run=older, tab="per-class")
    at.switch_page("pages/data.py").run()  # AppTest keeps the query; a browser clears it
    assert not at.exception
    assert not at.warning
    assert "tab" not in at.query_params and "run" not in at.query_params
    assert at.query_params["dataset"] == "cifar10"  # the Data page's own


def test_try_it_opened_at_an_address_shows_its_network(two_runs):
    older, newer = two_runs
    default = opened_at("pages/try_it.py").selectbox(key="try_run").value
    other = older if default == newer else newer
    at = opened_at("pages/try_it.py", run=other)
    assert at.selectbox(key="try_run").value == other
    assert at.query_params == {"run": other}
    gone = opened_at("pages/try_it.py", run=GONE)
    assert GONE in warnings(gone) and gone.selectbox(key="try_run").value == default


def sweep_with_runs(runs_dir, data_dir, name: str) -> tuple[str, list[str]]:
    """An ended sweep of two runs (made through the store, no network): its id, its runs."""
    import os

    from cifar_core.runs.store import RunStore
    from cifar_core.sweeps.space import Axis, SearchSpace
    from cifar_core.sweeps.store import SweepStore
    from cifar_core.training.config import TrainConfig

    store = RunStore(runs_dir)
    sweeps = SweepStore(store)
    config = TrainConfig(epochs=1, batch_size=10, log_every=2, seed=0).to_dict()
    sweep = sweeps.create(name, SearchSpace(axes=(Axis("lr", (0.001, 0.01)),)),
                          str(data_dir), "cli")
    ids = []
    for trial, lr in enumerate((0.001, 0.01)):
        run = sweeps.add_run(sweep, {**config, "lr": lr}, trial)
        store.set_running(run.id, os.getpid())
        store.finish(run.id, "completed", "", {"accuracy": 30.0 + trial, "per_class": {}})
        ids.append(run.id)
    sweeps.finish(sweep.id, "completed", "")
    return sweep.id, ids


@pytest.fixture
def two_sweeps(data_dir, runs_dir):
    """Two ended sweeps: ((older id, its runs), (newer id, its runs))."""
    import time
    older = sweep_with_runs(runs_dir, data_dir, "older")
    time.sleep(1.01)  # ids and order go by the second
    return older, sweep_with_runs(runs_dir, data_dir, "newer")


def test_the_sweep_page_opens_on_the_sweep_its_address_names(two_sweeps):
    (older, _), (newer, _) = two_sweeps
    at = opened_at("pages/sweep.py", sweep=older)
    assert at.selectbox(key="sw_chosen").value == older
    assert at.query_params == {"sweep": older}
    at.selectbox(key="sw_chosen").set_value(newer).run()
    assert at.query_params == {"sweep": newer}
    gone = opened_at("pages/sweep.py", sweep="sweep-20261101-090000-ffff")
    assert "not here" in warnings(gone) and gone.selectbox(key="sw_chosen").value == newer


def test_the_runs_page_compares_the_runs_and_shows_the_sweep_its_address_names(two_sweeps):
    (older, older_runs), _ = two_sweeps
    compared = [older_runs[1], older_runs[0]]
    at = opened_at("pages/runs.py", compare=",".join(compared), sweep=older)
    assert at.multiselect(key="compare_runs").value == compared
    assert at.selectbox(key="runs_sweep").value == older
    assert at.query_params == {"compare": ",".join(compared), "sweep": older}
    at.multiselect(key="compare_runs").unselect(compared[0]).run()
    assert at.query_params["compare"] == compared[1]


def test_the_data_page_opens_on_its_addresses_data_set_split_classes_and_seed(data_dir,
                                                                              runs_dir):
    from conftest import shown_tiles
    at = opened_at("pages/data.py", dataset="cifar10", split="test", classes="cat,dog",
                   size="8", seed="5")
    assert at.radio(key="data_split").value == "test"
    assert at.multiselect(key="data_classes").value == ["cat", "dog"]
    assert at.number_input(key="data_seed").value == 5
    tiles = shown_tiles(at)
    assert len(tiles) == 8 and {caption for _, caption in tiles} <= {"cat", "dog"}
    assert at.query_params == {"dataset": "cifar10", "split": "test", "classes": "cat,dog",
                               "size": "8", "seed": "5"}
    again = opened_at("pages/data.py", **at.query_params)
    assert shown_tiles(again) == tiles  # the same pictures from the same address
    at.number_input(key="data_seed").set_value(6).run()
    assert at.query_params["seed"] == "6"


def test_the_data_page_refuses_a_class_or_data_set_it_does_not_have(data_dir, runs_dir):
    at = opened_at("pages/data.py", dataset="<b>x</b>", classes="cat,unicorn")
    assert "not here" in warnings(at) and "unicorn" in warnings(at)
    nothing_rendered_from(at, "<b>x</b>")
    assert at.multiselect(key="data_classes").value == ["cat"]


def test_the_runs_page_leaves_out_what_its_address_names_wrongly(two_sweeps):
    (older, older_runs), _ = two_sweeps
    at = opened_at("pages/runs.py", compare=f"{older_runs[0]},{GONE},{MARKUP}", sweep=PICTURE)
    assert at.multiselect(key="compare_runs").value == [older_runs[0]]
    assert GONE in warnings(at) and "not the name of a sweep" in warnings(at)
    nothing_rendered_from(at, MARKUP)
    nothing_rendered_from(at, PICTURE)
    assert at.query_params["compare"] == older_runs[0]

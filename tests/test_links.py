"""Links that reopen a view (cifar_core.share.links): an address's query parameters checked into
a page's choices, hostile ones refused with a sentence; and the pages through AppTest, opened
at such an address."""

from __future__ import annotations

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

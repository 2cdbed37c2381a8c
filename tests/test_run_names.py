"""Runs people can tell apart (issue 26): a name, a note and tags per run in the store
(cifar_core.runs.store, .annotations), default names made from what differs
(cifar_core.runs.naming), and the Runs table's order, filters and groups (cifar_core.runs.views)."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from cifar_core.errors import RunError
from cifar_core.runs import store_file
from cifar_core.runs.store import DB_NAME, RunStore
from cifar_core.runs.store_file import schema_version

CONFIG = {"model": "fast", "epochs": 1, "lr": 0.02, "momentum": 0.9, "batch_size": 64}


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def done(store: RunStore, accuracy: float | None = 50.0, sweep_id: str | None = None,
         trial: int | None = None, **settings):
    """A completed run with these settings (over CONFIG) and this accuracy."""
    run = store.create({**CONFIG, **settings}, "/data", "cli", status="running",
                       sweep_id=sweep_id, trial=trial)
    store.finish(run.id, "completed", metrics=None if accuracy is None else
                 {"accuracy": accuracy, "per_class": {}})
    return store.get(run.id)


# --- the store: a version with names, notes and tags, and a store from before it ----------

def test_a_store_written_before_names_opens_keeps_its_runs_and_takes_names(tmp_path,
                                                                          monkeypatch):
    root = tmp_path / "runs"
    every = store_file.MIGRATIONS
    monkeypatch.setattr(store_file, "MIGRATIONS", [m for m in every if m[0] <= 3])
    old = RunStore(root)  # the store as the version before names wrote it
    run = done(old, accuracy=41.5, lr=0.003)
    seq = old.add_event(run.id, {"kind": "stats", "epoch": 1, "minibatch": 2, "step": 2,
                                 "images_seen": 8, "loss": 2.1, "images_per_s": 10.0,
                                 "elapsed_s": 0.1, "fraction_done": 0.5, "eta_s": 1.0})
    with closing(sqlite3.connect(root / DB_NAME)) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 3
        assert "name" not in [r[1] for r in con.execute("PRAGMA table_info(runs)")]
    monkeypatch.setattr(store_file, "MIGRATIONS", every)

    store = RunStore(root)

    with closing(sqlite3.connect(root / DB_NAME)) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == schema_version() > 3
    kept = store.get(run.id)
    assert (kept.accuracy, kept.config, kept.status) == (41.5, run.config, "completed")
    assert (kept.name, kept.note, kept.tags) == (None, "", ())
    assert [s for s, _ in store.events(run.id)] == [seq]
    named = store.set_name(run.id, "first try")
    assert named.name == "first try" and store.get(run.id).name == "first try"


def test_name_note_and_tags_are_kept_and_cleaned(store):
    run = done(store)

    assert store.set_name(run.id, "  lr\tsearch\nbest  ").name == "lr search best"
    assert store.set_note(run.id, "  Tried a higher lr.\nIt diverged once.  ").note == (
        "Tried a higher lr.\nIt diverged once.")
    assert store.tag(run.id, ["Baseline", "cpu", "baseline"]).tags == ("baseline", "cpu")
    assert store.tag(run.id, ["best"]).tags == ("baseline", "best", "cpu")
    assert store.tag(run.id, ["cpu", "gone"], remove=True).tags == ("baseline", "best")
    again = store.get(run.id)
    assert (again.name, again.note, again.tags) == (
        "lr search best", "Tried a higher lr.\nIt diverged once.", ("baseline", "best"))
    assert store.set_name(run.id, "   ").name is None  # empty: back to the made-up name
    assert store.set_tags(run.id, []).tags == ()
    assert store.list()[0].note == again.note  # list() reads them too


def test_a_long_name_is_cut_as_a_sweeps_name_is(store):
    run = done(store)
    name = store.set_name(run.id, "x" * 200).name
    assert len(name) == 80 and name.endswith("…")


@pytest.mark.parametrize(("call", "words"), [
    (lambda s, r: s.set_name(r, "!!! ---"), "letter or digit"),
    (lambda s, r: s.set_note(r, "n" * 5000), "2,000 characters"),
    (lambda s, r: s.tag(r, ["two words"]), "plain word"),
    (lambda s, r: s.tag(r, ["<b>"]), "plain word"),
    (lambda s, r: s.tag(r, ["t" * 40]), "at most 24"),
    (lambda s, r: s.tag(r, []), "at least one tag"),
    (lambda s, r: s.set_tags(r, [f"t{i}" for i in range(30)]), "at most 20 tags"),
])
def test_bad_names_notes_and_tags_are_refused_in_words_and_change_nothing(store, call, words):
    run = done(store)
    store.set_name(run.id, "kept")
    store.tag(run.id, ["kept"])

    with pytest.raises(RunError, match=words):
        call(store, run.id)

    after = store.get(run.id)
    assert (after.name, after.note, after.tags) == ("kept", "", ("kept",))


def test_naming_an_unknown_run_says_how_to_list_them(store):
    for call in (lambda: store.set_name("20250101-000000-abcd", "x"),
                 lambda: store.set_note("20250101-000000-abcd", "x"),
                 lambda: store.tag("20250101-000000-abcd", ["x"])):
        with pytest.raises(RunError, match="There is no run '20250101-000000-abcd'.*runs list"):
            call()

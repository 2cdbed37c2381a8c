"""Runs people can tell apart (issue 26): a name, a note and tags per run in the store
(cifar_core.runs.store, .annotations), default names made from what differs
(cifar_core.runs.naming), and the Runs table's order, filters and groups (cifar_core.runs.views)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest

from cifar_core.errors import RunError
from cifar_core.runs import store_file
from cifar_core.runs.naming import display_names
from cifar_core.runs.store import DB_NAME, RunStore
from cifar_core.runs.store_file import schema_version
from cifar_core.runs.views import (
    NO_TAG,
    filter_choices,
    filter_runs,
    group_table,
    named_label,
    runs_table,
)

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


# --- default names made from what differs (cifar_core.runs.naming) -------------------------

def test_two_sweep_runs_that_differ_only_in_lr_read_differently(store):
    a = done(store, sweep_id="sweep-1", trial=0, lr=0.02)
    b = done(store, sweep_id="sweep-1", trial=1, lr=0.002)

    names = display_names(store.list())

    assert names[a.id] != names[b.id]
    assert names[a.id] == "fast · lr 0.02" and names[b.id] == "fast · lr 0.002"


def test_a_sweeps_names_show_each_setting_it_varies(store):
    grid = {(lr, m): done(store, sweep_id="sweep-1", trial=i, lr=lr, momentum=m)
            for i, (lr, m) in enumerate([(0.02, 0.8), (0.02, 0.9), (0.002, 0.8),
                                         (0.002, 0.9)])}
    outside = done(store, lr=0.5, epochs=3)  # what differs outside the sweep is not its business

    names = display_names(store.list())

    assert names[grid[0.02, 0.8].id] == "fast · lr 0.02 · mom 0.8"
    assert names[grid[0.002, 0.9].id] == "fast · lr 0.002 · mom 0.9"
    assert names[outside.id] == "fast"


def test_runs_outside_sweeps_show_where_they_differ_from_the_usual(store):
    usual = [done(store, lr=0.01) for _ in range(3)]
    odd = done(store, lr=0.05, batch_size=128)

    names = display_names(store.list())

    assert names[odd.id] == "fast · lr 0.05 · batch 128"
    assert all("lr" not in names[r.id] and "fast" in names[r.id] for r in usual)
    assert len(set(names.values())) == 4  # the three alike told apart (by their time)


def test_runs_alike_are_told_apart_by_their_seed_or_time(store):
    seeded = [done(store, sweep_id="s", trial=i, seed=s) for i, s in enumerate((3, 7))]
    unseeded = [done(store, sweep_id="t", trial=i) for i in range(3)]

    names = display_names(store.list())

    assert {names[r.id] for r in seeded} == {"fast · seed 3", "fast · seed 7"}
    shown = [names[r.id] for r in unseeded]
    assert len(set(shown)) == 3 and all(n.startswith("fast · ") for n in shown)
    assert len(set(names.values())) == len(names)


def test_a_stored_name_is_shown_as_it_is_and_others_do_not_take_it(store):
    a = done(store, lr=0.02)
    b = done(store, lr=0.002)
    store.set_name(a.id, "baseline")
    store.set_name(b.id, "baseline")

    names = display_names(store.list())

    assert names[a.id].startswith("baseline") and names[b.id].startswith("baseline")
    assert names[a.id] != names[b.id]


def test_a_setting_that_does_not_apply_to_a_model_is_left_out(store):
    tutorial = done(store, model="tutorial", width=None)
    fast = done(store, model="fast", width=16)

    names = display_names(store.list())

    assert names[tutorial.id] == "tutorial" and names[fast.id] == "fast · width 16"


# --- the Runs table: names, accuracy first, filters and groups (cifar_core.runs.views) ------

def test_the_runs_table_starts_with_the_name_then_the_accuracy(store):
    a = done(store, accuracy=61.0, lr=0.02)
    b = done(store, accuracy=None, lr=0.002)
    store.set_name(a.id, "my best")
    store.tag(a.id, ["keep", "cpu"])
    store.set_note(a.id, "lr doubled")

    table = runs_table(store.list())

    assert list(table.columns[:2]) == ["name", "accuracy"]
    rows = table.set_index("run")
    assert rows.loc[a.id, "name"] == "my best" and rows.loc[a.id, "accuracy"] == 61.0
    assert rows.loc[b.id, "name"] == display_names(store.list())[b.id]
    assert (rows.loc[a.id, "tags"], rows.loc[a.id, "note"]) == ("cpu, keep", "lr doubled")


def test_filter_runs_by_a_setting_a_tag_or_the_status(store):
    fast = [done(store, lr=0.02), done(store, lr=0.02)]
    slow = done(store, lr=0.002)
    stopped = store.create({**CONFIG, "lr": 0.002}, "/data", "cli", status="running")
    store.finish(stopped.id, "stopped")
    store.tag(fast[0].id, ["keep"])
    store.tag(slow.id, ["keep", "cpu"])
    runs = store.list()

    assert filter_choices(runs, "lr") == ["0.002", "0.02"]
    assert {r.id for r in filter_runs(runs, "lr", ["0.02"])} == {r.id for r in fast}
    assert {r.id for r in filter_runs(runs, "tag", ["keep"])} == {fast[0].id, slow.id}
    assert {r.id for r in filter_runs(runs, "tag", [NO_TAG])} == {fast[1].id, stopped.id}
    assert [r.id for r in filter_runs(runs, "status", ["stopped"])] == [stopped.id]
    assert filter_runs(runs, "lr", []) == runs  # nothing chosen: every run
    assert filter_choices(runs, "tag") == ["cpu", "keep", NO_TAG]


def test_group_runs_by_a_setting_or_a_tag_with_count_mean_and_best(store):
    done(store, accuracy=40.0, lr=0.02)
    done(store, accuracy=50.0, lr=0.02)
    done(store, accuracy=None, lr=0.02)  # not tested: counted, not in the accuracies
    slow = done(store, accuracy=20.0, lr=0.002)
    store.tag(slow.id, ["cpu"])
    runs = store.list()

    by_lr = group_table(runs, "lr").set_index("group")

    assert list(by_lr.index) == ["0.002", "0.02"]
    assert by_lr.loc["0.02", "runs"] == 3
    assert by_lr.loc["0.02", "mean_accuracy"] == pytest.approx(45.0)
    assert by_lr.loc["0.02", "best_accuracy"] == 50.0
    assert by_lr.loc["0.002", "best_accuracy"] == 20.0
    by_tag = group_table(runs, "tag").set_index("group")
    assert by_tag.loc["cpu", "runs"] == 1 and by_tag.loc[NO_TAG, "runs"] == 3


def test_a_menu_label_leads_with_the_name(store):
    run = done(store, accuracy=23.14)
    label = named_label(run, {run.id: "fast · lr 0.02"})
    assert label.startswith("fast · lr 0.02") and "23.1 %" in label


# --- the pages: names in the pickers, editing them on the Runs page ----------------------

def chart_frames(at) -> list:
    """The data of every chart a page drew, as frames."""
    import pyarrow as pa

    return [pa.ipc.open_stream(d.data.data).read_all().to_pandas()
            for chart in at.get("vega_lite_chart") for d in chart.proto.datasets]


def test_renaming_on_the_runs_page_changes_the_name_evaluate_shows(data_dir, runs_dir):
    from conftest import app_at, finish_run, no_traceback, texts

    first = finish_run(runs_dir, data_dir, lr=0.01)
    second = finish_run(runs_dir, data_dir, lr=0.02)

    at = app_at("pages/runs.py")
    shown = next(d for d in at.dataframe if d.key == "runs_table")
    table = shown.value
    assert list(table.columns[:2]) == ["name", "accuracy"]
    # The name stays in sight while the twenty settings beside it are scrolled through.
    assert json.loads(shown.proto.columns)["name"]["pinned"] is True
    assert set(table["name"]) == {"tutorial · lr 0.01", "tutorial · lr 0.02"}
    at.selectbox(key="files_run").set_value(first).run()
    at.text_input(key=f"run_name_{first}").input("![x](http://e/x.png) ok")
    at.text_input(key=f"run_tags_{first}").input("keep, cpu")
    at.text_area(key=f"run_note_{first}").input("The *first* one.")
    at.button(key="run_save").click().run()
    no_traceback(at)

    kept = RunStore(runs_dir).get(first)
    assert (kept.name, kept.tags, kept.note) == ("![x](http://e/x.png) ok", ("cpu", "keep"),
                                                 "The *first* one.")
    compare = at.multiselect(key="compare_runs")
    assert any(o.startswith("![x](http://e/x.png) ok") for o in compare.options)
    assert "![x]" not in texts(at).replace("\\!\\[x\\]", "")  # shown as text, never a picture
    # The comparison charts' legends (their frames' "run" column) call the runs by name.
    legends = [set(frame["run"]) for frame in chart_frames(at) if "class" in frame
               or "series" in frame]
    assert len(legends) == 2
    assert all(seen == {"![x](http://e/x.png) ok", "tutorial · lr 0.02"} for seen in legends)
    at.text_input(key=f"run_tags_{first}").input("two words!").run()
    at.button(key="run_save").click().run()
    no_traceback(at)
    assert any("plain word" in e.value for e in at.error)
    assert RunStore(runs_dir).get(first).tags == ("cpu", "keep")  # nothing half-saved

    # Filter by a tag, group by the learning rate.
    at.selectbox(key="runs_filter_field").set_value("tag").run()
    at.multiselect(key="runs_filter_values").set_value(["keep"]).run()
    shown = next(d for d in at.dataframe if d.key == "runs_table").value
    assert list(shown["run"]) == [first]
    at.selectbox(key="runs_filter_field").set_value("status").run()  # 'keep' is no status
    no_traceback(at)
    shown = next(d for d in at.dataframe if d.key == "runs_table").value
    assert set(shown["run"]) == {first, second}
    at.selectbox(key="runs_filter_field").set_value(None).run()
    at.selectbox(key="runs_group_by").set_value("lr").run()
    groups = next(d.value for d in at.dataframe if "best_accuracy" in d.value.columns)
    assert list(groups["group"]) == ["0.01", "0.02"] and list(groups["runs"]) == [1, 1]

    at.switch_page("pages/evaluate.py")
    at.run()
    no_traceback(at)
    options = at.selectbox(key="eval_run").options
    assert any(o.startswith("![x](http://e/x.png) ok") for o in options)
    assert any(o.startswith("tutorial · lr 0.02") for o in options)
    assert not any(second in o or first in o for o in options)  # names, not ids


def test_try_it_and_the_start_from_menus_show_names(store):
    from cifar_core.explain.network_imports import network_label
    from cifar_core.runs.start import start_choice_labels

    a = done(store, accuracy=30.0, lr=0.02)
    b = done(store, accuracy=35.0, lr=0.002)
    runs = store.list()
    names = display_names(runs)

    assert network_label(a, names[a.id]).startswith("fast · lr 0.02 (")
    labels = start_choice_labels(runs, [b.id])
    assert list(labels) == [b.id]
    assert labels[b.id].startswith("fast · lr 0.002 (") and "35.0 %" in labels[b.id]
    imported = store.create({"model": "fast", "imported_from": "cifar_net.pth"}, "/data",
                            "imported", status="running")
    store.finish(imported.id, "completed")
    imported = store.get(imported.id)
    label = network_label(imported, display_names(store.list())[imported.id])
    assert label.startswith("cifar_net.pth (imported")
    odd = store.create({"model": "fast", "imported_from": "two\nlines.pth"}, "/data",
                       "imported")
    assert display_names(store.list())[odd.id] == "two lines.pth"  # one line in every list

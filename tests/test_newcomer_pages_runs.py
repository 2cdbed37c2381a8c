"""Issue 22 (what a newcomer found) on the Runs, Try it and Sweep pages, through AppTest: ticks
that follow run ids (item 2), the charts (10), the small inconsistencies (11), the wording
(8, 9) and a quiet server log (12)."""

from __future__ import annotations

import json
import logging
import math
import re
import warnings

import pytest
from conftest import app_at, blocks_holding, finish_run, jpeg, no_traceback, shown_tiles
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

from cifar_core.runs.store import RunStore

RUNS = "pages/runs.py"


def runs_table(at: AppTest, key: str = "runs_table"):
    return next(d for d in at.dataframe if d.key == key)


def tick(at: AppTest, rows: list[int], key: str = "runs_table") -> AppTest:
    """Tick these rows of a table as a person does in the browser: the browser sends the
    table's new selection (row positions in the table it shows) with the rerun."""
    table = runs_table(at, key)
    states = at._tree.get_widget_states()
    kept = [w for w in states.widgets if w.id != table.proto.id]
    del states.widgets[:]
    states.widgets.extend(kept)
    states.widgets.append(WidgetState(id=table.proto.id, string_value=json.dumps(
        {"selection": {"rows": rows, "columns": [], "cells": []}})))
    at._run(states)
    return at


def ticked_ids(at: AppTest, key: str = "runs_table") -> list[str]:
    """The run ids of the rows shown ticked in a table."""
    table = runs_table(at, key)
    rows = at.session_state[key]["selection"]["rows"] if key in at.session_state else []
    return [table.value["run"].iloc[i] for i in rows]


def delete_run(at: AppTest, run_id: str) -> None:
    at.selectbox(key="files_run").set_value(run_id).run()
    at.button(key="delete_ask").click().run()
    at.button(key="delete_yes").click().run()


@pytest.fixture
def three_runs(data_dir, runs_dir) -> list[str]:
    """Three finished runs, as the Runs table lists them (newest first)."""
    for lr in (0.01, 0.02, 0.03):
        finish_run(runs_dir, data_dir, lr=lr)
    return [r.id for r in RunStore(runs_dir).list()]


# --- item 2: selections follow run ids, never row positions --------------------------------

def test_deleting_a_run_while_the_last_row_is_ticked_keeps_the_page_working(three_runs):
    first, _, last = three_runs
    at = app_at(RUNS)
    assert list(runs_table(at).value["run"]) == three_runs
    tick(at, [2])
    no_traceback(at)
    assert at.multiselect(key="compare_runs").value == [last]
    delete_run(at, first)
    no_traceback(at)
    at.run()  # the next visit too
    no_traceback(at)
    assert at.multiselect(key="compare_runs").value == [last]
    assert ticked_ids(at) == [last]


def test_a_tick_stays_on_its_run_when_the_rows_above_it_go(three_runs):
    first, middle, last = three_runs
    at = app_at(RUNS)
    tick(at, [1])
    assert at.multiselect(key="compare_runs").value == [middle]
    delete_run(at, first)
    no_traceback(at)
    # The middle run moved up to row 0: the tick moved with it, not onto the run now in row 1.
    assert at.multiselect(key="compare_runs").value == [middle]
    assert ticked_ids(at) == [middle]
    assert last not in at.multiselect(key="compare_runs").value


def test_ticking_and_unticking_rows_adds_and_removes_runs_of_the_comparison(three_runs):
    first, middle, last = three_runs
    at = app_at(RUNS)
    tick(at, [0, 2])
    assert at.multiselect(key="compare_runs").value == [first, last]
    at.multiselect(key="compare_runs").set_value([last]).run()  # the box changes the ticks
    no_traceback(at)
    assert ticked_ids(at) == [last]


# --- item 11: the runs pre-picked for comparison are the ticked rows ------------------------

def test_the_runs_compared_when_the_page_opens_are_ticked_in_the_table(data_dir, runs_dir):
    for lr in (0.01, 0.02, 0.03, 0.04):
        finish_run(runs_dir, data_dir, lr=lr)
    at = app_at(RUNS)
    no_traceback(at)
    compared = at.multiselect(key="compare_runs").value
    assert len(compared) == 3
    assert ticked_ids(at) == compared


# --- item 12: a quiet server log ------------------------------------------------------------

class Collected(logging.Handler):
    """What a logger writes, kept."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def server_log():
    """The warnings the pages would write to the server's log: Streamlit's (its warning about a
    widget given a value twice is written once per process: made writable again) and Python's
    warnings, Altair's among them."""
    from streamlit.elements.lib import policies

    policies._shown_default_value_warning = False
    handler = Collected()
    logger = logging.getLogger(policies.__name__)  # Streamlit's loggers do not propagate
    logger.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield lambda: handler.messages + [str(w.message) for w in caught]
    logger.removeHandler(handler)


def test_ticking_rows_and_comparing_runs_write_nothing_to_the_log(three_runs, server_log):
    at = app_at(RUNS)
    tick(at, [1])
    tick(at, [1, 2])
    at.multiselect(key="compare_runs").set_value([three_runs[0]]).run()
    for setting in at.radio(key="scatter_setting").options:
        at.radio(key="scatter_setting").set_value(setting).run()
    no_traceback(at)
    logged = "\n".join(server_log())
    assert "Session State" not in logged and "default value" not in logged, logged
    assert "infer vegalite type" not in logged, logged


# --- item 10: the charts --------------------------------------------------------------------

def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def layers(spec: dict) -> list[dict]:
    """A spec's single charts, its layers' included."""
    found = [spec] if "mark" in spec else []
    for part in spec.get("layer", []) + ([spec["spec"]] if "spec" in spec else []):
        found += layers(part)
    return found


def test_the_scatter_keeps_room_for_its_points_at_the_best_accuracy(three_runs):
    at = app_at(RUNS)
    [scatter] = [layer for spec in chart_specs(at) for layer in layers(spec)
                 if layer["mark"].get("type") == "circle"]
    radius = math.sqrt(scatter["mark"]["size"] / math.pi)
    # A point of the highest accuracy sits on the plot's top edge: the y scale keeps at least
    # its radius free around the values, or half of it is cut off.
    assert scatter["encoding"]["y"]["scale"]["padding"] >= radius


# --- item 11: where the Train form's values came from ---------------------------------------

def finished_sweep(runs_dir, data_dir, name: str, accuracies: list[float]) -> tuple[str, list]:
    """A completed sweep over learning rates whose runs got these accuracies (made through the
    store, not trained): its id and runs."""
    import os

    from cifar_core.sweeps.space import Axis, SearchSpace
    from cifar_core.sweeps.store import SweepStore
    from cifar_core.training.config import TrainConfig

    store = RunStore(runs_dir)
    sweeps = SweepStore(store)
    lrs = [0.001 * (i + 1) for i in range(len(accuracies))]
    config = TrainConfig(epochs=1, batch_size=10, log_every=2, seed=0).to_dict()
    sweep = sweeps.create(name, SearchSpace(axes=(Axis("lr", tuple(lrs)),)), str(data_dir),
                          "cli")
    for trial, (lr, accuracy) in enumerate(zip(lrs, accuracies, strict=True)):
        run = sweeps.add_run(sweep, {**config, "lr": lr}, trial)
        store.set_running(run.id, os.getpid())
        store.finish(run.id, "completed", "", {"accuracy": accuracy, "per_class": {}})
    sweeps.finish(sweep.id, "completed", "")
    return sweep.id, sweeps.runs(sweep.id)


def test_the_best_settings_arrive_on_train_saying_which_sweep_and_run(data_dir, runs_dir):
    _, runs = finished_sweep(runs_dir, data_dir, "learning rates ![t](http://host/x.png)",
                             [30.0, 55.5, 41.0])
    best = runs[1]
    at = app_at("pages/sweep.py")
    at.button(key="sw_use_best").click().run()
    no_traceback(at)
    assert at.title[0].value == "Train"
    assert at.number_input(key="cfg_lr").value == pytest.approx(best.settings["lr"])
    said = " ".join(i.value for i in at.info)
    assert "learning rates" in said and "55.5 %" in said and best.id in said, said
    assert "](http" not in said  # the name as typed, not a picture fetched from elsewhere
    # Another preset chosen: the values are the preset's, and the note goes.
    at.selectbox(key="preset").set_value(at.selectbox(key="preset").options[-1]).run()
    assert "learning rates" not in " ".join(i.value for i in at.info)


# --- item 11: Try it's uploader and answer tiles --------------------------------------------

# The formats a picture uploader's file endings stand for.
FORMAT_OF = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WebP", "bmp": "BMP",
             "gif": "GIF", "heic": "HEIC", "heif": "HEIF", "avif": "AVIF", "tif": "TIFF",
             "tiff": "TIFF"}


def test_the_picture_uploader_accepts_the_formats_its_label_names(data_dir, runs_dir):
    finish_run(runs_dir, data_dir)
    at = app_at("pages/try_it.py")
    at.radio(key="try_source").set_value("upload").run()
    box = next(u for u in at.get("file_uploader") if u.label.startswith("Pictures"))
    accepted = {FORMAT_OF[t.lstrip(".").lower()] for t in box.proto.type}
    named = {f for f in set(FORMAT_OF.values()) if f in box.label}
    assert accepted == named, (box.label, list(box.proto.type))


def test_the_answers_to_several_pictures_do_not_touch(data_dir, runs_dir):
    finish_run(runs_dir, data_dir)
    at = app_at("pages/try_it.py")
    at.radio(key="try_source").set_value("upload").run()
    box = next(u for u in at.get("file_uploader") if u.label.startswith("Pictures"))
    box.set_value([(f"p{i}.jpg", jpeg(seed=i), "image/jpeg") for i in range(3)]).run()
    no_traceback(at)
    tiles = shown_tiles(at)
    assert [caption.split(":")[0] for _, caption in tiles] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    # Drawn with room between them (layout.show_tiles), not side by side edge to edge.
    gap = re.search(r"gap:\s*([\d.]+)rem\s+([\d.]+)rem", at.get("html")[0].proto.body)
    assert gap and min(float(gap.group(1)), float(gap.group(2))) > 0


def sweep_of_two_settings(runs_dir, data_dir) -> str:
    """A completed sweep over learning rates and momenta, four runs with accuracies (made
    through the store): its id."""
    import os

    from cifar_core.sweeps.space import Axis, SearchSpace
    from cifar_core.sweeps.store import SweepStore
    from cifar_core.training.config import TrainConfig

    store = RunStore(runs_dir)
    sweeps = SweepStore(store)
    config = TrainConfig(epochs=1, batch_size=10, log_every=2, seed=0).to_dict()
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.01)), Axis("momentum", (0.8, 0.9))))
    sweep = sweeps.create("two settings", space, str(data_dir), "cli")
    for trial, (lr, momentum, accuracy) in enumerate(
            [(0.001, 0.8, 30.0), (0.001, 0.9, 30.02), (0.01, 0.8, 52.0), (0.01, 0.9, 61.0)]):
        run = sweeps.add_run(sweep, {**config, "lr": lr, "momentum": momentum}, trial)
        store.set_running(run.id, os.getpid())
        store.finish(run.id, "completed", "", {"accuracy": accuracy, "per_class": {}})
    sweeps.finish(sweep.id, "completed", "")
    return sweep.id


def test_the_parallel_coordinates_legend_and_labels_read_well(data_dir, runs_dir):
    sweep_of_two_settings(runs_dir, data_dir)
    at = app_at("pages/sweep.py")
    no_traceback(at)
    spec = next(s for s in chart_specs(at) if "Test accuracy" in json.dumps(s))
    parts = layers(spec)
    lines = next(i for i, p in enumerate(parts) if p["mark"].get("type") == "line")
    # The accuracy's colours are a continuous scale, which Vega's legend drew for the lines as a
    # row of dots (a gradient asked for, too): no legend, the caption says what they mean.
    assert parts[lines]["encoding"]["color"]["field"] == "accuracy"
    assert parts[lines]["encoding"]["color"]["legend"] is None
    assert any("coloured by that accuracy" in c.value for c in at.caption)
    # The values' labels come after the lines and have a halo of the background's colour,
    # so that the lines crossing them do not hide them.
    texts = [p for p in parts[lines + 1:] if p["mark"].get("type") == "text"]
    assert any(t["mark"].get("stroke") and t["mark"].get("strokeWidth", 0) >= 2
               for t in texts), texts


def test_the_heatmaps_down_menu_leaves_the_charts_toolbar_room(data_dir, runs_dir):
    # The chart's toolbar (full screen, save) shows at its top right corner, over whatever is
    # drawn there: the Down menu sat in that corner.
    sweep_of_two_settings(runs_dir, data_dir)
    at = app_at("pages/sweep.py")
    chain = blocks_holding(at._tree, lambda n: getattr(n, "type", "") == "selectbox"
                           and getattr(n, "label", "") == "Down")
    row, column = next((block, index) for block, index in reversed(chain)
                       if block.children[index].type == "column")
    assert column < max(row.children), "the Down menu is the row's last column"
    later = [row.children[i] for i in row.children if i > column]
    assert all(not c.children for c in later), "the room right of it stays empty"


def test_accuracy_against_one_setting_keeps_room_for_its_points(data_dir, runs_dir):
    finished_sweep(runs_dir, data_dir, "one setting", [30.0, 55.5, 41.0])
    at = app_at("pages/sweep.py")
    no_traceback(at)
    [points] = [layer for spec in chart_specs(at) for layer in layers(spec)
                if layer["mark"].get("type") == "circle"]
    radius = math.sqrt(points["mark"]["size"] / math.pi)
    assert points["encoding"]["y"]["scale"]["padding"] >= radius


# --- item 8: words a newcomer needs, not the libraries' ------------------------------------

JARGON = ("Optuna", "importance evaluator", "state_dict", "torch.save", "TPE", "pruner")


def page_words(at: AppTest) -> str:
    """What a page says in its text (help icons aside) and expanders' labels."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [a.value for kind in ("error", "warning", "info", "success") for a in at.get(kind)]
    parts += [e.label for e in at.expander]
    return "\n".join(map(str, parts))


def test_the_sweep_answer_and_try_it_speak_plainly(data_dir, runs_dir):
    sweep_of_two_settings(runs_dir, data_dir)
    at = app_at("pages/sweep.py")
    no_traceback(at)
    assert "Which settings mattered" in page_words(at)
    pages = {"sweep": page_words(at), "try it": page_words(app_at("pages/try_it.py"))}
    for page, words in pages.items():
        assert not [j for j in JARGON if j in words], (page, words)


# --- item 9: numbers as people write them ---------------------------------------------------

def test_loss_charts_label_their_axes_with_few_digits(three_runs):
    # Vega's own tick labels ran to "1.000000" and "2.266161" when the values were close.
    at = app_at(RUNS)
    loss = [layer for spec in chart_specs(at) for layer in layers(spec)
            if layer.get("encoding", {}).get("y", {}).get("field") == "loss"]
    assert loss
    for layer in loss:
        for channel in ("x", "y"):
            fmt = layer["encoding"][channel].get("axis", {}).get("format", "")
            assert "~" in fmt, (channel, fmt)  # trailing zeros trimmed: 1, not 1.000000


def test_the_sweep_answer_and_try_it_write_nothing_to_the_log(data_dir, runs_dir, server_log):
    sweep_of_two_settings(runs_dir, data_dir)
    finish_run(runs_dir, data_dir)
    for page in ("pages/sweep.py", "pages/try_it.py", RUNS):
        no_traceback(app_at(page))
    logged = "\n".join(server_log())
    assert "infer vegalite type" not in logged and "default value" not in logged, logged

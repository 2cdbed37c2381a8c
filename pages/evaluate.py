"""Evaluate page: what a trained network gets right and wrong on images it never saw."""

import random

import altair as alt
import pandas as pd
import streamlit as st

from cifar_core import CifarError
from cifar_core.data.grids import tiles, verdict_tiles
from cifar_core.runs.naming import display_names
from cifar_core.runs.views import (
    default_network,
    epoch_confusions,
    named_label,
    per_class_by_epoch,
    runs_with_network,
)
from cifar_core.share import charts, links
from cifar_core.training.evaluation import Evaluation
from pages.shared import access, layout, links_ui, navigation
from pages.shared.export_ui import export_ui
from pages.shared.report_ui import run_report_ui


def run_picker_ui(address: links.Address) -> str | None:
    """Choose a finished run (latest first; the address's if it names one); None when there
    is none."""
    every = access.store().list()
    runs = runs_with_network(every)
    named = links.checked_run(address, offered={r.id for r in runs},
                              existing={r.id for r in every})
    links_ui.notices_ui(named)
    if named.value:
        st.session_state.eval_run = named.value
    if not runs:
        st.info("No finished run to look at yet. Train one on the Train page first.",
                icon=":material/info:")
        st.page_link(navigation.TRAIN, label="Go to Train", icon=":material/model_training:")
        return None
    names = display_names(every)  # of every run: each reads as on the Runs page
    labels = {r.id: named_label(r, names) for r in runs}
    if st.session_state.get("eval_run") not in labels:  # the run Try it opens on too
        st.session_state.eval_run = default_network(runs).id
    return st.selectbox("Run", list(labels), format_func=labels.get, key="eval_run")


def _new_seed() -> None:
    st.session_state.eval_seed = random.randrange(100_000)


# New batch (or a seed) redraws only these pictures, not the charts and the other pictures of
# the page (bench/bench_clicks.py).
@st.fragment
@layout.guard
def predictions_ui(evaluation: Evaluation, data) -> None:
    if "eval_seed" not in st.session_state:
        _new_seed()
    c1, c2 = st.columns([1, 5], vertical_alignment="bottom")
    c1.number_input("Seed", min_value=0, step=1, key="eval_seed")
    c2.button("New batch", icon=":material/shuffle:", on_click=_new_seed, key="eval_new_batch")
    batch = data.random_batch("test", 16, seed=int(st.session_state.eval_seed))
    rows = evaluation.rows(batch.indices.numpy())
    captions = [f"{'✓' if r.correct else '✗'} {r.predicted} ({r.confidence:.0%})"
                + ("" if r.correct else f" · is {r.label}") for r in rows.itertuples()]
    layout.show_tiles(verdict_tiles(batch.images, rows["correct"].tolist()), captions)
    st.caption(f"Green frame: right, red: wrong. The percentage is how sure the network was. "
               f"{int(rows['correct'].sum())} of {len(rows)} right in this batch.")


# A run's charts never change once it has finished: each spec is built (and checked by Altair,
# the slow part of drawing this page) once per run and server (bench/RESULTS.md, issue 16).
@st.cache_data(max_entries=64, show_spinner=False)
def per_class_spec(run_key: tuple, _table: pd.DataFrame) -> dict:
    return charts.per_class_chart(_table).to_dict()


def per_class_ui(evaluation: Evaluation, run_key: tuple) -> None:
    # A short line first: a table's or chart's toolbar shows over the line above its top right
    # corner, and without one that line is the tabs' (it took the clicks meant for them).
    st.caption("How often it is right for each class.")
    table = evaluation.per_class_accuracy()
    c1, c2 = st.columns([2, 3])
    c1.dataframe(table, hide_index=True, width="stretch", column_config={
        "class": "Class",
        "correct": st.column_config.NumberColumn("Right"),
        "total": st.column_config.NumberColumn("Images"),
        "accuracy": st.column_config.ProgressColumn("Accuracy", format="%.1f %%",
                                                    min_value=0, max_value=100),
    })
    c2.vega_lite_chart(per_class_spec(run_key, table), width="stretch")


@st.cache_data(max_entries=64, show_spinner=False)
def confusion_spec(run_key: tuple, _frame: pd.DataFrame, classes: list[str]) -> dict:
    """The confusion matrix's heatmap whose squares can be clicked (selection 'cell')."""
    pick = alt.selection_point(name="cell", fields=["true", "predicted"], on="click")
    heat, text = charts.confusion_layers(_frame, classes)
    heat = heat.encode(opacity=alt.condition(pick, alt.value(1.0), alt.value(0.35))
                       ).add_params(pick)
    return (heat + text).properties(height=420).to_dict()


# A click on a square or a change of the menus redraws only this section.
@st.fragment
@layout.guard
def confusion_ui(evaluation: Evaluation, data, run_key: tuple) -> None:
    st.caption("Click a square to see its pictures.")  # short: see per_class_ui
    classes = list(evaluation.classes)
    matrix = evaluation.confusion_matrix()
    spec = confusion_spec(run_key, evaluation.confusion_table(), classes)
    c1, c2 = st.columns([3, 2])
    with c1:
        event = st.vega_lite_chart(spec, width="stretch", on_select="rerun",
                                   key="confusion_chart")
    chosen = (event or {}).get("selection", {}).get("cell") or []
    # A new click picks the cell; the menus below can still change it afterwards.
    if chosen and chosen[0] != st.session_state.get("last_cell"):
        st.session_state.last_cell = chosen[0]
        st.session_state.cell_true = chosen[0]["true"]
        st.session_state.cell_predicted = chosen[0]["predicted"]
    with c2:
        # Beside the chart, not above it, where its toolbar would cover the words.
        st.caption("Rows: the true class. Columns: what the network said. The diagonal is "
                   "right; every other square is a kind of mistake.")
        if "cell_true" not in st.session_state:
            worst = evaluation.most_confused()
            st.session_state.cell_true = classes[worst[0]]
            st.session_state.cell_predicted = classes[worst[1]]
        t, p = st.columns(2)
        true_name = t.selectbox("True class", classes, key="cell_true")
        predicted_name = p.selectbox("Predicted as", classes, key="cell_predicted")
        cell = evaluation.images_where(classes.index(true_name), classes.index(predicted_name),
                                       count=24)
        count = int(matrix[classes.index(true_name), classes.index(predicted_name)])
        st.write(f"**{count}** {true_name} image{'s' * (count != 1)} called {predicted_name}"
                 + (" (most confident first):" if len(cell) else "."))
        if len(cell):
            layout.show_tiles(tiles(data.images_at("test", cell["index"]), scale=2),
                              [f"{c:.0%}" for c in cell["confidence"]])


def mistakes_ui(evaluation: Evaluation, data) -> None:
    st.caption("Pictures the network was surest about and still got wrong.")
    worst = evaluation.most_confident_mistakes(16)
    if worst.empty:
        st.write("No mistakes at all.")
        return
    layout.show_tiles(tiles(data.images_at("test", worst["index"])),
                      [f"{p} ({c:.0%}) · is {t}" for p, c, t in
                       zip(worst["predicted"], worst["confidence"], worst["label"], strict=True)])


def learning_ui(run_id: str, classes: tuple[str, ...], run_key: tuple) -> None:
    """How the mistakes changed while it learned: the confusion matrix after a chosen epoch,
    and each class's accuracy after every epoch."""
    events = [e for _, e in access.store().events(run_id, kind="epoch")]
    confusions = epoch_confusions(events)
    if not confusions:  # a run from before each epoch's confusion was kept, or an imported one
        st.info("This network kept no test of each epoch (an imported network, or a run from "
                "an earlier version of this dashboard): train a run to see how it learned.",
                icon=":material/info:")
        return
    st.caption("The test after each epoch, kept with the run: what the network mistook for "
               "what at that point, and each class's accuracy epoch by epoch.")
    epochs = sorted(confusions)
    c1, c2 = st.columns([3, 2])
    with c1:
        epoch = epochs[-1] if len(epochs) == 1 else st.select_slider(
            "After epoch", options=epochs, value=epochs[-1], key=f"learn_epoch_{run_id}")
        st.vega_lite_chart(epoch_confusion_spec(run_key, epoch, confusions[epoch], classes),
                           width="stretch")
    with c2:
        st.vega_lite_chart(per_class_by_epoch_spec(run_key, events, classes), width="stretch")


# The epochs' charts of a run never change either: built once per run (and epoch) and server.
@st.cache_data(max_entries=64, show_spinner=False)
def epoch_confusion_spec(run_key: tuple, epoch: int, _matrix, classes: tuple[str, ...]) -> dict:
    return charts.confusion_chart(_matrix, classes, height=380,
                                  title=f"After epoch {epoch}").to_dict()


@st.cache_data(max_entries=64, show_spinner=False)
def per_class_by_epoch_spec(run_key: tuple, _events: list, classes: tuple[str, ...]) -> dict:
    return charts.per_class_by_epoch_chart(per_class_by_epoch(_events, classes),
                                           classes).to_dict()


@layout.guard
def main() -> None:
    layout.page_header("Evaluate", "How the trained network does on the test images, which it "
                       "never saw while training.")
    address = links_ui.new_address()  # a link opened: its run and section
    section = links.checked_tab(address, links.EVALUATE_TABS)
    if section.value:
        st.session_state.eval_section = section.value
    run_id = run_picker_ui(address)
    links_ui.notices_ui(section)
    links_ui.keep_address(run=run_id, tab=st.session_state.get("eval_section"))
    if run_id is None:
        return
    run = access.store().get(run_id)
    data = layout.data_or_status_ui(run.dataset)  # each run is tested on its own data set
    if data is None:
        return
    try:
        evaluation = access.run_evaluation(run)
    except CifarError as exc:
        # A deleted network file or another data set: nothing broke, another run will do.
        st.warning(str(exc), icon=":material/folder_off:")
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Test accuracy", f"{evaluation.accuracy:.1f} %",
              help="Share of the test images whose class the network names right.")
    c2.metric("Test images", f"{len(evaluation.labels):,}")
    c3.metric("Guessing would get", f"{100 / len(evaluation.classes):.0f} %")
    st.caption(f"Tested on the {data.title} test images: {len(evaluation.classes)} classes, "
               f"{', '.join(evaluation.classes)}.")
    with st.expander("Take it home: export the network, or the run as one file",
                     icon=":material/download:", key="eval_take_home",
                     on_change="rerun"):
        export_ui(run, key="eval")
        run_report_ui(run, key="eval")
    run_key = (run.id, run.checkpoint, run.finished)
    # One section at a time, drawn only when its tab is open: with all five at once (4 charts,
    # 3 sets of pictures) a browser on 2 cores spent most of every visit drawing them, each
    # section adding to it (bench/RESULTS.md, "Every click answers at once: where the rest of
    # the time went").
    sections = {
        "Truth and prediction": lambda: predictions_ui(evaluation, data),
        "Accuracy per class": lambda: per_class_ui(evaluation, run_key),
        "Mistaken for what": lambda: confusion_ui(evaluation, data, run_key),
        "How it learned": lambda: learning_ui(run.id, tuple(evaluation.classes), run_key),
        "Most confident mistakes": lambda: mistakes_ui(evaluation, data),
    }
    shown = st.tabs(list(sections), key="eval_section", on_change="rerun")
    for tab, draw in zip(shown, sections.values(), strict=True):
        if tab.open:
            with tab:
                draw()


navigation.run_inside_app(main)

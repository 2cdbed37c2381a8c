"""The Sweep page's answer, its pictures chosen from what the sweep varied: parallel
coordinates (a box filters the runs, a click shows a run's loss), accuracy against one setting,
a heatmap of two, which settings mattered; and the buttons that take the best run to Train or
Evaluate. The tables come from cifar_core.sweeps.answer."""

import os
import warnings

import streamlit as st

from cifar_core.runs.names import markdown_text
from cifar_core.runs.store import Run
from cifar_core.share import charts, sweep_charts
from cifar_core.sweeps.answer import (
    accuracy_by_setting,
    answered_runs,
    best_settings_note,
    brushed_ranges,
    heatmap_table,
    parallel_coordinates,
    range_text,
    runs_in_ranges,
    train_form_values,
    value_text,
    varied_names,
)
from cifar_core.sweeps.engine import best_run
from cifar_core.sweeps.groups import (
    SPREAD_CAPTION,
    best_setting_text,
    best_two_answer,
    groups_table,
    has_repeats,
    setting_groups,
    value_spreads,
)
from cifar_core.sweeps.importance import importance_answer
from cifar_core.sweeps.progress import panel_title
from cifar_core.sweeps.space import SearchSpace
from cifar_core.sweeps.store import Sweep
from cifar_core.training.config import settings
from pages.shared import loss_ui, navigation
from pages.shared.dataset_choice import CHOSEN
from pages.shared.sweep_runs_ui import run_curve, runs_table_ui
from pages.shared.train_form import FORM_FROM, fill_form

# A picked run's loss curve: at most this many points.
CURVE_POINTS = 300

def _use_best(sweep: Sweep, run: Run) -> None:
    """Fill the Train page's form with the run's settings and open it, saying where they came
    from (it is not drawn in this run, so its fields can still be set)."""
    fill_form(train_form_values(run), list(settings()))
    st.session_state[CHOSEN] = sweep.dataset  # the settings were found on its data set
    # Markdown-safe: the Train page shows it in an alert, and a sweep's name is typed text.
    st.session_state[FORM_FROM] = markdown_text(best_settings_note(sweep, run))
    st.switch_page(navigation.TRAIN)


def best_ui(sweep: Sweep, runs: list[Run]) -> None:
    """The best run's settings, and the buttons that train them again or look at it."""
    best = best_run(runs)
    if best is None:
        st.caption("No run of this sweep has finished with an accuracy yet.")
        return
    names = varied_names(sweep.space)
    declared = settings()
    chosen = ", ".join(f"{declared[n].label.lower()} {value_text(n, best.settings.get(n))}"
                       for n in names)
    best_run_text = f"trial {best.trial}, **{best.accuracy:.1f} %** of the test images right"
    setting = best_setting_text(sweep.space, runs)
    st.success(f"{setting} (its best run: {best_run_text})." if setting
               else f"Best: {best_run_text}" + (f", with {chosen}." if chosen else "."),
               icon=":material/emoji_events:")
    noise = best_two_answer(sweep.space, runs)
    if noise:
        st.caption(noise)
    c1, c2, _ = st.columns([1, 1, 2])
    if c1.button("Use the best settings", icon=":material/input:", key="sw_use_best",
                 help="Fill the Train page's form with this run's settings (its seed too)."):
        _use_best(sweep, best)
    has_network = bool(best.checkpoint) and os.path.isfile(best.checkpoint)
    if c2.button("Evaluate the best", icon=":material/fact_check:", key="sw_evaluate_best",
                 disabled=not has_network,
                 help="Open the Evaluate page on this run." if has_network
                 else "Its network file is gone."):
        st.session_state.eval_run = best.id
        st.switch_page(navigation.EVALUATE)


def picked_curve_ui(runs: list[Run], run_id: str) -> None:
    """The loss curve of the run picked on the chart."""
    by_id = {r.id: r for r in runs}
    run = by_id.get(run_id)
    if run is None:
        return
    curve = run_curve(run, CURVE_POINTS)
    st.markdown(f"**Loss of {panel_title(run)}** ({run.id})")
    if curve.empty:
        st.caption("This run has no loss reports.")
        return
    view = loss_ui.loss_view_ui("sw_picked_loss")
    st.altair_chart(charts.single_loss_chart(curve, view), width="stretch")
    st.caption(loss_ui.lines_caption(curve, view, dashed="orange"))


def parallel_ui(sweep: Sweep, runs: list[Run], names: list[str]) -> None:
    """The parallel-coordinates chart, the runs a box drawn on it keeps, and the loss of the
    line clicked."""
    chart = parallel_coordinates(sweep.space, runs, names)
    best = best_run(runs)
    event = st.altair_chart(sweep_charts.parallel_chart(chart, best.id if best else None),
                            width="stretch", on_select="rerun", key=f"sw_pc_{sweep.id}")
    selection = (event or {}).get("selection", {})
    ranges = brushed_ranges(chart, selection.get("brush"))
    picked = [p.get("run") for p in selection.get("picked") or [] if p.get("run")]
    st.caption("One line per run, through the value of each setting it varied and its test "
               "accuracy, coloured by that accuracy from dark purple (lowest) to yellow "
               "(highest); the thick line is the best run. Draw a box over an axis to keep the "
               "runs that pass through it; click a line to see its run's loss below.")
    if ranges:
        kept = runs_in_ranges(chart, ranges)
        st.markdown(f"**{len(kept)} of {len(runs)} runs** pass through "
                    f"{range_text(chart, ranges) or 'the box'}.")
        if kept:
            runs_table_ui(sweep, [r for r in runs if r.id in set(kept)],
                          key=f"sw_kept_{sweep.id}")
    if picked:
        picked_curve_ui(runs, picked[0])


def one_setting_ui(runs: list[Run], name: str) -> None:
    """Accuracy against the one setting the sweep varied (a log axis where it spreads over
    orders of magnitude)."""
    spec = settings()[name]
    table = accuracy_by_setting(runs, name)
    spreads = value_spreads(runs, name)
    st.altair_chart(sweep_charts.one_setting_chart(table, spec, spreads), width="stretch")
    repeated = f" {SPREAD_CAPTION}" if (spreads["runs"] > 1).any() else ""
    st.caption(f"Test accuracy of each run against its {spec.label.lower()}; the dashed line "
               f"joins the means.{repeated}")


def heatmap_ui(sweep: Sweep, runs: list[Run], names: list[str]) -> None:
    """The mean accuracy over two chosen settings, the figure in each cell."""
    declared = settings()
    # The right end stays empty: the chart's toolbar shows there, over what sits above it.
    c1, c2, _ = st.columns([2, 2, 1])
    x = c1.selectbox("Across", names, index=0, key=f"sw_hx_{sweep.id}",
                     format_func=lambda n: declared[n].label)
    y = c2.selectbox("Down", names, index=1, key=f"sw_hy_{sweep.id}",
                     format_func=lambda n: declared[n].label)
    if x == y:
        st.caption("Choose two different settings.")
        return
    table = heatmap_table(runs, x, y)
    st.altair_chart(sweep_charts.heatmap_chart(table, declared[x].label, declared[y].label),
                    width="stretch")
    several = (table["runs"] > 1).any()
    st.caption("Mean test accuracy of the runs with each pair of values"
               + (", ± the spread of the runs in the cell (their standard deviation; of two "
                  "runs, half their difference)." if several else "."))


# Optuna's importance, resampled, takes a moment: once per sweep and set of finished runs.
@st.cache_data(max_entries=32, show_spinner="Weighing the settings ...")
def importance(sweep_id: str, finished: tuple, _space: SearchSpace, _runs: list[Run]):
    with warnings.catch_warnings():  # equal importances are an answer, not a warning to log
        warnings.simplefilter("ignore", UserWarning)
        return importance_answer(_space, _runs)


def importance_ui(sweep: Sweep, runs: list[Run]) -> None:
    """How much each setting mattered, as bars with their ranges; from few runs, the mean
    accuracy of each value and a sentence saying that so few runs cannot say much."""
    finished = tuple((r.id, r.status, r.accuracy) for r in runs)
    answer = importance(sweep.id, finished, sweep.space, runs)
    if answer.importance is not None:
        st.altair_chart(sweep_charts.importance_chart(answer.importance), width="stretch")
        st.caption(answer.note)
        return
    st.caption(answer.note)
    # (settings' labels and values as declared: no typed text to escape)
    st.markdown("\n".join(f"- {line}" for line in answer.lines))


def answer_ui(sweep: Sweep, all_runs: list[Run]) -> None:
    """Which settings pay off: pictures chosen from what the sweep varied."""
    st.subheader("The answer")
    runs = answered_runs(all_runs)
    best_ui(sweep, all_runs)
    if not runs:
        return
    names = varied_names(sweep.space, runs)
    if len(names) >= 2 and has_repeats(setting_groups(sweep.space, runs)):
        st.markdown("**Each setting, over its repeats**")
        st.altair_chart(sweep_charts.settings_chart(groups_table(sweep.space, runs)),
                        width="stretch")
        st.caption("Each setting's mean test accuracy, the best on top. " + SPREAD_CAPTION)
    if len(names) >= 2:
        st.markdown("**Every run at a glance**")
        parallel_ui(sweep, runs, names)
        st.markdown("**Two settings together**")
        heatmap_ui(sweep, runs, names)
    elif len(names) == 1:
        st.markdown("**Accuracy against the setting**")
        one_setting_ui(runs, names[0])
    else:
        st.caption("The finished runs do not differ in any setting the sweep varies.")
    if names:
        st.markdown("**Which settings mattered**")
        importance_ui(sweep, all_runs)

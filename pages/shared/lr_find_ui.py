"""The Train page's "Find a learning rate" section: the range test (training.lr_find) for the
form's settings, its chart, and a button that puts the suggestion into the form."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from cifar_core import CifarError, ImageData, TrainConfig
from cifar_core.training.lr_find import (
    DEFAULT_END_LR,
    DEFAULT_START_LR,
    DEFAULT_STEPS,
    LrFinding,
    find_learning_rate,
    rounded_lr,
)
from pages.shared import layout

# Where the last finding is kept, so that it survives the reruns of the page.
FINDING_KEY = "lr_finding"
# The form's learning-rate field (pages/train.py names each setting's widget cfg_<name>).
LR_FIELD = "cfg_lr"
# How often the progress bar moves: about this many times in a test, however long.
PROGRESS_UPDATES = 100
MARK_COLOURS = {"steepest descent": "#E45756", "minimum / 10": "#54A24B"}


def _use_suggestion(lr: float) -> None:
    """(A button's callback: a widget's value can only be set before the widget is drawn.)"""
    st.session_state[LR_FIELD] = lr


def lr_chart(finding: LrFinding) -> alt.LayerChart:
    """The smoothed loss against the learning rate (log axis), the suggestions as labelled
    dashed rules."""
    curve = pd.DataFrame({"learning rate": finding.lrs, "smoothed loss": finding.smoothed,
                          "loss": finding.losses})
    x = alt.X("learning rate:Q", scale=alt.Scale(type="log"), axis=alt.Axis(format=".0e"))
    line = alt.Chart(curve).mark_line(color="#4C78A8").encode(
        x=x, y=alt.Y("smoothed loss:Q", scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip("learning rate:Q", format=".2e"),
                 alt.Tooltip("smoothed loss:Q", format=".3f"),
                 alt.Tooltip("loss:Q", format=".3f")])
    layers = [line]
    for row, (label, lr) in enumerate(finding.marks()):
        mark = pd.DataFrame({"learning rate": [lr], "label": [f"{label}: {rounded_lr(lr):g}"]})
        colour = MARK_COLOURS.get(label, "#999")
        rule = alt.Chart(mark).mark_rule(strokeDash=[4, 4], color=colour).encode(x=x)
        text = alt.Chart(mark).mark_text(align="left", dx=4, color=colour).encode(
            x=x, y=alt.value(10 + 16 * row), text="label:N")
        layers += [rule, text]
    return alt.layer(*layers).properties(height=300)


def finding_ui(finding: LrFinding) -> None:
    """The chart, what the test found and the button that takes its suggestion; where the
    curve could not tell a rate, why and what to try, and no button."""
    st.altair_chart(lr_chart(finding), width="stretch")
    if finding.suggestion is None:
        st.warning(finding.message, icon=":material/warning:")
        return
    suggestion = rounded_lr(finding.suggestion)
    st.caption(f"{finding.message} Suggested: **{suggestion:g}** ({finding.suggestion_kind}); "
               f"the loss was lowest at {rounded_lr(finding.min_loss_lr):g}, a tenth of which "
               f"is {rounded_lr(finding.tenth_of_min_loss_lr):g}.")
    st.button("Use it", icon=":material/input:", on_click=_use_suggestion, args=(suggestion,),
              help=f"Set the learning rate above to {suggestion:g}.")


FIELDS = {"lrf_start": DEFAULT_START_LR, "lrf_end": DEFAULT_END_LR, "lrf_steps": DEFAULT_STEPS}


def lr_find_ui(values: dict, problems: dict, data: ImageData) -> None:
    """The section: a few settings of the test, its button and a progress bar while it runs
    (here, in this page), then its finding, kept until the settings it depends on change."""
    # Made only while open (about a tenth of the Train page's switch time when drawn hidden);
    # its fields keep what was typed while it is closed.
    for key, default in FIELDS.items():
        st.session_state.setdefault(key, default)
    layout.keep_values(FIELDS)
    section = layout.open_section("Find a learning rate", ":material/query_stats:", "lrf_open")
    if section is None:
        return
    with section:
        st.caption("Trains a fresh network with the settings above for a few hundred "
                   "minibatches, the learning rate growing from tiny to large, and shows the "
                   "loss at each: the rate where it falls fastest is a good one to train with. "
                   "Nothing is recorded, and a run started afterwards is not affected. With a "
                   "random seed the test uses seed 0.")
        c1, c2, c3 = st.columns(3)
        start = c1.number_input("From learning rate", format="%.0e", key="lrf_start")
        end = c2.number_input("To learning rate", format="%g", key="lrf_end")
        steps = c3.number_input("Minibatches", step=10, key="lrf_steps")
        finding = st.session_state.get(FINDING_KEY)
        if finding is not None and not finding.fits(values, data.dataset):
            del st.session_state[FINDING_KEY]  # it was for other settings or data
            finding = None
        clicked = st.button("Find a learning rate", icon=":material/query_stats:",
                            disabled=bool(problems))
        if problems:
            st.caption("Fix the settings marked in red first.")
        if clicked and not problems:
            finding = _run_ui(values, data, start, end, steps) or finding
        if finding is not None:
            finding_ui(finding)


def _run_ui(values: dict, data: ImageData, start: float, end: float,
            steps: int) -> LrFinding | None:
    """Run the test with a progress bar; the finding (kept), or None after showing why not."""
    bar = st.progress(0.0, text="Trying learning rates ...")
    every = max(1, int(steps) // PROGRESS_UPDATES)

    def progress(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            bar.progress(done / total, text=f"Trying learning rates: minibatch {done} of {total}")

    try:
        finding = find_learning_rate(TrainConfig(**values), data, start, end, int(steps),
                                     progress=progress)
    except CifarError as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    finally:
        bar.empty()
    st.session_state[FINDING_KEY] = finding
    return finding

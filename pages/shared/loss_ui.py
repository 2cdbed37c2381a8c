"""What every loss chart on the pages shares: one compact row of controls above it (smoothing,
log scale, x axis) that gives a LossView for cifar_core.share.charts, a run's loss lines read
for it (cifar_core.runs.curves.loss_lines), and the caption that says what the lines are."""

import pandas as pd
import streamlit as st

from cifar_core.runs.curves import MOST_SMOOTHING, TEST, X_AXES, LossView, RunCurve, loss_lines
from cifar_core.runs.store import Run
from pages.shared import access

X_LABELS = {name: title for name, (_, title) in X_AXES.items()}  # e.g. 'images seen'
SMOOTHING_HELP = ("Evens out the ups and downs of the training loss so that its trend shows: "
                  "0 draws it as measured, 0.99 evens it out the most. The loss as measured "
                  "stays faint behind it. The same smoothing as TensorBoard's.")
LOG_HELP = ("Draw the loss on a log scale: late in training, when the loss falls slowly, its "
            "small changes are easier to see.")
X_HELP = ("What the chart is drawn against: minibatches trained, training images seen (runs "
          "with different batch sizes line up), or epochs (passes over the training images).")


def loss_view_ui(key: str) -> LossView:
    """The controls of one loss chart, in one row that fits half a page's width too (the Runs
    page's chart shares its row); `key` tells the charts apart."""
    default = LossView()
    c1, c2, c3 = st.columns([3, 3, 4], vertical_alignment="bottom")
    smoothing = c1.slider("Smoothing", 0.0, MOST_SMOOTHING, default.smoothing, 0.01,
                          key=f"{key}_smoothing", help=SMOOTHING_HELP)
    x = c2.selectbox("Along", list(X_LABELS), index=list(X_LABELS).index(default.x),
                     format_func=X_LABELS.get, key=f"{key}_x", help=X_HELP)
    log_scale = c3.toggle("Log scale", default.log_scale, key=f"{key}_log", help=LOG_HELP)
    return LossView(smoothing=float(smoothing), log_scale=bool(log_scale), x=x or default.x)


# A finished run's lines never change: read once per server process, whichever page draws them.
@st.cache_data(max_entries=1024, show_spinner=False)
def _finished_lines(runs_dir: str, run_id: str, finished: float, points: int,
                    _run: Run) -> pd.DataFrame:
    curve = RunCurve.read(access.get_store(runs_dir), run_id, points)
    return loss_lines(_run, curve.stats, curve.epochs)


def run_loss_lines(run: Run, points: int) -> pd.DataFrame:
    """The run's loss lines (curves.loss_lines) from an even spread of at most `points` of its
    loss reports, with the test loss after each epoch."""
    if run.finished is not None and not run.is_active:
        return _finished_lines(access.runs_dir(), run.id, run.finished, points, run)
    curve = RunCurve.read(access.store(), run.id, points)
    return loss_lines(run, curve.stats, curve.epochs)


def lines_caption(lines: pd.DataFrame, view: LossView, dashed: str = "dashed") -> str:
    """What the chart's lines are, in words: the smoothed and the faint one, the test loss."""
    words = []
    if view.smoothing > 0:
        words.append("Faint: the training loss as measured; solid: smoothed.")
    if (lines["series"] == TEST).any():
        words.append(f"{dashed.capitalize()}: the loss on the test images after each epoch "
                     "(when it rises while the training loss falls, the network is learning "
                     "its training images by heart).")
    return " ".join(words)

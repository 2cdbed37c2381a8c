"""The Altair charts the pages draw and a report (share/report.py) embeds: one definition of
each, built from the tables cifar_core computes. No streamlit here: the pages add their
selections, caching and Streamlit calls around these."""

from __future__ import annotations

import altair as alt
import pandas as pd

from cifar_core.runs.curves import TEST, TRAINING, LossView, smoothed_lines
from cifar_core.training.evaluation import confusion_rows

# Run ids are long: a legend under the chart leaves the plot its full width.
RUN_COLOR = alt.Color("run:N", title="run",
                      legend=alt.Legend(orient="bottom", columns=1, symbolOpacity=1))
STATUS_COLOURS = {"completed": "#54A24B", "running": "#4C78A8", "queued": "#9D9D9D",
                  "stopped": "#F58518", "stopped early": "#B279A2", "diverged": "#E45756",
                  "failed": "#E45756"}
STATUS_COLOUR = alt.Color("status:N", title="status", scale=alt.Scale(
    domain=list(STATUS_COLOURS), range=list(STATUS_COLOURS.values())))


# --- one run: what it gets right and wrong ----------------------------------------------------

def per_class_chart(table: pd.DataFrame) -> alt.LayerChart:
    """Each class's test accuracy as a bar (Evaluation.per_class_accuracy), guessing's as a
    dashed rule."""
    chart = alt.Chart(table).mark_bar(color="#4C78A8").encode(
        x=alt.X("accuracy:Q", title="accuracy (%)", scale=alt.Scale(domain=[0, 100])),
        y=alt.Y("class:N", sort="-x", title=None),
        tooltip=["class", alt.Tooltip("accuracy:Q", format=".1f"), "correct", "total"])
    chance = alt.Chart(pd.DataFrame({"x": [100 / len(table)]})).mark_rule(
        strokeDash=[4, 4], color="#999").encode(x="x:Q")
    return (chart + chance).properties(height=300)


def confusion_layers(frame: pd.DataFrame, classes: list[str]) -> tuple[alt.Chart, alt.Chart]:
    """A confusion matrix's heatmap (rows: true class, columns: predicted) and its counts."""
    base = alt.Chart(frame).encode(
        x=alt.X("predicted:N", sort=classes, title="predicted"),
        y=alt.Y("true:N", sort=classes, title="true class"))
    heat = base.mark_rect().encode(
        color=alt.Color("images:Q", scale=alt.Scale(scheme="blues"), legend=None),
        tooltip=["true", "predicted", "images"])
    text = base.mark_text(fontSize=11).encode(
        text="images:Q",
        color=alt.condition(alt.datum.images > frame["images"].max() / 2, alt.value("white"),
                            alt.value("#222")))
    return heat, text


def confusion_chart(matrix, classes: tuple[str, ...] | list[str], height: int = 420,
                    title: str | None = None) -> alt.LayerChart:
    """A confusion matrix (counts[true, predicted]) as a heatmap with its counts."""
    heat, text = confusion_layers(confusion_rows(matrix, classes), list(classes))
    chart = (heat + text).properties(height=height)
    return chart.properties(title=title) if title else chart


def per_class_by_epoch_chart(lines: pd.DataFrame, classes: tuple[str, ...]) -> alt.Chart:
    """Each class's accuracy after each epoch (views.per_class_by_epoch), a line per class."""
    chart = alt.Chart(lines).mark_line(point=True).encode(
        x=alt.X("epoch:O", title="epoch"),
        y=alt.Y("accuracy:Q", title="accuracy (%)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("class:N", sort=list(classes), title="class"),
        tooltip=["epoch", "class", alt.Tooltip("accuracy:Q", format=".1f")])
    return chart.properties(height=380, title="Accuracy per class")


def epoch_accuracy_chart(table: pd.DataFrame) -> alt.Chart:
    """The test accuracy after each epoch (views.epoch_accuracies)."""
    return alt.Chart(table).mark_line(point=True, color="#54A24B").encode(
        x=alt.X("epoch:O", title="epoch", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("test_accuracy:Q", title="test accuracy (%)", scale=alt.Scale(domain=[0, 100])),
        tooltip=["epoch", alt.Tooltip("test_accuracy:Q", format=".1f", title="accuracy %")],
    ).properties(height=320)


# --- runs' losses -------------------------------------------------------------------------------
# Every loss chart draws curves.loss_lines as a LossView says: the training loss (faint behind
# its smoothed line when smoothing), the test loss after each epoch dashed with a dot per test,
# on a linear or log scale, against minibatches, images seen or epochs.

SERIES_COLOURS = {TRAINING: "#4C78A8", TEST: "#F58518"}
SERIES_COLOUR = alt.Color("series:N", title=None,
                          legend=alt.Legend(orient="bottom", symbolOpacity=1),
                          scale=alt.Scale(domain=list(SERIES_COLOURS),
                                          range=list(SERIES_COLOURS.values())))
FAINT = 0.25  # the opacity of the raw training loss behind its smoothed line
TEST_DASH = [6, 3]


def loss_x(view: LossView, domain: list[float] | None = None) -> alt.X:
    """The x axis a LossView chose; big counts as 20k, 1.5M (epochs as they are)."""
    return alt.X(f"{view.x_field}:Q", title=view.x_title,
                 scale=alt.Scale(domain=domain) if domain else alt.Undefined,
                 axis=alt.Axis(format="~g" if view.x == "epochs" else "~s"))


def loss_y(view: LossView, field: str = "loss") -> alt.Y:
    """The loss axis, linear or log as the LossView says, with three decimals at most."""
    # A log scale rounded out to powers of ten left the curves in a strip of the chart.
    scale = alt.Scale(type="log", nice=False) if view.log_scale else alt.Scale(zero=False)
    return alt.Y(f"{field}:Q", title="loss", axis=alt.Axis(format=".3~f"), scale=scale)


def loss_layers(lines: pd.DataFrame, view: LossView, color, dots,
                domain: list[float] | None = None) -> list[alt.Chart]:
    """The layers of a loss chart from loss_lines (one or more runs, other columns kept): the
    training loss, its smoothed line when view.smoothing > 0 (the raw one faint behind it),
    and the test loss when the lines hold any. All share one data set, so they facet."""
    smooth = view.smoothing > 0
    data = smoothed_lines(lines, view.smoothing)
    base = alt.Chart(data)
    x = loss_x(view, domain)
    tooltip = [alt.Tooltip("run:N"), alt.Tooltip("series:N", title="line"),
               alt.Tooltip("epoch:Q"), alt.Tooltip("minibatch:Q", title="minibatch in it"),
               alt.Tooltip("images_seen:Q", format=",", title="images seen"),
               alt.Tooltip("loss:Q", format=".3f")]
    training = base.transform_filter(alt.datum.series == TRAINING)
    layers = [training.mark_line(opacity=FAINT if smooth else 1,
                                 point=alt.Undefined if smooth else dots).encode(
        x=x, y=loss_y(view), color=color,
        tooltip=tooltip)]
    if smooth:
        layers.append(training.mark_line(point=dots).encode(
            x=x, y=loss_y(view, "smoothed"), color=color,
            tooltip=[*tooltip, alt.Tooltip("smoothed:Q", format=".3f")]))
    if (lines["series"] == TEST).any():
        layers.append(base.transform_filter(alt.datum.series == TEST).mark_line(
            strokeDash=TEST_DASH, point=True).encode(x=x, y=loss_y(view), color=color,
                                                     tooltip=tooltip))
    return layers


def loss_chart(lines: pd.DataFrame, dots, view: LossView = LossView(),
               color=RUN_COLOR) -> alt.LayerChart:
    """Runs' loss curves (curves.loss_lines of each), a colour per run, the test loss dashed;
    `dots` as Altair's line `point` (True, or an invisible OverlayMarkDef that still carries
    the tooltips)."""
    return alt.layer(*loss_layers(lines, view, color, dots)).properties(height=320)


def per_class_comparison_chart(per_class: pd.DataFrame) -> alt.Chart:
    """Runs' per-class accuracies (views.per_class_comparison) as grouped bars."""
    return alt.Chart(per_class).mark_bar().encode(
        x=alt.X("class:N", title=None), y=alt.Y("accuracy:Q", title="accuracy (%)",
                                               scale=alt.Scale(domain=[0, 100])),
        color=RUN_COLOR, xOffset="run:N",
        tooltip=["run:N", "class:N", alt.Tooltip("accuracy:Q", format=".1f")]
    ).properties(height=320)


def single_loss_chart(lines: pd.DataFrame, view: LossView = LossView(),
                      height: int = 220) -> alt.LayerChart:
    """One run's loss chart (curves.loss_lines): training loss blue, test loss orange."""
    return alt.layer(*loss_layers(lines, view, SERIES_COLOUR, alt.Undefined)) \
        .properties(height=height)


def loss_panels_chart(frame: pd.DataFrame, order: list[str],
                      view: LossView = LossView()) -> alt.FacetChart:
    """A small loss chart per run (curves.loss_lines with title and status columns), in
    `order`, coloured by status, the test loss dashed."""
    # Only the statuses there are, each in its own colour whichever others are missing.
    present = [s for s in STATUS_COLOURS if s in set(frame["status"])]
    color = alt.Color("status:N", title="status",
                      legend=alt.Legend(orient="top", symbolOpacity=1),
                      scale=alt.Scale(domain=present,
                                      range=[STATUS_COLOURS[s] for s in present]))
    layers = loss_layers(frame, view, color, alt.OverlayMarkDef(size=12))
    return alt.layer(*layers).properties(width=150, height=90).facet(
        facet=alt.Facet("title:N", sort=order, title=None), columns=4)


def run_loss_chart(lines: pd.DataFrame, accuracy: pd.DataFrame, ends: pd.DataFrame,
                   view: LossView, dots, height: int = 290) -> alt.LayerChart:
    """One run's loss as the Train page draws it (curves.loss_lines), the whole run wide:
    training and test loss, the ends of its epochs (curves.epoch_ends) dashed grey, and its
    test accuracy on the right (curves.accuracy_marks: after each epoch, and where a stopped
    run stopped)."""
    field = view.x_field
    last = ends[field].iloc[-1] if len(ends) else float("nan")
    # The whole run wide from the start, where its length is known on this axis.
    domain = [0, float(last)] if last == last and last > 0 else None
    boundaries = alt.Chart(ends.iloc[:-1].dropna(subset=[field])).mark_rule(
        strokeDash=[4, 4], color="#999").encode(x=f"{field}:Q")
    points = alt.Chart(accuracy.dropna(subset=[field])).mark_point(
        shape="diamond", size=120, filled=True, color="#E45756").encode(
        x=alt.X(f"{field}:Q"),
        y=alt.Y("test_accuracy:Q", title="test accuracy (%)", scale=alt.Scale(domain=[0, 100]),
                axis=alt.Axis(titleColor="#E45756", format="~f")),
        tooltip=[alt.Tooltip("when:N", title="test"),
                 alt.Tooltip("test_accuracy:Q", format=".1f", title="test accuracy %")])
    labels = points.mark_text(dy=-14, color="#E45756").encode(
        text=alt.Text("test_accuracy:Q", format=".1f"))
    loss = alt.layer(boundaries, *loss_layers(lines, view, SERIES_COLOUR, dots, domain))
    return alt.layer(loss, points + labels).resolve_scale(y="independent") \
        .properties(height=height)

"""The Altair charts the pages draw and a report (share/report.py) embeds: one definition of
each, built from the tables cifar_core computes. No streamlit here: the pages add their
selections, caching and Streamlit calls around these."""

from __future__ import annotations

import altair as alt
import pandas as pd

from cifar_core.sweeps.answer import ParallelCoordinates
from cifar_core.training.config import Setting
from cifar_core.training.evaluation import confusion_rows

# Run ids are long: a legend under the chart leaves the plot its full width.
RUN_COLOR = alt.Color("run:N", title="run", legend=alt.Legend(orient="bottom", columns=1))
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

def loss_chart(frame: pd.DataFrame, dots, color=RUN_COLOR) -> alt.Chart:
    """Loss curves (views.loss_curve with a run column), a colour per run; `dots` as Altair's
    line `point` (True, or an invisible OverlayMarkDef that still carries the tooltips)."""
    return alt.Chart(frame).mark_line(point=dots).encode(
        x=alt.X("epochs:Q", title="epochs", axis=alt.Axis(format="~g")),
        y=alt.Y("loss:Q", title="training loss", scale=alt.Scale(zero=False),
                axis=alt.Axis(format=".3~f")),
        color=color,
        tooltip=["run:N", "epoch:Q", alt.Tooltip("loss:Q", format=".3f")]).properties(height=320)


def per_class_comparison_chart(per_class: pd.DataFrame) -> alt.Chart:
    """Runs' per-class accuracies (views.per_class_comparison) as grouped bars."""
    return alt.Chart(per_class).mark_bar().encode(
        x=alt.X("class:N", title=None), y=alt.Y("accuracy:Q", title="accuracy (%)",
                                               scale=alt.Scale(domain=[0, 100])),
        color=RUN_COLOR, xOffset="run:N",
        tooltip=["run:N", "class:N", alt.Tooltip("accuracy:Q", format=".1f")]
    ).properties(height=320)


def single_loss_chart(curve: pd.DataFrame, height: int = 220) -> alt.Chart:
    """One run's loss curve (views.loss_curve)."""
    return alt.Chart(curve).mark_line(color="#4C78A8").encode(
        x=alt.X("epochs:Q", title="epochs", axis=alt.Axis(format="~g")),
        y=alt.Y("loss:Q", title="training loss", scale=alt.Scale(zero=False),
                axis=alt.Axis(format=".3~f")),
        tooltip=["epoch:Q", alt.Tooltip("loss:Q", format=".3f")]).properties(height=height)


def loss_panels_chart(frame: pd.DataFrame, order: list[str]) -> alt.FacetChart:
    """A small loss chart per run (rows with title and status columns), in `order`, coloured
    by status."""
    # Only the statuses there are, each in its own colour whichever others are missing.
    present = [s for s in STATUS_COLOURS if s in set(frame["status"])]
    return alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=alt.X("epochs:Q", title="epochs", axis=alt.Axis(format="~g")),
        y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False),
                axis=alt.Axis(format=".3~f")),
        color=alt.Color("status:N", title="status", legend=alt.Legend(orient="top"),
                        scale=alt.Scale(domain=present,
                                        range=[STATUS_COLOURS[s] for s in present])),
        tooltip=["title:N", "status:N", alt.Tooltip("epochs:Q", format=".2f"),
                 alt.Tooltip("loss:Q", format=".3f")],
    ).properties(width=150, height=90).facet(
        facet=alt.Facet("title:N", sort=order, title=None), columns=4)


# --- a sweep's answer ---------------------------------------------------------------------------

def parallel_chart(chart: ParallelCoordinates, best_id: str | None) -> alt.LayerChart:
    """One line per run through an axis per setting and the accuracy; a box drawn on the axes
    filters the runs (selection 'brush'), a click on a line picks its run ('picked')."""
    n = len(chart.axes)
    titles = " : ".join(f"datum.value == {i} ? '{t}'" for i, t in enumerate(chart.axes))
    x = alt.X("axis_index:Q", title=None, scale=alt.Scale(domain=[-0.15, n - 1 + 0.6]),
              axis=alt.Axis(values=list(range(n)), labelExpr=f"{titles} : ''", grid=False,
                            orient="top", labelFontSize=12, labelFontWeight="bold",
                            labelAngle=0, labelLimit=160, ticks=False, domain=False))
    y = alt.Y("position:Q", axis=None, scale=alt.Scale(domain=[-0.04, 1.04]))
    box = alt.selection_interval(name="brush", encodings=["x", "y"])
    picked = alt.selection_point(name="picked", fields=["run"], on="click")
    axes = alt.Chart(pd.DataFrame({"axis_index": list(range(n))})).mark_rule(
        color="#888").encode(x=x)
    lines = alt.Chart(chart.lines).mark_line(point=alt.OverlayMarkDef(size=40)).encode(
        x=x, y=y, detail="run:N",
        # No legend: Vega draws a line's continuous colours as a row of dots (a gradient asked
        # for too), and the accuracy axis already reads the values; the caption says it.
        color=alt.Color("accuracy:Q", title="test accuracy (%)",
                        scale=alt.Scale(scheme="viridis"), legend=None),
        strokeWidth=alt.condition(f"datum.run == '{best_id}'", alt.value(4), alt.value(2)),
        opacity=alt.condition(picked, alt.value(0.95), alt.value(0.35)),
        tooltip=["run:N", "status:N", "axis:N", "value:N",
                 alt.Tooltip("accuracy:Q", format=".1f", title="accuracy %")],
    ).add_params(box, picked)
    # The values' labels over the lines, each on a halo of the background's colour: the
    # lines crossing them hid them.
    text = {"align": "left", "dx": 5, "fontSize": 11}
    halo = alt.Chart(chart.ticks).mark_text(**text, stroke="white", strokeWidth=4,
                                            strokeJoin="round", color="white").encode(
        x=x, y=y, text="label:N")
    ticks = alt.Chart(chart.ticks).mark_text(**text, color="#444").encode(
        x=x, y=y, text="label:N")
    return alt.layer(axes, lines, halo, ticks).properties(height=380)


def one_setting_chart(table: pd.DataFrame, spec: Setting) -> alt.LayerChart:
    """Accuracy against the one setting a sweep varied (answer.accuracy_by_setting), a log axis
    where it spreads over orders of magnitude, a dashed line through the means."""
    numeric = spec.kind in (int, float) and table["value"].map(
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all()
    if numeric:
        x = alt.X("value:Q", title=spec.label, scale=alt.Scale(
            type="log" if spec.log_scale and (table["value"] > 0).all() else "linear",
            zero=False))
    else:
        x = alt.X("value_text:N", title=spec.label, sort=list(dict.fromkeys(
            table["value_text"])), axis=alt.Axis(labelAngle=0))
    # Room around the values for the points' radius: the best run's was cut by the top edge.
    points = alt.Chart(table).mark_circle(size=140, opacity=0.85).encode(
        x=x, y=alt.Y("accuracy:Q", title="test accuracy (%)",
                     scale=alt.Scale(zero=False, padding=8)),
        color=STATUS_COLOUR,
        tooltip=["run:N", "status:N", alt.Tooltip("value_text:N", title=spec.label),
                 alt.Tooltip("accuracy:Q", format=".1f")])
    line = alt.Chart(table).mark_line(color="#999", strokeDash=[4, 4]).encode(
        x=x, y="mean(accuracy):Q")
    return alt.layer(line, points).properties(height=320)


def heatmap_chart(table: pd.DataFrame, x_label: str, y_label: str) -> alt.LayerChart:
    """The mean accuracy over two settings (answer.heatmap_table), the figure in each cell."""
    xs = alt.X("x:N", title=x_label, sort=alt.SortField("x_order"),
               axis=alt.Axis(labelAngle=0))
    ys = alt.Y("y:N", title=y_label, sort=alt.SortField("y_order"))
    cells = alt.Chart(table).mark_rect().encode(
        x=xs, y=ys, color=alt.Color("accuracy:Q", title="mean accuracy (%)",
                                    scale=alt.Scale(scheme="viridis"),
                                    legend=alt.Legend(format=".1f")),
        tooltip=[alt.Tooltip("x:N", title=x_label), alt.Tooltip("y:N", title=y_label),
                 alt.Tooltip("accuracy:Q", format=".1f", title="mean accuracy %"), "runs:Q"])
    labels = alt.Chart(table).mark_text(fontSize=13).encode(
        x=xs, y=ys, text="label:N",
        color=alt.condition(alt.datum.accuracy > table["accuracy"].mean(),
                            alt.value("black"), alt.value("white")))
    return alt.layer(cells, labels).properties(height=60 + 40 * table["y"].nunique())


def importance_chart(table: pd.DataFrame) -> alt.LayerChart:
    """How much each setting mattered (importance.importance_table), as labelled bars; with low
    and high columns (importance.importance_answer) a thin line over each bar for its range."""
    y = alt.Y("setting:N", title=None, sort=list(table["setting"]))
    bars = alt.Chart(table).mark_bar(color="#4C78A8").encode(
        x=alt.X("importance:Q", title="share of the accuracy's differences",
                axis=alt.Axis(format="%", tickCount=5), scale=alt.Scale(domain=[0, 1])),
        y=y)
    layers = [bars]
    if {"low", "high"} <= set(table.columns):
        layers.append(alt.Chart(table).mark_rule(color="black", strokeWidth=2).encode(
            x="low:Q", x2="high:Q", y=y))
        labels = alt.Chart(table).mark_text(align="left", dx=4).encode(
            x=alt.X("max_end:Q"), y=y, text="label:N").transform_calculate(
            max_end="max(datum.importance, datum.high)")
    else:
        labels = bars.mark_text(align="left", dx=4).encode(text="label:N")
    layers.append(labels)
    return alt.layer(*layers).properties(height=alt.Step(34))

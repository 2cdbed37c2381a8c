"""The Altair charts the pages draw and a report (share/report.py) embeds: one definition of
each, built from the tables cifar_core computes. No streamlit here: the pages add their
selections, caching and Streamlit calls around these."""

from __future__ import annotations

import altair as alt
import pandas as pd

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

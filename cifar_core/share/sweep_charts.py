"""The Altair charts of a sweep's answer, which the Sweep page draws and a sweep's report
(share/report.py) embeds: one definition of each, built from the tables cifar_core.sweeps
computes. The charts of one run or of runs side by side are in share/charts.py."""

from __future__ import annotations

import altair as alt
import pandas as pd

from cifar_core.share.charts import STATUS_COLOUR
from cifar_core.sweeps.answer import ParallelCoordinates
from cifar_core.training.config import Setting


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


def one_setting_chart(table: pd.DataFrame, spec: Setting,
                      spreads: pd.DataFrame | None = None) -> alt.LayerChart:
    """Accuracy against the one setting a sweep varied (answer.accuracy_by_setting), a log axis
    where it spreads over orders of magnitude, a dashed line through the means; given each
    value's spread (groups.value_spreads), an error bar at each value run more than once (its
    mean ± spread, groups.SPREAD_CAPTION)."""
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
    layers = [line]
    repeated = spreads[spreads["runs"] > 1] if spreads is not None else None
    if repeated is not None and not repeated.empty:
        tooltip = [alt.Tooltip("value_text:N", title=spec.label), "runs:Q",
                   alt.Tooltip("mean:Q", format=".1f", title="mean %"),
                   alt.Tooltip("spread:Q", format=".1f", title="± %")]
        layers.append(alt.Chart(repeated).mark_errorbar(ticks=True, thickness=2,
                                                        color="black").encode(
            x=x, y=alt.Y("low:Q", title="test accuracy (%)"), y2="high:Q", tooltip=tooltip))
        layers.append(alt.Chart(repeated).mark_tick(color="black", thickness=2, size=22,
                                                    orient="horizontal").encode(
            x=x, y="mean:Q", tooltip=tooltip))
    # (the points over the bars: a bar drawn over them hid them)
    return alt.layer(*layers, points).properties(height=320)


def settings_chart(table: pd.DataFrame) -> alt.LayerChart:
    """Each setting's mean accuracy over its repeats (groups.groups_table), the best on top,
    with an error bar from low to high where it ran more than once."""
    y = alt.Y("setting:N", title=None, sort=list(table["setting"]),
              axis=alt.Axis(labelLimit=320))
    tooltip = [alt.Tooltip("setting:N"), "runs:Q",
               alt.Tooltip("mean:Q", format=".1f", title="mean %"),
               alt.Tooltip("spread:Q", format=".1f", title="± %")]
    bars = alt.Chart(table[table["runs"] > 1]).mark_errorbar(ticks=True, thickness=2).encode(
        x=alt.X("low:Q", title="test accuracy (%)", scale=alt.Scale(zero=False)), x2="high:Q",
        y=y, tooltip=tooltip)
    means = alt.Chart(table).mark_point(filled=True, size=80, color="#4C78A8").encode(
        x="mean:Q", y=y, tooltip=tooltip)
    return alt.layer(bars, means).properties(height=alt.Step(28))


def heatmap_chart(table: pd.DataFrame, x_label: str, y_label: str) -> alt.LayerChart:
    """The mean accuracy over two settings (answer.heatmap_table), the figure in each cell (with
    its runs' spread where a cell holds several)."""
    xs = alt.X("x:N", title=x_label, sort=alt.SortField("x_order"),
               axis=alt.Axis(labelAngle=0))
    ys = alt.Y("y:N", title=y_label, sort=alt.SortField("y_order"))
    cells = alt.Chart(table).mark_rect().encode(
        x=xs, y=ys, color=alt.Color("accuracy:Q", title="mean accuracy (%)",
                                    scale=alt.Scale(scheme="viridis"),
                                    legend=alt.Legend(format=".1f")),
        tooltip=[alt.Tooltip("x:N", title=x_label), alt.Tooltip("y:N", title=y_label),
                 alt.Tooltip("accuracy:Q", format=".1f", title="mean accuracy %"), "runs:Q",
                 *([alt.Tooltip("spread:Q", format=".1f", title="± %")]
                   if "spread" in table.columns else [])])
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

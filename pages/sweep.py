"""Sweep page: try many settings at once, watch the runs, and see which settings pay off."""

import logging
import os
import warnings
import zlib

import altair as alt
import pandas as pd
import streamlit as st

from cifar_core import CifarError, TrainConfig
from cifar_core.config import offered_presets, preset_values, settings
from cifar_core.curves import RunCurve
from cifar_core.estimate import measure_images_per_s, speed_key
from cifar_core.models import model_spec
from cifar_core.runs import Run
from cifar_core.search_space import MAX_POINTS, MAX_RUNS, PRUNERS, STRATEGIES, SearchSpace
from cifar_core.smart_search import parameter_importance
from cifar_core.speed import threads_for_background_runs
from cifar_core.summaries import format_duration, loss_curve, status_text
from cifar_core.sweep_store import Sweep, SweepStore
from cifar_core.sweep_views import (
        AxisForm,
    SweepEstimate,
    accuracy_by_setting,
    answered_runs,
    brushed_ranges,
    build_space,
    curve_runs,
    heatmap_table,
    importance_missing,
    importance_table,
    modes_for,
    panel_title,
    parallel_coordinates,
    range_text,
    runs_in_ranges,
    sweep_estimate,
    sweep_menu_label,
    sweep_progress,
    sweep_runs_table,
    train_form_values,
    value_text,
    varied_names,
)
from cifar_core.sweeps import best_run, default_parallel, delete_sweep, start_sweep, stop_sweep
from pages.shared import access, layout, navigation
from pages.shared.train_form import fill_form, form_values

log = logging.getLogger("cifar_dashboard")

FROM_TRAIN = "train"  # the start-from menu's entry for the Train page's current settings
STRATEGY_WORDS = {"grid": "Grid: every combination", "random": "Random: draw combinations",
                  "smart": "Smart: learn from the runs so far (Optuna)"}
PRUNE_WORDS = {"none": "Off: every run trains to the end",
               "median": "Median: stop a run behind the median after an epoch",
               "halving": "Halving: keep the best third at each step"}
STATUS_COLOURS = {"completed": "#54A24B", "running": "#4C78A8", "queued": "#9D9D9D",
                  "stopped": "#F58518", "stopped early": "#B279A2", "diverged": "#E45756",
                  "failed": "#E45756"}
STATUS_COLOUR = alt.Color("status:N", title="status", scale=alt.Scale(
    domain=list(STATUS_COLOURS), range=list(STATUS_COLOURS.values())))
# The small loss charts: at most this many runs, of this many points each.
PANELS = 48
PANEL_POINTS = 30
# A picked run's loss curve: at most this many points.
CURVE_POINTS = 300


# --- the new sweep's form -----------------------------------------------------------------

def _key(name: str, part: str = "") -> str:
    return f"sw_{name}" + (f"_{part}" if part else "")


def _start_points() -> dict[str, str]:
    """What the form can start from: the Train page's settings (once that form was opened
    in this session), then the presets this machine can run."""
    points = {FROM_TRAIN: "The Train page's current settings"} if form_values() else {}
    return points | {key: preset.title for key, preset in offered_presets().items()}


def _apply_start() -> None:
    """Put the chosen starting point's values into every setting's fixed field."""
    start = st.session_state.sw_start
    values = form_values() if start == FROM_TRAIN else preset_values(start)
    if values is None:
        return
    for name, value in values.items():
        st.session_state[_key(name)] = value
        for part in ("list", "chosen", "low", "high"):  # taken afresh from the new value
            st.session_state.pop(_key(name, part), None)


def _defaults_for_other_modes(name: str) -> None:
    """A list's and a range's fields start around the fixed value."""
    spec = settings()[name]
    value = st.session_state.get(_key(name))
    if spec.kind in (int, float):
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else (spec.low or 1)
        if spec.log_scale and number > 0:
            low, high = number / 10, number * 10
        else:
            low, high = number * 0.5, number * 1.5 if number else 1
        if spec.high is not None:
            high = min(high, spec.high * (0.99 if spec.below_high else 1))
        if spec.kind is int:
            low, high = max(1, int(round(low))), max(2, int(round(high)))
        st.session_state.setdefault(_key(name, "list"), "" if value is None else f"{value:g}")
        st.session_state.setdefault(_key(name, "low"), low)
        st.session_state.setdefault(_key(name, "high"), high)
        st.session_state.setdefault(_key(name, "points"), 3)
        st.session_state.setdefault(_key(name, "log"), spec.log_scale)
    else:
        st.session_state.setdefault(_key(name, "chosen"), [value])


def _choice_text(name: str):
    if name == "model":
        return lambda c: model_spec(c).title
    if settings()[name].kind is bool:
        return lambda c: "on" if c else "off"
    return str


def fixed_value_ui(name: str) -> None:
    """The field of a setting that takes one value in every run."""
    spec, key = settings()[name], _key(name)
    if spec.kind is bool:
        st.toggle(f"{spec.label}: on", key=key, help=spec.help)
    elif spec.choices is not None:
        st.selectbox(spec.label, spec.allowed(), key=key, format_func=_choice_text(name),
                     label_visibility="collapsed")
    else:
        step = int(spec.step) if spec.kind is int else spec.step
        st.number_input(spec.label, step=step, format=spec.format, key=key,
                        label_visibility="collapsed",
                        placeholder=spec.none_means if spec.optional else None)
        if spec.optional:
            st.caption(f"Empty: {spec.none_means}"
                       + (" (one seed drawn for all the runs)" if name == "seed" else ""))


def list_ui(name: str) -> None:
    spec = settings()[name]
    if spec.kind in (int, float):
        st.text_input(f"{spec.label} values", key=_key(name, "list"),
                      label_visibility="collapsed",
                      placeholder="e.g. 0.001, 0.01, 0.1" if spec.kind is float else "e.g. 4, 16",
                      help="Separate the values by commas."
                           + (f" '{spec.none_means}' stands for none." if spec.optional
                              else ""))
    else:
        choices = [True, False] if spec.kind is bool else list(spec.allowed())
        st.multiselect(f"{spec.label} values", choices, key=_key(name, "chosen"),
                       format_func=_choice_text(name), label_visibility="collapsed")


def range_ui(name: str) -> None:
    spec = settings()[name]
    step = int(spec.step) if spec.kind is int else None
    number_format = "%d" if spec.kind is int else "%g"
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2], vertical_alignment="bottom")
    c1.number_input("From", key=_key(name, "low"), step=step, format=number_format)
    c2.number_input("To", key=_key(name, "high"), step=step, format=number_format)
    c3.number_input("Points", key=_key(name, "points"), min_value=1, max_value=MAX_POINTS,
                    step=1, help="How many values of the range a grid takes (random and smart "
                                 "draw from the whole range).")
    c4.checkbox("Log", key=_key(name, "log"),
                help="Spread the points evenly over orders of magnitude (0.001, 0.01, 0.1).")


def setting_row_ui(name: str) -> AxisForm:
    """One setting's row: how it is given (fixed, list or range) and its fields; returns what
    they hold. The message slot under it is the caller's."""
    spec = settings()[name]
    modes = modes_for(name)
    c1, c2 = st.columns([2, 5], vertical_alignment="top")
    with c1:
        if len(modes) > 1:
            st.radio(spec.label, modes, key=_key(name, "mode"), horizontal=True, help=spec.help)
        else:
            st.markdown(f"**{spec.label}**", help=spec.help + " A sweep keeps it the same for "
                                                              "all its runs.")
    mode = st.session_state.get(_key(name, "mode"), "fixed")
    if mode != "fixed":
        _defaults_for_other_modes(name)
    with c2:
        if mode == "fixed":
            fixed_value_ui(name)
        elif mode == "list":
            list_ui(name)
        else:
            range_ui(name)
    state = st.session_state
    return AxisForm(name, mode, value=state.get(_key(name)), text=state.get(_key(name, "list"),
                                                                             ""),
                    chosen=tuple(state.get(_key(name, "chosen")) or ()),
                    low=state.get(_key(name, "low")), high=state.get(_key(name, "high")),
                    points=state.get(_key(name, "points")), log=state.get(_key(name, "log"),
                                                                          False))


def settings_rows_ui() -> tuple[list[AxisForm], dict]:
    """Every setting's row, the recipe's under Advanced; returns the rows' values and a slot
    under each for its message."""
    forms, slots = [], {}
    basic = [n for n, s in settings().items() if not s.advanced]
    advanced = [n for n, s in settings().items() if s.advanced]
    for name in basic:
        forms.append(setting_row_ui(name))
        slots[name] = st.empty()
    with st.expander("Advanced: the training recipe", icon=":material/tune:"):
        for name in advanced:
            forms.append(setting_row_ui(name))
            slots[name] = st.empty()
    return forms, slots


def ray_problem() -> str | None:
    """Why the Ray engine cannot be used here (None: it can)."""
    try:
        from cifar_core.ray_engine import ray_problem as problem
    except ImportError:
        return "Ray is not supported by this version of the dashboard."
    return problem()


# A few timed training steps (about a second): once per combination of the settings that
# decide the speed (cifar_core.estimate.speed_key).
@st.cache_data(max_entries=64, show_spinner="Timing a few training steps on this machine ...")
def measured_speed(key: tuple, threads: int, _config: TrainConfig) -> float:
    return measure_images_per_s(_config, threads)


def sweep_estimate_ui(space: SearchSpace, max_train: int, parallel: int) -> SweepEstimate | None:
    """The sweep's time here (None: it cannot be told; the failure goes to the server log)."""
    try:
        threads = threads_for_background_runs(parallel)
        return sweep_estimate(space, max_train, access.store().list(),
                              lambda c: measured_speed(speed_key(c), threads, c), parallel)
    except Exception:
        log.exception("sweep time estimate failed")
        return None


def new_sweep_ui(max_train: int) -> None:
    """The form: a starting point, each setting's values, the strategy and budget, where
    the runs train; the runs and time it makes, what is wrong, and Start."""
    points = _start_points()
    if st.session_state.get("sw_start") not in points:
        st.session_state.sw_start = next(iter(points))
        _apply_start()
    st.selectbox("Start from", list(points), key="sw_start", format_func=points.get,
                 on_change=_apply_start,
                 help="Fills in every setting's value below; then give the settings to compare "
                      "a list or a range of values.")
    forms, slots = settings_rows_ui()

    st.markdown("**How to search**")
    c1, c2, c3, c4 = st.columns(4)
    strategy = c1.selectbox("Strategy", STRATEGIES, key="sw_strategy",
                            format_func=STRATEGY_WORDS.get,
                            help="Grid tries every combination of the values; random draws "
                                 "combinations from the lists and ranges; smart (Optuna's TPE) "
                                 "draws where the runs so far did best.")
    runs = c2.number_input("Runs", min_value=1, max_value=MAX_RUNS, value=None, step=1,
                           key="sw_runs", placeholder="all of the grid",
                           help=f"At most this many runs (random and smart: how many to draw; "
                                f"at most {MAX_RUNS}).")
    minutes = c3.number_input("Time budget (minutes)", min_value=0.0, value=None, step=5.0,
                              key="sw_minutes", placeholder="no limit",
                              help="No run starts after this many minutes; those running "
                                   "finish.")
    prune = c4.selectbox("Early stopping", PRUNERS, key="sw_prune", format_func=PRUNE_WORDS.get,
                         help="Stop runs that are behind the others after an epoch (Optuna's "
                              "pruners): the time goes to the promising ones. Needs 2 epochs "
                              "or more.")
    space, problems = build_space(forms, strategy, runs, minutes or None, prune)
    for name, message in problems.items():
        if name in slots:
            slots[name].error(message, icon=":material/error:")
    for name, column in (("strategy", c1), ("runs", c2), ("minutes", c3), ("prune", c4)):
        if name in problems:
            column.error(problems[name], icon=":material/error:")

    st.markdown("**Where the runs train**")
    c1, c2, c3 = st.columns(3)
    why_not_ray = ray_problem()
    engine = c1.radio("Engine", ("local", "ray"), key="sw_engine", horizontal=True,
                      disabled=why_not_ray is not None,
                      format_func={"local": "This machine", "ray": "A Ray cluster"}.get)
    if why_not_ray:
        c1.caption(why_not_ray)
        engine = "local"
    address = ""
    if engine == "ray":
        st.session_state.setdefault("sw_address", os.environ.get("CIFAR_RAY_ADDRESS", ""))
        address = c2.text_input("Cluster address", key="sw_address",
                                placeholder="empty: a cluster of this machine alone",
                                help="e.g. ray://head-node:10001; $CIFAR_RAY_ADDRESS is the "
                                     "default.")
    if engine == "ray":  # empty: the driver follows the cluster's size
        chosen_parallel = c3.number_input(
            "Runs side by side", min_value=1, max_value=64, step=1, value=None,
            key="sw_parallel_ray", placeholder="one per CPU of the cluster",
            help="Empty: as many as the cluster has CPUs for (one CPU per run).")
        parallel = chosen_parallel or default_parallel(space)
    else:
        if "sw_parallel" not in st.session_state:
            st.session_state.sw_parallel = default_parallel(space)
        parallel = chosen_parallel = c3.number_input(
            "Runs side by side", min_value=1, max_value=64, step=1, key="sw_parallel",
            help="On a CPU, one run per core, each on one core, uses small networks best; on "
                 "a GPU, one at a time.")
    name = st.text_input("Name (optional)", key="sw_name", placeholder="e.g. learning rates")

    estimate = None if problems else sweep_estimate_ui(space, max_train, int(parallel))
    c1, c2 = st.columns([1, 4], vertical_alignment="center")
    clicked = c1.button("Start the sweep", type="primary", icon=":material/play_arrow:",
                        disabled=bool(problems), key="sw_start_button")
    if problems:
        if "space" in problems:
            c2.error(problems["space"], icon=":material/error:")
        else:
            c2.caption("Fix the fields marked in red to start.")
    else:
        size = space.size()
        c2.markdown(f"**{estimate.sentence()}**." if estimate else
                    f"**{size} run{'s' * (size != 1)}.**")
    if clicked and not problems:
        try:
            sweep = start_sweep(access.store(), space, access.data_dir(), name=name.strip(),
                                origin="dashboard", engine=engine, address=address.strip(),
                                parallel=int(chosen_parallel) if chosen_parallel else None)
        except CifarError as exc:
            st.error(str(exc), icon=":material/error:")
            return
        st.session_state.sw_chosen = sweep.id
        st.rerun()


# --- a sweep as it runs, or a past one ------------------------------------------------------

# A finished run's small curve never changes: read once per server process.
@st.cache_data(max_entries=1024, show_spinner=False)
def finished_curve(runs_dir: str, run_id: str, finished: float, points: int) -> pd.DataFrame:
    return loss_curve(RunCurve.read(access.get_store(runs_dir), run_id, points).stats)


def run_curve(run: Run, points: int) -> pd.DataFrame:
    """A run's loss reports, at most `points` of them (an even spread)."""
    if run.finished is not None and not run.is_active:
        return finished_curve(access.runs_dir(), run.id, run.finished, points)
    return loss_curve(RunCurve.read(access.store(), run.id, points).stats)


def small_multiples_ui(runs: list[Run]) -> None:
    """A small loss chart per run, coloured by how it stands."""
    shown = curve_runs(runs, PANELS)
    frames = []
    for run in shown:
        curve = run_curve(run, PANEL_POINTS)
        if not curve.empty:
            frames.append(curve.assign(title=panel_title(run), status=status_text(run),
                                       trial=run.trial))
    if not frames:
        st.caption("The loss charts start with the runs' first reports.")
        return
    frame = pd.concat(frames)
    order = [panel_title(r) for r in shown]
    present = [s for s in STATUS_COLOURS if s in set(frame["status"])]
    chart = alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=alt.X("epochs:Q", title="epochs"),
        y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False)),
        # Only the statuses there are, each in its own colour whichever others are missing.
        color=alt.Color("status:N", title="status", legend=alt.Legend(orient="top"),
                        scale=alt.Scale(domain=present,
                                        range=[STATUS_COLOURS[s] for s in present])),
        tooltip=["title", "status", alt.Tooltip("epochs:Q", format=".2f"),
                 alt.Tooltip("loss:Q", format=".3f")],
    ).properties(width=150, height=90).facet(
        facet=alt.Facet("title:N", sort=order, title=None), columns=4)
    # A key that changes with the panels: Streamlit kept drawing a faceted chart's old panels
    # after the sweep's last runs finished (seen in Chromium), a new element draws them afresh.
    panels = zlib.crc32("|".join(order + present).encode())
    st.altair_chart(chart, width="content", key=f"sw_panels_{panels}")
    more = f" The first {PANELS} of {len(runs)} runs." if len(runs) > len(shown) else ""
    st.caption(f"Training loss of each run, coloured by its status.{more}")


def runs_table_ui(sweep: Sweep, runs: list[Run], key: str) -> None:
    """The sweep's runs, best first, the best one highlighted."""
    table = sweep_runs_table(sweep.space, runs)
    table["took"] = [format_duration(s) for s in table["duration_s"]]
    declared = settings()
    names = varied_names(sweep.space)
    styled = table.style.apply(
        lambda row: ["background-color: rgba(84, 162, 75, 0.25)" if row["best"] else ""]
        * len(row), axis=1)
    st.dataframe(
        styled, hide_index=True, width="stretch", key=key,
        column_order=["trial", "status", *names, "accuracy", "took", "run", "message"],
        column_config={
            "trial": st.column_config.NumberColumn("Trial", format="%d"),
            "status": "Status",
            **{n: st.column_config.TextColumn(declared[n].label) for n in names},
            "accuracy": st.column_config.ProgressColumn("Test accuracy", format="%.1f %%",
                                                        min_value=0, max_value=100),
            "took": "Took", "run": "Run", "message": "Note"})


def sweep_view_ui(sweep: Sweep, runs: list[Run]) -> None:
    """How the sweep stands: progress, Stop or Delete, the runs' loss charts and table."""
    progress = sweep_progress(sweep, runs)
    st.progress(progress.fraction, text=progress.text)
    if sweep.is_active:
        if st.button("Stop the sweep", icon=":material/stop_circle:", key=f"stop_{sweep.id}",
                     disabled=sweep.stop_requested,
                     help="No more runs start; queued ones end at once, running ones after "
                          "their minibatch (keeping what they learned)."):
            stop_sweep(access.store(), sweep.id)
            st.rerun()
        if sweep.stop_requested:
            st.caption("Stopping: running runs end after their current minibatch.")
    else:
        delete_ui(sweep)
    small_multiples_ui(runs)
    runs_table_ui(sweep, runs, key=f"sw_table_{sweep.id}_{sweep.is_active}")


def delete_ui(sweep: Sweep) -> None:
    if st.session_state.get("sw_confirm_delete") == sweep.id:
        st.warning(f"Delete sweep {sweep.name} and all its runs, with their files, for good?")
        yes, no, _ = st.columns([1, 1, 4])
        if yes.button("Yes, delete", type="primary", key="sw_delete_yes"):
            delete_sweep(access.store(), sweep.id)
            st.session_state.pop("sw_confirm_delete", None)
            st.session_state.pop("sw_chosen", None)
            st.toast(f"Deleted sweep {sweep.name}.")
            st.rerun()
        if no.button("Cancel", key="sw_delete_no"):
            st.session_state.pop("sw_confirm_delete", None)
            st.rerun()
    elif st.button("Delete this sweep ...", icon=":material/delete:", key="sw_delete_ask"):
        st.session_state.sw_confirm_delete = sweep.id
        st.rerun()


@st.fragment(run_every=2.0)
@layout.guard
def live_sweep_ui(sweep_id: str) -> None:
    access.runner().schedule()  # advances the sweep and starts its queued runs
    sweeps = SweepStore(access.store())
    sweep = sweeps.get(sweep_id)
    if not sweep.is_active:
        st.rerun()  # redraw the page with the sweep's answer
    sweep_view_ui(sweep, sweeps.runs(sweep_id))


# --- the answer -----------------------------------------------------------------------------

def _use_best(run: Run) -> None:
    fill_form(train_form_values(run), list(settings()))
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
    st.success(f"Best: trial {best.trial}, **{best.accuracy:.1f} %** of the test images right"
               + (f", with {chosen}." if chosen else "."), icon=":material/emoji_events:")
    c1, c2, _ = st.columns([1, 1, 2])
    if c1.button("Use the best settings", icon=":material/input:", key="sw_use_best",
                 help="Fill the Train page's form with this run's settings (its seed too)."):
        _use_best(best)
    has_network = bool(best.checkpoint) and os.path.isfile(best.checkpoint)
    if c2.button("Evaluate the best", icon=":material/fact_check:", key="sw_evaluate_best",
                 disabled=not has_network,
                 help="Open the Evaluate page on this run." if has_network
                 else "Its network file is gone."):
        st.session_state.eval_run = best.id
        st.switch_page(navigation.EVALUATE)


def parallel_chart(chart, best_id: str | None) -> alt.LayerChart:
    """One line per run through an axis per setting and the accuracy; a box drawn on the axes
    filters the runs, a click on a line picks its run."""
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
        color=alt.Color("accuracy:Q", title="test accuracy (%)",
                        scale=alt.Scale(scheme="viridis"), legend=alt.Legend(format=".1f")),
        strokeWidth=alt.condition(f"datum.run == '{best_id}'", alt.value(4), alt.value(2)),
        opacity=alt.condition(picked, alt.value(0.95), alt.value(0.35)),
        tooltip=["run", "status", "axis", "value",
                 alt.Tooltip("accuracy:Q", format=".1f", title="accuracy %")],
    ).add_params(box, picked)
    ticks = alt.Chart(chart.ticks).mark_text(align="left", dx=5, fontSize=11,
                                             color="#555").encode(x=x, y=y, text="label:N")
    return alt.layer(axes, lines, ticks).properties(height=380)


def picked_curve_ui(runs: list[Run], run_id: str) -> None:
    by_id = {r.id: r for r in runs}
    run = by_id.get(run_id)
    if run is None:
        return
    curve = run_curve(run, CURVE_POINTS)
    st.markdown(f"**Loss of {panel_title(run)}** ({run.id})")
    if curve.empty:
        st.caption("This run has no loss reports.")
        return
    chart = alt.Chart(curve).mark_line(color="#4C78A8").encode(
        x=alt.X("epochs:Q", title="epochs"),
        y=alt.Y("loss:Q", title="training loss", scale=alt.Scale(zero=False)),
        tooltip=["epoch", alt.Tooltip("loss:Q", format=".3f")])
    st.altair_chart(chart.properties(height=220), width="stretch")


def parallel_ui(sweep: Sweep, runs: list[Run], names: list[str]) -> None:
    chart = parallel_coordinates(sweep.space, runs, names)
    best = best_run(runs)
    event = st.altair_chart(parallel_chart(chart, best.id if best else None), width="stretch",
                            on_select="rerun", key=f"sw_pc_{sweep.id}")
    selection = (event or {}).get("selection", {})
    ranges = brushed_ranges(chart, selection.get("brush"))
    picked = [p.get("run") for p in selection.get("picked") or [] if p.get("run")]
    st.caption("One line per run, through the value of each setting it varied and its test "
               "accuracy (the thick line: the best run). Draw a box over an axis to keep the "
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
    spec = settings()[name]
    table = accuracy_by_setting(runs, name)
    numeric = spec.kind in (int, float) and table["value"].map(
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all()
    if numeric:
        x = alt.X("value:Q", title=spec.label, scale=alt.Scale(
            type="log" if spec.log_scale and (table["value"] > 0).all() else "linear",
            zero=False))
    else:
        x = alt.X("value_text:N", title=spec.label, sort=list(dict.fromkeys(
            table["value_text"])), axis=alt.Axis(labelAngle=0))
    points = alt.Chart(table).mark_circle(size=140, opacity=0.85).encode(
        x=x, y=alt.Y("accuracy:Q", title="test accuracy (%)", scale=alt.Scale(zero=False)),
        color=STATUS_COLOUR,
        tooltip=["run", "status", alt.Tooltip("value_text:N", title=spec.label),
                 alt.Tooltip("accuracy:Q", format=".1f")])
    line = alt.Chart(table).mark_line(color="#999", strokeDash=[4, 4]).encode(
        x=x, y="mean(accuracy):Q")
    st.altair_chart(alt.layer(line, points).properties(height=320), width="stretch")
    st.caption(f"Test accuracy of each run against its {spec.label.lower()}; the dashed line "
               "joins the means.")


def heatmap_ui(sweep: Sweep, runs: list[Run], names: list[str]) -> None:
    declared = settings()
    c1, c2 = st.columns(2)
    x = c1.selectbox("Across", names, index=0, key=f"sw_hx_{sweep.id}",
                     format_func=lambda n: declared[n].label)
    y = c2.selectbox("Down", names, index=1, key=f"sw_hy_{sweep.id}",
                     format_func=lambda n: declared[n].label)
    if x == y:
        st.caption("Choose two different settings.")
        return
    table = heatmap_table(runs, x, y)
    xs = alt.X("x:N", title=declared[x].label, sort=alt.SortField("x_order"),
               axis=alt.Axis(labelAngle=0))
    ys = alt.Y("y:N", title=declared[y].label, sort=alt.SortField("y_order"))
    cells = alt.Chart(table).mark_rect().encode(
        x=xs, y=ys, color=alt.Color("accuracy:Q", title="mean accuracy (%)",
                                    scale=alt.Scale(scheme="viridis"),
                                    legend=alt.Legend(format=".1f")),
        tooltip=[alt.Tooltip("x:N", title=declared[x].label),
                 alt.Tooltip("y:N", title=declared[y].label),
                 alt.Tooltip("accuracy:Q", format=".1f", title="mean accuracy %"), "runs"])
    labels = alt.Chart(table).mark_text(fontSize=13).encode(
        x=xs, y=ys, text="label:N",
        color=alt.condition(alt.datum.accuracy > table["accuracy"].mean(),
                            alt.value("black"), alt.value("white")))
    st.altair_chart(alt.layer(cells, labels).properties(height=60 + 40 * table["y"].nunique()),
                    width="stretch")
    st.caption("Mean test accuracy of the runs with each pair of values.")


# Optuna's importance takes a moment: once per sweep and set of finished runs.
@st.cache_data(max_entries=32, show_spinner="Weighing the settings ...")
def importance(sweep_id: str, finished: tuple, _space: SearchSpace, _runs: list[Run]):
    with warnings.catch_warnings():  # equal importances are an answer, not a warning to log
        warnings.simplefilter("ignore", UserWarning)
        return parameter_importance(_space, _runs)


def importance_ui(sweep: Sweep, runs: list[Run]) -> None:
    finished = tuple((r.id, r.status, r.accuracy) for r in runs)
    found = importance(sweep.id, finished, sweep.space, runs)
    if not found:
        st.caption(importance_missing(sweep.space, runs))
        return
    table = importance_table(found)
    bars = alt.Chart(table).mark_bar(color="#4C78A8").encode(
        x=alt.X("importance:Q", title="share of the accuracy's differences",
                axis=alt.Axis(format="%", tickCount=5), scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("setting:N", title=None, sort=list(table["setting"])))
    labels = bars.mark_text(align="left", dx=4).encode(text="label:N")
    st.altair_chart(alt.layer(bars, labels).properties(height=alt.Step(34)), width="stretch")
    st.caption("How much each setting mattered to the test accuracy of the finished runs "
               "(Optuna's importance evaluator).")


def answer_ui(sweep: Sweep, all_runs: list[Run]) -> None:
    """Which settings pay off: pictures chosen from what the sweep varied."""
    st.subheader("The answer")
    runs = answered_runs(all_runs)
    best_ui(sweep, all_runs)
    if not runs:
        return
    names = varied_names(sweep.space, runs)
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


def sweeps_ui() -> None:
    """The chosen sweep (the newest by default): live while it runs, then its answer."""
    sweeps = SweepStore(access.store())
    found = sweeps.list()
    if not found:
        st.info("No sweeps yet: build one above and press Start the sweep.",
                icon=":material/info:")
        return
    runs_of = {s.id: sweeps.runs(s.id) for s in found}
    labels = {s.id: sweep_menu_label(s) for s in found}
    if st.session_state.get("sw_chosen") not in labels:
        st.session_state.sw_chosen = found[0].id
    sweep_id = st.selectbox("Sweep", list(labels), format_func=labels.get, key="sw_chosen")
    sweep = next(s for s in found if s.id == sweep_id)
    if sweep.is_active:
        live_sweep_ui(sweep.id)
    else:
        sweep_view_ui(sweep, runs_of[sweep.id])
        answer_ui(sweep, runs_of[sweep.id])


@layout.guard
def main() -> None:
    layout.page_header("Sweep", "Try many settings at once: give the settings to compare a list "
                       "or a range of values, start, and see which ones pay off. The runs train "
                       "in the background, as many side by side as the machine allows.")
    data = layout.data_or_status_ui()
    if data is None:
        return
    access.runner().schedule()
    with st.expander("New sweep", icon=":material/add_circle:",
                     expanded=not SweepStore(access.store()).list()):
        new_sweep_ui(len(data.train_labels))
    st.divider()
    sweeps_ui()


navigation.run_inside_app(main)

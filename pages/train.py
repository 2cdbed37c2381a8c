"""Train page: choose settings, start a background run, watch it learn live, stop it."""

import altair as alt
import pandas as pd
import streamlit as st

from cifar_core import CifarError, TrainConfig
from cifar_core.config import (
    PRESETS,
    Setting,
    config_problems,
    defaults,
    device_advice,
    preset_values,
    settings,
)
from cifar_core.curves import RunCurve
from cifar_core.models import model_spec
from cifar_core.runs import ACTIVE, Run
from cifar_core.summaries import (
    epoch_accuracies,
    estimate_seconds,
    format_duration,
    how_it_trained,
    loss_curve,
    run_progress,
)
from pages.shared import access, layout, navigation

# How the settings are laid out: rows of this many, in the order cifar_core.config declares them.
FORM_COLUMNS = 3
# The loss chart draws at most this many reports, the most recent ones all (cifar_core.curves):
# a browser draws a few thousand points at once, 100,000 in seconds (bench/bench_pages.py).
CHART_POINTS = 2000
RECENT_POINTS = 500
# Below this many points each report is drawn as a dot too.
DOTS_UP_TO = 200
SPEED_HELP = ("Training images per second of the run's wall time, writing every loss report "
              "included (the more often it reports, the more that costs), the test after each "
              "epoch not.")
TIME_LEFT_HELP = "The images still to train at this speed; the test after each epoch comes on top."


def _fallback(name: str, max_train: int):
    """The number shown (greyed out) for an optional setting left at its 'none' meaning."""
    return max_train if name == "train_size" else 0


# Settings that a preset leaves as the user chose them.
KEPT_BY_PRESETS = ("device", "seed")


def _fill_form(values: dict, names) -> None:
    """Put these settings' values into the form (an optional one left at its 'none' meaning
    ticks its box and shows a greyed-out number)."""
    max_train = st.session_state.get("max_train", 50_000)
    declared = settings()
    for name in names:
        value = values[name]
        if declared[name].optional:
            st.session_state[f"cfg_{name}_none"] = value is None
            value = _fallback(name, max_train) if value is None else value
        st.session_state[f"cfg_{name}"] = value


def _apply_preset() -> None:
    """Fill the form with a preset's settings (the device and the seed stay as chosen)."""
    _fill_form(preset_values(st.session_state.preset),
               [n for n in settings() if n not in KEPT_BY_PRESETS])


def _init_form() -> None:
    st.session_state.preset = next(iter(PRESETS))
    _fill_form(defaults(), KEPT_BY_PRESETS)
    _apply_preset()


def setting_ui(name: str, spec: Setting, max_train: int):
    """One setting's widget, made from its declaration; returns its value (None: the setting's
    'none' meaning, e.g. a random seed)."""
    key = f"cfg_{name}"
    if spec.choices is not None:
        choices = spec.allowed()
        labels = {n: model_spec(n).title for n in choices} if name == "model" else {}
        st.selectbox(spec.label, choices, key=key, help=spec.help,
                     format_func=lambda c: labels.get(c, c))
        return st.session_state[key]
    # The 'none' checkbox goes under the number, so that the numbers of a row line up; its
    # state is known before it is drawn (it changes only by a click, which reruns the page).
    none = spec.optional and bool(st.session_state.get(f"{key}_none"))
    label = f"{spec.label} (of {max_train:,})" if name == "train_size" else spec.label
    step = int(spec.step) if spec.kind is int else spec.step
    st.number_input(label, step=step, format=spec.format, key=key, help=spec.help,
                    disabled=none)
    if spec.optional:
        st.checkbox(f"{spec.label}: {spec.none_means}", key=f"{key}_none")
    return None if none else st.session_state[key]


def model_caption_ui(name: str) -> None:
    """What the chosen model is, in one sentence, and its size."""
    try:
        spec = model_spec(name)
    except CifarError:
        return
    st.caption(f"{spec.description} {spec.parameter_count():,} weights.")


def settings_form_ui(max_train: int) -> dict:
    """A widget for every setting (cifar_core.config declares them), each problem shown under
    its field; returns the values and the problems."""
    st.session_state.max_train = max_train
    if "cfg_epochs" not in st.session_state:
        _init_form()
    st.selectbox("Start from a preset", list(PRESETS), key="preset", on_change=_apply_preset,
                 format_func=lambda preset_id: PRESETS[preset_id].title)
    values, slots = {}, {}
    declared = list(settings().items())
    for row in range(0, len(declared), FORM_COLUMNS):
        for column, (name, spec) in zip(st.columns(FORM_COLUMNS), declared[row:row + FORM_COLUMNS],
                                        strict=False):
            with column:
                values[name] = setting_ui(name, spec, max_train)
                slots[name] = st.empty()
                if name == "model":
                    model_caption_ui(values[name])
    problems = config_problems(values)
    for name, message in problems.items():
        slots[name].error(message, icon=":material/error:")
    advice = None if problems else device_advice(values["device"], values["batch_size"])
    if advice:
        slots["device"].info(advice, icon=":material/speed:")
    return {"values": values, "problems": problems}


def start_ui(values: dict, problems: dict, images_per_epoch: int) -> None:
    """The Start button (disabled while a setting is wrong) and a time estimate."""
    c1, c2 = st.columns([1, 4], vertical_alignment="center")
    clicked = c1.button("Start training", type="primary", icon=":material/play_arrow:",
                        disabled=bool(problems))
    if problems:
        c2.caption("Fix the settings marked in red to start.")
    else:
        estimate = estimate_seconds(access.store().list(), values, images_per_epoch)
        c2.caption(f"{values['epochs'] * images_per_epoch:,} images in all"
                   + (f" · about {format_duration(estimate)} here, judging by earlier runs"
                      if estimate else "")
                   + " · it keeps running if you leave this page.")
    if clicked and not problems:
        run = access.runner().start(TrainConfig(**values), access.data_dir())
        st.session_state.watch_run = run.id
        st.session_state.pop("run_curves", None)
        st.rerun()


def run_curve(run_id: str) -> RunCurve:
    """The run's events as this session shows them: read once as a spread of its loss reports,
    then only the new events on each refresh."""
    curves = st.session_state.setdefault("run_curves", {})
    if run_id in curves:
        curves[run_id].update(access.store())
    else:
        curves[run_id] = RunCurve.read(access.store(), run_id, CHART_POINTS, RECENT_POINTS)
    return curves[run_id]


def loss_chart(run: Run, curve: pd.DataFrame, accuracy: pd.DataFrame) -> alt.LayerChart:
    """Loss per report (line with points), epoch boundaries (dashed), test accuracy (right)."""
    epochs = run.settings["epochs"]
    x = alt.X("epochs:Q", title="epochs", scale=alt.Scale(domain=[0, epochs]))
    # Many dots hide the line; invisible ones still carry the tooltips.
    dots = True if len(curve) <= DOTS_UP_TO else alt.OverlayMarkDef(opacity=0)
    line = alt.Chart(curve).mark_line(point=dots, color="#4C78A8").encode(
        x=x, y=alt.Y("loss:Q", title="training loss", scale=alt.Scale(zero=False)),
        tooltip=["epoch", "minibatch", alt.Tooltip("loss:Q", format=".3f"),
                 alt.Tooltip("images_seen:Q", format=",")])
    boundaries = alt.Chart(pd.DataFrame({"epochs": list(range(1, epochs))})).mark_rule(
        strokeDash=[4, 4], color="#999").encode(x="epochs:Q")
    points = alt.Chart(accuracy).mark_point(shape="diamond", size=120, filled=True,
                                            color="#E45756").encode(
        x=alt.X("epoch:Q"),
        y=alt.Y("test_accuracy:Q", title="test accuracy (%)", scale=alt.Scale(domain=[0, 100]),
                axis=alt.Axis(titleColor="#E45756")),
        tooltip=["epoch", alt.Tooltip("test_accuracy:Q", format=".1f", title="test accuracy %")])
    labels = points.mark_text(dy=-14, color="#E45756").encode(
        text=alt.Text("test_accuracy:Q", format=".1f"))
    return alt.layer(boundaries + line, points + labels).resolve_scale(y="independent") \
        .properties(height=320)


def run_view_ui(run: Run, curve: RunCurve) -> None:
    """Progress, figures and chart of one run (live or finished)."""
    progress = run_progress(run, curve.stats)
    st.progress(progress.fraction, text=progress.text)
    accuracy = epoch_accuracies(curve.epochs)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Latest loss", f"{progress.last_loss:.3f}" if progress.last_loss else "-")
    c2.metric("Images per second",
              f"{progress.images_per_s:,.0f}" if progress.images_per_s else "-",
              help=SPEED_HELP)
    c3.metric("Time left" if run.is_active else "Took",
              format_duration(progress.eta_s) if run.is_active else
              format_duration(run.duration_s),
              help=TIME_LEFT_HELP if run.is_active else None)
    c4.metric("Test accuracy", f"{accuracy.test_accuracy.iloc[-1]:.1f} %" if len(accuracy)
              else "after epoch 1")
    log_every = run.settings["log_every"]
    every = "every batch" if log_every == 1 else f"every {log_every:,} batches"
    points = loss_curve(curve.stats)
    if points.empty:
        st.caption(f"The loss chart starts with the first report ({every}).")
        return
    st.altair_chart(loss_chart(run, points, accuracy), width="stretch")
    reports = curve.reports
    shown = (f" The chart draws {len(points):,} of them: the latest {RECENT_POINTS:,} and an "
             "even spread of the others." if curve.thinned else "")
    st.caption(f"{reports:,} loss report{'s' if reports != 1 else ''} so far, one {every}."
               f"{shown} Dashed lines: epoch ends; red diamonds: test accuracy after each epoch.")


@st.fragment(run_every=1.0)
@layout.guard
def live_run_ui(run_id: str) -> None:
    access.runner().schedule()  # notices a crashed job and starts queued runs
    run = access.store().get(run_id)
    if not run.is_active:
        st.rerun()  # redraw the page in its finished state
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.subheader(f"Run {run.id} · {run.status}")
    if c2.button("Stop", icon=":material/stop_circle:", key=f"stop_{run.id}",
                 disabled=run.stop_requested):
        access.runner().stop(run.id)
        run = access.store().get(run_id)
    if run.stop_requested and run.is_active:
        # A caption in the live view, not a toast: a toast sent from this fragment, which keeps
        # rerunning, came back on other pages long after the run had stopped.
        st.caption("Stopping after the current batch; the network learned so far is kept.")
    run_view_ui(run, run_curve(run.id))


def finished_run_ui(run: Run) -> None:
    st.subheader(f"Run {run.id} · {run.status}")
    if run.status == "completed":
        st.success(f"Finished: the network gets {run.accuracy:.1f} % of the test images right "
                   "(guessing would get 10 %).", icon=":material/check_circle:")
    elif run.status == "stopped":
        accuracy = f" It gets {run.accuracy:.1f} % of the test images right." \
            if run.accuracy is not None else ""
        st.warning(f"{run.message}{accuracy}", icon=":material/stop_circle:")
    else:
        st.error(f"This run {run.status}: {run.message}", icon=":material/error:")
    run_view_ui(run, run_curve(run.id))
    note = how_it_trained(run)
    if note:
        st.caption(note + " The same seed gives the same network only with the same step "
                          "and cores.")
    if run.checkpoint:
        st.page_link(navigation.EVALUATE, label="See what it learned on the Evaluate page",
                     icon=":material/fact_check:")


def run_to_show() -> Run | None:
    """The run this page follows: the one started here, else the active one, else the latest."""
    runs = access.store().list()
    wanted = st.session_state.get("watch_run")
    by_id = {r.id: r for r in runs}
    if wanted in by_id:
        chosen = by_id[wanted]
        active = [r for r in runs if r.status in ACTIVE]
        # Reattach to a newer active run (e.g. started from another tab) once ours has ended.
        return active[0] if not chosen.is_active and active else chosen
    active = [r for r in runs if r.status in ACTIVE]
    return active[0] if active else (runs[0] if runs else None)


@layout.guard
def main() -> None:
    layout.page_header("Train", "Pick the settings, press Start, and watch the loss fall: the "
                       "lower the loss, the better the network fits the training images. Training "
                       "runs in the background, so you can leave this page and come back.")
    data = layout.data_or_status_ui()
    if data is None:
        return
    form = settings_form_ui(len(data.train_labels))
    values = form["values"]
    size = values["train_size"] or len(data.train_labels)
    start_ui(values, form["problems"], min(size, len(data.train_labels)))
    st.divider()
    run = run_to_show()
    if run is None:
        st.info("No runs yet: press Start training.", icon=":material/info:")
    elif run.is_active:
        live_run_ui(run.id)
    else:
        finished_run_ui(run)


navigation.run_inside_app(main)

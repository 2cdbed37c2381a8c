"""Train page: choose settings, start a background run, watch it learn live, stop it."""

import altair as alt
import pandas as pd
import streamlit as st

from cifar_core import TrainConfig, available_devices
from cifar_core.runs import ACTIVE, Run
from cifar_core.summaries import (
    epoch_accuracies,
    estimate_seconds,
    format_duration,
    loss_curve,
    run_progress,
)
from cifar_core.train import LABELS, PRESETS, config_problems, device_advice
from pages.shared import access, layout, navigation

FIELDS = ("epochs", "lr", "momentum", "batch_size", "log_every", "train_size", "device", "seed")
HELP = {
    "epochs": "How many times the network sees every training image.",
    "lr": "How big a step each correction takes. Too high and learning falls apart; too low "
          "and it crawls.",
    "momentum": "How much of the previous step carries into the next (0 = none, 0.9 = a lot).",
    "batch_size": "Images looked at before each correction. Bigger is faster per image, but "
                  "gives fewer corrections per epoch.",
    "log_every": "Report the average loss every this many batches (one point on the chart).",
    "train_size": "How many training images to use, the same number from every class.",
    "device": "Where to compute: 'auto' picks a GPU when there is one.",
    "seed": "Fixes the starting weights and the order of images, so a run can be repeated.",
}


def _apply_preset() -> None:
    values = {**TrainConfig().to_dict(), **PRESETS[st.session_state.preset]}
    for name in ("epochs", "lr", "momentum", "batch_size", "log_every"):
        st.session_state[f"cfg_{name}"] = values[name]
    if values["train_size"] is None:
        st.session_state.cfg_train_size = st.session_state.get("max_train", 50_000)


def settings_form_ui(max_train: int) -> dict:
    """The settings widgets, with each problem shown under its field; returns the values."""
    st.session_state.max_train = max_train
    if "cfg_epochs" not in st.session_state:
        st.session_state.preset = next(iter(PRESETS))
        _apply_preset()
        st.session_state.cfg_seed = 0
        st.session_state.cfg_random_seed = True
    st.selectbox("Start from a preset", list(PRESETS), key="preset", on_change=_apply_preset)
    c1, c2, c3, c4 = st.columns(4)
    slots = {}
    with c1:
        st.number_input(LABELS["epochs"], step=1, key="cfg_epochs", help=HELP["epochs"])
        slots["epochs"] = st.empty()
        st.number_input(LABELS["batch_size"], step=1, key="cfg_batch_size",
                        help=HELP["batch_size"])
        slots["batch_size"] = st.empty()
    with c2:
        st.number_input(LABELS["lr"], step=0.001, format="%.4f", key="cfg_lr", help=HELP["lr"])
        slots["lr"] = st.empty()
        st.number_input(LABELS["momentum"], step=0.05, format="%.2f", key="cfg_momentum",
                        help=HELP["momentum"])
        slots["momentum"] = st.empty()
    with c3:
        st.number_input(f"{LABELS['train_size']} (of {max_train:,})", step=1000,
                        key="cfg_train_size", help=HELP["train_size"])
        slots["train_size"] = st.empty()
        st.number_input(LABELS["log_every"], step=1, key="cfg_log_every",
                        help=HELP["log_every"])
        slots["log_every"] = st.empty()
    with c4:
        st.selectbox(LABELS["device"], available_devices(), key="cfg_device", help=HELP["device"])
        slots["device"] = st.empty()
        random_seed = st.checkbox("Random seed", key="cfg_random_seed")
        st.number_input(LABELS["seed"], step=1, key="cfg_seed", disabled=random_seed,
                        help=HELP["seed"])
        slots["seed"] = st.empty()
    train_size = st.session_state.cfg_train_size
    values = {
        "epochs": st.session_state.cfg_epochs, "lr": st.session_state.cfg_lr,
        "momentum": st.session_state.cfg_momentum, "batch_size": st.session_state.cfg_batch_size,
        "log_every": st.session_state.cfg_log_every, "device": st.session_state.cfg_device,
        "seed": None if random_seed else st.session_state.cfg_seed,
        "train_size": None if isinstance(train_size, int) and train_size >= max_train
        else train_size,
    }
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
        st.session_state.pop("events_cache", None)
        st.rerun()


def run_events(run_id: str) -> list[dict]:
    """All events of a run, reading only the new ones on each refresh."""
    cache = st.session_state.setdefault("events_cache", {})
    last_seq, events = cache.get(run_id, (0, []))
    new = access.store().events(run_id, since=last_seq)
    if new:
        events = events + [e for _, e in new]
        last_seq = new[-1][0]
    cache[run_id] = (last_seq, events)
    return events


def loss_chart(run: Run, curve: pd.DataFrame, accuracy: pd.DataFrame) -> alt.LayerChart:
    """Loss per report (line with points), epoch boundaries (dashed), test accuracy (right)."""
    epochs = run.config.get("epochs", 1)
    x = alt.X("epochs:Q", title="epochs", scale=alt.Scale(domain=[0, epochs]))
    line = alt.Chart(curve).mark_line(point=True, color="#4C78A8").encode(
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


def run_view_ui(run: Run, events: list[dict]) -> None:
    """Progress, figures and chart of one run (live or finished)."""
    progress = run_progress(run, events)
    st.progress(progress.fraction, text=progress.text)
    accuracy = epoch_accuracies(events)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Latest loss", f"{progress.last_loss:.3f}" if progress.last_loss else "-")
    c2.metric("Images per second",
              f"{progress.images_per_s:,.0f}" if progress.images_per_s else "-")
    c3.metric("Time left" if run.is_active else "Took",
              format_duration(progress.eta_s) if run.is_active else
              format_duration(run.duration_s))
    c4.metric("Test accuracy", f"{accuracy.test_accuracy.iloc[-1]:.1f} %" if len(accuracy)
              else "after epoch 1")
    curve = loss_curve(events)
    if curve.empty:
        st.caption("The loss chart starts with the first report "
                   f"(every {run.config.get('log_every')} batches).")
    else:
        st.altair_chart(loss_chart(run, curve, accuracy), width="stretch")
        reports = len(curve)
        st.caption(f"{reports} loss report{'s' if reports != 1 else ''} so far, one every "
                   f"{run.config.get('log_every')} batches. Dashed lines: epoch ends; "
                   "red diamonds: test accuracy after each epoch.")


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
        st.toast("Stopping after the current batch; the network learned so far is kept.")
        run = access.store().get(run_id)
    if run.stop_requested and run.is_active:
        st.caption("Stopping ...")
    run_view_ui(run, run_events(run.id))


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
    run_view_ui(run, run_events(run.id))
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

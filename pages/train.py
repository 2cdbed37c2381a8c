"""Train page: choose settings, start a background run, watch it learn live, stop it."""

import logging

import altair as alt
import pandas as pd
import streamlit as st
import torch

from cifar_core import CifarError, ImageData, TrainConfig
from cifar_core.data.grids import tiles
from cifar_core.runs.curves import LossView, RunCurve, accuracy_marks, epoch_ends, loss_lines
from cifar_core.runs.repeats import MAX_REPEATS, start_repeats
from cifar_core.runs.start import (
    start_check,
    start_choice_labels,
    start_choices,
    start_path,
    start_settings,
)
from cifar_core.runs.store import Run
from cifar_core.runs.views import (
    active_runs,
    format_duration,
    how_it_trained,
    latest_trained,
    run_classes,
    run_progress,
)
from cifar_core.share import charts
from cifar_core.training.augment import augment
from cifar_core.training.config import (
    PRESETS,
    Setting,
    config_problems,
    defaults,
    device_advice,
    offered_presets,
    preset_note,
    preset_values,
    presets_help,
    settings,
    shape_problems,
    with_role,
)
from cifar_core.training.estimate import (
    RunTimeEstimate,
    estimate_run_time,
)
from cifar_core.training.loop import model_width
from cifar_core.training.models import model_spec
from cifar_core.training.reports import log_every_text, planned_log_every
from cifar_core.training.speed import threads_for_background_runs
from pages.shared import access, layout, loss_ui, navigation
from pages.shared.dataset_choice import dataset_choice_ui
from pages.shared.lr_find_ui import lr_find_ui
from pages.shared.train_form import FORM_FROM, fill_form

log = logging.getLogger("cifar_dashboard")

# How the settings are laid out: rows of this many, in the order training.config declares them.
FORM_COLUMNS = 3
# The loss chart draws at most this many reports, the most recent ones all (cifar_core.runs.curves):
# a browser draws a few thousand points at once, 100,000 in seconds (bench/bench_pages.py).
CHART_POINTS = 2000
RECENT_POINTS = 500
CHART_HEIGHT = 290  # pixels
# Below this many points each report is drawn as a dot too.
DOTS_UP_TO = 200
SPEED_HELP = ("Training images per second of the run's wall time, writing every loss report "
              "included (the more often it reports, the more that costs), the test after each "
              "epoch not.")
TIME_LEFT_HELP = "The images still to train at this speed; the test after each epoch comes on top."
TEST_ACCURACY_HELP = ("The share of the test images the network gets right, measured after each "
                      "epoch: the first after epoch 1.")


# The augmentation picture: this many copies of one training image, drawn from this seed.
AUGMENTED_COPIES = 5
AUGMENTATION_SEED = 0


def preset_fields(preset_id: str) -> list[str]:
    """The settings a preset fills in: all but the device and the seed, unless it names them."""
    named = PRESETS[preset_id].values
    return [n for n in settings() if n not in with_role("kept_by_presets") or n in named]


def _apply_preset() -> None:
    """Fill the form with the chosen preset's settings, the Advanced ones included."""
    preset_id = st.session_state.preset
    fill_form(preset_values(preset_id), preset_fields(preset_id))
    st.session_state.pop(FORM_FROM, None)  # the values are the preset's now


def _init_form() -> None:
    st.session_state.preset = next(iter(offered_presets()))
    fill_form(defaults(), with_role("kept_by_presets"))
    _apply_preset()


def setting_ui(name: str, spec: Setting, max_train: int, standard=None, off: str = ""):
    """One setting's widget, made from its declaration; returns its value (None: the setting's
    'none' meaning, e.g. a random seed). `standard`: the number an optional setting left at
    its 'none' meaning stands for here (shown greyed out). `off`: why the setting does not
    apply to the other choices (e.g. a model without a width): then it invites no value."""
    key = f"cfg_{name}"
    if spec.kind is bool:
        st.toggle(spec.label, key=key, help=spec.help)
        return st.session_state[key]
    if spec.choices is not None:
        choices = spec.allowed()
        labels = {n: model_spec(n).title for n in choices} if name == "model" else {}
        st.selectbox(spec.label, choices, key=key, help=spec.help,
                     format_func=lambda c: labels.get(c, c))
        return st.session_state[key]
    # The 'none' checkbox goes under the number, so that the numbers of a row line up; its
    # state is known before it is drawn (it changes only by a click, which reruns the page).
    none = spec.optional and bool(st.session_state.get(f"{key}_none"))
    if none and standard is not None:
        st.session_state[key] = standard
    elif none and off:
        st.session_state[key] = None  # an empty field: no number applies (it showed 0)
    label = f"{spec.label} (of {max_train:,})" if name == "train_size" else spec.label
    step = int(spec.step) if spec.kind is int else spec.step
    st.number_input(label, step=step, format=spec.format, key=key, help=spec.help,
                    disabled=none or bool(off))
    if spec.optional:
        # A value set where it does not apply can still be taken back (its message says so).
        meaning = spec.none_means + (f" ({standard})" if standard is not None else "")
        st.checkbox(f"{spec.label}: {meaning}", key=f"{key}_none", disabled=bool(off) and none)
    if off:
        st.caption(off)
    return None if none else st.session_state[key]


# A network to start from, as a menu of the runs it can be (never a typed file name: a .pth
# from elsewhere is imported on Try it first, and then it is a run).
NOTHING = "Nothing (from scratch)"


def _loaded_start(value: str):
    """The network the run id or file `value` holds (read once per file version)."""
    path = start_path(access.store(), value)
    return access.get_checkpoint(str(path), path.stat().st_mtime)


def _take_start_settings() -> None:
    """A start network chosen: its model and width become this run's (before they are drawn)."""
    value = st.session_state.get("cfg_start_from")
    st.session_state["cfg_start_from_none"] = value is None
    if value is None:
        return
    try:
        chosen = start_settings(_loaded_start(value))
    except (CifarError, OSError):
        return  # the check under the field says what is wrong with it
    fill_form(chosen, ("model", "width"))


def start_from_ui(spec: Setting, shape: tuple[int, int, int]):
    """Start from: nothing, or a finished run whose network saw pictures of `shape`; returns the
    run's id (None: from scratch)."""
    key = "cfg_start_from"
    offered = [r.id for r in start_choices(access.store().list(), shape)]
    labels = start_choice_labels(access.store().list(), offered)  # by the runs' names
    value = None if st.session_state.get(f"{key}_none") else st.session_state.get(key)
    if value is not None and value not in offered:  # e.g. filled by another page, since gone
        offered.insert(0, value)
    st.session_state[key] = value
    st.selectbox(spec.label, [None, *offered], key=key, help=spec.help,
                 on_change=_take_start_settings,
                 format_func=lambda v: NOTHING if v is None else labels.get(v, str(v)))
    st.session_state[f"{key}_none"] = st.session_state[key] is None
    return st.session_state[key]


def kept_value(name: str, spec: Setting):
    """A setting of the closed Advanced section: its value as its field holds it, kept for
    when the section opens."""
    key = f"cfg_{name}"
    layout.keep_values((key, f"{key}_none"))
    if spec.optional and st.session_state.get(f"{key}_none"):
        return None
    return st.session_state.get(key)


def standard_width(values: dict) -> int | None:
    """The width the chosen model is built with here when Width is left empty (None: the
    model has no width, or the model or device is not one this machine knows)."""
    try:
        return model_width(TrainConfig(model=values["model"], device=values["device"]))
    except CifarError:
        return None


def width_note(model: str) -> str:
    """Why Width does not apply to `model` (empty when it does)."""
    try:
        spec = model_spec(model)
    except CifarError:
        return ""
    return "" if spec.widths else f"The {spec.title.lower()} has no width setting."


# Building a network to count its weights takes up to a second (ResNet-18): once per size.
@st.cache_data(max_entries=64, show_spinner=False)
def parameter_count(model: str, width: int | None, num_classes: int,
                    shape: tuple[int, int, int]) -> int:
    return model_spec(model).parameter_count(num_classes, width, shape)


def training_estimate(values: dict, images_per_epoch: int,
                      data: ImageData) -> RunTimeEstimate | None:
    """How long a run of these settings takes here, start-up and tests included: from earlier
    runs like it, else measured (cached); None if it cannot be told (the failure goes to the
    server log, not onto the page)."""
    try:
        config = TrainConfig(**values)
        # Measured as a dashboard run would train: with the cores the job runner gives it.
        threads = threads_for_background_runs(access.runner().max_parallel)
        return estimate_run_time(
            config, images_per_epoch, access.store().list(), len(data.test_labels),
            measure=lambda c: access.measured_speed(c, threads, tuple(data.shape),
                                                    len(data.classes)),
            measure_test=lambda c: access.measured_test_speed(c, threads, tuple(data.shape),
                                                              len(data.classes)),
            last_epoch=access.last_epoch_report, dataset=data.dataset)
    except Exception:
        log.exception("training time estimate failed")
        return None


def model_caption_ui(values: dict, data: ImageData, estimate: RunTimeEstimate | None,
                     problems: dict) -> None:
    """What the chosen model is, in one sentence, its size at the chosen width and how long
    the current settings train here."""
    try:
        spec = model_spec(values["model"])
    except CifarError:
        return
    width = None if "width" in problems else values.get("width") or standard_width(values)
    if "model" in problems:  # it cannot take these pictures: the message under it says so
        st.caption(spec.description)
        return
    size = f"{parameter_count(spec.name, width, len(data.classes), tuple(data.shape)):,} weights"
    if width is not None:
        size += f" at width {width}"
    if estimate is not None:
        sentence = estimate.sentence()
        when = sentence[:1].upper() + sentence[1:] + "."
    elif problems:
        when = "The time it takes shows once the settings marked in red are fixed."
    else:
        when = ""
    st.caption(f"{spec.description} {size}. {when}".strip())


# The same copies on every rerun: one image, one seed, one augmentation.
@st.cache_data(max_entries=8, show_spinner=False)
def augmentation_pictures(dataset: str, folder: str, mode: str) -> list:
    image = access.get_data(dataset, folder).train_images[:1]
    copies = augment(image.expand(AUGMENTED_COPIES, -1, -1, -1), mode,
                     torch.Generator().manual_seed(AUGMENTATION_SEED))
    return tiles(torch.cat([image, copies]), scale=3)


def augmentation_picture_ui(mode: str, dataset: str) -> None:
    """One training image and a few copies as the chosen augmentation changes them."""
    shown = mode if mode != "none" else "flip+translate"
    pictures = augmentation_pictures(dataset, access.data_dir(), shown)
    st.markdown("**What augmentation does**")
    st.caption(("Augmentation is off, so the network sees this picture the same every epoch. "
                f"With {shown} it would see copies like these instead:" if mode == "none"
                else f"With {shown}, each epoch shows the network a new copy such as these "
                "instead of the picture itself:")
               + " flip mirrors it left-right, translate moves it a pixel or two (filling the "
                 "gap with the mirrored edge).")
    layout.show_tiles(pictures, ["original", *[f"copy {i}" for i in range(1, len(pictures))]])


def form_images(max_train: int) -> int:
    """The training images the form asks for so far (Training images is drawn after Log
    every, whose automatic number depends on it: its field's state, set by its last change)."""
    none = st.session_state.get("cfg_train_size_none", True)
    size = None if none else st.session_state.get("cfg_train_size")
    return min(size, max_train) if isinstance(size, int) and size > 0 else max_train


def settings_grid_ui(declared: list, values: dict, slots: dict, max_train: int,
                     shape: tuple[int, int, int]) -> None:
    """These settings' widgets in rows of FORM_COLUMNS, each with a slot for its message under
    it; their values go into `values`."""
    for row in range(0, len(declared), FORM_COLUMNS):
        for column, (name, spec) in zip(st.columns(FORM_COLUMNS), declared[row:row + FORM_COLUMNS],
                                        strict=False):
            with column:
                if name == "start_from":
                    values[name] = start_from_ui(spec, shape)
                elif name == "log_every":  # automatic: the number it stands for here
                    values[name] = setting_ui(name, spec, max_train,
                                              planned_log_every({**values, "log_every": None},
                                                                form_images(max_train))[0])
                elif name == "width":
                    values[name] = setting_ui(name, spec, max_train, standard_width(values),
                                              width_note(values["model"]))
                else:
                    values[name] = setting_ui(name, spec, max_train)
                slots[name] = st.empty()
                if name == "model":  # what it is, its size, the time: once all is chosen
                    slots["model_caption"] = st.empty()


def settings_form_ui(data: ImageData) -> dict:
    """A widget for every setting (cifar_core.training.config declares them), the recipe's under
    "Advanced", each problem shown under its field, and under the Model what it is, its size
    and how long the settings train here; returns the values, the problems and the estimate."""
    max_train = len(data.train_labels)
    st.session_state.max_train = max_train
    if "cfg_epochs" not in st.session_state:
        _init_form()
    presets = offered_presets()
    if st.session_state.get("preset") not in presets:  # e.g. the GPU's, kept from elsewhere
        st.session_state.preset = next(iter(presets))
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.selectbox("Start from a preset", list(presets), key="preset", on_change=_apply_preset,
                 format_func=lambda preset_id: presets[preset_id].title,
                 help="Fills in every setting below, the Advanced ones too; you can change any "
                      "of them afterwards.\n\n" + presets_help(presets))
    back_slot = c2.empty()
    note = preset_note(st.session_state.preset, data.dataset)
    if note:  # e.g. CIFAR-10's presets chosen for Fashion-MNIST
        st.caption(f":material/info: {note}")
    elif presets[st.session_state.preset].measured:
        st.caption(f":material/timer: {presets[st.session_state.preset].measured}")
    if st.session_state.get(FORM_FROM):  # filled by another page, e.g. a sweep's best run
        st.info(st.session_state[FORM_FROM], icon=":material/input:")
    values, slots = {}, {}
    basic = [(n, s) for n, s in settings().items() if not s.advanced]
    advanced = [(n, s) for n, s in settings().items() if s.advanced]
    settings_grid_ui(basic, values, slots, max_train, tuple(data.shape))
    # Made only while open; closed, its fields keep their values, which count as shown.
    section = layout.open_section("Advanced: the training recipe", ":material/tune:",
                                  "advanced_open")
    if section is not None:
        with section:
            st.caption("How the network is taught, beyond the tutorial's plain recipe. The fast "
                       "network's presets turn these on; the tutorial preset turns them off.")
            settings_grid_ui(advanced, values, slots, max_train, tuple(data.shape))
            if "augment" in values:
                augmentation_picture_ui(values["augment"], data.dataset)
    else:
        for name, spec in advanced:
            values[name] = kept_value(name, spec)
            slots[name] = st.empty()  # a message for it shows under the closed section
    # Choosing the preset already shown changes nothing: a button takes the form back to it.
    preset = preset_values(st.session_state.preset)
    if any(values[n] != preset[n] for n in preset_fields(st.session_state.preset)):
        back_slot.button("Back to the preset", on_click=_apply_preset,
                         icon=":material/settings_backup_restore:",
                         help="Set every field to the chosen preset's value again.")
    # A network that cannot take the data set's pictures, in words, under Model.
    problems = {**shape_problems(values, tuple(data.shape)), **config_problems(values)}
    start_message = start_problem_ui(values, tuple(data.shape))
    if start_message:
        problems["start_from"] = start_message
    for name, message in problems.items():
        slots[name].error(message, icon=":material/error:")
    images = min(values["train_size"] or max_train, max_train)
    log_note = None if problems else planned_log_every(values, images)[1]
    if log_note:  # a Log every that would give a single report, and what the run does instead
        slots["log_every"].info(log_note, icon=":material/timeline:")
    advice = None if problems else device_advice(values["device"], values["batch_size"])
    if advice:
        slots["device"].info(advice, icon=":material/speed:")
    size = values["train_size"] or max_train
    estimate = None if problems else training_estimate(values, min(size, max_train), data)
    with slots["model_caption"].container():
        model_caption_ui(values, data, estimate, problems)
    return {"values": values, "problems": problems, "estimate": estimate}


def start_problem_ui(values: dict, shape: tuple[int, int, int]) -> str | None:
    """Why the network to start from cannot start this run, in one sentence (None: it can)."""
    try:
        return start_check(access.store(), values, shape, lambda path: access.get_checkpoint(
            str(path), path.stat().st_mtime))
    except OSError as exc:  # its file gone between the check and the read
        return (f"The network to start from could not be read ({exc.strerror or exc}): choose "
                "another one, or Nothing (from scratch).")


def start_ui(values: dict, problems: dict, images_per_epoch: int, dataset: str,
             estimate: RunTimeEstimate | None = None) -> None:
    """The Start button (disabled while a setting is wrong), how many runs of these settings
    it starts (each with the next seed) and a time estimate."""
    c1, c3, c2 = st.columns([1, 1, 3], vertical_alignment="center")
    clicked = c1.button("Start training", type="primary", icon=":material/play_arrow:",
                        disabled=bool(problems))
    times = c3.number_input("Repeat", min_value=1, max_value=MAX_REPEATS, value=1, step=1,
                            key="train_repeats",
                            help="Train these settings this many times, with the seeds seed, "
                                 "seed + 1, ... (one drawn where Seed is random): the Runs page "
                                 "then shows their mean accuracy and its spread, so you can "
                                 "tell a real difference from luck.") or 1
    if problems:
        declared = settings()
        where = ", ".join(declared[n].label + (" (under Advanced)" if declared[n].advanced
                                               else "") for n in problems if n in declared)
        c2.caption(f"Fix the settings marked in red to start: {where}.")
    else:
        runs = f"{times} runs (seed, seed + 1, ...) · " if times > 1 else ""
        c2.caption(f"{runs}{values['epochs'] * images_per_epoch:,} images in all"
                   + (" each" if times > 1 else "")
                   + (f" · {estimate.sentence()}" + (" each" if times > 1 else "")
                      if estimate else "")
                   + " · it keeps running if you leave this page.")
    if clicked and not problems:
        try:
            run = start_repeats(access.runner(), TrainConfig(**values), access.data_dir(),
                                int(times), dataset=dataset)[0]
        except CifarError as exc:
            st.error(str(exc), icon=":material/error:")
            return
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


def loss_chart(lines: pd.DataFrame, accuracy: pd.DataFrame, ends: pd.DataFrame,
               view: LossView) -> alt.LayerChart:
    """Training and test loss, epoch ends (dashed), test accuracy (right): after each epoch,
    and where a stopped run stopped (curves.accuracy_marks); the whole run wide."""
    # Many dots hide the line; invisible ones still carry the tooltips.
    dots = True if len(lines) <= DOTS_UP_TO else alt.OverlayMarkDef(opacity=0)
    # Its height leaves the whole chart on a 1280 x 720 screen under the run's heading.
    return charts.run_loss_chart(lines, accuracy, ends, view, dots, CHART_HEIGHT)


# A finished run's chart never changes: its spec is built (and checked by Altair, most of this
# page's Python time) once per run and server, not on every visit (bench/bench_reruns.py).
@st.cache_data(max_entries=32, show_spinner=False)
def finished_loss_chart_spec(run_key: tuple, view: LossView, _lines: pd.DataFrame,
                             _accuracy: pd.DataFrame, _ends: pd.DataFrame) -> dict:
    return loss_chart(_lines, _accuracy, _ends, view).to_dict()


def run_view_ui(run: Run, curve: RunCurve) -> None:
    """Progress, figures and chart of one run (live or finished)."""
    if not run.is_active and not curve.stats:
        # Its status box above says how it ended; a bar, four dashes and "the chart starts with
        # the first report" would only repeat it or promise what never comes.
        st.caption("It ended before its first loss report, so there is nothing to chart.")
        return
    progress = run_progress(run, curve.stats)
    st.progress(progress.fraction, text=progress.text)
    accuracy = accuracy_marks(run, curve.epochs, curve.stats[-1].images_per_epoch
                              if curve.stats else 0)
    # The chart before the figures: on a projector or a phone the first screen ends about here.
    loss_chart_ui(run, curve, accuracy)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Latest loss", f"{progress.last_loss:.3f}" if progress.last_loss else "-")
    c2.metric("Images per second",
              f"{progress.images_per_s:,.0f}" if progress.images_per_s else "-",
              help=SPEED_HELP)
    c3.metric("Time left" if run.is_active else "Took",
              format_duration(progress.eta_s) if run.is_active else
              format_duration(run.duration_s),
              help=TIME_LEFT_HELP if run.is_active else None)
    # Before the first epoch ends there is no measurement: a dash, and the help says when.
    # After a stop between epochs, the test of the network it kept (as its status box says).
    latest = accuracy.iloc[-1] if len(accuracy) else None
    c4.metric("Test accuracy", "-" if latest is None else f"{latest.test_accuracy:.1f} %",
              help=TEST_ACCURACY_HELP + ("" if latest is None else
                                         f" This one: {latest.when}."))


def loss_chart_ui(run: Run, curve: RunCurve, accuracy: pd.DataFrame) -> None:
    """The run's loss chart with its legend in words (or when the chart starts)."""
    every = log_every_text(run.settings["log_every"])
    if not curve.stats:
        st.caption(f"The loss chart starts with the first report ({every}).")
        return
    # The chart above its controls: right after Start it is on the first screen, a 1280 x 720
    # projector's too (tests/test_newcomer_browser.py).
    chart = st.container()
    view = loss_ui.loss_view_ui("train_loss")
    lines = loss_lines(run, curve.stats, curve.epochs)
    ends = epoch_ends(run, curve.stats[-1].images_per_epoch)
    with chart:
        if run.is_active:
            st.altair_chart(loss_chart(lines, accuracy, ends, view), width="stretch")
        else:
            spec = finished_loss_chart_spec((run.id, run.finished), view, lines, accuracy,
                                            ends)
            st.vega_lite_chart(spec, width="stretch")
    reports = curve.reports
    shown = (f" The chart draws {len(curve.stats):,} of them: the latest {RECENT_POINTS:,} and "
             "an even spread of the others (smoothing evens out those drawn)."
             if curve.thinned else "")
    counted = f"{reports:,} loss report{'s' if reports != 1 else ''}"
    st.caption((f"{counted} so far" if run.is_active else counted) + f", one {every}."
               f"{shown} Grey dashes: epoch ends; red diamonds: test accuracy after each epoch"
               + (" and where it stopped." if len(accuracy) > len(curve.epochs) else ".")
               + " " + loss_ui.lines_caption(lines, view, dashed="orange"))


@st.fragment(run_every=1.0)
@layout.guard
def live_run_ui(run_id: str) -> None:
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


def guessing(run: Run) -> str:
    """What guessing gets on the run's data set, e.g. '10 %' for ten classes."""
    classes = run_classes(run)
    return layout.percent(100 / len(classes), 0) if classes else "one class in so many"


def finished_run_ui(run: Run) -> None:
    st.subheader(f"Run {run.id} · {run.status}")
    if run.status == "completed":
        st.success(f"Finished: the network gets {layout.percent(run.accuracy)} of the test "
                   f"images right (guessing would get {guessing(run)}).",
                   icon=":material/check_circle:")
    elif run.status in ("stopped", "pruned"):  # pruned: its sweep stopped it early (says why)
        accuracy = f" It gets {layout.percent(run.accuracy)} of the test images right." \
            if run.accuracy is not None else ""
        st.warning(f"{run.message}{accuracy}", icon=":material/stop_circle:")
    else:
        st.error(f"This run {run.status}: {run.message}", icon=":material/error:")
    run_view_ui(run, run_curve(run.id))
    note = how_it_trained(run)
    if note:
        # Which step and how many cores: what a person needs only to repeat a run exactly.
        with st.expander("Details: how it was computed", icon=":material/info:"):
            st.caption(note + " Another way of computing a step, or another number of cores, "
                              "rounds numbers a little differently: the same seed gives "
                              "exactly the same network only when both are the same.")
    if run.checkpoint:
        st.page_link(navigation.EVALUATE, label="See what it learned on the Evaluate page",
                     icon=":material/fact_check:")


def run_to_show() -> Run | None:
    """The run this page follows: the one started here, else the active one, else the latest
    trained here (an import never)."""
    runs = access.store().list()
    wanted = st.session_state.get("watch_run")
    by_id = {r.id: r for r in runs}
    if wanted in by_id:
        chosen = by_id[wanted]
        active = active_runs(runs)
        # Reattach to a newer active run (e.g. started from another tab) once ours has ended.
        return active[0] if not chosen.is_active and active else chosen
    active = active_runs(runs)  # a training before the runs waiting for it
    return active[0] if active else latest_trained(runs)


@layout.guard
def main() -> None:
    layout.page_header("Train", "Pick the settings, press Start, and watch the loss fall: the "
                       "lower the loss, the better the network fits the training images. Training "
                       "runs in the background, so you can leave this page and come back.")
    run = run_to_show()
    # A training, or the run started from this page, comes first: right after Start its live
    # chart is on the first screen (1280 x 720, a phone), not under the whole form (nor under
    # the data-set choice, which belongs to the new run's settings).
    on_top = run is not None and (run.is_active or run.id == st.session_state.get("watch_run"))
    if on_top:
        run_ui(run)
        st.divider()
        st.subheader("Settings for a new run")
    dataset = dataset_choice_ui()
    data = layout.data_or_status_ui(dataset)
    if data is None:
        return
    form = settings_form_ui(data)
    values = form["values"]
    lr_find_ui(values, form["problems"], data)
    size = values["train_size"] or len(data.train_labels)
    start_ui(values, form["problems"], min(size, len(data.train_labels)), dataset,
             form["estimate"])
    if not on_top:
        st.divider()
        run_ui(run)


def run_ui(run: Run | None) -> None:
    """The run this page follows: live while it trains, else how it ended."""
    if run is None:
        st.info("No runs yet: press Start training.", icon=":material/info:")
    elif run.is_active:
        live_run_ui(run.id)
    else:
        finished_run_ui(run)


navigation.run_inside_app(main)

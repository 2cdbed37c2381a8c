"""Sweep page: try many settings at once, watch the runs, and see which settings pay off."""

import logging
import os

import streamlit as st

from cifar_core import CifarError
from cifar_core.data.registry import dataset_spec
from cifar_core.runs.names import markdown_text, short_name
from cifar_core.runs.repeats import MAX_REPEATS
from cifar_core.runs.store import Run
from cifar_core.share import links
from cifar_core.sweeps import ray_engine
from cifar_core.sweeps.engine import default_parallel, delete_sweep, start_sweep, stop_sweep
from cifar_core.sweeps.estimate import SweepEstimate, sweep_estimate
from cifar_core.sweeps.form import AxisForm, build_space, modes_for
from cifar_core.sweeps.progress import sweep_menu_label, sweep_progress
from cifar_core.sweeps.ray_engine import ADDRESS_EXAMPLE, address_problem
from cifar_core.sweeps.space import MAX_POINTS, MAX_RUNS, PRUNERS, STRATEGIES, SearchSpace
from cifar_core.sweeps.store import Sweep, SweepStore
from cifar_core.training.config import (
    offered_presets,
    preset_values,
    settings,
    shape_problems,
)
from cifar_core.training.models import model_spec
from cifar_core.training.speed import threads_for_background_runs
from pages.shared import access, layout, links_ui, navigation
from pages.shared.dataset_choice import dataset_choice_ui
from pages.shared.report_ui import sweep_report_ui
from pages.shared.sweep_answer_ui import answer_ui
from pages.shared.sweep_runs_ui import runs_table_ui, settings_table_ui, small_multiples_ui
from pages.shared.train_form import form_values

log = logging.getLogger("cifar_dashboard")

FROM_TRAIN = "train"  # the start-from menu's entry for the Train page's current settings
# Short enough to show whole in their menus (the help says more).
STRATEGY_WORDS = {"grid": "Grid: every combination", "random": "Random combinations",
                  "smart": "Smart: learns as it goes"}
PRUNE_WORDS = {"none": "Off: all train to the end", "median": "Median: stop those behind",
               "halving": "Halving: keep the best third"}


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
        if spec.low is not None and not spec.above_low:
            low = max(low, spec.low)  # e.g. at least 10 training images
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
    """A list of values: numbers as text separated by commas, choices and switches ticked."""
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
    """A range: its ends, the points a grid takes, and whether they go on a log scale."""
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
        # A setting kept fixed gets the same kind of label as the others (bold Markdown stood
        # out larger than them), its one choice shown.
        st.radio(spec.label, modes, key=_key(name, "mode"), horizontal=True,
                 help=spec.help if len(modes) > 1 else
                 spec.help + " A sweep keeps it the same for all its runs.")
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
    return row_form(name)


# The session state keys of a setting's row: its mode and the fields of each mode.
ROW_PARTS = ("", "mode", "list", "chosen", "low", "high", "points", "log")


def row_form(name: str) -> AxisForm:
    """What a setting's row holds (fixed, list or range), from its fields' state."""
    state = st.session_state
    return AxisForm(name, state.get(_key(name, "mode"), "fixed"), value=state.get(_key(name)),
                    text=state.get(_key(name, "list"), ""),
                    chosen=tuple(state.get(_key(name, "chosen")) or ()),
                    low=state.get(_key(name, "low")), high=state.get(_key(name, "high")),
                    points=state.get(_key(name, "points")),
                    log=state.get(_key(name, "log"), False))


def settings_rows_ui() -> tuple[list[AxisForm], dict]:
    """Every setting's row, the recipe's under Advanced; returns the rows' values and a slot
    under each for its message."""
    forms, slots = [], {}
    basic = [n for n, s in settings().items() if not s.advanced]
    advanced = [n for n, s in settings().items() if s.advanced]
    for name in basic:
        forms.append(setting_row_ui(name))
        slots[name] = st.empty()
    # Made only while open; closed, each row's fields keep their values and the sweep takes
    # them as they are.
    section = layout.open_section("Advanced: the training recipe", ":material/tune:",
                                  "sw_advanced_open")
    if section is not None:
        with section:
            for name in advanced:
                forms.append(setting_row_ui(name))
                slots[name] = st.empty()
        return forms, slots
    for name in advanced:
        forms.append(kept_row(name))
        slots[name] = st.empty()  # a message for it shows under the closed section
    return forms, slots


def kept_row(name: str) -> AxisForm:
    """A row of the closed Advanced section: what its fields hold, kept for when it opens."""
    layout.keep_values(_key(name, part) for part in ROW_PARTS)
    return row_form(name)


def sweep_estimate_ui(space: SearchSpace, max_train: int, parallel: int, test_images: int,
                      shape: tuple[int, int, int], classes: int) -> SweepEstimate | None:
    """The sweep's time here, each run's start-up and tests included (None: it cannot be
    told; the failure goes to the server log)."""
    try:
        threads = threads_for_background_runs(parallel)
        return sweep_estimate(space, max_train, access.store().list(),
                              lambda c: access.measured_speed(c, threads, shape, classes),
                              parallel,
                              test_images,
                              lambda c: access.measured_test_speed(c, threads, shape, classes),
                              access.last_epoch_report)
    except Exception:
        log.exception("sweep time estimate failed")
        return None


def new_sweep_ui(max_train: int, dataset: str, shape: tuple[int, int, int],
                 test_images: int = 10_000, classes: int = 10) -> None:
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
    space, problems = search_ui(forms, slots)
    problems = {**problems, **models_problem(space, shape)}
    if "model" in problems:
        slots["model"].error(problems["model"], icon=":material/error:")
    engine, address, parallel, chosen_parallel, problems = where_ui(space, problems)
    name = st.text_input("Name (optional)", key="sw_name", placeholder="e.g. learning rates")
    if start_ui(space, problems, max_train, parallel, test_images, shape, classes):
        try:
            sweep = start_sweep(access.store(), space, access.data_dir(), name=name.strip(),
                                origin="dashboard", engine=engine, address=address.strip(),
                                parallel=int(chosen_parallel) if chosen_parallel else None,
                                dataset=dataset)
        except CifarError as exc:
            st.error(str(exc), icon=":material/error:")
            return
        st.session_state.sw_chosen = sweep.id
        st.rerun()


def models_problem(space: SearchSpace, shape: tuple[int, int, int]) -> dict[str, str]:
    """Why a network the sweep would train cannot take the data set's pictures, in words
    (training.config.shape_problems), as {'model': message}; empty when they all can."""
    axis = space.axis("model")
    for model in axis.values if axis is not None else ():
        problem = shape_problems({"model": model}, shape)
        if problem:
            return problem
    return {}


def search_ui(forms, slots) -> tuple[SearchSpace, dict]:
    """How to search (strategy, runs, time budget, early stopping): the space the whole form
    describes, and what is wrong with it (each message under its field)."""
    st.markdown("**How to search**")
    # Two to a row: the menus show their choices whole, the number fields their hints.
    c1, c4 = st.columns(2)
    c2, c3 = st.columns(2)
    c5, _ = st.columns(2)
    strategy = c1.selectbox("Strategy", STRATEGIES, key="sw_strategy",
                            format_func=STRATEGY_WORDS.get,
                            help="Grid tries every combination of the values; random draws "
                                 "combinations from the lists and ranges; smart (Optuna's TPE) "
                                 "learns from the runs so far and draws where they did best.")
    runs = c2.number_input("Runs", min_value=1, max_value=MAX_RUNS, value=None, step=1,
                           key="sw_runs", placeholder="all of the grid",
                           help=f"At most this many settings (random and smart: how many to "
                                f"draw), each run as many times as Repeats says; at most "
                                f"{MAX_RUNS} runs in all.")
    minutes = c3.number_input("Time budget (minutes)", min_value=0.0, value=None, step=5.0,
                              key="sw_minutes", placeholder="no limit",
                              help="No run starts after this many minutes; those running "
                                   "finish.")
    prune = c4.selectbox("Early stopping", PRUNERS, key="sw_prune", format_func=PRUNE_WORDS.get,
                         help="Stop runs that are behind the others after an epoch (Optuna's "
                              "pruners): the time goes to the promising ones. Median stops a "
                              "run behind the median of the others at the same epoch; halving "
                              "keeps the best third at each step. Needs 2 epochs or more.")
    repeats = c5.number_input("Repeats", min_value=1, max_value=MAX_REPEATS, value=1, step=1,
                              key="sw_repeats",
                              help="Run each setting this many times, with the seeds seed, "
                                   "seed + 1, ...: the answer then shows each setting's mean "
                                   "and spread, and says when two settings are too close to "
                                   "tell apart. 1: each setting once. Smart: each setting it "
                                   "suggests runs this many times. Not with early stopping.")
    space, problems = build_space(forms, strategy, runs, minutes or None, prune, repeats)
    for name, message in problems.items():
        if name in slots:
            slots[name].error(message, icon=":material/error:")
    for name, column in (("strategy", c1), ("runs", c2), ("minutes", c3), ("prune", c4),
                         ("repeats", c5)):
        if name in problems:
            column.error(problems[name], icon=":material/error:")
    return space, problems


def where_ui(space: SearchSpace, problems: dict):
    """Where the runs train: (engine, cluster address, runs side by side, the number the user
    chose or None, the problems with a bad address added)."""
    st.markdown("**Where the runs train**")
    c1, c2, c3 = st.columns(3)
    why_not_ray = ray_engine.ray_problem()  # (Ray itself is imported only to check)
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
                                help=f"The address that 'ray start --head' printed, e.g. "
                                     f"{ADDRESS_EXAMPLE}; $CIFAR_RAY_ADDRESS is the default. "
                                     "Empty: a cluster of this machine alone, for this sweep.")
        why_not_address = address_problem(address)
        if why_not_address:
            c2.error(why_not_address, icon=":material/error:")
            problems = {**problems, "address": why_not_address}  # Start waits for a fix
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
    return engine, address, parallel, chosen_parallel, problems


def start_ui(space: SearchSpace, problems: dict, max_train: int, parallel: int,
             test_images: int = 10_000, shape: tuple[int, int, int] = (3, 32, 32),
             classes: int = 10) -> bool:
    """The runs and time the form makes (or what is wrong) beside Start; True once clicked
    with nothing wrong."""
    estimate = None if problems else sweep_estimate_ui(space, max_train, int(parallel),
                                                       test_images, shape, classes)
    c1, c2 = st.columns([1, 4], vertical_alignment="center")
    clicked = c1.button("Start the sweep", type="primary", icon=":material/play_arrow:",
                        disabled=bool(problems), key="sw_start_button")
    if problems:
        if "space" in problems and not space.varied and len(problems) == 1:
            # Where every new form starts: not a mistake, so not in red.
            c2.caption(problems["space"])
        elif "space" in problems:
            c2.error(problems["space"], icon=":material/error:")
        else:
            c2.caption("Fix the fields marked in red to start.")
    else:
        size = space.size()
        c2.markdown(f"**{estimate.sentence()}**." if estimate else
                    f"**{size} run{'s' * (size != 1)}.**")
    return clicked and not problems


# --- a sweep as it runs, or a past one ------------------------------------------------------

def sweep_view_ui(sweep: Sweep, runs: list[Run]) -> None:
    """How the sweep stands: progress, Stop or Delete, the runs' loss charts and table."""
    progress = sweep_progress(sweep, runs)
    st.progress(progress.fraction, text=progress.text)
    st.caption(f"Its runs train on {dataset_title(sweep.dataset)}: its accuracies compare "
               "with runs of that data set only.")
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
        sweep_report_ui(sweep, key=f"sw_{sweep.id}")
    small_multiples_ui(runs)
    settings_table_ui(sweep, runs, key=f"sw_settings_{sweep.id}_{sweep.is_active}")
    runs_table_ui(sweep, runs, key=f"sw_table_{sweep.id}_{sweep.is_active}")


def dataset_title(name: str) -> str:
    """A data set's title (its name where it is no longer registered here)."""
    try:
        return dataset_spec(name, access.data_dir()).title
    except CifarError:
        return name


def delete_ui(sweep: Sweep) -> None:
    """Delete an ended sweep with its runs, once a second click confirms it."""
    def delete() -> None:
        delete_sweep(access.store(), sweep.id)
        st.session_state.pop("sw_chosen", None)

    name = markdown_text(short_name(sweep.name))  # as typed, never as Markdown
    layout.delete_with_confirmation_ui(
        st, sweep.id, f"Delete sweep {name} and all its runs, with their files, for good?",
        "Delete this sweep ...", delete, f"Deleted sweep {name}.", prefix="sw_",
        widths=(1, 1, 4))


@st.fragment(run_every=2.0)
@layout.guard
def live_sweep_ui(sweep_id: str) -> None:
    """The running sweep, redrawn every 2 s until it ends (then the whole page, with its
    answer)."""
    sweeps = SweepStore(access.store())
    sweep = sweeps.get(sweep_id)
    if not sweep.is_active:
        st.rerun()  # redraw the page with the sweep's answer
    sweep_view_ui(sweep, sweeps.runs(sweep_id))



def sweeps_ui(address: links.Address) -> None:
    """The chosen sweep (the address's, else the newest): live while it runs, then its
    answer."""
    sweeps = SweepStore(access.store())
    found = sweeps.list()
    for damaged in sweeps.damaged_sweeps():  # named, not left out without a word
        st.warning(markdown_text(damaged.message), icon=":material/warning:")  # its name
        if st.button("Delete it", icon=":material/delete:", key=f"sw_delete_damaged_{damaged.id}"):
            try:
                delete_sweep(access.store(), damaged.id)
            except CifarError as exc:
                st.error(str(exc), icon=":material/error:")
            else:
                st.rerun()
    # A link opened: its sweep, or why not.
    named = links.checked_sweep(address, existing={s.id for s in found})
    links_ui.notices_ui(named)
    if not found:
        st.info("No sweeps yet: build one above and press Start the sweep.",
                icon=":material/info:")
        links_ui.keep_address()
        return
    runs_of = {s.id: sweeps.runs(s.id) for s in found}
    labels = {s.id: sweep_menu_label(s) for s in found}
    if named.value:
        st.session_state.sw_chosen = named.value
    if st.session_state.get("sw_chosen") not in labels:
        st.session_state.sw_chosen = found[0].id
    sweep_id = st.selectbox("Sweep", list(labels), format_func=labels.get, key="sw_chosen")
    links_ui.keep_address(sweep=sweep_id)
    sweep = next(s for s in found if s.id == sweep_id)
    if sweep.is_active:
        live_sweep_ui(sweep.id)
    else:
        sweep_view_ui(sweep, runs_of[sweep.id])
        answer_ui(sweep, runs_of[sweep.id])


@layout.guard
def main() -> None:
    """The page: a new sweep's form, then the chosen sweep and its answer."""
    layout.page_header("Sweep", "Try many settings at once: give the settings to compare a list "
                       "or a range of values, start, and see which ones pay off. The runs train "
                       "in the background, as many side by side as the machine allows.")
    address = links_ui.new_address()  # read before the form's reruns can change it
    with st.expander("New sweep", icon=":material/add_circle:",
                     expanded=not SweepStore(access.store()).list()):
        dataset = dataset_choice_ui()
        data = layout.data_or_status_ui(dataset)
        if data is not None:
            new_sweep_ui(len(data.train_labels), dataset, tuple(data.shape),
                         len(data.test_labels), len(data.classes))
    st.divider()
    sweeps_ui(address)


navigation.run_inside_app(main)

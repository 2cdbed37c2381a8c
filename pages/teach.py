"""Teach page: make a set of your own classes (camera, files or a zip), train a network on it in
about a minute starting from one that already learned to see, then try it with the camera."""

import logging

import numpy as np
import streamlit as st

from cifar_core import CifarError, TrainConfig
from cifar_core.data import own_sets
from cifar_core.data.grids import enlarge
from cifar_core.data.own_sets import MIN_PICTURES, Added, ClassPictures, OwnSet, test_count
from cifar_core.data.registry import DEFAULT_DATASET, dataset_names, dataset_spec
from cifar_core.explain.photos import FILE_ENDINGS, FORMAT_NAMES
from cifar_core.runs import teach
from cifar_core.runs.store import Run
from cifar_core.runs.views import active_runs, format_duration, run_dataset_title, run_progress
from cifar_core.training.config import PRESETS
from cifar_core.training.estimate import (
    RunTimeEstimate,
    TimeEstimate,
    estimate_run_time,
    estimate_training_time,
)
from cifar_core.training.models import model_spec
from cifar_core.training.speed import threads_for_background_runs
from pages.shared import access, layout, navigation

log = logging.getLogger("cifar_dashboard")

NEW_SET = ""  # the set choice that makes a new set
TILE_SCALE = 2  # each 32 x 32 picture drawn this many times larger, as on the Data page
LAST_SHOWN = 6  # the camera: the newest pictures of the class shown under it
SOURCES = {"camera": "Camera", "files": "Picture files", "zip": "A .zip of folders"}


def folder() -> str:
    return access.runs_dir()


def generation(what: str) -> int:
    """The uploaders' and the camera's key suffix: a new one empties the widget after its
    pictures were added, so that they are not added again on the next rerun."""
    return st.session_state.setdefault(f"teach_{what}_generation", 0)


def renew(what: str) -> None:
    st.session_state[f"teach_{what}_generation"] = generation(what) + 1


def changed(change, *args, **kwargs) -> bool:
    """Make a change to a set (an own_sets function); where it is refused, its sentence here
    and False, and the rest of the page is drawn as before."""
    try:
        change(*args, runs_dir=folder(), **kwargs)
    except CifarError as exc:
        st.error(str(exc), icon=":material/error:")
        return False
    return True


def add(what: str, class_name: str | None, adding, *args) -> None:
    """Add pictures (an own_sets function), empty the widget `what` they came from, and keep
    what adding did for the page's next run: how many, each file skipped, or the refusal."""
    try:
        added: Added = adding(*args, runs_dir=folder())
    except CifarError as exc:
        st.session_state.teach_added = ("", [], str(exc))
    else:
        where = f" of {class_name}" if class_name else ""
        st.session_state.teach_added = (
            f"Added {len(added.added)} picture{'s' if len(added.added) != 1 else ''}{where}.",
            list(added.skipped), "")
    renew(what)
    st.rerun()


def added_ui() -> None:
    """What the last adding did: its count and a warning for each file skipped."""
    done = st.session_state.pop("teach_added", None)
    if not done:
        return
    sentence, skipped, refused = done
    if refused:
        st.error(refused, icon=":material/error:")
    else:
        st.success(sentence, icon=":material/check_circle:")
    for reason in skipped:
        st.warning(reason, icon=":material/broken_image:")


def set_choice_ui() -> OwnSet | None:
    """Choose one of your sets or make a new one; the chosen set (None: a new one)."""
    sets = own_sets.list_sets(runs_dir=folder())
    by_name = {s.name: s for s in sets}
    pick = st.session_state.pop("teach_pick", None)  # a set just made
    if pick in by_name:
        st.session_state.teach_set = pick
    elif st.session_state.get("teach_set") not in [*by_name, NEW_SET]:
        st.session_state.teach_set = next(iter(by_name), NEW_SET)
    chosen = st.selectbox(
        "Your set", [*by_name, NEW_SET], key="teach_set",
        format_func=lambda n: f"{by_name[n].title} ({n})" if n else "Make a new set ...")
    if chosen == NEW_SET:
        new_set_ui(by_name)
        return None
    return by_name[chosen]


def new_set_ui(taken: dict) -> None:
    """A title and two or more class names: the new set."""
    st.subheader("A new set")
    title = st.text_input("Its title", key="teach_new_title", placeholder="Things on my desk")
    name = own_sets.name_from_title(title, set(taken) | set(dataset_names(access.data_dir())))
    if title.strip():
        st.caption(f"It is kept and chosen on the other pages as `{name or '-'}`.")
    classes = st.text_input("Two or more class names, separated by commas",
                            key="teach_new_classes", placeholder="mug, pen, phone")
    if not st.button("Make the set", type="primary", icon=":material/add_circle:",
                     key="teach_make"):
        return
    names = [c.strip() for c in classes.split(",") if c.strip()]
    if not name:
        st.error("Give the set a title with at least one letter or digit.",
                 icon=":material/error:")
    elif len(names) < 2:
        st.error("Name at least two classes, separated by commas (e.g. mug, pen).",
                 icon=":material/error:")
    else:
        try:
            own_sets.create_set(name, title.strip(), names, runs_dir=folder())
        except CifarError as exc:
            st.error(str(exc), icon=":material/error:")
            return
        st.session_state.teach_pick = name
        st.rerun()


def set_settings_ui(own: OwnSet) -> None:
    """Rename the set, add a class, or delete the set."""
    with st.expander("Rename the set, add a class or delete the set", icon=":material/edit:"):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        title = c1.text_input("Title", value=own.title, key=f"teach_title_{own.name}")
        if c2.button("Rename", key="teach_rename_set") and title.strip() != own.title and \
                changed(own_sets.rename_set, own.name, title.strip()):
            st.rerun()
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        new_class = c1.text_input("A new class", key=f"teach_new_class_{own.name}")
        if c2.button("Add the class", key="teach_add_class") and new_class.strip() and \
                changed(own_sets.add_class, own.name, new_class):
            st.rerun()
        sure = st.checkbox(f"Yes, delete {own.title} and its {own.picture_count} pictures",
                           key=f"teach_delete_sure_{own.name}")
        if st.button("Delete the set", icon=":material/delete:", disabled=not sure,
                     key="teach_delete_set") and changed(own_sets.delete_set, own.name):
            st.session_state.pop("teach_set", None)
            st.rerun()


def add_pictures_ui(own: OwnSet) -> None:
    """Pictures in: a camera shot at a time, many files at once, or a .zip of class folders."""
    st.subheader("Add pictures")
    source = st.radio("From", list(SOURCES), format_func=SOURCES.get, horizontal=True,
                      key="teach_source", label_visibility="collapsed")
    if source == "zip":
        st.caption("One folder per class: each picture's class is the folder it sits in; "
                   "classes that are not in the set yet are made.")
        upload = st.file_uploader("A .zip of class folders", type=["zip"],
                                  key=f"teach_zip_{generation('zip')}")
        if upload is not None:
            add("zip", None, own_sets.add_zip, own.name, upload)
        return
    if not own.classes:
        st.info("Add a class first (above).", icon=":material/info:")
        return
    names = [c.name for c in own.classes]
    if st.session_state.get("teach_class") not in names:
        st.session_state.teach_class = names[0]
    class_name = st.selectbox("Of the class", names, key="teach_class")
    if source == "files":
        files = st.file_uploader(f"Pictures of {class_name} ({FORMAT_NAMES}; many at once)",
                                 type=list(FILE_ENDINGS), accept_multiple_files=True,
                                 key=f"teach_files_{generation('files')}")
        if files:
            add("files", class_name, own_sets.add_pictures, own.name, class_name, files)
        return
    camera_ui(own, class_name)


def camera_ui(own: OwnSet, class_name: str) -> None:
    """One click per picture: each shot is added at once, with the class's count and its
    newest pictures under it."""
    if not st.toggle("Turn the camera on", key="teach_camera_on"):
        st.caption("Your browser asks whether this page may use the camera once you turn it "
                   "on; the pictures stay on this computer and the dashboard's server.")
        return
    shot = st.camera_input(f"A picture of {class_name}", key=f"teach_camera_{generation('camera')}")
    if shot is not None:  # added, then a fresh camera: the next click is the next picture
        add("camera", class_name, own_sets.add_pictures, own.name, class_name, [shot])
    pictures = next((c.pictures for c in own.classes if c.name == class_name), ())
    st.caption(f"{len(pictures)} picture{'s' if len(pictures) != 1 else ''} of {class_name} "
               "so far" + (", the newest:" if pictures else "."))
    newest = pictures[-LAST_SHOWN:]
    layout.show_tiles([tile(p) for p in newest], [""] * len(newest))


# A picture's tile is read once per file (its pictures never change under the same name).
@st.cache_data(max_entries=4096, show_spinner=False)
def tile(picture: own_sets.Picture) -> np.ndarray:
    return enlarge(own_sets.picture_pixels(picture), TILE_SCALE)


def held_out(count: int) -> str:
    """How many of a class's pictures are held out for testing, in words."""
    if count < MIN_PICTURES:
        return f"{MIN_PICTURES - count} more needed before it can train"
    held = test_count(count)
    return f"{held} held out for testing"


def class_ui(own: OwnSet, pictures: ClassPictures) -> None:
    """One class: its pictures as tiles, and renaming, deleting or removing pictures."""
    count = len(pictures.pictures)
    st.markdown(f"**{pictures.name}** · {count} picture{'s' if count != 1 else ''} "
                f"({held_out(count)})")
    captions = [f"{i}" + (" · test" if p.split == "test" else "")
                for i, p in enumerate(pictures.pictures, 1)]
    layout.show_tiles([tile(p) for p in pictures.pictures], captions)
    with st.expander(f"Change {pictures.name}", icon=":material/edit:"):
        chosen = st.multiselect("Pictures to remove (by number)", range(1, count + 1),
                                key=f"teach_remove_{own.name}_{pictures.name}")
        if st.button("Remove them", key=f"teach_remove_go_{pictures.name}",
                     disabled=not chosen) and \
                all([changed(own_sets.remove_picture, own.name, pictures.pictures[n - 1].id)
                     for n in chosen]):
            st.session_state.pop(f"teach_remove_{own.name}_{pictures.name}", None)
            st.rerun()
        c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
        new = c1.text_input("New name", value=pictures.name,
                            key=f"teach_class_name_{own.name}_{pictures.name}")
        if c2.button("Rename", key=f"teach_rename_{pictures.name}") and \
                new.strip() != pictures.name and \
                changed(own_sets.rename_class, own.name, pictures.name, new):
            st.rerun()
        if c3.button("Delete the class", key=f"teach_delete_{pictures.name}",
                     icon=":material/delete:") and \
                changed(own_sets.delete_class, own.name, pictures.name):
            st.rerun()


def start_network_sentence(start: Run) -> str:
    """Which network a teaching starts from and what that buys."""
    accuracy = (f", {layout.percent(start.accuracy)} right on its test pictures"
                if start.accuracy is not None else "")
    return (f"It starts from run **{start.id}**, the {model_spec(start.settings['model']).title}"
            f" trained on {run_dataset_title(start)}{accuracy}: that network already learned "
            "to see edges, colours and shapes; it gets a new last layer for your classes and "
            "adapts to your pictures. A few dozen pictures per class and well under a minute "
            "are enough.")


def start_network_estimate(images: int) -> TimeEstimate | None:
    """How long training a start network on `images` pictures takes here (None: it cannot be
    told; why goes to the server log)."""
    try:
        config = TrainConfig(**teach.start_network_run_settings())
        threads = threads_for_background_runs(access.runner().max_parallel)
        return estimate_training_time(config, images, access.store().list(),
                                      measure=lambda c: access.measured_speed(c, threads))
    except Exception:
        log.exception("start network estimate failed")
        return None


def teach_estimate(own: OwnSet, start: Run | None) -> RunTimeEstimate | None:
    """How long teaching the set takes here from `start` (None: from scratch), start-up and
    tests included, as the Train page estimates a run (None: it cannot be told; why goes to
    the server log)."""
    try:
        config = TrainConfig(**teach.teach_settings(start))
        threads = threads_for_background_runs(access.runner().max_parallel)
        train, tests = teach.pictures_split(own)
        classes = len(own.classes)
        return estimate_run_time(
            config, train, access.store().list(), tests,
            measure=lambda c: access.measured_speed(c, threads, own.shape, classes),
            measure_test=lambda c: access.measured_test_speed(c, threads, own.shape, classes),
            last_epoch=access.last_epoch_report, dataset=own.name)
    except Exception:
        log.exception("teaching time estimate failed")
        return None


def teach_estimate_caption(own: OwnSet, start: Run | None) -> None:
    estimate = None if own.problem() else teach_estimate(own, start)
    if estimate is not None:
        st.caption(f"Teaching takes {estimate.sentence()}.")


def start_data_pictures() -> int | None:
    """How many training pictures the start network's data set (CIFAR-10) has here; None
    where it is not here."""
    try:
        return len(access.get_data(DEFAULT_DATASET, access.data_dir()).train_labels)
    except CifarError:
        return None


def start_run(own: OwnSet, start: Run | None) -> None:
    """Teach the set: a normal run (origin 'teach'), followed here."""
    run = access.runner().start(TrainConfig(**teach.teach_settings(start)), access.data_dir(),
                                origin="teach", dataset=own.name)
    st.session_state.teach_run = run.id
    st.session_state.teach_handoff = run.id
    st.session_state.watch_run = run.id  # the Train page follows it too
    st.rerun()


def teach_ui(own: OwnSet) -> None:
    """The one button from pictures to a network, and where no start network is here yet,
    the two ways to go on with what each costs."""
    st.subheader("Teach it")
    problem = own.problem()
    if problem:
        st.info(problem, icon=":material/info:")
    preset = PRESETS[teach.TEACH_PRESET].title
    active = active_runs(access.store().list(("running", "queued")))
    busy = any(r.dataset == own.name for r in active)  # not twice at once
    starts = teach.start_networks(access.store(), tuple(own.shape))
    if starts:
        st.caption(start_network_sentence(starts[0]))
        teach_estimate_caption(own, starts[0])
        if st.button(f"Teach it ({preset})", type="primary", icon=":material/school:",
                     disabled=bool(problem) or busy, key="teach_go"):
            start_run(own, starts[0])
        return
    spec = dataset_spec(DEFAULT_DATASET)
    pending = [r for r in active if r.origin == "teach" and r.dataset == DEFAULT_DATASET]
    if pending:
        st.info(f"Run **{pending[0].id}** is training a start network on {spec.title}: once it "
                "has finished, Teach it starts from it.", icon=":material/hourglass_top:")
    else:
        st.info(f"No network here has learned to see yet (one trained on {spec.title} "
                "pictures of this size). Two ways on:", icon=":material/info:")
    left, right = st.columns(2)
    with left:
        images = start_data_pictures()
        estimate = None if pending or images is None else start_network_estimate(images)
        when = estimate.sentence() if estimate else "several minutes of training here"
        st.markdown(f"**Train a start network first** on {spec.title}: {when}. Then each set "
                    "you teach takes about a minute and gets most of its pictures right.")
        if images is None:
            st.caption(f"{spec.title} is not here yet: the Data page downloads it.")
        if st.button("Train a start network", icon=":material/model_training:",
                     disabled=bool(pending) or images is None, key="teach_start_network"):
            run = access.runner().start(TrainConfig(**teach.start_network_run_settings()),
                                        access.data_dir(), origin="teach",
                                        dataset=DEFAULT_DATASET)
            st.session_state.watch_run = run.id
            st.session_state.teach_run = run.id
            st.rerun()
    with right:
        # Figures: bench/RESULTS.md, "Issue 25" (the tutorial network at 0.01).
        st.markdown("**Teach it from scratch**: quicker still, with the tutorial's small "
                    "network starting from random weights. Without what a trained network "
                    "already learned to see, it gets more pictures wrong: in our tests one and "
                    "a half to three and a half times as many.")
        teach_estimate_caption(own, None)
        if st.button(f"Teach it from scratch ({preset})", icon=":material/school:",
                     disabled=bool(problem) or busy, key="teach_scratch"):
            start_run(own, None)


@st.fragment(run_every=1.0)
@layout.guard
def live_run_ui(run_id: str) -> None:
    run = access.store().get(run_id)
    if not run.is_active:
        st.rerun()  # the whole page: the finished run opens Try it
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.markdown(f"**Run {run.id}** · {run.status} · learning {run_dataset_title(run)}")
    if c2.button("Stop", icon=":material/stop_circle:", key=f"teach_stop_{run.id}",
                 disabled=run.stop_requested):
        access.runner().stop(run.id)
        run = access.store().get(run_id)
    latest = access.store().latest_event(run.id, kind="stats")
    progress = run_progress(run, [latest] if latest else [])
    st.progress(progress.fraction, text=progress.text)
    if run.stop_requested:
        st.caption("Stopping after the current batch; the network learned so far is kept.")
    st.page_link(navigation.TRAIN, label="Watch it on the Train page",
                 icon=":material/monitoring:")


def fine_tune_ui(own: OwnSet, taught: Run) -> None:
    """Go on from a run that kept the earlier layers fixed, every layer learning."""
    st.caption("Only its last layer learned. Fine-tuning lets every layer learn from your "
               "pictures too: a few times longer, and often a little more accurate.")
    if st.button("Fine-tune every layer", icon=":material/tune:", key="teach_fine_tune",
                 disabled=bool(own.problem())):
        run = access.runner().start(TrainConfig(**teach.fine_tune_settings(taught)),
                                    access.data_dir(), origin="teach", dataset=own.name)
        st.session_state.teach_run = run.id
        st.session_state.teach_handoff = run.id
        st.session_state.watch_run = run.id
        st.rerun()


def open_try_it(run: Run) -> None:
    """Try it on this network, the camera on."""
    # Try it sets its own widgets from these: its source set from here lost to the choice
    # left by an earlier visit (tests/test_pages_teach.py, the handoff).
    st.session_state.try_pick = run.id
    st.session_state.try_open_camera = True
    st.switch_page(navigation.TRY_IT)


def run_ui(own: OwnSet | None) -> None:
    """The run started here: live while it trains; once finished, Try it opens on it."""
    run_id = st.session_state.get("teach_run")
    if not run_id:
        return
    try:
        run = access.store().get(run_id)
    except CifarError:
        st.session_state.pop("teach_run", None)
        return
    if run.is_active:
        live_run_ui(run.id)
        return
    if st.session_state.get("teach_handoff") == run.id:
        st.session_state.pop("teach_handoff")
        if run.status == "completed" and run.checkpoint:
            open_try_it(run)
    if run.status == "completed":
        st.success(f"Run **{run.id}** learned {run_dataset_title(run)} in "
                   f"{format_duration(run.duration_s)}: it gets "
                   f"{layout.percent(run.accuracy or 0)} of the held-out pictures right.",
                   icon=":material/check_circle:")
        if run.dataset != DEFAULT_DATASET and run.checkpoint and \
                st.button("Try it with the camera", icon=":material/photo_camera:",
                          key="teach_try"):
            open_try_it(run)
        if run.settings.get("freeze") and run.checkpoint and own is not None \
                and run.dataset == own.name:
            fine_tune_ui(own, run)
    else:
        st.warning(f"Run {run.id} {run.status}: {run.message}", icon=":material/stop_circle:")


@layout.guard
def main() -> None:
    layout.page_header("Teach", "Teach a network your own things: name two or more classes, "
                       "show it a few dozen pictures of each (camera, files or a .zip), press "
                       "Teach it, then try it with the camera.")
    own = set_choice_ui()
    run_ui(own)
    if own is None:
        return
    set_settings_ui(own)
    added_ui()
    add_pictures_ui(own)
    st.subheader(f"{own.title}: {own.picture_count} pictures in "
                 f"{len(own.classes)} classes")
    for pictures in own.classes:
        class_ui(own, pictures)
    teach_ui(own)


navigation.run_inside_app(main)

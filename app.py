"""CIFAR-10 dashboard: `streamlit run app.py`. This file picks the page and draws Home."""

import contextlib

import streamlit as st

from cifar_core import scheduler
from cifar_core.data.grids import tiles
from cifar_core.data.registry import dataset_spec
from cifar_core.errors import StoreError
from cifar_core.explain.network_imports import evaluate_untested_imports, network_label
from cifar_core.runs.names import markdown_text
from cifar_core.runs.views import (
    active_runs,
    is_import,
    run_dataset_title,
    run_progress,
    runs_with_network,
    trained_runs,
)
from cifar_core.sweeps.progress import sweep_menu_label, sweep_progress
from cifar_core.sweeps.store import SweepStore
from cifar_core.training.models import Net, count_parameters
from pages.shared import access, gate, layout, navigation, server_guard
from pages.shared.dataset_choice import chosen_dataset


# Home: what this is, the data's state, and the run in progress.
@layout.guard
def home() -> None:
    st.title("Teach a computer to recognise pictures")
    spec = dataset_spec(chosen_dataset(), access.data_dir())
    intro = st.empty()  # filled once the data says how many pictures and classes it has
    data = layout.data_or_status_ui(spec.name)
    classes = data.classes if data is not None else spec.classes
    pictures = (f"{len(data.train_labels) + len(data.test_labels):,} "
                if data is not None else "")
    kinds = (f", each showing one of {len(classes)} classes: {in_words(classes)}"
             if classes else "")
    intro.markdown(
        f"**{spec.title}** is a set of {pictures}small "
        f"{'grey' if spec.channels == 1 else 'colour'} pictures of {spec.shape[1]} × "
        f"{spec.shape[2]} pixels{kinds}. {spec.about} "
        f"The **network** is the small one from PyTorch's official tutorial: two layers that "
        f"look for patterns, then three that decide, "
        f"{count_parameters(Net(max(len(classes), 2), shape=spec.shape)):,} numbers in all, "
        "which training tunes by showing it labelled pictures again and again. "
        "Here you can train it, watch it learn, and see which pictures it gets right and wrong. "
        "The Data page chooses the data set."
    )
    # The demo's first step: your own things, which no CIFAR-10 network knows.
    st.page_link(navigation.TEACH, label="Start here: teach it your own things with the camera "
                 "or your pictures, in about a minute", icon=":material/school:")
    if data is not None:
        # A network imported before the data was there is tested now, once.
        with st.spinner("Testing the networks imported before the data was here ..."):
            tested = evaluate_untested_imports(access.store(), data, access.data_dir())
        for run in tested:
            st.info(f"Tested **{markdown_text(network_label(run))}** on the test images, now "
                    "that they are here.", icon=":material/fact_check:")
        examples = data.examples_per_class()
        st.subheader("One example of each class")
        layout.show_tiles(tiles(examples.images, scale=3), examples.label_names)
        st.caption(f"Data: {data.source} · {len(data.train_labels):,} training and "
                   f"{len(data.test_labels):,} test images.")

    st.subheader("Training")
    active = active_runs(access.store().list(("running", "queued")))
    if active:
        run = active[0]
        st.info(f"Run **{run.id}** is {run.status}.", icon=":material/model_training:")
        st.page_link(navigation.TRAIN, label="Watch it on the Train page",
                     icon=":material/monitoring:")
    else:
        with_network = runs_with_network(access.store().list())
        done = trained_runs(with_network)
        if done:
            reached = (f"reached {done[0].accuracy:.1f} % on the "
                       f"{run_dataset_title(done[0])} test images"
                       if done[0].accuracy is not None else "has no test result")
            st.write(f"No run is training. The latest finished run, **{done[0].id}**, "
                     f"{reached}.")
        else:
            st.write("No run trained here yet." if with_network else "No runs yet.")
        imported = [r for r in with_network if is_import(r)]
        if imported:
            st.write("Imported: "
                     + "; ".join(markdown_text(network_label(r)) for r in imported[:3]) +
                     (f"; and {len(imported) - 3} more" if len(imported) > 3 else "") + ".")
    # Two rows of three: six in a row cut their labels short ("Look at the dat") on a laptop.
    links = [(navigation.DATA, "Look at the data", ":material/image:"),
             (navigation.TRAIN, "Train a network", ":material/model_training:"),
             (navigation.SWEEP, "Explore settings", ":material/travel_explore:"),
             (navigation.EVALUATE, "See what it learned", ":material/fact_check:"),
             (navigation.TRY_IT, "Try your own picture", ":material/photo_camera:"),
             (navigation.RUNS, "Compare runs", ":material/compare_arrows:")]
    for column, (page, label, icon) in zip(st.columns(3) + st.columns(3), links, strict=True):
        column.page_link(page, label=label, icon=icon)


def in_words(classes) -> str:
    """Class names as a sentence lists them: 'a, b or c' (the first ten, then how many more)."""
    names = list(classes[:10]) + ([f"{len(classes) - 10} more"] if len(classes) > 10 else [])
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


# On every page: the run in progress, so a training is never out of sight.
@st.fragment(run_every=2.0)
@layout.guard
def active_run_sidebar_ui() -> None:
    try:
        store = access.store()
        if not store.list(("running", "queued")) and not SweepStore(store).list("running"):
            return
    except StoreError:
        return  # the page itself says what is wrong with the store, once
    # The dashboard's heartbeat, its one call of the scheduler: on every page (before the page
    # itself is drawn) and every two seconds, a job that died (killed, out of memory) is marked
    # failed, the running sweeps make their next runs and the next queued run starts.
    scheduler.tick(store)
    active = active_runs(store.list(("running", "queued")))
    if not active:
        return
    # A sweep's runs come and go: the sweep's own progress says more than its current run.
    for sweep in SweepStore(store).list("running"):
        progress = sweep_progress(sweep, SweepStore(access.store()).runs(sweep.id))
        st.caption(f"**Sweep** {markdown_text(sweep_menu_label(sweep))}")
        st.progress(progress.fraction, text=progress.text)
    run = active[0]
    latest = access.store().latest_event(run.id, kind="stats")
    progress = run_progress(run, [latest] if latest else [])
    st.caption(f"**Training** run {run.id}")
    st.progress(progress.fraction, text=progress.text.split(" · ")[0])
    if len(active) > 1:
        st.caption(f"and {len(active) - 1} more waiting or running")


st.set_page_config(page_title="CIFAR-10 dashboard", page_icon="🖼️",
                   layout="wide")
# .streamlit/config.toml hides the sidebar's menu: until st.navigation first runs, a fresh server
# shows there its own list of the pages/ folder's files ("app, data, evaluate, ...") for as long
# as this file's imports take. This menu, st.navigation's, is shown again.
st.set_option("client.showSidebarNavigation", True)
pages = [
    st.Page(home, title="Home", icon=":material/home:", default=True),
    st.Page(navigation.DATA, title="Data", icon=":material/image:"),
    st.Page(navigation.TRAIN, title="Train", icon=":material/model_training:"),
    st.Page(navigation.SWEEP, title="Sweep", icon=":material/travel_explore:"),
    st.Page(navigation.EVALUATE, title="Evaluate", icon=":material/fact_check:"),
    st.Page(navigation.TRY_IT, title="Try it", icon=":material/photo_camera:"),
    st.Page(navigation.TEACH, title="Teach", icon=":material/school:"),
    st.Page(navigation.RUNS, title="Runs", icon=":material/compare_arrows:"),
]
# With a password set, the server itself refuses a tab without it (pages/shared/server_guard.py).
server_guard.install()
if not gate.is_open():
    # Where a password is set (README, "Showing it to others"): until this session gives it, the
    # password form is all it sees; no page and no sidebar runs, so nothing can start, stop,
    # delete or download. The navigation stays, hidden, so the page asked for opens afterwards.
    st.navigation(pages, position="hidden")
    gate.password_ui()
    st.stop()
page = st.navigation(pages)
# The store's one-time notices, sent from this full run rather than from a fragment; a store
# that cannot open is the page's to explain.
with contextlib.suppress(StoreError):
    access.store()
with st.sidebar:
    active_run_sidebar_ui()
with navigation.inside_app():
    layout.guard(page.run)()

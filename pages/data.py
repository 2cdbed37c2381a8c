"""Data page: a random batch of images with their classes, and how many images each class has."""

import random

import altair as alt
import pandas as pd
import streamlit as st

from cifar_core import ImageData
from cifar_core.data.grids import image_grid, tiles
from cifar_core.data.registry import dataset_names, dataset_spec
from cifar_core.share import links
from pages.shared import access, layout, links_ui, navigation
from pages.shared.dataset_choice import CHOSEN, dataset_choice_ui

SIZES = (4, 64, 4)  # how many pictures a batch shows: from, to, step
MAX_SEED = 2**31 - 1


def batch_controls_ui(classes: tuple[str, ...]) -> tuple[str, int, list[str], int]:
    """The batch's settings: split, size, class filter, seed ('New batch' draws a new seed)."""
    if "data_seed" not in st.session_state:
        st.session_state.data_seed = random.randrange(100_000)
    st.session_state.setdefault("data_size", 16)
    # Kept by key (an address sets them): a class of the data set shown before is let go.
    st.session_state.data_classes = [c for c in st.session_state.get("data_classes", [])
                                     if c in classes]
    c1, c2, c3 = st.columns([1, 2, 3])
    split = c1.radio("Images from", links.SPLITS, horizontal=True, key="data_split",
                     format_func=lambda s: {"train": "training set", "test": "test set"}[s])
    size = c2.slider("How many", min_value=SIZES[0], max_value=SIZES[1], step=SIZES[2],
                     key="data_size")
    chosen = c3.multiselect("Only these classes (empty = all)", list(classes),
                            key="data_classes")
    c4, c5, _ = st.columns([1, 1, 4], vertical_alignment="bottom")
    seed = c4.number_input("Seed (same seed, same batch)", min_value=0, max_value=MAX_SEED,
                           step=1, key="data_seed")
    c5.button("New batch", icon=":material/shuffle:", type="primary", on_click=_new_seed)
    return split, int(size), chosen, int(seed)


def batch_from_address_ui(address: links.Address, classes: tuple[str, ...]) -> None:
    """The batch's settings an address gives (split, classes, how many, seed), or why not."""
    choices = {"data_split": links.checked_option(address, "split", links.SPLITS),
               "data_classes": links.checked_classes(address, classes),
               "data_size": links.checked_number(address, "size", *SIZES),
               "data_seed": links.checked_number(address, "seed", 0, MAX_SEED)}
    links_ui.notices_ui(*choices.values())
    for key, choice in choices.items():
        if choice.value is not None:
            st.session_state[key] = list(choice.value) if key == "data_classes" else choice.value


def _new_seed() -> None:
    st.session_state.data_seed = random.randrange(100_000)


def class_counts_chart(classes: tuple[str, ...], frame: pd.DataFrame) -> alt.Chart:
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("class:N", title=None, sort=list(classes)),
        y=alt.Y("images:Q", title="images"),
        color=alt.Color("split:N", title="set", scale=alt.Scale(scheme="tableau10")),
        xOffset="split:N",
        tooltip=["class", "split", alt.Tooltip("images:Q", format=",")],
    ).properties(height=260)


# The counts never change for a data set's folder: the chart's spec is built (and checked by
# Altair, the slow part) once per server, not on every visit (bench/RESULTS.md, issue 16).
@st.cache_data(max_entries=8, show_spinner=False)
def class_counts_spec(dataset: str, folder: str) -> dict:
    data = access.get_data(dataset, folder)
    return class_counts_chart(data.classes, data.class_counts_table()).to_dict()


# The batch and its settings redraw alone: a click on New batch, a class or the size reruns only
# this, not the page's header, the counts chart or the sidebar (bench/bench_clicks.py).
@st.fragment
def batch_ui(data: ImageData, dataset: str) -> None:
    split, size, chosen, seed = batch_controls_ui(data.classes)
    links_ui.keep_address(dataset=dataset, split=split, classes=chosen, size=size, seed=seed)
    batch = data.random_batch(split, size, seed=seed, classes=chosen or None)
    layout.show_tiles(tiles(batch.images, scale=3), batch.label_names)
    with st.expander("The same pictures as one grid, the classes in reading order below"):
        st.image(image_grid(batch.images, nrow=8), width=min(8, len(batch.labels)) * 34 * 3,
                 output_format="PNG")
        st.caption(" · ".join(batch.label_names))


@layout.guard
def main() -> None:
    layout.page_header("The data", "Random pictures from a data set with the class a person gave "
                       "each one. This is all the network ever sees: the pixels and a label.")
    address = links_ui.new_address()  # a link opened: its data set and batch
    named = links.checked_dataset(address, dataset_names(access.data_dir()))
    links_ui.notices_ui(named)
    if named.value:
        st.session_state[CHOSEN] = named.value
    dataset = dataset_choice_ui()
    spec = dataset_spec(dataset, access.data_dir())
    st.caption(f"**{spec.title}**: {spec.about} Pictures of {spec.describe_shape()} pixels."
               + (f" {spec.source_line}" if spec.source_line else ""))
    data = layout.data_or_status_ui(dataset, notes="always")
    if data is None:
        links_ui.keep_address(dataset=dataset)
        return
    batch_from_address_ui(address, data.classes)
    batch_ui(data, dataset)
    st.subheader("Images per class")
    st.vega_lite_chart(class_counts_spec(dataset, access.data_dir()), width="stretch")


navigation.run_inside_app(main)

"""Try it page: show a network a picture (uploaded, from the camera, or a test image) and see its
answer, where it looked, and what its layers make of the picture; or bring your own network."""

import random
from dataclasses import replace
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from cifar_core import CifarError, ImageData
from cifar_core.data.grids import enlarge
from cifar_core.errors import ImageError
from cifar_core.explain.attribution import (
    ATTRIBUTION_METHODS,
    answer_sentence,
    attribution,
    class_probabilities,
    overlay,
    probabilities_table,
)
from cifar_core.explain.inside import (
    feature_map_grid,
    feature_maps,
    first_layer_filters,
    layer_table,
)
from cifar_core.explain.network_imports import (
    import_network,
    imported_sentence,
    network_label,
    networks_to_try,
)
from cifar_core.explain.photos import (
    FILE_ENDINGS,
    FORMAT_NAMES,
    SIDE,
    Photo,
    network_inputs,
    photo_input,
    read_photo,
)
from cifar_core.runs.naming import display_names
from cifar_core.runs.store import Run
from cifar_core.runs.views import default_network
from cifar_core.share import links
from cifar_core.training.checkpoint import Checkpoint
from cifar_core.training.models import count_parameters
from pages.shared import access, layout, links_ui, navigation
from pages.shared.dataset_choice import dataset_choice_ui

NETWORK_TYPES = ["pth", "pt"]
SOURCES = {"upload": "Upload pictures", "camera": "Take a photo", "test": "A test image"}
SCALE = 6  # the 32 x 32 picture is drawn this many times larger, pixels kept square
GRID_SCALE = 4  # several pictures: each drawn this many times larger
TOP_COLOUR, OTHER_COLOUR = "#3B6EA5", "#A9B8C8"
BAR_HEIGHT = 34  # pixels per class in the probability chart: room for every class's name
TEST_IMAGE = "test image"  # the format a test image is given as a Photo


def upload_limit() -> int:
    """Bytes a file may have: the server's upload limit (.streamlit/config.toml)."""
    return int(st.get_option("server.maxUploadSize")) * 2**20


def test_data(dataset: str) -> ImageData | None:
    """The data set's data, for its test images and for testing imported networks; None if
    it is not here."""
    try:
        return access.get_data(dataset, access.data_dir())
    except CifarError:
        return None


def side(image) -> int:
    """The side in pixels of a picture as the network takes it, (C,H,W)."""
    return int(image.shape[-1])


def network_picker_ui() -> Run | None:
    """Choose a network: a finished or imported run, the most accurate first; the newest
    chosen."""
    every = access.store().list()
    runs = networks_to_try(every)
    # A link opened: its network, or why not.
    named = links.checked_run(links_ui.new_address(), offered={r.id for r in runs},
                              existing={r.id for r in every}, instead="the newest network")
    links_ui.notices_ui(named)
    if not runs:
        st.info("No network to try yet: train one on the Train page, or bring your own below.",
                icon=":material/info:")
        links_ui.keep_address()
        return None
    by_id = {r.id: r for r in runs}
    if named.value:
        st.session_state.try_run = named.value
    pick = st.session_state.pop("try_pick", None)  # a network just imported
    if pick in by_id or st.session_state.get("try_run") not in by_id:
        # The same run Evaluate opens on (summaries.default_network).
        st.session_state.try_run = pick if pick in by_id else default_network(runs).id
    names = display_names(every)  # of every run: each reads as on the Runs page
    run_id = st.selectbox("Network", list(by_id),
                          format_func=lambda i: network_label(by_id[i], names.get(i)),
                          key="try_run", help="Finished runs and imported networks, the most "
                          "accurate on the test images first.")
    links_ui.keep_address(run=run_id)
    return by_id[run_id]


def network_of(run: Run) -> Checkpoint:
    """The run's network (read once per file version)."""
    if not run.checkpoint or not Path(run.checkpoint).is_file():
        raise CifarError(f"Run {run.id} has no saved network (its checkpoint file is gone). "
                         "Pick another network.")
    return access.get_checkpoint(run.checkpoint, Path(run.checkpoint).stat().st_mtime)


@layout.guard
def import_ui(first: bool) -> None:
    """Bring your own network: an uploaded .pth kept as an imported run (tested on the data
    set chosen beside it), or its refusal."""
    with st.expander("Bring your own network (.pth)", expanded=first,
                     icon=":material/upload_file:"):
        st.caption("The file the tutorial saves its network to (`cifar_net.pth`), or a network "
                   "downloaded from the Runs page. Only plain weights are "
                   "read: a file that holds code is refused, and nothing in it runs. It is then "
                   "kept as an imported run, tested on the test images, and can be tried here, "
                   "evaluated and deleted like any run.")
        # The data set it is tested on: the one a refusal asks to choose, right here.
        dataset = dataset_choice_ui()
        data = test_data(dataset)
        generation = st.session_state.setdefault("try_import_generation", 0)
        upload = st.file_uploader("Network file", type=NETWORK_TYPES,
                                  key=f"try_import_{generation}")
        done = st.session_state.pop("try_imported", None)
        if done:
            st.success(done, icon=":material/check_circle:")
        if upload is None:
            return
        refusals = st.session_state.setdefault("try_import_refusals", {})
        # A refusal holds for the file on that data set: another choice tries the file again.
        tried = (upload.file_id, dataset)
        if tried not in refusals:
            try:
                run = import_network(access.store(), upload, data=data,
                                     data_dir=access.data_dir(), max_bytes=upload_limit())
            except CifarError as exc:
                refusals[tried] = str(exc)
            else:
                st.session_state.try_imported = imported_sentence(run)
                st.session_state.try_pick = run.id
                st.session_state.try_import_generation = generation + 1  # an empty uploader
                st.rerun()
        st.error(refusals[tried], icon=":material/block:")


def _new_test_seed() -> None:
    st.session_state.try_seed = random.randrange(1_000_000)


def pick_test_image_ui(data: ImageData | None, title: str) -> list[Photo]:
    """A test image of the network's data set, random or of a chosen class."""
    if data is None:
        st.info(f"There are no {title} test images here yet: the Data page says how to get "
                "them. Upload a picture instead.", icon=":material/folder_off:")
        return []
    if "try_seed" not in st.session_state:
        _new_test_seed()
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    chosen = c1.selectbox("Of the class", ["any class", *data.classes], key="try_class")
    c2.button("Another one", icon=":material/shuffle:", on_click=_new_test_seed,
              key="try_another")
    batch = data.random_batch("test", 1, seed=int(st.session_state.try_seed),
                              classes=None if chosen == "any class" else [chosen])
    index, image = int(batch.indices[0]), batch.images[0]
    return [Photo(name=f"test image {index:,} ({batch.label_names[0]})",
                  network_input=image, original=enlarge(image, SCALE),
                  size=(side(image), side(image)), format=TEST_IMAGE)]


def readable(files: list) -> list[Photo]:
    """The files that are usable pictures; a message for each that is not. Each upload is
    read once (huge pictures took many seconds to decode again on every change of the page:
    bench/RESULTS.md, "Try it with many huge pictures"): its picture or refusal is kept for
    this session while it stays uploaded."""
    kept = st.session_state.get("try_read", {})
    now = {}
    photos = []
    for file in files:
        key = getattr(file, "file_id", None) or id(file)
        if key not in kept:
            try:
                kept[key] = read_photo(file)
            except ImageError as exc:
                kept[key] = str(exc)
        now[key] = kept[key]
        if isinstance(now[key], Photo):
            photos.append(now[key])
        else:
            st.error(now[key], icon=":material/broken_image:")
    st.session_state.try_read = now  # removed uploads are let go
    return photos


def pictures_ui(data: ImageData | None, title: str) -> list[Photo]:
    """The pictures to show the network: uploaded files, a camera photo or a test image of
    its data set (`title`)."""
    st.subheader("The picture")
    if st.session_state.pop("try_open_camera", False):  # the Teach page's network, just taught
        st.session_state.try_source, st.session_state.try_camera_on = "camera", True
    # A default only where none is chosen (a value set here and a default besides: a warning).
    st.session_state.setdefault("try_source", "test" if data is not None else "upload")
    source = st.radio("Where from", list(SOURCES), format_func=SOURCES.get, horizontal=True,
                      key="try_source", label_visibility="collapsed")
    if source == "test":
        return pick_test_image_ui(data, title)
    if source == "camera":
        # Off until asked for: the browser asks for the camera when the widget appears.
        if not st.toggle("Turn the camera on", key="try_camera_on"):
            st.caption("Your browser asks whether this page may use the camera once you turn "
                       "it on; the photo stays on this computer and the dashboard's server.")
            return []
        shot = st.camera_input("Take a photo", key="try_camera")
        return readable([shot]) if shot is not None else []
    # What the label names is what the uploader takes (its drop zone lists the endings).
    files = st.file_uploader(
        f"Pictures ({FORMAT_NAMES}; several at once if you like)", type=list(FILE_ENDINGS),
        accept_multiple_files=True, key="try_files",
        help="An iPhone's HEIC photo, or an AVIF or TIFF picture: save it as JPEG or PNG "
             "first (a photo app can export it).")
    return readable(files or [])


def several_ui(photos: list[Photo], probabilities, classes: tuple[str, ...]) -> int:
    """Several pictures: each with its top answer, a CSV of every probability; returns the
    position of the one to look at closer."""
    st.subheader("The network's answers")
    table = probabilities_table(probabilities, classes, [p.name for p in photos])
    captions = [f"{name}: {answer} ({row.max():.0%})" for name, answer, row in
                zip(table["picture"], table["answer"], table[list(classes)].to_numpy(),
                    strict=True)]
    # Tiles with room between them (st.image's list drew them edge to edge).
    layout.show_tiles([enlarge(p.network_input, GRID_SCALE) for p in photos], captions)
    st.download_button("All probabilities (CSV)", table.to_csv(index=False),
                       file_name="probabilities.csv", mime="text/csv", icon=":material/table:",
                       key="try_csv")
    return st.selectbox("Look closer at", range(len(photos)), format_func=lambda i: photos[i].name,
                        key="try_closer")


def answer_ui(photo: Photo, probabilities, classes: tuple[str, ...]) -> None:
    """The picture beside what the network sees, and every class's probability."""
    seen = enlarge(photo.network_input, SCALE)
    pixels = side(photo.network_input)
    if photo.format == TEST_IMAGE:  # its original is what the network sees
        picture, answer = st.columns([1, 3], gap="medium")
        picture.image(seen, width=pixels * SCALE, output_format="PNG",
                      caption=f"{photo.name}: what the network sees, {pixels} × {pixels} pixels")
    else:
        original, picture, answer = st.columns([1, 1, 2], gap="medium")
        original.image(photo.original, width=SIDE * SCALE, output_format="JPEG",
                       caption=f"{photo.name}, {photo.size[0]:,} × {photo.size[1]:,} pixels")
        picture.image(seen, width=pixels * SCALE, output_format="PNG",
                      caption=f"What the network sees: {pixels} × {pixels} pixels")
    with answer:
        st.markdown(f"**{answer_sentence(probabilities, classes)}**")
        frame = pd.DataFrame({"class": list(classes),
                              "percent": [float(p) * 100 for p in probabilities]})
        top = frame["class"][frame["percent"].idxmax()]
        chart = alt.Chart(frame).mark_bar().encode(
            x=alt.X("percent:Q", title="how sure (%)", scale=alt.Scale(domain=[0, 100])),
            y=alt.Y("class:N", sort="-x", title=None),
            color=alt.condition(alt.datum["class"] == top, alt.value(TOP_COLOUR),
                                alt.value(OTHER_COLOUR)),
            tooltip=["class:N", alt.Tooltip("percent:Q", format=".1f", title="%")])
        st.altair_chart(chart.properties(height=BAR_HEIGHT * len(classes)), width="stretch",
                        key="try_chart")


# A change of method redraws only this part of the page.
@st.fragment
@layout.guard
def where_it_looked_ui(checkpoint: Checkpoint, photo: Photo, answer: str) -> None:
    st.subheader("Where it looked")
    picture, looked, choice = st.columns([1, 1, 2], gap="medium")
    with choice:
        method = st.radio("Map", list(ATTRIBUTION_METHODS), key="try_method",
                          format_func=lambda m: ATTRIBUTION_METHODS[m].title)
        st.caption(ATTRIBUTION_METHODS[method].description)
    heat = attribution(checkpoint.model, photo.network_input, method=method)
    width = side(photo.network_input) * SCALE
    picture.image(enlarge(photo.network_input, SCALE), width=width, output_format="PNG",
                  caption="What the network sees")
    looked.image(overlay(photo.network_input, heat, SCALE), width=width,
                 output_format="PNG", caption=f"Where it looked to answer {answer}: bright "
                 "is most")


@layout.guard
def inside_ui(checkpoint: Checkpoint, photo: Photo) -> None:
    with st.expander("Inside the network", icon=":material/account_tree:"):
        st.markdown("**The first layer's filters**")
        st.caption("The small patterns the first layer looks for, each drawn as a colour "
                   "picture: every other layer builds on what these find.")
        st.image(first_layer_filters(checkpoint.model, input_shape=tuple(checkpoint.shape)),
                 output_format="PNG")
        st.markdown("**What each convolution makes of this picture**")
        st.caption("Each grey square is one feature map: bright where the layer found its "
                   "pattern in the picture.")
        for name, maps in feature_maps(checkpoint.model, photo.network_input).items():
            st.image(feature_map_grid(maps), output_format="PNG",
                     caption=f"{name}: {maps.shape[0]} maps of {maps.shape[1]} × "
                             f"{maps.shape[2]} pixels")
        st.markdown("**The layers**")
        rows = layer_table(checkpoint.model, tuple(checkpoint.shape))
        st.dataframe(pd.DataFrame({
            "layer": [r.name for r in rows], "kind": [r.kind for r in rows],
            "output": [" × ".join(map(str, r.output_shape)) or "-" for r in rows],
            "parameters": [r.parameters for r in rows]}), hide_index=True, width="content",
            column_config={"layer": "Layer", "kind": "Kind", "output": "Output shape",
                           "parameters": st.column_config.NumberColumn("Parameters",
                                                                       format="localized")})
        st.caption(f"{count_parameters(checkpoint.model):,} parameters in all.")


@layout.guard
def main() -> None:
    layout.page_header("Try it", "Show the network a picture, your own or one of the test "
                       "images: see how sure it is of each class, where in the picture it "
                       "looked, and what its layers make of it.")
    run = network_picker_ui()
    import_ui(first=run is None)
    if run is None:
        return
    checkpoint = network_of(run)
    st.caption(f"Trained on **{checkpoint.title}**: "
               f"{len(checkpoint.classes)} classes, {', '.join(checkpoint.classes)}.")
    # Each picture as this network sees it: its own picture size and colours (grey or colour).
    photos = [replace(photo, network_input=photo_input(photo, tuple(checkpoint.shape)))
              for photo in pictures_ui(test_data(run.dataset), checkpoint.title)]
    if not photos:
        return
    probabilities = class_probabilities(checkpoint.model, network_inputs(photos)).numpy()
    chosen = 0
    if len(photos) > 1:
        chosen = several_ui(photos, probabilities, checkpoint.classes)
    photo, answer = photos[chosen], probabilities[chosen]
    if len(photos) > 1:
        st.subheader(photo.name)
    answer_ui(photo, answer, checkpoint.classes)
    where_it_looked_ui(checkpoint, photo, checkpoint.classes[int(answer.argmax())])
    inside_ui(checkpoint, photo)


navigation.run_inside_app(main)

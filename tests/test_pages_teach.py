"""The Teach page through streamlit.testing.v1.AppTest: making a set and its classes, adding
pictures (files, a zip, the camera) and the warnings for files skipped, the tiles and removal,
the start-network choices, starting a run, and the way from a finished run to Try it."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from conftest import app_at, end_jobs_of, finish_run, no_traceback, shown_tiles, texts
from PIL import Image

from cifar_core.data import own_sets
from cifar_core.runs.store import RunStore

PAGE = "pages/teach.py"
TRY_IT = "pages/try_it.py"
COLOURS = {"mug": (220, 30, 30), "pen": (30, 200, 40), "phone": (30, 40, 220)}


@pytest.fixture(autouse=True)
def forget_watched_runs_folders():
    """The runs folders a test watched are forgotten after it (the registry is per process)."""
    before = set(own_sets._watched)
    yield
    own_sets._watched.intersection_update(before)
    own_sets.register_sets()


def png(colour, seed: int = 0, size: int = 40, kind: str = "PNG") -> bytes:
    """A small picture of one colour, a little noise in it (each one different)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (size, size, 3)), 0, 255)
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, kind)
    return out.getvalue()


def made_set(runs_dir, per_class: int = 4, name: str = "desk",
             classes=("mug", "pen")) -> own_sets.OwnSet:
    """A set made through the library, as the CLI or another tab would."""
    own_sets.create_set(name, "My desk", classes, runs_dir=runs_dir)
    for class_name in classes:
        own_sets.add_pictures(name, class_name,
                              [png(COLOURS[class_name], i) for i in range(per_class)],
                              runs_dir=runs_dir)
    return own_sets.get_set(name, runs_dir=runs_dir)


def teach_page():
    at = app_at(PAGE)
    no_traceback(at)
    return at


def uploader(at, label: str):
    return next(u for u in at.get("file_uploader") if u.label.startswith(label))


def button(at, key: str):
    return next(b for b in at.button if b.key == key)


def test_home_links_to_teach_and_the_menu_has_it_after_try_it(data_dir, runs_dir):
    at = app_at()
    links = [link.proto.page for link in at.get("page_link")]
    assert links and links[0] == "teach", links  # the demo's first step
    at.switch_page(PAGE).run()
    no_traceback(at)
    assert at.title[0].value == "Teach"


def test_a_new_set_shows_its_name_and_is_made_with_its_classes(data_dir, runs_dir):
    at = teach_page()
    at.text_input(key="teach_new_title").set_value("My Desk, Things!").run()
    assert "`my-desk-things`" in texts(at)
    at.text_input(key="teach_new_classes").set_value("mug, pen , phone").run()
    button(at, "teach_make").click().run()
    no_traceback(at)
    made = own_sets.get_set("my-desk-things", runs_dir=runs_dir)
    assert made.title == "My Desk, Things!"
    assert [c.name for c in made.classes] == ["mug", "pen", "phone"]
    assert at.selectbox(key="teach_set").value == "my-desk-things"
    assert "3 classes" in texts(at)


def test_a_set_needs_two_classes_said_in_words(data_dir, runs_dir):
    at = teach_page()
    at.text_input(key="teach_new_title").set_value("Toys").run()
    at.text_input(key="teach_new_classes").set_value("duck").run()
    button(at, "teach_make").click().run()
    no_traceback(at)
    assert any("at least two classes" in e.value for e in at.error)
    assert own_sets.list_sets(runs_dir=runs_dir) == []


def test_uploaded_pictures_are_added_once_and_skipped_files_are_warned_of(data_dir, runs_dir):
    made_set(runs_dir, per_class=0)
    at = teach_page()
    at.radio(key="teach_source").set_value("files").run()
    at.selectbox(key="teach_class").set_value("pen").run()
    files = [(f"pen{i}.png", png(COLOURS["pen"], i), "image/png") for i in range(3)]
    files.append(("notes.png", b"not a picture at all", "image/png"))
    uploader(at, "Pictures of pen").set_value(files).run()
    no_traceback(at)
    pens = own_sets.get_set("desk", runs_dir=runs_dir).classes[1]
    assert pens.name == "pen" and len(pens.pictures) == 3
    assert any("Added 3 pictures of pen" in s.value for s in at.success)
    warnings = [w.value for w in at.warning]
    assert any("notes.png" in w for w in warnings), warnings
    # The uploader is a new, empty one: another rerun adds nothing again.
    assert not uploader(at, "Pictures of pen").value
    at.run()
    assert len(own_sets.get_set("desk", runs_dir=runs_dir).classes[1].pictures) == 3


def test_a_zip_of_class_folders_fills_the_classes(data_dir, runs_dir):
    made_set(runs_dir, per_class=0)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for class_name in ("mug", "phone"):
            for i in range(3):
                zipped.writestr(f"pictures/{class_name}/{i}.png", png(COLOURS[class_name], i))
        zipped.writestr("readme.txt", "hello")
    at = teach_page()
    at.radio(key="teach_source").set_value("zip").run()
    uploader(at, "A .zip").set_value(("desk.zip", archive.getvalue(), "application/zip")).run()
    no_traceback(at)
    held = {c.name: len(c.pictures) for c in own_sets.get_set("desk", runs_dir=runs_dir).classes}
    assert held == {"mug": 3, "pen": 0, "phone": 3}
    assert any("readme.txt" in w.value for w in at.warning), [w.value for w in at.warning]


def test_each_camera_shot_is_added_at_once_with_the_running_count(data_dir, runs_dir):
    made_set(runs_dir, per_class=0)
    at = teach_page()
    at.radio(key="teach_source").set_value("camera").run()
    at.toggle(key="teach_camera_on").set_value(True).run()
    for shot in range(2):
        at.camera_input[0].set_value((f"shot{shot}.jpg", png(COLOURS["mug"], shot, 64, "JPEG"),
                                      "image/jpeg")).run()
        no_traceback(at)
        assert at.camera_input[0].value is None  # a fresh camera for the next click
    assert len(own_sets.get_set("desk", runs_dir=runs_dir).classes[0].pictures) == 2
    assert "2 pictures of mug so far" in texts(at)


def test_every_class_shows_its_tiles_and_a_picture_can_be_removed(data_dir, runs_dir):
    made = made_set(runs_dir, per_class=5)
    at = teach_page()
    body = texts(at)
    assert "mug** · 5 pictures (1 held out for testing)" in body, body
    tiles = [shown_tiles(at, i) for i in range(len(at.get("html")))]
    assert [len(t) for t in tiles] == [5, 5]
    first = made.classes[0].pictures[0].id
    at.multiselect(key="teach_remove_desk_mug").set_value([1]).run()
    button(at, "teach_remove_go_mug").click().run()
    no_traceback(at)
    mugs = own_sets.get_set("desk", runs_dir=runs_dir).classes[0].pictures
    assert len(mugs) == 4 and first not in [p.id for p in mugs]
    assert len(shown_tiles(at, 0)) == 4


def test_a_class_renamed_and_deleted_and_the_set_deleted(data_dir, runs_dir):
    made_set(runs_dir, per_class=3, classes=("mug", "pen", "phone"))
    at = teach_page()
    at.text_input(key="teach_class_name_desk_pen").set_value("pencil").run()
    button(at, "teach_rename_pen").click().run()
    no_traceback(at)
    names = [c.name for c in own_sets.get_set("desk", runs_dir=runs_dir).classes]
    assert names == ["mug", "pencil", "phone"]
    button(at, "teach_delete_phone").click().run()
    no_traceback(at)
    assert [c.name for c in own_sets.get_set("desk", runs_dir=runs_dir).classes] == \
        ["mug", "pencil"]
    at.checkbox(key="teach_delete_sure_desk").check().run()
    button(at, "teach_delete_set").click().run()
    no_traceback(at)
    assert own_sets.list_sets(runs_dir=runs_dir) == []
    assert at.selectbox(key="teach_set").value == ""  # back to making a new set


def test_without_a_start_network_it_offers_one_first_or_from_scratch(data_dir, runs_dir):
    made_set(runs_dir, per_class=3)
    at = teach_page()
    keys = {b.key for b in at.button}
    assert {"teach_start_network", "teach_scratch"} <= keys and "teach_go" not in keys
    body = texts(at)
    assert "of training here" in body  # what the start network costs, in time
    assert "from scratch" in body
    assert "Teaching takes about" in body  # and what teaching from scratch costs


def test_a_finished_cifar_run_is_the_start_network_and_teach_it_starts_a_run(data_dir,
                                                                            runs_dir):
    start = finish_run(runs_dir, data_dir)
    made_set(runs_dir, per_class=3)
    at = teach_page()
    assert "teach_start_network" not in {b.key for b in at.button}
    assert f"run **{start}**" in texts(at)
    store = RunStore(runs_dir)
    try:
        button(at, "teach_go").click().run()
        no_traceback(at)
        runs = [r for r in store.list() if r.origin == "teach"]
        assert len(runs) == 1 and runs[0].dataset == "desk"
        assert runs[0].settings["start_from"] == start and not runs[0].settings["freeze"]
        assert at.session_state["teach_run"] == runs[0].id
        if store.get(runs[0].id).is_active:  # not twice at once
            assert button(at, "teach_go").disabled
        assert any(link.proto.page == "train" for link in at.get("page_link"))
        stop = f"teach_stop_{runs[0].id}"
        if any(b.key == stop for b in at.button) and store.get(runs[0].id).is_active:
            button(at, stop).click().run()
            no_traceback(at)
            assert store.get(runs[0].id).stop_requested or not store.get(runs[0].id).is_active
    finally:
        for run in store.list(("running", "queued")):
            store.request_stop(run.id)
        end_jobs_of(store)


def test_teach_it_says_how_long_teaching_takes_here(data_dir, runs_dir):
    # Start-up, training on the set's pictures and its tests, as the Train page estimates a
    # run (issue 26): before the button, for the start network and for from scratch alike.
    finish_run(runs_dir, data_dir)
    made_set(runs_dir, per_class=6)
    at = teach_page()
    captions = [c.value for c in at.caption if c.value.startswith("Teaching takes about")]
    assert len(captions) == 1 and "of training" in captions[0], texts(at)
    assert "here" in captions[0]


def test_a_set_too_small_to_train_says_why_and_cannot_start(data_dir, runs_dir):
    made_set(runs_dir, per_class=1)
    at = teach_page()
    assert button(at, "teach_scratch").disabled
    assert any("mug" in i.value for i in at.info), [i.value for i in at.info]


@pytest.fixture
def taught(data_dir, runs_dir) -> str:
    """A teach run of the set 'desk' trained for real, in this process."""
    from cifar_core.runs import teach
    from cifar_core.runs.pipeline import execute_run
    from cifar_core.training.config import TrainConfig

    made_set(runs_dir, per_class=5, classes=("mug", "pen", "phone"))
    store = RunStore(runs_dir)
    config = TrainConfig(**{**teach.teach_settings(None), "epochs": 1})
    run = store.create(config.to_dict(), str(data_dir), origin="teach", dataset="desk",
                       status="running")
    return execute_run(store, run.id).id


def test_a_finished_teaching_opens_try_it_on_it_with_the_camera_on(taught):
    at = teach_page()
    at.session_state["teach_run"] = taught
    at.session_state["teach_handoff"] = taught
    at.run()
    no_traceback(at)
    assert at.session_state["try_run"] == taught
    assert at.toggle(key="try_camera_on").value
    assert at.camera_input, "the camera is on"
    assert "3 classes, mug, pen, phone" in texts(at)
    # A picture shown to it: answered with one of the set's classes.
    at.switch_page(TRY_IT)  # AppTest runs the page it was told last (Teach) otherwise
    at.radio(key="try_source").set_value("upload").run()
    uploader(at, "Pictures").set_value(("a.png", png(COLOURS["phone"], 9), "image/png")).run()
    no_traceback(at)
    answer = next(m.value for m in at.markdown if "The network" in m.value)
    assert any(f" {name}" in answer for name in COLOURS), answer


def test_try_it_takes_a_network_and_the_camera_handed_over(data_dir, runs_dir):
    first = finish_run(runs_dir, data_dir)
    finish_run(runs_dir, data_dir, seed=1)
    at = app_at()
    at.switch_page(TRY_IT).run()  # a visit before: its own choice of source is kept
    assert at.radio(key="try_source").value == "test"
    at.switch_page(PAGE).run()
    at.session_state["try_pick"] = first
    at.session_state["try_open_camera"] = True
    at.switch_page(TRY_IT).run()
    no_traceback(at)
    assert at.selectbox(key="try_run").value == first
    assert at.radio(key="try_source").value == "camera"
    assert at.toggle(key="try_camera_on").value
    assert at.camera_input and not at.warning, [w.value for w in at.warning]
    # Once: afterwards the page is as the person leaves it.
    at.radio(key="try_source").set_value("test").run()
    assert not at.camera_input


def test_a_change_refused_is_said_beside_the_set_which_stays_on_the_page(data_dir, runs_dir):
    made_set(runs_dir, per_class=3)
    at = teach_page()
    at.text_input(key="teach_class_name_desk_mug").set_value("pen").run()
    button(at, "teach_rename_mug").click().run()
    no_traceback(at)
    assert len(at.error) == 1 and "pen" in at.error[0].value, [e.value for e in at.error]
    # The rest of the page is still drawn: the next class's tiles and the Teach it section.
    assert len(at.get("html")) == 2 and "Teach it" in [h.value for h in at.subheader]
    assert [c.name for c in own_sets.get_set("desk", runs_dir=runs_dir).classes] == ["mug", "pen"]


def test_the_set_renamed_keeps_its_name(data_dir, runs_dir):
    made_set(runs_dir, per_class=0)
    at = teach_page()
    at.text_input(key="teach_title_desk").set_value("My whole desk").run()
    button(at, "teach_rename_set").click().run()
    no_traceback(at)
    assert own_sets.get_set("desk", runs_dir=runs_dir).title == "My whole desk"
    assert "My whole desk (desk)" in at.selectbox(key="teach_set").format_func("desk")


def test_a_zip_refused_is_said_once_and_the_uploader_emptied(data_dir, runs_dir):
    made_set(runs_dir, per_class=3)
    at = teach_page()
    at.radio(key="teach_source").set_value("zip").run()
    uploader(at, "A .zip").set_value(("desk.zip", b"these bytes are no zip", "application/zip")
                                     ).run()
    no_traceback(at)
    assert len(at.error) == 1 and "desk.zip" in at.error[0].value, [e.value for e in at.error]
    assert "Teach it" in [h.value for h in at.subheader]
    assert not uploader(at, "A .zip").value
    at.run()
    assert not at.error  # said once, not again on every rerun


def test_a_start_network_trained_first_is_a_cifar_run_said_while_it_trains(data_dir, runs_dir):
    from cifar_core.runs import teach

    made_set(runs_dir, per_class=3)
    at = teach_page()
    store = RunStore(runs_dir)
    try:
        button(at, "teach_start_network").click().run()
        no_traceback(at)
        runs = store.list()
        assert len(runs) == 1 and runs[0].origin == "teach" and runs[0].dataset == "cifar10"
        expected = teach.start_network_run_settings()
        assert {k: runs[0].settings[k] for k in ("model", "epochs", "lr")} == \
            {k: expected[k] for k in ("model", "epochs", "lr")}
        if store.get(runs[0].id).is_active:
            assert f"Run **{runs[0].id}** is training a start network" in texts(at)
            assert button(at, "teach_start_network").disabled
    finally:
        for run in store.list(("running", "queued")):
            store.request_stop(run.id)
        end_jobs_of(store)


def test_without_cifar_here_a_start_network_waits_for_the_data_said_in_words(runs_dir, caplog):
    made_set(runs_dir, per_class=3)
    at = teach_page()
    assert button(at, "teach_start_network").disabled
    assert "Data page" in texts(at)
    assert not button(at, "teach_scratch").disabled  # from scratch needs no CIFAR-10
    assert "Traceback" not in caplog.text


def test_a_title_in_any_letters_still_gives_the_set_a_name(data_dir, runs_dir):
    made_set(runs_dir, per_class=0, name="set")
    at = teach_page()
    at.selectbox(key="teach_set").set_value("").run()
    at.text_input(key="teach_new_title").set_value("Café crème").run()
    assert "`cafe-creme`" in texts(at)
    at.text_input(key="teach_new_title").set_value("Кошки").run()
    at.text_input(key="teach_new_classes").set_value("белые, чёрные").run()
    button(at, "teach_make").click().run()
    no_traceback(at)
    made = own_sets.get_set("set-2", runs_dir=runs_dir)  # 'set' is taken
    assert made.title == "Кошки" and [c.name for c in made.classes] == ["белые", "чёрные"]


def test_the_delete_tick_of_one_set_does_not_arm_delete_for_another(data_dir, runs_dir):
    made_set(runs_dir, per_class=0)
    made_set(runs_dir, per_class=0, name="toys")
    at = teach_page()
    at.selectbox(key="teach_set").set_value("desk").run()
    at.checkbox(key="teach_delete_sure_desk").check().run()
    assert not button(at, "teach_delete_set").disabled
    at.selectbox(key="teach_set").set_value("toys").run()
    assert button(at, "teach_delete_set").disabled


def test_a_set_taught_with_its_earlier_layers_fixed_can_be_fine_tuned(data_dir, runs_dir):
    from cifar_core.runs import teach
    from cifar_core.runs.pipeline import execute_run
    from cifar_core.training.config import TrainConfig

    start = RunStore(runs_dir).get(finish_run(runs_dir, data_dir))
    made_set(runs_dir, per_class=4)
    store = RunStore(runs_dir)
    config = TrainConfig(**{**teach.teach_settings(start, freeze=True), "epochs": 1,
                            "seed": 0})
    taught = execute_run(store, store.create(config.to_dict(), str(data_dir), origin="teach",
                                             dataset="desk", status="running").id)
    at = teach_page()
    at.session_state["teach_run"] = taught.id
    at.run()
    try:
        button(at, "teach_fine_tune").click().run()
        no_traceback(at)
        (run,) = [r for r in store.list() if r.id not in (start.id, taught.id)]
        assert run.settings["start_from"] == taught.id and run.settings["freeze"] is False
        assert run.dataset == "desk" and at.session_state["teach_run"] == run.id
    finally:
        for run in store.list(("running", "queued")):
            store.request_stop(run.id)
        end_jobs_of(store)
    # A set taught from scratch (nothing kept fixed) is not offered it.
    scratch = TrainConfig(**{**teach.teach_settings(None), "epochs": 1, "seed": 0})
    plain = execute_run(store, store.create(scratch.to_dict(), str(data_dir), origin="teach",
                                            dataset="desk", status="running").id)
    at.session_state["teach_run"] = plain.id
    at.run()
    assert "teach_fine_tune" not in {b.key for b in at.button}

"""The sets made on the Teach page, kept in the runs folder: data sets like any other."""

from __future__ import annotations

import json

import pytest
from conftest import jpeg
from PIL import Image

from cifar_core.data import own_sets
from cifar_core.data.load import load_data
from cifar_core.data.own_sets import (
    SET_FILE,
    add_class,
    add_pictures,
    create_from_folder,
    create_set,
    delete_class,
    delete_set,
    get_set,
    list_sets,
    remove_picture,
    rename_class,
    rename_set,
    sets_folder,
    test_count,
    watch_runs_folder,
)
from cifar_core.data.registry import dataset_names, dataset_spec
from cifar_core.errors import DataError
from tests.conftest import write_image_folders


@pytest.fixture(autouse=True)
def forget_watched_runs_folders():
    """The runs folders a test watched are forgotten after it (the registry is per process)."""
    before = set(own_sets._watched)
    yield
    own_sets._watched.intersection_update(before)
    own_sets.register_sets()


def test_a_set_kept_in_a_watched_runs_folder_is_a_data_set_by_its_name(tmp_path):
    runs = tmp_path / "runs"
    folder = write_image_folders(sets_folder(runs) / "desk", classes=("mug", "pen"))
    (folder / SET_FILE).write_text(json.dumps({"version": 1, "title": "My desk",
                                               "shape": [3, 32, 32]}))
    data_dir = tmp_path / "data"
    assert "desk" not in dataset_names(data_dir)  # its runs folder is not watched yet
    watch_runs_folder(runs)
    assert "desk" in dataset_names(data_dir)
    assert dataset_spec("desk", data_dir).title == "My desk"
    data = load_data("desk", data_dir, download=False)
    assert data.classes == ("mug", "pen") and tuple(data.shape) == (3, 32, 32)
    assert len(data.train_labels) == 8 and len(data.test_labels) == 4
    # Deleted: gone from every list.
    import shutil

    shutil.rmtree(folder)
    assert "desk" not in dataset_names(data_dir)


def test_the_default_runs_folder_is_always_watched(tmp_path, runs_dir):
    folder = write_image_folders(sets_folder() / "toys", classes=("car", "duck"))
    (folder / SET_FILE).write_text(json.dumps({"version": 1, "title": "Toys",
                                               "shape": [3, 32, 32]}))
    assert "toys" in dataset_names(tmp_path / "data")


# --- The API the Teach page and `datasets create/add/show/delete` use -----------------------------


def photos(n: int, seed: int = 0) -> list[bytes]:
    return [jpeg((64, 48), seed=seed + i) for i in range(n)]


def held_out(own, class_name: str) -> tuple[int, int]:
    [c] = [c for c in own.classes if c.name == class_name]
    return c.train, c.test


def files_in(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_test_count_holds_out_one_in_five_and_at_least_one_once_a_class_can_train():
    assert [test_count(n) for n in (0, 1, 2)] == [0, 0, 0]
    assert [test_count(n) for n in (3, 7, 8, 10, 12, 13, 30)] == [1, 1, 2, 2, 2, 3, 6]


def test_a_set_s_life_cycle_create_add_remove_rename_delete(tmp_path):
    runs = tmp_path / "runs"
    own = create_set("desk", "My desk", ["mug", "pen"], runs_dir=runs)
    assert [c.name for c in own.classes] == ["mug", "pen"] and own.picture_count == 0
    assert own.folder == sets_folder(runs) / "desk" and own.title == "My desk"
    assert "desk" in dataset_names(tmp_path / "data")
    assert "Add 3 more pictures of mug" in own.problem()

    added = add_pictures("desk", "mug", photos(5), runs_dir=runs)
    assert len(added.added) == 5 and added.skipped == ()
    assert held_out(added.set, "mug") == (4, 1)
    # Kept as what the network sees: 32 x 32 colour PNGs.
    with Image.open(added.added[0].path) as picture:
        assert picture.format == "PNG" and picture.size == (32, 32) and picture.mode == "RGB"
    # Ids sort as the pictures were added, and are unique.
    ids = [p.id for p in added.set.classes[0].pictures]
    assert ids == sorted(ids) and len(set(ids)) == 5
    add_pictures("desk", "pen", photos(3, seed=10), runs_dir=runs)
    assert get_set("desk", runs_dir=runs).problem() is None

    # Removing pictures keeps the split: 5 -> 2 pictures holds none out.
    for picture in added.added[:3]:
        own = remove_picture("desk", picture.id, runs_dir=runs)
    assert held_out(own, "mug") == (2, 0)
    assert "Add 1 more picture of mug" in own.problem()
    add_pictures("desk", "mug", photos(8, seed=20), runs_dir=runs)
    assert held_out(get_set("desk", runs_dir=runs), "mug") == (8, 2)

    own = rename_set("desk", "Things on my desk", runs_dir=runs)
    assert own.name == "desk" and own.title == "Things on my desk"
    assert dataset_spec("desk", tmp_path / "data").title == "Things on my desk"
    own = rename_class("desk", "pen", "pencil", runs_dir=runs)
    assert [c.name for c in own.classes] == ["mug", "pencil"]
    assert held_out(own, "pencil") == (2, 1)
    own = add_class("desk", "stapler", runs_dir=runs)
    assert [c.name for c in own.classes] == ["mug", "pencil", "stapler"]
    assert "stapler" in own.problem()
    own = delete_class("desk", "stapler", runs_dir=runs)
    assert [c.name for c in own.classes] == ["mug", "pencil"]
    assert [s.name for s in list_sets(runs_dir=runs)] == ["desk"]
    # Nothing left behind: no staging folders.
    assert not [p for p in own.folder.iterdir() if p.name.startswith(".staging")]

    delete_set("desk", runs_dir=runs)
    assert not (sets_folder(runs) / "desk").exists()
    assert "desk" not in dataset_names(tmp_path / "data")
    with pytest.raises(DataError, match="no set of yours named 'desk'"):
        get_set("desk", runs_dir=runs)


def test_the_newest_pictures_are_held_out_and_move_back_when_fewer_are_needed(tmp_path):
    runs = tmp_path / "runs"
    create_set("toys", classes=["car"], runs_dir=runs)
    first = add_pictures("toys", "car", photos(10), runs_dir=runs).added
    own = get_set("toys", runs_dir=runs)
    test_ids = {p.id for p in own.classes[0].pictures if p.split == "test"}
    assert test_ids == {first[-1].id, first[-2].id}
    own = remove_picture("toys", first[0].id, runs_dir=runs)  # 9 pictures: 2 held out still
    assert held_out(own, "car") == (7, 2)
    for picture in first[1:4]:
        own = remove_picture("toys", picture.id, runs_dir=runs)  # 6: one held out
    assert held_out(own, "car") == (5, 1)
    assert [p.id for p in own.classes[0].pictures if p.split == "test"] == [first[-2].id]


def test_a_set_made_here_loads_by_its_name_with_its_classes_and_held_out_pictures(tmp_path):
    runs = tmp_path / "runs"
    create_set("kitchen", "Kitchen", ["fork", "cup", "bowl"], runs_dir=runs)
    for i, class_name in enumerate(("fork", "cup", "bowl")):
        add_pictures("kitchen", class_name, photos(5 + 5 * (i == 0), seed=10 * i), runs_dir=runs)
    data = load_data("kitchen", tmp_path / "data", download=False)
    assert data.classes == ("bowl", "cup", "fork") and tuple(data.shape) == (3, 32, 32)
    assert len(data.train_labels) == 8 + 4 + 4 and len(data.test_labels) == 2 + 1 + 1
    assert data.test_labels.tolist().count(data.classes.index("fork")) == 2


def test_create_from_folder_copies_each_class_shrunk_and_holds_some_out(tmp_path):
    runs = tmp_path / "runs"
    tree = write_image_folders(tmp_path / "tree", classes=("circle", "square"))
    added = create_from_folder("shapes", tree, "Shapes", runs_dir=runs)
    own = added.set
    assert [c.name for c in own.classes] == ["circle", "square"] and own.title == "Shapes"
    assert [len(c.pictures) for c in own.classes] == [6, 6]  # train/ and test/ together
    assert held_out(own, "circle") == (5, 1) and own.problem() is None
    # A plain folder of class folders too.
    flat = tmp_path / "flat"
    for class_name in ("a", "b"):
        (flat / class_name).mkdir(parents=True)
        for i, data in enumerate(photos(3, seed=5)):
            (flat / class_name / f"{i}.jpg").write_bytes(data)
    (flat / "a" / "notes.txt").write_text("not a picture")
    added = create_from_folder("flat", flat, runs_dir=runs)
    assert [len(c.pictures) for c in added.set.classes] == [3, 3]
    assert len(added.skipped) == 1 and "notes.txt" in added.skipped[0]


def test_a_name_taken_by_a_data_set_or_another_set_is_refused(tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(DataError, match="already a data set named 'cifar10'"):
        create_set("cifar10", runs_dir=runs)
    create_set("desk", runs_dir=runs)
    with pytest.raises(DataError, match="already a data set named 'desk'"):
        create_set("desk", runs_dir=tmp_path / "other-runs")
    with pytest.raises(DataError, match="cannot name a set"):
        create_set("My Desk", runs_dir=runs)
    assert [s.name for s in list_sets(runs_dir=runs)] == ["desk"]


def test_a_change_waits_while_another_process_holds_the_set(tmp_path):
    import fcntl
    import threading

    runs = tmp_path / "runs"
    own = create_set("desk", classes=["mug"], runs_dir=runs)
    with open(own.folder / ".lock", "a") as other:  # another tab's change, in progress
        fcntl.flock(other, fcntl.LOCK_EX)
        adding = threading.Thread(target=add_pictures, args=("desk", "mug", photos(1)),
                                  kwargs={"runs_dir": runs})
        adding.start()
        adding.join(0.5)
        assert adding.is_alive() and get_set("desk", runs_dir=runs).picture_count == 0
        fcntl.flock(other, fcntl.LOCK_UN)
    adding.join(30)
    assert get_set("desk", runs_dir=runs).picture_count == 1


def test_a_class_folder_removed_by_hand_is_made_again_when_pictures_move(tmp_path):
    import shutil

    runs = tmp_path / "runs"
    own = create_set("desk", classes=["mug"], runs_dir=runs)
    shutil.rmtree(own.folder / "test" / "mug")
    own = add_pictures("desk", "mug", photos(3), runs_dir=runs).set
    assert held_out(own, "mug") == (2, 1)


def test_what_a_killed_change_left_staged_is_removed_by_the_next_change(tmp_path):
    runs = tmp_path / "runs"
    own = create_set("desk", classes=["mug"], runs_dir=runs)
    stale = own.folder / ".staging-0123456789ab"
    stale.mkdir()
    (stale / "20261206-172301-000000001.png").write_bytes(b"half a picture")
    add_pictures("desk", "mug", photos(1), runs_dir=runs)
    assert not stale.exists()


def test_a_title_gives_a_set_name_that_the_registry_takes_and_no_set_has():
    from cifar_core.data.own_sets import name_from_title
    from cifar_core.data.registry import check_name

    assert name_from_title("Café crème!", set()) == "cafe-creme"
    assert name_from_title("My desk", {"my-desk", "my-desk-2"}) == "my-desk-3"
    assert name_from_title("Кошки", set()) == "set"  # no Latin letters left
    assert name_from_title("!!!", set()) == ""
    long = name_from_title("a very long title " * 10, set())
    assert check_name(long) == long

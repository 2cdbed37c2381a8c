"""`python -m cifar_core datasets [list | add | remove]` and `data --dataset`: your own image
folders as named data sets (cifar_core.data.folders), and every data set with its state here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, write_image_folders
from PIL import Image

from cifar_core.data import registry
from cifar_core.data.folders import RECORD_FILE
from cifar_core.data.load import load_data
from cifar_core.errors import DataError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def forget_folder_datasets():
    """Folder data sets added by a test are forgotten after it (the registry is per process)."""
    before = set(registry.DATASETS)
    yield
    for name in set(registry.DATASETS) - before:
        registry.unregister(name)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("CIFAR_DATA_DIR", str(root))
    return root


@pytest.fixture
def shapes(tmp_path) -> Path:
    """A picture tree elsewhere than the data folder: 3 classes, 4 + 2 pictures each."""
    return write_image_folders(tmp_path / "shapes", classes=("circle", "square", "triangle"))


def add(*argv) -> list[str]:
    return ["datasets", "add", *map(str, argv)]


# --- datasets add -----------------------------------------------------------------------------

def test_an_added_folder_loads_by_its_name_with_its_folders_as_classes(capsys, data_dir, shapes):
    code, out, err = run_cli(capsys, *add("shapes", shapes, "--title", "Shapes"))

    assert code == 0, err
    assert "shapes" in out and "circle, square, triangle" in out
    data = load_data("shapes", data_dir, download=False)
    assert data.title == "Shapes" and data.classes == ("circle", "square", "triangle")
    assert data.shape == (3, 32, 32) and len(data.train_labels) == 12
    assert (data_dir / RECORD_FILE).is_file()


def test_grey_and_size_choose_the_pictures_shape(capsys, data_dir, shapes):
    code, _, err = run_cli(capsys, *add("small-grey", shapes, "--grey", "--size", "16"))
    assert code == 0, err
    assert load_data("small-grey", data_dir, download=False).shape == (1, 16, 16)


def test_another_process_knows_an_added_folder_data_set(capsys, data_dir, shapes):
    # What a job process does: load the run's data set by its name from the run's data folder.
    assert run_cli(capsys, *add("shapes", shapes))[0] == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from cifar_core.data import load_data; "
         "print(load_data('shapes', sys.argv[1], download=False).classes)", str(data_dir)],
        capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "('circle', 'square', 'triangle')" in result.stdout


def test_a_name_already_taken_is_refused_and_the_record_is_unchanged(capsys, data_dir, shapes):
    assert run_cli(capsys, *add("shapes", shapes))[0] == 0
    recorded = (data_dir / RECORD_FILE).read_bytes()
    for name in ("shapes", "cifar10", "fashion-mnist"):
        code, _, err = run_cli(capsys, *add(name, shapes))
        assert code == 2
        assert f"There is already a data set named '{name}'" in err
        assert err.count("\n") == 1  # one sentence on one line, no traceback
    assert (data_dir / RECORD_FILE).read_bytes() == recorded


def test_a_bad_name_is_refused_saying_which_names_can_be_used(capsys, data_dir, shapes):
    code, _, err = run_cli(capsys, *add("My Shapes", shapes))
    assert code == 2 and "cannot name a data set" in err and "lower-case" in err
    assert not (data_dir / RECORD_FILE).exists()


def test_a_folder_without_train_and_test_is_refused_saying_how_to_lay_it_out(capsys, data_dir,
                                                                           tmp_path):
    folder = tmp_path / "pictures"
    (folder / "cats").mkdir(parents=True)
    code, _, err = run_cli(capsys, *add("pets", folder))
    assert code == 2 and "train/<class>/" in err and "test/<class>/" in err
    assert not (data_dir / RECORD_FILE).exists()
    code, _, err = run_cli(capsys, *add("pets", tmp_path / "nowhere"))
    assert code == 2 and "nowhere" in err and "no folder" in err.lower()


@pytest.mark.parametrize("extra_in", ["train", "test"])
def test_classes_that_differ_between_train_and_test_are_refused_and_named(
        capsys, data_dir, shapes, extra_in):
    extra = shapes / extra_in / "hexagon"
    extra.mkdir()
    (extra / "0.png").write_bytes((shapes / "train" / "circle" / "0000.png").read_bytes())
    (extra / "1.png").write_bytes((shapes / "train" / "circle" / "0001.png").read_bytes())

    code, _, err = run_cli(capsys, *add("shapes", shapes))

    assert code == 2 and "hexagon" in err and "same class folders" in err
    assert not (data_dir / RECORD_FILE).exists()


def test_a_class_with_one_training_picture_is_refused(capsys, data_dir, tmp_path):
    folder = write_image_folders(tmp_path / "few", classes=("ant", "bee"), train_per_class=1,
                                 test_per_class=1)
    code, _, err = run_cli(capsys, *add("insects", folder))
    assert code == 2 and "one picture" in err and "ant" in err
    assert not (data_dir / RECORD_FILE).exists()


def test_a_class_with_one_test_picture_is_added_with_a_warning(capsys, data_dir, tmp_path):
    folder = write_image_folders(tmp_path / "few", classes=("ant", "bee"), train_per_class=3,
                                 test_per_class=1)
    code, _, err = run_cli(capsys, *add("insects", folder))
    assert code == 0
    assert "warning:" in err and "one test picture" in err


def _grey_png(path: Path, seed: int = 0) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(path)


def test_grey_pictures_among_colour_ones_are_read_as_colour_with_a_warning_saying_how_many(
        capsys, data_dir, shapes):
    for i in range(3):
        _grey_png(shapes / "train" / "square" / f"grey{i}.png", i)

    code, _, err = run_cli(capsys, *add("shapes", shapes))
    assert code == 0
    assert "3 grey pictures" in err and "colour" in err

    data = load_data("shapes", data_dir, download=False)
    assert data.shape == (3, 32, 32) and len(data.train_labels) == 15
    assert any("3 grey pictures" in w for w in data.warnings)


def test_colour_pictures_in_a_grey_data_set_are_counted_too(capsys, data_dir, shapes):
    for i in range(2):
        _grey_png(shapes / "test" / "circle" / f"grey{i}.png", i)
    assert run_cli(capsys, *add("shapes", shapes, "--grey"))[0] == 0
    data = load_data("shapes", data_dir, download=False)
    # Of 20 pictures, 18 are colour: they are read as grey, and said so.
    assert any("18 colour pictures" in w and "grey" in w for w in data.warnings)


# --- datasets remove --------------------------------------------------------------------------

def test_remove_forgets_the_name_and_keeps_the_pictures(capsys, data_dir, shapes):
    assert run_cli(capsys, *add("shapes", shapes))[0] == 0
    load_data("shapes", data_dir, download=False)
    pictures = sorted(shapes.rglob("*.png"))

    code, out, err = run_cli(capsys, "datasets", "remove", "shapes")

    assert code == 0, err and "shapes" in out
    assert sorted(shapes.rglob("*.png")) == pictures
    with pytest.raises(DataError, match="There is no data set 'shapes'"):
        load_data("shapes", data_dir, download=False)
    # ... and the name is free again.
    assert run_cli(capsys, *add("shapes", shapes))[0] == 0


def test_remove_refuses_a_built_in_or_unknown_data_set(capsys, data_dir):
    code, _, err = run_cli(capsys, "datasets", "remove", "cifar10")
    assert code == 2 and "built in" in err
    code, _, err = run_cli(capsys, "datasets", "remove", "nothing-here")
    assert code == 2 and "nothing-here" in err and "python -m cifar_core datasets" in err


def test_another_process_no_longer_knows_a_removed_data_set(capsys, data_dir, shapes):
    assert run_cli(capsys, *add("shapes", shapes))[0] == 0
    assert run_cli(capsys, "datasets", "remove", "shapes")[0] == 0
    result = subprocess.run(
        [sys.executable, "-m", "cifar_core", "data", "--dataset", "shapes", "--data-dir",
         str(data_dir)], capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2 and "There is no data set 'shapes'" in result.stderr


def test_a_damaged_record_is_not_overwritten_by_an_add(capsys, data_dir, shapes):
    (data_dir / RECORD_FILE).write_text("{not json")
    code, _, err = run_cli(capsys, *add("shapes", shapes))
    assert code == 2 and RECORD_FILE in err
    assert (data_dir / RECORD_FILE).read_text() == "{not json"


def test_an_unknown_dataset_is_refused_naming_the_choices(capsys, data_dir):
    code, _, err = run_cli(capsys, "data", "--dataset", "cifar-11")
    assert code == 2
    assert "There is no data set 'cifar-11'" in err and "cifar10, fashion-mnist" in err
    assert "python -m cifar_core datasets" in err


def test_the_json_of_an_add_says_what_was_recorded(capsys, data_dir, shapes):
    code, out, _ = run_cli(capsys, *add("shapes", shapes, "--json"))
    assert code == 0
    added = json.loads(out)
    assert added["name"] == "shapes" and added["classes"] == ["circle", "square", "triangle"]
    assert added["shape"] == [3, 32, 32] and added["train"] == 12 and added["test"] == 6
    assert added["folder"] == str(shapes.resolve())



# --- datasets (the list) and data --dataset ---------------------------------------------------

@pytest.fixture
def fashion_here(tmp_path, monkeypatch) -> Path:
    """Fashion-MNIST's four official files (tiny) in a stand-in for Debian's folder."""
    import gzip

    from cifar_core.data import catalog
    from cifar_core.data.idx import IDX_FILES

    system = tmp_path / "system-fashion-mnist"
    system.mkdir()
    for (split, what), name in IDX_FILES.items():
        n = 20 if split == "train" else 10
        array = (np.arange(n * 784).reshape(n, 28, 28) if what == "images"
                 else np.arange(n) % 10).astype(np.uint8)
        header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big")
                                                         for d in array.shape)
        (system / f"{name}.gz").write_bytes(gzip.compress(header + array.tobytes()))
    monkeypatch.setattr(catalog, "FASHION_MNIST_SYSTEM_DIR", system)
    return system


def _rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines() if line.strip()}


def test_datasets_lists_each_with_its_classes_shape_and_state_here(capsys, tmp_path, monkeypatch,
                                                                    fashion_here, shapes):
    from conftest import write_cifar_batches

    from cifar_core.data.load import load_cifar10

    data_dir = write_cifar_batches(tmp_path / "data")
    monkeypatch.setenv("CIFAR_DATA_DIR", str(data_dir))
    load_cifar10(data_dir)  # cached
    assert run_cli(capsys, *add("shapes", shapes, "--size", "16"))[0] == 0

    code, out, err = run_cli(capsys, "datasets")

    assert code == 0, err
    rows = _rows(out)
    assert {"cifar10", "fashion-mnist", "mnist", "cifar100", "svhn", "shapes"} <= set(rows)
    assert "CIFAR-10" in rows["cifar10"] and "32 × 32 colour" in rows["cifar10"]
    assert "ready" in rows["cifar10"]
    assert "28 × 28 grey" in rows["fashion-mnist"] and "found" in rows["fashion-mnist"]
    assert "100" in rows["cifar100"].split() and "downloadable" in rows["cifar100"]
    assert "16 × 16 colour" in rows["shapes"] and "3" in rows["shapes"].split()
    assert "ready" in rows["shapes"]  # decoded when it was added
    # Below the table, what each state means here: where the copy is, how to get the others.
    assert str(fashion_here) in out
    assert "python -m cifar_core data --dataset mnist" in out


def test_a_folder_data_set_whose_folder_is_gone_is_missing_with_what_to_do(capsys, data_dir,
                                                                          shapes):
    import shutil

    assert run_cli(capsys, *add("shapes", shapes))[0] == 0
    shutil.rmtree(shapes)

    code, out, _ = run_cli(capsys, "datasets")

    assert code == 0
    assert "missing" in _rows(out)["shapes"]
    assert f"{shapes}/train/<class>/" in out


def test_datasets_json_gives_one_object_per_data_set(capsys, data_dir, fashion_here):
    code, out, _ = run_cli(capsys, "datasets", "--json")
    assert code == 0
    listed = {d["name"]: d for d in map(json.loads, out.splitlines())}
    fashion = listed["fashion-mnist"]
    assert fashion["title"] == "Fashion-MNIST" and fashion["shape"] == [1, 28, 28]
    assert fashion["classes"][0] == "T-shirt/top" and len(fashion["classes"]) == 10
    assert fashion["state"] == "found" and str(fashion_here) in fashion["message"]
    assert listed["mnist"]["state"] == "missing" and listed["mnist"]["downloadable"] is True
    assert "MIT" in fashion["source_line"]


def test_a_damaged_record_is_said_and_the_built_in_data_sets_still_listed(capsys, data_dir):
    (data_dir / RECORD_FILE).write_text("{not json")
    code, out, err = run_cli(capsys, "datasets")
    assert code == 0 and "cifar10" in out
    assert "warning:" in err and RECORD_FILE in err


def test_data_dataset_decodes_that_data_set_and_describes_it(capsys, data_dir, fashion_here):
    code, out, err = run_cli(capsys, "data", "--dataset", "fashion-mnist")
    assert code == 0, err
    assert "20 training and 10 test images, 10 classes (T-shirt/top, Trouser" in out
    code, out, _ = run_cli(capsys, "data", "--dataset", "fashion-mnist", "--json")
    described = json.loads(out)
    assert described["dataset"] == "fashion-mnist" and described["shape"] == [1, 28, 28]


def test_a_data_folder_lists_only_its_own_folder_data_sets(capsys, data_dir, shapes, tmp_path):
    assert run_cli(capsys, *add("shapes", shapes))[0] == 0  # in the default data folder
    other = tmp_path / "other-data"
    other.mkdir()

    code, out, _ = run_cli(capsys, "datasets", "--data-dir", other)

    assert code == 0 and "cifar10" in _rows(out) and "shapes" not in _rows(out)
    assert "shapes" in registry.dataset_names(data_dir)
    assert "shapes" not in registry.dataset_names(other)


def test_data_dataset_finds_a_folder_data_set_recorded_in_the_data_dir_given(capsys, tmp_path,
                                                                             shapes):
    # Not the default data folder: --data-dir names where it is recorded.
    other = tmp_path / "other-data"
    assert run_cli(capsys, *add("shapes", shapes, "--data-dir", other))[0] == 0
    result = subprocess.run(  # a fresh process, which knows only the default data folder
        [sys.executable, "-m", "cifar_core", "data", "--dataset", "shapes", "--data-dir",
         str(other)], capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})

    assert result.returncode == 0, result.stderr
    assert "3 classes (circle, square, triangle)" in result.stdout


def test_a_folder_whose_pictures_cannot_be_read_leaves_no_record_and_no_cache(capsys, data_dir,
                                                                              shapes):
    for picture in (shapes / "test").rglob("*.png"):
        picture.write_bytes(b"not a picture")

    code, _, err = run_cli(capsys, *add("shapes", shapes))

    assert code == 2 and "could be read" in err
    assert not (data_dir / RECORD_FILE).exists()
    assert not list(data_dir.rglob("*.pt"))
    with pytest.raises(DataError, match="There is no data set 'shapes'"):
        registry.dataset_spec("shapes", data_dir)


@pytest.mark.parametrize("size", ["4", "512"])
def test_a_picture_size_out_of_range_is_refused_saying_the_range(capsys, data_dir, shapes, size):
    code, _, err = run_cli(capsys, *add("shapes", shapes, "--size", size))
    assert code == 2 and "8 to 128 pixels" in err
    assert not (data_dir / RECORD_FILE).exists()


def test_a_name_registered_again_in_code_is_no_longer_taken_for_a_recorded_one(
        capsys, data_dir, shapes, tmp_path):
    """A folder data set recorded in one data folder, then unregistered and registered anew in
    code under the same name (as a test or a plugin does): the new one is known from any data
    folder, not taken for the recorded one of the first folder."""
    from cifar_core.data.catalog import folder_dataset

    code, _, err = run_cli(capsys, "datasets", "add", "shapes", shapes, "--data-dir", data_dir)
    assert code == 0, err
    registry.unregister("shapes")
    registry.register(folder_dataset("shapes", shapes, "Shapes in code"))
    try:
        elsewhere = tmp_path / "another-data-folder"
        elsewhere.mkdir()
        assert "shapes" in registry.dataset_names(elsewhere)
        assert registry.dataset_spec("shapes", elsewhere).title == "Shapes in code"
    finally:
        registry.unregister("shapes")


# --- Your own sets: datasets create | add NAME CLASS FILE... | show | delete ---------------------

@pytest.fixture(autouse=True)
def forget_watched_runs_folders():
    """The runs folders a test watched are forgotten after it (the registry is per process)."""
    from cifar_core.data import own_sets

    before = set(own_sets._watched)
    yield
    own_sets._watched.intersection_update(before)
    own_sets.register_sets()


def photo_files(folder: Path, n: int, seed: int = 0) -> list[Path]:
    from conftest import jpeg

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo{seed + i}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        path.write_bytes(jpeg((64, 48), seed=seed + i))
    return paths


def test_create_add_show_and_delete_a_set_from_the_command_line(capsys, data_dir, tmp_path):
    runs = tmp_path / "my-runs"
    code, out, err = run_cli(capsys, "datasets", "create", "desk", "--title", "My desk",
                             "--classes", "mug, pen", "--runs-dir", runs)
    assert code == 0, err
    folder = runs / "datasets" / "desk"
    assert "desk" in out and "mug, pen" in out and str(folder) in out
    assert (folder / "set.json").is_file()

    code, out, err = run_cli(capsys, "datasets", "add", "desk", "mug",
                             *photo_files(tmp_path / "in", 5), "--runs-dir", runs)
    assert code == 0, err
    assert "Added 5 pictures of mug" in out and "1 held out" in out
    assert "Add 3 more pictures of pen" in out  # what is missing before it can train
    assert run_cli(capsys, "datasets", "add", "desk", "pen",
                   *photo_files(tmp_path / "in", 3, seed=10), "--runs-dir", runs)[0] == 0

    code, out, err = run_cli(capsys, "datasets", "show", "desk", "--runs-dir", runs)
    assert code == 0, err
    rows = _rows(out)
    assert rows["mug"].split()[1:] == ["5", "4", "1"]
    assert rows["pen"].split()[1:] == ["3", "2", "1"]
    assert str(folder) in out and "can train" in out
    assert "python -m cifar_core train --dataset desk" in out
    code, out, _ = run_cli(capsys, "datasets", "show", "desk", "--json", "--runs-dir", runs)
    shown = json.loads(out)
    assert shown["problem"] is None and shown["folder"] == str(folder)
    assert [(c["name"], c["pictures"], c["test"]) for c in shown["classes"]] == [
        ("mug", 5, 1), ("pen", 3, 1)]

    # The list shows it, and says where it is.
    code, out, _ = run_cli(capsys, "datasets", "--runs-dir", runs)
    assert "My desk" in _rows(out)["desk"] and "2" in _rows(out)["desk"].split()
    assert f"desk: Your own set, kept in {folder}" in out

    code, out, err = run_cli(capsys, "datasets", "delete", "desk", "--runs-dir", runs)
    assert code == 0, err
    assert "Deleted" in out and not folder.exists()
    code, out, _ = run_cli(capsys, "datasets", "--runs-dir", runs)
    assert "desk" not in _rows(out)


def test_create_from_a_folder_copies_its_class_folders(capsys, data_dir, tmp_path, shapes):
    runs = tmp_path / "my-runs"
    code, out, err = run_cli(capsys, "datasets", "create", "shapes-set", "--from-folder", shapes,
                             "--runs-dir", runs)
    assert code == 0, err
    assert "18 pictures" in out and "circle, square, triangle" in out
    assert load_data("shapes-set", data_dir, download=False).classes == (
        "circle", "square", "triangle")


def test_pictures_that_cannot_be_added_are_each_said_and_none_added_is_an_error(
        capsys, data_dir, tmp_path):
    runs = tmp_path / "my-runs"
    assert run_cli(capsys, "datasets", "create", "desk", "--classes", "mug,pen",
                   "--runs-dir", runs)[0] == 0
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    code, out, err = run_cli(capsys, "datasets", "add", "desk", "mug", text,
                             *photo_files(tmp_path / "in", 1), "--runs-dir", runs)
    assert code == 0 and "Added 1 picture of mug" in out
    assert "warning: notes.txt" in err
    code, out, err = run_cli(capsys, "datasets", "add", "desk", "mug", text, tmp_path / "gone.jpg",
                             "--runs-dir", runs)
    assert code == 2 and "None of the 2 files" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 3


@pytest.mark.parametrize("argv, says", [
    (["create", "Desk"], "cannot name a set"),
    (["create", "cifar10"], "already a data set named 'cifar10'"),
    (["create", "desk", "--classes", "mug,Mug"], "already a class named 'mug'"),
    (["create", "desk", "--classes", "a/b"], "cannot hold '/'"),
    (["create", "desk", "--from-folder", "nowhere"], "There is no folder"),
    (["show", "nothing"], "no set of yours named 'nothing'"),
    (["delete", "nothing"], "no set of yours named 'nothing'"),
    (["add", "nothing", "mug", "a.jpg"], "no set of yours named 'nothing'"),
])
def test_a_set_command_that_cannot_be_done_says_why_in_one_line(capsys, data_dir, tmp_path,
                                                                  argv, says):
    code, out, err = run_cli(capsys, "datasets", *argv, "--runs-dir", tmp_path / "my-runs")
    assert code == 2 and says in err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "my-runs" / "datasets" / "desk").exists()


def test_delete_and_remove_each_point_at_the_other_for_the_other_kind(capsys, data_dir, shapes,
                                                                       tmp_path):
    runs = tmp_path / "my-runs"
    assert run_cli(capsys, *add("shapes", shapes))[0] == 0
    assert run_cli(capsys, "datasets", "create", "desk", "--runs-dir", runs)[0] == 0

    code, _, err = run_cli(capsys, "datasets", "delete", "shapes", "--runs-dir", runs)
    assert code == 2 and "python -m cifar_core datasets remove shapes" in err
    code, _, err = run_cli(capsys, "datasets", "remove", "desk", "--runs-dir", runs)
    assert code == 2 and "python -m cifar_core datasets delete desk" in err
    code, _, err = run_cli(capsys, "datasets", "delete", "cifar10", "--runs-dir", runs)
    assert code == 2 and "built in" in err
    code, _, err = run_cli(capsys, "datasets", "show", "shapes", "--runs-dir", runs)
    assert code == 2 and "not one of your sets" in err
    # Pictures cannot be added to a folder data set; a folder is not recorded under a set's name.
    code, _, err = run_cli(capsys, "datasets", "add", "shapes", "circle", shapes / "x.png",
                           "--runs-dir", runs)
    assert code == 2 and "python -m cifar_core datasets create" in err
    code, _, err = run_cli(capsys, "datasets", "add", "desk", "mug", "--runs-dir", runs)
    assert code == 2 and "datasets add desk mug FILE" in err
    assert (runs / "datasets" / "desk").is_dir() and "shapes" in dataset_names_here(data_dir)


def test_the_help_of_add_names_both_uses(capsys):
    code, out, _ = run_cli(capsys, "datasets", "add", "--help")
    assert code == 0 and "CLASS|FOLDER [FILE ...]" in out


def dataset_names_here(data_dir: Path) -> tuple[str, ...]:
    return registry.dataset_names(data_dir)

"""The sets made on the Teach page, kept in the runs folder: data sets like any other."""

from __future__ import annotations

import json

from cifar_core.data.load import load_data
from cifar_core.data.own_sets import SET_FILE, sets_folder, watch_runs_folder
from cifar_core.data.registry import dataset_names, dataset_spec
from tests.conftest import write_image_folders


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

"""cifar_core.data.load: load_cifar10 with no data in the folder, offline."""

from __future__ import annotations

import pytest

from cifar_core.data.dataset import BATCH_DIR, OFFICIAL_ARCHIVE
from cifar_core.data.load import load_cifar10
from cifar_core.errors import DataNotFoundError


def test_no_data_without_download_explains_the_offline_layouts(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_cifar10(tmp_path / "empty", download=False)
    message = str(err.value)
    assert "No CIFAR-10 data" in message
    for layout in (OFFICIAL_ARCHIVE, BATCH_DIR, "train/<class>", ".tar.gz", "CIFAR_DATA_DIR"):
        assert layout in message


def test_a_data_folder_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "data"
    path.write_text("oops")
    with pytest.raises(DataNotFoundError, match="is a file"):
        load_cifar10(path, download=False)


@pytest.mark.parametrize("layout", ["batches", "folders", "folders.tar.gz"])
def test_the_first_decode_counts_its_way_to_the_end_and_a_cached_load_decodes_nothing(
        make_cifar_batches, make_image_folders, tmp_path, layout):
    # A first decode took 25-45 s with nothing but "Loading CIFAR-10 ...": what it has done so
    # far is told as it goes, so that a page can show it.
    from conftest import make_tar

    if layout == "batches":
        root = make_cifar_batches()
    else:
        root = make_image_folders(tmp_path / "tree", train_per_class=40, test_per_class=10)
        if layout.endswith(".tar.gz"):
            root = tmp_path / "archived"
            make_tar(root / "images.tar.gz", tmp_path / "tree", ["train", "test"])
    counts = []
    data = load_cifar10(root, download=False,
                        counted=lambda done, total, what: counts.append((done, total, what)))
    assert len(counts) >= 3, counts
    phases = list(dict.fromkeys(what for _, _, what in counts))  # in the order told
    for phase in phases:
        told = [(done, total) for done, total, what in counts if what == phase]
        [total] = {total for _, total in told}
        done = [d for d, _ in told]
        assert done == sorted(done) and done[0] == 0 and done[-1] == total, phase
    pictures = len(data.train_labels) + len(data.test_labels)
    if layout == "batches":  # five training batches and the test batch
        assert phases == ["files decoded"] and counts[-1][1] == 6
    elif layout == "folders":  # each file read, then each picture decoded
        assert phases == ["files read", "pictures decoded"] and counts[-1][1] == pictures
    else:  # an archive is read as one stream
        assert phases == ["pictures decoded"] and counts[-1][1] == pictures
    again = []
    load_cifar10(root, download=False, counted=lambda *told: again.append(told))
    assert again == []  # read from the cache: nothing to decode

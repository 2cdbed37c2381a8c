"""cifar_core.data: load_cifar10 with no data in the folder, offline."""

from __future__ import annotations

import pytest

from cifar_core.data import load_cifar10
from cifar_core.dataset import BATCH_DIR, OFFICIAL_ARCHIVE
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

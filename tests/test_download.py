"""cifar_core.data.download. The default path: torchvision's own download, served here from a
loopback HTTP server (the real CIFAR-10 host is unreachable from test machines), and its failure
without a network; the status file it reports to, and what the dashboard reads from it."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import urllib.error
from pathlib import Path

import pytest
from conftest import write_cifar_batches
from torchvision.datasets import CIFAR10

import cifar_core.data.download as download_module
from cifar_core.data import sources
from cifar_core.data.dataset import DOWNLOAD_MARKER, OFFICIAL_ARCHIVE, OFFICIAL_ARCHIVE_BYTES
from cifar_core.data.download import (
    DOWNLOAD_LOG,
    DOWNLOAD_STATUS_FILE,
    data_status,
    download_status,
    last_download,
    start_data_download,
)
from cifar_core.data.load import load_cifar10
from cifar_core.errors import DataNotFoundError


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar_server(tmp_path, make_cifar_batches, monkeypatch):
    """A loopback server holding a small cifar-10-python.tar.gz; torchvision is pointed at it
    and told its checksums, as it is for the official files."""
    src = make_cifar_batches(tmp_path / "src")
    serve = tmp_path / "serve"
    serve.mkdir()
    archive = serve / OFFICIAL_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    batches = src / "cifar-10-batches-py"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(serve))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    monkeypatch.setattr(CIFAR10, "url", f"http://127.0.0.1:{port}/{OFFICIAL_ARCHIVE}")
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(archive))
    monkeypatch.setattr(CIFAR10, "train_list",
                        [[f"data_batch_{i}", md5(batches / f"data_batch_{i}")]
                         for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(batches / "test_batch")]])
    # The decode checks against its own copy of torchvision's table (cifar_core.data.sources).
    monkeypatch.setattr(sources, "OFFICIAL_MD5S", dict(CIFAR10.train_list + CIFAR10.test_list))
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                          "md5": md5(batches / "batches.meta")})
    yield src
    server.shutdown()


def test_download_is_the_default_and_shows_progress(tmp_path, cifar_server, capsys):
    root = tmp_path / "data"
    messages = []
    data = load_cifar10(root, progress=messages.append)
    assert len(data.train_labels) == 100 and len(data.test_labels) == 50
    assert data.warnings == ()  # the served files match the checksums torchvision knows
    assert any("Downloading CIFAR-10" in m for m in messages)
    assert (root / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert not (root / DOWNLOAD_MARKER).exists()
    # torchvision's own progress bar went to the terminal.
    assert "%" in capsys.readouterr().err
    assert data_status(root).state == "ready"


def test_no_data_and_no_network_names_the_offline_options(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port with nobody listening: the download fails at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(CIFAR10, "url", f"http://127.0.0.1:{port}/{OFFICIAL_ARCHIVE}")
    root = tmp_path / "data"
    with pytest.raises(DataNotFoundError) as error:
        load_cifar10(root)
    message = str(error.value)
    assert "download failed" in message
    for option in ("cifar-10-python.tar.gz", "cifar-10-batches-py", "train/<class>",
                   "CIFAR_DATA_DIR"):
        assert option in message
    assert not (root / OFFICIAL_ARCHIVE).exists(), "no half-downloaded archive is left behind"
    assert not (root / DOWNLOAD_MARKER).exists()
    assert data_status(root).state == "missing"


def test_status_follows_a_background_download_and_forgets_a_dead_one(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / DOWNLOAD_MARKER).write_text(str(os.getpid()))  # a living downloader
    with open(root / OFFICIAL_ARCHIVE, "wb") as f:
        f.truncate(OFFICIAL_ARCHIVE_BYTES // 4)
    status = data_status(root)
    assert status.state == "downloading"
    assert status.fraction == pytest.approx(0.25, abs=0.01)
    assert "25%" in status.message

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (root / DOWNLOAD_MARKER).write_text(dead)
    assert data_status(root).state == "missing"
    assert not (root / DOWNLOAD_MARKER).exists()
    assert not (root / OFFICIAL_ARCHIVE).exists(), "the half-done archive is dropped"


def test_download_uses_torchvision_like_the_tutorial(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeCIFAR10:
        train_list = torchvision.datasets.CIFAR10.train_list  # the official md5 sums
        test_list = torchvision.datasets.CIFAR10.test_list

        def __init__(self, root, train, download):
            calls.append((root, train, download))
            assert (Path(root) / DOWNLOAD_MARKER).exists()  # visible to download_status
            write_cifar_batches(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    messages = []
    root = tmp_path / "fresh"

    cifar = load_cifar10(root, progress=messages.append)

    assert calls == [(str(root), True, True)]
    assert len(cifar.train_labels) == 100
    assert any("Downloading" in m for m in messages)
    assert not (root / DOWNLOAD_MARKER).exists()


def test_a_failed_download_removes_the_partial_archive_and_explains(tmp_path, monkeypatch):
    import torchvision.datasets

    class OfflineCIFAR10:
        train_list = torchvision.datasets.CIFAR10.train_list
        test_list = torchvision.datasets.CIFAR10.test_list

        def __init__(self, root, train, download):
            (Path(root) / OFFICIAL_ARCHIVE).write_bytes(b"\x1f\x8b" + b"0" * 1000)
            assert download_status(root) == pytest.approx(1002 / OFFICIAL_ARCHIVE_BYTES)
            raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", OfflineCIFAR10)
    root = tmp_path / "offline"
    with pytest.raises(DataNotFoundError) as err:
        load_cifar10(root)
    assert "download failed" in str(err.value)
    assert "Name or service not known" in str(err.value)
    assert "cannot reach the CIFAR-10 server" in str(err.value)
    assert "(<urlopen error" not in str(err.value)
    assert "To work offline" in str(err.value)
    assert not (root / OFFICIAL_ARCHIVE).exists()
    assert download_status(root) is None


def closed_port_url() -> str:
    """The archive's address on a loopback port nobody listens on: a download fails at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{OFFICIAL_ARCHIVE}"


def test_a_failed_download_reports_its_reason_in_the_status_file(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "url", closed_port_url())
    root = tmp_path / "data"
    with pytest.raises(DataNotFoundError) as error:
        load_cifar10(root)

    # The download wrote its own report; no printed log exists to parse (nothing ran in the
    # background), so the dashboard's message can only come from the status file.
    record = json.loads((root / DOWNLOAD_STATUS_FILE).read_text())
    assert record["state"] == "failed" and record["pid"] == os.getpid()
    # The reason alone: the dashboard adds where the data is missing and the offline options.
    assert record["message"] in str(error.value) and record["time"] > 0
    assert "To work offline" not in record["message"]
    assert "No CIFAR-10 data" not in record["message"]
    assert not (root / DOWNLOAD_LOG).exists()
    status = data_status(root)
    assert status.state == "missing"
    assert status.message == (f"No CIFAR-10 data in {root.resolve()}. "
                              f"The last download failed: {record['message']}")
    assert "Connection refused" in status.message
    assert "download failed" in status.message

    (root / DOWNLOAD_STATUS_FILE).unlink()
    assert data_status(root).message == f"No CIFAR-10 data in {root.resolve()}."


def test_a_download_reports_downloading_then_done(tmp_path, monkeypatch):
    import torchvision.datasets

    seen = []

    class FakeCIFAR10:
        train_list = torchvision.datasets.CIFAR10.train_list
        test_list = torchvision.datasets.CIFAR10.test_list

        def __init__(self, root, train, download):
            seen.append(last_download(root))
            write_cifar_batches(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    root = tmp_path / "fresh"
    load_cifar10(root)

    [during] = seen
    assert during.state == "downloading" and during.pid == os.getpid()
    after = last_download(root)
    assert after.state == "done" and "python batches" in after.message
    assert data_status(root).state == "ready"


def test_a_killed_download_is_found_by_its_missing_process(tmp_path):
    """Killed, it never writes a final state: the status file still says 'downloading'."""
    root = tmp_path / "data"
    root.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (root / DOWNLOAD_MARKER).write_text(dead)
    (root / DOWNLOAD_STATUS_FILE).write_text(json.dumps(
        {"state": "downloading", "message": "", "pid": int(dead), "time": 1.0}))
    with open(root / OFFICIAL_ARCHIVE, "wb") as f:
        f.truncate(OFFICIAL_ARCHIVE_BYTES // 3)

    status = data_status(root)

    assert status.state == "missing"
    assert status.message == f"No CIFAR-10 data in {root.resolve()}."
    assert not (root / DOWNLOAD_MARKER).exists()
    assert not (root / OFFICIAL_ARCHIVE).exists()


def test_start_data_download_runs_the_cli_in_the_background(tmp_path, monkeypatch):
    launched = []

    class FakePopen:
        pid = os.getpid()  # a living process, as the real child would be

        def __init__(self, cmd, **kwargs):
            launched.append((cmd, kwargs))

        def poll(self):
            return None

    monkeypatch.setattr(download_module.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(download_module, "_downloaders", {})
    root = tmp_path / "data"
    root.mkdir()
    (root / DOWNLOAD_STATUS_FILE).write_text(json.dumps(
        {"state": "failed", "message": "an earlier try", "pid": 1, "time": 1.0}))

    pid = start_data_download(root)

    [(cmd, kwargs)] = launched
    assert cmd[1:] == ["-m", "cifar_core", "data", "--data-dir", str(root.resolve())]
    assert kwargs["start_new_session"] is True
    assert pid == os.getpid()
    assert (root / DOWNLOAD_MARKER).read_text() == str(pid)
    assert (root / DOWNLOAD_LOG).exists()
    # The earlier failure is not shown as this try's.
    assert last_download(root).state == "downloading" and last_download(root).pid == pid
    assert data_status(root).state == "downloading"


# --- any data set's state and background download ----------------------------------------------

@pytest.fixture
def no_system_fashion(tmp_path, monkeypatch):
    from cifar_core.data import catalog

    monkeypatch.setattr(catalog, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-copy")


def write_fashion(root: Path) -> Path:
    """The four official idx files (gz) of a 20 + 10 picture Fashion-MNIST look-alike."""
    import gzip

    import numpy as np

    from cifar_core.data.idx import IDX_FILES

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for (split, what), name in IDX_FILES.items():
        n = 20 if split == "train" else 10
        array = (np.arange(n * 28 * 28).reshape(n, 28, 28) if what == "images"
                 else np.arange(n) % 10).astype(np.uint8)
        header = bytes([0, 0, 8, array.ndim]) + b"".join(
            d.to_bytes(4, "big") for d in array.shape)
        (raw / f"{name}.gz").write_bytes(gzip.compress(header + array.tobytes()))
    return root


def test_another_data_sets_state_goes_from_missing_to_found_to_ready(tmp_path, no_system_fashion):
    from cifar_core.data.download import dataset_state
    from cifar_core.data.load import load_data
    from cifar_core.data.registry import dataset_spec

    root = tmp_path / "data"
    spec = dataset_spec("fashion-mnist")
    missing = dataset_state(spec, root)
    assert missing.state == "missing" and missing.downloadable
    assert missing.message == f"No Fashion-MNIST data in {root.resolve()}."

    write_fashion(root)
    found = data_status(root, "fashion-mnist")
    assert found.state == "found"
    assert found.message.startswith(f"Found Fashion-MNIST's official idx files at {root}")
    assert data_status(root).state == "missing"  # CIFAR-10 is still not there

    load_data("fashion-mnist", root)
    assert data_status(root, "fashion-mnist").state == "ready"
    assert download_module.is_cached(root, "fashion-mnist") and not download_module.is_cached(root)


def test_a_failed_download_is_told_only_for_its_own_data_set(tmp_path, no_system_fashion,
                                                              monkeypatch):
    import torchvision.datasets

    from cifar_core.data.load import load_data

    def unreachable(root, train=True, download=False):
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", unreachable)
    root = tmp_path / "data"
    with pytest.raises(DataNotFoundError):
        load_data("fashion-mnist", root)

    assert last_download(root).state == "failed" and last_download(root).dataset == "fashion-mnist"
    assert "The last download failed: the Fashion-MNIST server could not be reached" in (
        data_status(root, "fashion-mnist").message)
    assert data_status(root).message == f"No CIFAR-10 data in {root.resolve()}."


def test_an_old_status_file_without_a_data_set_is_cifar10s(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / DOWNLOAD_STATUS_FILE).write_text(json.dumps(
        {"state": "failed", "message": "it broke.", "pid": 1, "time": 1.0}))
    assert last_download(root).dataset == "cifar10"
    assert data_status(root).message.endswith("The last download failed: it broke.")


def test_start_data_download_of_another_data_set_passes_it_on(tmp_path, monkeypatch,
                                                              no_system_fashion):
    launched = []

    class FakePopen:
        pid = os.getpid()

        def __init__(self, cmd, **kwargs):
            launched.append(cmd)

        def poll(self):
            return None

    monkeypatch.setattr(download_module.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(download_module, "_downloaders", {})
    root = tmp_path / "data"

    start_data_download(root, dataset="fashion-mnist")

    [cmd] = launched
    assert cmd[1:] == ["-m", "cifar_core", "data", "--data-dir", str(root.resolve()),
                       "--dataset", "fashion-mnist"]
    assert data_status(root, "fashion-mnist").state == "downloading"
    assert "Downloading Fashion-MNIST into" in data_status(root, "fashion-mnist").message
    # CIFAR-10 is not being downloaded: the running download is not shown as CIFAR-10's.
    assert data_status(root).state == "missing" and download_status(root, "cifar10") is None


def test_another_data_sets_download_counts_its_bytes(tmp_path, no_system_fashion):
    from cifar_core.data.registry import dataset_spec

    root = tmp_path / "data"
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    (root / DOWNLOAD_MARKER).write_text(str(os.getpid()))
    (root / DOWNLOAD_STATUS_FILE).write_text(json.dumps(
        {"state": "downloading", "message": "", "pid": os.getpid(), "time": 1.0,
         "dataset": "fashion-mnist"}))
    total = dataset_spec("fashion-mnist").download_bytes
    with open(raw / "train-images-idx3-ubyte.gz", "wb") as f:
        f.truncate(total // 4)

    assert download_status(root, "fashion-mnist") == pytest.approx(0.25, abs=0.01)
    assert data_status(root, "fashion-mnist").fraction == pytest.approx(0.25, abs=0.01)

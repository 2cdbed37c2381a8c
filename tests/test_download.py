"""The default path: torchvision's own download, served here from a loopback HTTP server (the
real CIFAR-10 host is unreachable from test machines), and its failure without a network."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import tarfile
import threading
from pathlib import Path

import pytest
from torchvision.datasets import CIFAR10

from cifar_core.data import (
    DOWNLOAD_MARKER,
    OFFICIAL_ARCHIVE,
    data_status,
    load_cifar10,
)
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
    import os
    import subprocess
    import sys

    from cifar_core.data import OFFICIAL_ARCHIVE_BYTES

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

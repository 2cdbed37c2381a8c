"""Issue 12, "Safe by default" (its security cases, and case 11): one test per fault, named by
its case. Each failed before its fix (the fix's commit says so), except the `keep_` case, which
guards what the fix must not break.

Servers started here listen on 127.0.0.1 and are stopped by their PID; a payload that would run
code only ever creates a marker file in the test's own folder, and each test shows that its
payload is real by running it once with plain pickle.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pickle
import shlex
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import expected_arrays, free_port, listening_addresses, make_tar, write_cifar_batches
from streamlit.testing.v1 import AppTest

from cifar_core import scheduler
from cifar_core.data.dataset import BATCH_DIR, OFFICIAL_ARCHIVE, OFFICIAL_CLASSES, TRAIN_BATCHES
from cifar_core.data.load import load_cifar10
from cifar_core.errors import CheckpointError, CorruptDataError
from cifar_core.runs.jobs import JobRunner
from cifar_core.runs.store import RunStore
from cifar_core.training.checkpoint import load_checkpoint, save_checkpoint
from cifar_core.training.models import Net

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
PASSWORD = "correct horse battery staple"


# --- 1. The dashboard listens on every interface, with no login ------------------------------

def this_machines_other_addresses() -> list[str]:
    """This machine's own addresses other than loopback (and link-local ones, which need a
    scope to connect to), from `ip` or `hostname -I`; empty where neither tells."""
    words: list[str] = []
    if shutil.which("ip"):
        out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True,
                             timeout=10).stdout
        for line in out.splitlines():
            parts = line.split()
            words += [parts[i + 1].split("/")[0] for i, p in enumerate(parts[:-1])
                      if p in ("inet", "inet6")]
    elif shutil.which("hostname"):
        words = subprocess.run(["hostname", "-I"], capture_output=True, text=True,
                               timeout=10).stdout.split()
    addresses = []
    for word in words:
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            continue
        if not (address.is_loopback or address.is_link_local):
            addresses.append(str(address))
    return addresses


def test_dashboard_listens_on_loopback_only_by_default(tmp_path):
    # The project's config says so: checked first, so that on a config that does not, no server
    # is started here that anyone on the network could reach.
    with open(REPO / ".streamlit" / "config.toml", "rb") as f:
        config = tomllib.load(f)
    assert config.get("server", {}).get("address") == "127.0.0.1"

    # And a plain `streamlit run app.py` (no --server.address) listens there only.
    port = free_port()
    env = {**os.environ, "CIFAR_DATA_DIR": str(tmp_path / "data"),
           "CIFAR_RUNS_DIR": str(tmp_path / "runs")}
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not listening_addresses(port):
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "streamlit did not listen in 60 s: " + \
                log.read_text()[-3000:]
            time.sleep(0.3)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # this machine: yes
        addresses = listening_addresses(port)
        assert all(a.is_loopback for a in addresses), addresses
        for other in this_machines_other_addresses():
            with pytest.raises(OSError):  # refused (or dropped), never accepted
                socket.create_connection((other, port), timeout=3).close()
    finally:
        server.terminate()  # by its own PID
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def button(at: AppTest, label: str):
    return next((b for b in at.button if b.label == label), None)


@pytest.mark.parametrize("where", ["environment", "secrets"])
def test_with_a_password_set_no_run_starts_without_it(data_dir, runs_dir, monkeypatch, where):
    at = AppTest.from_file(APP, default_timeout=60)
    if where == "environment":
        monkeypatch.setenv("CIFAR_DASHBOARD_PASSWORD", PASSWORD)
    else:
        at.secrets["CIFAR_DASHBOARD_PASSWORD"] = PASSWORD
    store = RunStore(runs_dir)

    # Without it, every page is the password form alone: nothing to start, stop or delete.
    for page in ("pages/train.py", "pages/runs.py", "pages/data.py", "pages/evaluate.py"):
        at.switch_page(page)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert [b.label for b in at.button] == ["Open the dashboard"], page
        assert not at.number_input and not at.selectbox, page
    at.switch_page("pages/train.py")
    at.text_input[0].input("not the password")
    button(at, "Open the dashboard").click()
    at.run()
    assert any("not the password" in e.value for e in at.error)
    assert button(at, "Start training") is None
    assert store.list() == []

    # With it, the page asked for opens, and a run starts.
    at.text_input[0].input(PASSWORD)
    button(at, "Open the dashboard").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.number_input(key="cfg_epochs").set_value(50).run()
    button(at, "Start training").click().run()
    [run] = store.list()
    assert run.origin == "dashboard"
    JobRunner(store).stop(run.id)
    assert scheduler.wait(store, run.id, timeout=60).status == "stopped"


# --- 2. Opening a data folder runs code hidden in it -------------------------------------------

class RunsCommand:
    """Unpickling this runs a shell command that creates `marker`, as the crafted data_batch_1
    of the report ran os.system."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def crafted(entry: dict, marker: Path) -> bytes:
    """`entry` pickled as the official files are (protocol 2), carrying the payload, and shown
    to be real: plain pickle.load runs it and the marker appears (then it is removed again)."""
    raw = pickle.dumps({**entry, "batch_label": RunsCommand(marker)}, protocol=2)
    pickle.loads(raw, encoding="latin1")
    assert marker.exists(), "the payload should run under plain pickle.load"
    marker.unlink()
    return raw


def crafted_batch(root: Path, marker: Path) -> bytes:
    """data_batch_1 of the folder written by write_cifar_batches, with the payload added."""
    want = expected_arrays(root)
    images, labels = want["train_x"][:20], want["train_y"][:20]
    return crafted({"data": images.reshape(len(images), -1),
                    "labels": [int(y) for y in labels]}, marker)


def test_batch_file_that_runs_code_is_refused_without_running_it(tmp_path):
    # As reported: `python -m cifar_core data` on a folder with a crafted data_batch_1.
    root = write_cifar_batches(tmp_path / "data")
    marker = tmp_path / "payload-ran"
    (root / BATCH_DIR / TRAIN_BATCHES[0]).write_bytes(crafted_batch(root, marker))

    result = subprocess.run([sys.executable, "-m", "cifar_core", "data", "--data-dir", str(root)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)

    assert not marker.exists(), "the payload ran"
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "'data_batch_1'" in said and "refused" in said and "Traceback" not in said, said


def test_batches_meta_that_runs_code_is_refused_without_running_it(tmp_path):
    root = write_cifar_batches(tmp_path / "data")
    marker = tmp_path / "payload-ran"
    meta = crafted({"label_names": list(OFFICIAL_CLASSES), "num_vis": 3072}, marker)
    (root / BATCH_DIR / "batches.meta").write_bytes(meta)

    with pytest.raises(CorruptDataError) as err:
        load_cifar10(root, download=False)

    assert not marker.exists(), "the payload ran"
    assert "'batches.meta'" in str(err.value) and "refused" in str(err.value)


def test_archive_with_a_batch_that_runs_code_is_refused_without_running_it(tmp_path):
    folder = write_cifar_batches(tmp_path / "unpacked")
    marker = tmp_path / "payload-ran"
    (folder / BATCH_DIR / TRAIN_BATCHES[0]).write_bytes(crafted_batch(folder, marker))
    root = tmp_path / "data"
    make_tar(root / OFFICIAL_ARCHIVE, folder, [BATCH_DIR])

    with pytest.raises(CorruptDataError) as err:
        load_cifar10(root, download=False)

    assert not marker.exists(), "the payload ran"
    assert "'data_batch_1'" in str(err.value) and OFFICIAL_ARCHIVE in str(err.value)


def python2_batch(images: np.ndarray, labels: np.ndarray) -> bytes:
    """A batch file as the official release's were written (Python 2 cPickle, protocol 2): the
    array through numpy.core.multiarray._reconstruct, numpy.ndarray and numpy.dtype, its pixels
    a Python 2 byte string (no _codecs.encode, which only Python 3 writes)."""
    rows = images.reshape(len(images), -1)
    pixels = rows.tobytes()

    def small(n: int) -> bytes:  # BININT1 or BININT2
        return b"K" + bytes([n]) if n < 256 else b"M" + n.to_bytes(2, "little")

    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
             b"(K\x01" + small(rows.shape[0]) + small(rows.shape[1]) + b"\x86"
             b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
             b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
             b"\x89T" + len(pixels).to_bytes(4, "little") + pixels + b"tb")
    label_list = b"](" + b"".join(small(int(y)) for y in labels) + b"e"
    return (b"\x80\x02}(U\x04data" + array + b"U\x06labels" + label_list
            + b"U\x0bbatch_labelU\x15training batch 1 of 5u.")


def test_keep_official_format_files_loading(tmp_path):
    # The files tests/conftest.py writes (Python 3, protocol 2), and a data_batch_1 written the
    # way the official release's were, decode to exactly what was written.
    root = write_cifar_batches(tmp_path / "data")
    want = expected_arrays(root)
    assert pickle.loads(python2_batch(want["train_x"][:20], want["train_y"][:20]),
                        encoding="latin1")["data"].shape == (20, 3072)  # a valid pickle
    (root / BATCH_DIR / TRAIN_BATCHES[0]).write_bytes(
        python2_batch(want["train_x"][:20], want["train_y"][:20]))

    cifar = load_cifar10(root, download=False)

    assert np.array_equal(cifar.train_images.numpy(), want["train_x"])
    assert np.array_equal(cifar.train_labels.numpy(), want["train_y"])
    assert np.array_equal(cifar.test_images.numpy(), want["test_x"])
    assert cifar.classes == OFFICIAL_CLASSES


# --- 11. A refused checkpoint's message passes torch's text through --------------------------

class CreatesFile:
    """Unpickling this creates `marker` (builtins.open): what a malicious checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious_checkpoint(path: Path, marker: Path) -> None:
    torch.save({"state_dict": Net().state_dict(), "extra": CreatesFile(marker)}, path)


def old_format_malicious_checkpoint(path: Path, marker: Path) -> None:
    """The same, in torch's format from before 1.6 (pickles in a row, no zip)."""
    torch.save({"state_dict": Net().state_dict(), "extra": CreatesFile(marker)}, path,
               _use_new_zipfile_serialization=False)


def malicious_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(CreatesFile(marker), protocol=2))


def truncated_checkpoint(path: Path, marker: Path) -> None:
    good = save_checkpoint(path.with_name("good.pth"), Net(), {}, OFFICIAL_CLASSES, {})
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])


def text_file(path: Path, marker: Path) -> None:
    path.write_text("these are my notes, not a network\n")


def zip_of_something_else(path: Path, marker: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "holiday photos")


@pytest.mark.parametrize("make, words", [
    (malicious_checkpoint, "holds code or objects that are not plain weights"),
    (old_format_malicious_checkpoint, "holds code or objects that are not plain weights"),
    (malicious_pickle, "holds code or objects that are not plain weights"),
    (truncated_checkpoint, "is cut short or damaged"),
    (text_file, "is not a PyTorch file."),
    (zip_of_something_else, "is not a PyTorch file: it is a zip archive of something else"),
], ids=["malicious checkpoint", "old-format malicious checkpoint", "malicious pickle",
        "truncated", "text file", "other zip"])
def test_checkpoint_refusal_says_what_is_wrong_in_our_words(tmp_path, make, words):
    path = tmp_path / "cifar_net.pth"
    marker = tmp_path / "payload-ran"
    make(path, marker)

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)

    message = str(err.value)
    assert not marker.exists(), "the payload ran"
    assert words in message and str(path) in message, message
    # Never torch's own text: it advises loading with weights_only=False, which would run the
    # file's code, and carries terminal colour codes.
    for torch_text in ("weights_only", "Re-running", "\x1b", "WeightsUnpickler", "torch.load"):
        assert torch_text not in message, message
    if make in (malicious_checkpoint, old_format_malicious_checkpoint, malicious_pickle):
        with contextlib.suppress(RuntimeError):  # a raw pickle is no checkpoint, once it ran
            torch.load(path, weights_only=False)
        assert marker.exists(), "the payload should run under an unsafe load"

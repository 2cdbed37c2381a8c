"""Small CIFAR-10 look-alikes in the official file formats, built in temporary folders.

Every image of class c is the colour PALETTE[c] plus noise, so the tutorial's network can
learn the classes in a fraction of a second, and tests can check that it does.

Below them, what several test modules share (no test module imports another): the fixtures of
the dashboard's data and runs folders, its pages through AppTest, a dashboard served for real,
and pictures and networks to check against.
"""

from __future__ import annotations

import html
import io
import ipaddress
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cifar_core.data.dataset import (
    BATCH_DIR,
    OFFICIAL_CLASSES,
    TEST_BATCH,
    TRAIN_BATCHES,
    ImageData,
)
from cifar_core.data.load import load_cifar10
from cifar_core.training.models import Net

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
                    [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
                    [128, 128, 0], [0, 0, 128]])
NOISE = 20  # pixel standard deviation around a class's colour

REPO = Path(__file__).resolve().parents[1]
# The real CIFAR-10 images, when this machine has them (see ../shared/data/README.md).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_ARCHIVE = SHARED_DATA / "cifar10-jpg.tar.gz"


def synthetic_images(labels: np.ndarray, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """uint8 (N, 3, size, size): each image its class's colour plus noise."""
    base = PALETTE[labels % len(PALETTE)][:, :, None, None]
    noise = rng.normal(0, NOISE, (len(labels), 3, size, size))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def write_batch(path: Path, images: np.ndarray, labels: np.ndarray, batch_label: str) -> None:
    """One file of the official python version: a pickled dict, images as (N, 3072) rows."""
    entry = {
        "batch_label": batch_label,
        "labels": [int(x) for x in labels],
        "data": images.reshape(len(images), 3 * 32 * 32),
        "filenames": [f"image_{i:05d}.png" for i in range(len(images))],
    }
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


def make_tar(archive: Path, top: Path, names: list[str]) -> Path:
    """A .tar.gz of top/<name> for each name, stored under <name>."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for name in names:
            tar.add(top / name, arcname=name)
    return archive


def write_cifar_batches(root: Path, train_per_batch: int = 20, test_size: int = 50,
                        seed: int = 0, classes: tuple[str, ...] = OFFICIAL_CLASSES) -> Path:
    """root/cifar-10-batches-py/ with data_batch_1..5, test_batch and batches.meta; what was
    written is also kept in root/expected.npz (see expected_arrays)."""
    batches = root / BATCH_DIR
    batches.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    k = len(classes)
    train_x, train_y = [], []
    for i, name in enumerate(TRAIN_BATCHES, start=1):
        labels = balanced_labels(train_per_batch, k, rng)
        images = synthetic_images(labels, rng)
        write_batch(batches / name, images, labels, f"training batch {i} of 5")
        train_x.append(images)
        train_y.append(labels)
    test_y = balanced_labels(test_size, k, rng)
    test_x = synthetic_images(test_y, rng)
    write_batch(batches / TEST_BATCH, test_x, test_y, "testing batch 1 of 1")
    with open(batches / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(classes), "num_cases_per_batch": train_per_batch,
                     "num_vis": 3072}, f, protocol=2)
    np.savez(root / "expected.npz", train_x=np.concatenate(train_x),
             train_y=np.concatenate(train_y), test_x=test_x, test_y=test_y)
    return root


def expected_arrays(root: Path) -> dict[str, np.ndarray]:
    """What write_cifar_batches wrote into root, as numpy arrays."""
    with np.load(root / "expected.npz") as f:
        return {k: f[k] for k in f.files}


def write_image_folders(root: Path, classes: tuple[str, ...] = ("cat", "dog", "frog"),
                        train_per_class: int = 4, test_per_class: int = 2,
                        odd_size: int = 40, seed: int = 0) -> Path:
    """root/train/<class>/*.png and root/test/<class>/*.png written with PIL; the last image
    of each class folder is odd_size x odd_size pixels, to check resizing to 32x32."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                size = odd_size if i == count - 1 else 32
                pixels = synthetic_images(np.array([c]), rng, size)[0]
                Image.fromarray(pixels.transpose(1, 2, 0)).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture
def make_cifar_batches(tmp_path_factory):
    """Factory: a fresh data folder holding the official python layout (write_cifar_batches)."""

    def make(root: Path | None = None, **kwargs) -> Path:
        root = Path(root) if root is not None else tmp_path_factory.mktemp("cifar")
        return write_cifar_batches(root, **kwargs)

    return make


@pytest.fixture
def make_image_folders(tmp_path_factory):
    """Factory: a fresh data folder holding an image-folder tree (write_image_folders)."""

    def make(root: Path | None = None, **kwargs) -> Path:
        root = Path(root) if root is not None else tmp_path_factory.mktemp("folders")
        return write_image_folders(root, **kwargs)

    return make


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads ./data, writes ./runs or fills ~/.cache by accident."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("CIFAR_DATA_DIR", str(tmp_path / "default-data"))
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "default-runs"))
    # A password in the developer's shell would put every page test behind the password form.
    monkeypatch.delenv("CIFAR_DASHBOARD_PASSWORD", raising=False)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """One decoded-and-cached synthetic data folder shared by the training, job and CLI tests:
    100 training images (20 per batch) and 50 test images, official class names."""
    root = tmp_path_factory.mktemp("synthetic")
    write_cifar_batches(root)
    load_cifar10(root, download=False)  # decode once; job processes then read the cache
    return root


@pytest.fixture(scope="session")
def tiny_data(synthetic_dir) -> ImageData:
    return load_cifar10(synthetic_dir, download=False)


def in_memory_data(train_n: int = 100, test_n: int = 50, num_classes: int = 10,
                   seed: int = 0) -> ImageData:
    """A ImageData built directly, for tests of training that need no files."""
    rng = np.random.default_rng(seed)
    train_y = balanced_labels(train_n, num_classes, rng)
    test_y = balanced_labels(test_n, num_classes, rng)
    return ImageData(
        train_images=torch.from_numpy(synthetic_images(train_y, rng)),
        train_labels=torch.from_numpy(train_y),
        test_images=torch.from_numpy(synthetic_images(test_y, rng)),
        test_labels=torch.from_numpy(test_y),
        classes=OFFICIAL_CLASSES[:num_classes], source="in memory",
    )


# --- for the dashboard's page tests and the CLI's ------------------------------------------------

@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A tiny official-format data folder, as the dashboard's data folder (CIFAR_DATA_DIR)."""
    root = write_cifar_batches(tmp_path / "data")
    monkeypatch.setenv("CIFAR_DATA_DIR", str(root))
    return root


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """An empty runs folder, as the dashboard's (CIFAR_RUNS_DIR)."""
    root = tmp_path / "runs"
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(root))
    return root


@pytest.fixture
def in_tmp_and_signals_kept(tmp_path, monkeypatch):
    """`train` writes ./cifar_net.pth by default and catches Ctrl-C while it runs."""
    monkeypatch.chdir(tmp_path)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of cifar_core.cli.main(argv)."""
    from cifar_core import cli

    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's way out
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """condition()'s first true value, asked every `interval` s; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def end_jobs_of(store) -> None:
    """Kill what a failing test left running of this store's jobs (and sweep drivers): only
    the processes this test process started for it, by pid."""
    from cifar_core.runs import jobs
    for proc in list(jobs._children.values()):
        if proc.poll() is None and str(store.root.resolve()) in " ".join(map(str, proc.args)):
            proc.kill()
            proc.wait()


def shown_tiles(at, which: int = 0) -> list[tuple[str, str]]:
    """An AppTest page's `which`-th set of picture tiles (layout.show_tiles: one HTML element,
    the pictures inline) as (data URL, caption); the URL is the picture's PNG."""
    body = at.get("html")[which].proto.body
    return [(source, html.unescape(caption)) for source, caption in
            re.findall(r'<img src="(data:image/png;base64,[^"]+)"[^>]*alt="([^"]*)"', body)]


# AppTest's element tree: which blocks (columns, rows) hold an element, to check where it sits.
def blocks_holding(node, wanted, path=()):
    """The chain of blocks from `node` down to the element for which wanted(element) holds."""
    for index, child in getattr(node, "children", {}).items():
        if wanted(child):
            return [*path, (node, index)]
        found = blocks_holding(child, wanted, (*path, (node, index)))
        if found:
            return found
    return None


# The browser tests' Chromium: Debian's, headless (never one Playwright downloads).
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, for one test module (Playwright drives it)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


# --- the dashboard's pages through AppTest (test_app and the other page tests) -------------------
# (streamlit and the run pipeline are imported where they are used: tests of the library alone,
# which share this file, do not load them)

APP = str(REPO / "app.py")
CLASSES = list(OFFICIAL_CLASSES)
TIMEOUT = 60


def finish_run(runs_dir: Path, data_dir: Path, **settings) -> str:
    """A run trained for real, in this process, on the tiny data."""
    from cifar_core.runs.pipeline import execute_run
    from cifar_core.runs.store import RunStore
    from cifar_core.training.config import TrainConfig

    store = RunStore(runs_dir)
    config = TrainConfig(**{"epochs": 1, "batch_size": 10, "log_every": 2, "seed": 0,
                            "lr": 0.01, **settings})
    run = store.create(config.to_dict(), str(data_dir), origin="test", status="running")
    return execute_run(store, run.id).id


def app_at(page: str | None = None) -> AppTest:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [i.value for i in at.info] + [s.value for s in at.success]
    parts += [t.value for t in at.title] + [h.value for h in at.subheader]
    return "\n".join(str(p) for p in parts)


def no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in texts(at)


def open_section(at: AppTest, label: str) -> None:
    """Evaluate: a click on one of its tabs (its state, as the click sets it)."""
    assert label in [t.label for t in at.tabs]
    at.session_state["eval_section"] = label
    at.run()
    no_traceback(at)


def store_with_every_state(runs_dir: Path, data_dir: Path, running_pid: int) -> str:
    """A run store with a completed run (trained here; its id is returned), stopped, diverged
    and failed ones, a queued one and a running one (process `running_pid`) made by an older
    version without the newer settings."""
    from cifar_core.runs.store import RunStore
    from cifar_core.training.config import TrainConfig

    done = finish_run(runs_dir, data_dir)
    store = RunStore(runs_dir)
    config = TrainConfig(epochs=1, batch_size=10, log_every=2, seed=0).to_dict()
    for status, message in (("stopped", "Stopped on request after 0 images."),
                            ("diverged", "The loss became NaN in epoch 1."),
                            ("failed", "The training process never started.")):
        run = store.create(config, str(data_dir), "dashboard", status="running")
        store.finish(run.id, status, message)
    store.create(config, str(data_dir), "dashboard")  # queued
    old = {k: v for k, v in config.items() if k not in ("model", "train_size")}
    store.create(old, str(data_dir), "cli", status="running", pid=running_pid)
    return done


# --- a dashboard served for real, on a free port of 127.0.0.1 (browser and security tests) ------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} writes it: hex, in 32-bit words of host (little) order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    return getattr(address, "ipv4_mapped", None) or address


def listening_addresses(port: int) -> list:
    """The local addresses of the sockets listening on `port`, from /proc/net/tcp{,6} (or ss)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if tables[0].exists():
        found = []
        for table in tables:
            if not table.exists():
                continue
            for line in table.read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.append(_proc_address(address))
        return found
    if shutil.which("ss"):
        found = []
        out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            host, _, local_port = line.split()[3].rpartition(":")
            if local_port == str(port):
                host = host.strip("[]").split("%")[0]
                found.append(ipaddress.ip_address("0.0.0.0" if host == "*" else host))
        return found
    pytest.skip("neither /proc/net/tcp nor ss: cannot see what the server listens on")


def start_server(data_dir: Path, runs_dir: Path) -> tuple[str, subprocess.Popen]:
    """`streamlit run app.py` on a free port of 127.0.0.1; its URL once it accepts connections
    (which opens no session: the first page request is still the test's to make)."""
    env = {**os.environ, "CIFAR_DATA_DIR": str(Path(data_dir).resolve()),
           "CIFAR_RUNS_DIR": str(runs_dir)}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         # Files edited while a test runs (the tree is a working one) are not reloaded: a
         # reloaded module's classes no longer pickle into st.cache_data (seen: StatsEvent).
         "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return f"http://127.0.0.1:{port}", proc
        except OSError:
            time.sleep(0.3)
    output = stop_server(proc)
    pytest.fail("streamlit did not start: " + output[-3000:])


# Streamlit's own server logs a traceback when a tab goes away mid-conversation: its websocket
# handler, none of our code (CI on b7169bb: 'Cannot call "send" once a close message has been
# sent'; a run on cd4f420: 'WebSocket is not connected. Need to call "accept" first', chained).
_CHAINED = ("During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:")
_FRAME = re.compile(r'^\s+File "([^"]+)", line \d+')
_LIBRARIES = ("/site-packages/", "/dist-packages/", "/lib/python3")


def _tracebacks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, after last) line of each chain of tracebacks in `lines`: 'Traceback (most recent
    call last):', its indented frames, its exception's line, and any chained after it."""
    chains, i = [], 0
    while i < len(lines):
        if lines[i] != "Traceback (most recent call last):":
            i += 1
            continue
        first = i
        while True:
            i += 1
            while i < len(lines) and lines[i][:1] in (" ", "\t"):
                i += 1
            i = min(i + 1, len(lines))  # the exception's line
            ahead = i
            while ahead < len(lines) and not lines[ahead].strip():
                ahead += 1
            if ahead < len(lines) and lines[ahead] in _CHAINED:
                ahead += 1
                while ahead < len(lines) and not lines[ahead].strip():
                    ahead += 1
                if ahead < len(lines) and lines[ahead] == "Traceback (most recent call last):":
                    i = ahead
                    continue
            break
        chains.append((first, i))
    return chains


def without_websocket_noise(output: str) -> str:
    """A server's log less the tracebacks of Streamlit's own websocket handling: each chain
    whose frames are all in installed libraries, one of them a websocket's. Any traceback
    through our code, or outside websockets, is kept."""
    lines = output.splitlines()
    for first, after in reversed(_tracebacks(lines)):
        frames = [m.group(1) for line in lines[first:after] if (m := _FRAME.match(line))]
        theirs = frames and all(any(part in path for part in _LIBRARIES) for path in frames)
        if theirs and any("websocket" in path for path in frames):
            if first and lines[first - 1] == "Exception in ASGI application":
                first -= 1
            del lines[first:after]
    return "\n".join(lines) + ("\n" if output.endswith("\n") else "")


def stop_server(proc: subprocess.Popen) -> str:
    """Stop the server (its own PID, politely first) and return what it printed, less the
    tracebacks of Streamlit's own websocket handling (without_websocket_noise)."""
    proc.terminate()
    try:
        output, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate(timeout=10)
    return without_websocket_noise(output)


# --- pictures and networks ----------------------------------------------------------------------

def jpeg(size=(256, 256), seed=0) -> bytes:
    """A photo-like JPEG: smooth colours with some noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]]
    pixels = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y) % 256], axis=-1)
    pixels = np.clip(pixels + rng.normal(0, 10, pixels.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


# The tutorial's step with autograd, beside which the written-out and split-batch steps are checked.
def twin_nets(seed: int = 0, classes: int = 10) -> tuple[Net, Net]:
    torch.manual_seed(seed)
    first, second = Net(classes), Net(classes)
    second.load_state_dict(first.state_dict())
    return first, second


def tutorial_step(model, optimizer, inputs, labels) -> float:
    optimizer.zero_grad()
    loss = nn.CrossEntropyLoss()(model(inputs), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def largest_difference(a: nn.Module, b: nn.Module) -> float:
    return max((x - y).abs().max().item()
               for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))

"""Issue 12, "Data that is not what it seems": one test per fault, named by its case.

Cases 8-10 failed before their fix (the fix's commit says so); the `keep_` cases have one clear
message already and must keep it. What the user sees is checked where they see it: the CLI's
lines (in this process, through cli.main), a job's log, the dashboard's Data page.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import make_tar, write_cifar_batches
from streamlit.testing.v1 import AppTest

import cifar_core.data.cache as cache_module
import cifar_core.data.catalog as data_module
from cifar_core import cli, scheduler
from cifar_core.data.cache import STALE_PARTIAL_S, cache_dir, cache_file
from cifar_core.data.dataset import BATCH_DIR, OFFICIAL_ARCHIVE, OFFICIAL_CLASSES
from cifar_core.data.load import load_cifar10
from cifar_core.data.sources import find_source
from cifar_core.errors import ImageFolderError
from cifar_core.runs import jobs
from cifar_core.runs.jobs import JobRunner
from cifar_core.runs.store import RunStore
from cifar_core.training.config import TrainConfig

APP = str(Path(__file__).resolve().parents[1] / "app.py")
# One short epoch on the tiny data: 100 images in minibatches of 10.
TRAIN = ["--epochs", "1", "--batch-size", "10", "--log-every", "5", "--seed", "0",
         "--device", "cpu"]


@pytest.fixture(autouse=True)
def in_tmp_offline_and_signals_kept(tmp_path, monkeypatch):
    """`train` writes ./cifar_net.pth and catches Ctrl-C; no case may fall back to a download
    (the faults here used to hide behind one)."""
    monkeypatch.chdir(tmp_path)

    def no_download(root, progress):
        raise AssertionError(f"load_cifar10 tried to download CIFAR-10 into {root}")

    monkeypatch.setattr(data_module, "download_cifar10", no_download)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of cli.main(argv)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code: int, err: str) -> str:
    """The one `error:` line of a command that failed as a user mistake should (exit status 2,
    no traceback)."""
    assert code == 2, err
    assert "Traceback" not in err, err
    [error] = [line for line in err.splitlines() if line.startswith("error:")]
    return error


def write_meta(root: Path, names: list[str]) -> None:
    with open(root / BATCH_DIR / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": 20, "num_vis": 3072}, f,
                    protocol=2)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- 8. class names and labels disagree -------------------------------------------------------

@pytest.mark.parametrize("layout", ["batches-folder", "batches-archive"])
def test_case8_batches_meta_with_too_few_names_is_refused_naming_the_file(capsys, tmp_path,
                                                                           layout):
    """Before: training crashed with 'IndexError: Target 6 is out of bounds' (two tracebacks)."""
    root = write_cifar_batches(tmp_path / "data")
    write_meta(root, list(OFFICIAL_CLASSES[:6]))
    if layout == "batches-archive":
        root = make_tar(tmp_path / "packed" / OFFICIAL_ARCHIVE, root, [BATCH_DIR]).parent

    code, out, err = run_cli(capsys, "train", "--data-dir", root, "--runs-dir",
                             tmp_path / "runs", *TRAIN)

    error = one_error_line(code, err)
    assert "'data_batch_1'" in error and "batches.meta" in error
    assert "go from 0 to 9" in error and "6 class names" in error and "0 to 5" in error
    assert "Accuracy" not in out
    [run] = RunStore(tmp_path / "runs").list()
    assert run.status == "failed" and "data_batch_1" in run.message


def test_case8_batches_meta_with_too_many_names_warns_of_the_unused_ones(tmp_path):
    """Before: two classes no image has were silently given network outputs."""
    root = write_cifar_batches(tmp_path / "data")
    write_meta(root, [*OFFICIAL_CLASSES, "unicorn", "dragon"])

    cifar = load_cifar10(root, download=False)

    assert len(cifar.classes) == 12
    [warning] = [w for w in cifar.warnings if "unicorn" in w]
    assert "unicorn (10)" in warning and "dragon (11)" in warning


def test_case8_a_cache_whose_labels_outrun_its_names_is_decoded_again(tmp_path):
    """Before: a cache holding 6 names for labels up to 9 was trusted, and training crashed."""
    root = write_cifar_batches(tmp_path / "data")
    load_cifar10(root, download=False)
    cached = cache_file(root, find_source(root))
    contents = torch.load(cached, weights_only=True)
    torch.save({**contents, "classes": list(OFFICIAL_CLASSES[:6])}, cached)

    cifar = load_cifar10(root, download=False)

    assert cifar.classes == OFFICIAL_CLASSES
    assert torch.load(cached, weights_only=True)["classes"] == list(OFFICIAL_CLASSES)


# --- 9. what the data says, and data that cannot be trained on --------------------------------

def unreadable_meta(tmp_path: Path) -> tuple[Path, str]:
    root = write_cifar_batches(tmp_path / "data")
    (root / BATCH_DIR / "batches.meta").write_bytes(b"not a pickle")
    return root, "warning: batches.meta is unreadable"


def skipped_image(tmp_path: Path, make_image_folders) -> tuple[Path, str]:
    root = make_image_folders(tmp_path / "data", classes=("cat", "dog"))
    (root / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG but truncated")
    return root, "warning: Skipped 1 unreadable image, e.g. "


WARNED = {"checksums": lambda tmp_path, _make: (write_cifar_batches(tmp_path / "data"),
                                                "warning: The checksums of data_batch_1"),
          "unreadable-meta": lambda tmp_path, _make: unreadable_meta(tmp_path),
          "skipped-image": skipped_image}


@pytest.mark.parametrize("warned", WARNED.values(), ids=WARNED.keys())
def test_case9_train_prints_the_datas_warnings_on_stderr(capsys, tmp_path, make_image_folders,
                                                         warned):
    """Before: `train` never showed them (only `data` did)."""
    root, words = warned(tmp_path, make_image_folders)

    code, out, err = run_cli(capsys, "train", "--data-dir", root, "--runs-dir",
                             tmp_path / "runs", *TRAIN)

    assert code == 0, err
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert any(ln.startswith(words) for ln in warnings), err
    assert "warning:" not in out


def test_case9_train_json_reports_each_warning_as_an_event(capsys, synthetic_dir, tmp_path):
    """Before: no warning event; the warning was nowhere in the output."""
    code, out, _ = run_cli(capsys, "train", "--data-dir", synthetic_dir, "--runs-dir",
                           tmp_path / "runs", "--json", *TRAIN)

    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    [warning] = [line for line in lines if line["kind"] == "warning"]
    assert set(warning) == {"kind", "message"}
    assert warning["message"].startswith("The checksums of data_batch_1")
    assert lines.index(warning) < [line["kind"] for line in lines].index("stats")


def test_case9_a_jobs_log_has_the_datas_warnings(tmp_path, synthetic_dir):
    """Before: a run started from the dashboard logged no warning."""
    store = RunStore(tmp_path / "runs")
    runner = JobRunner(store, max_parallel=1)
    run = runner.start(TrainConfig(epochs=1, batch_size=20, log_every=1, seed=0,
                                   device="cpu"), synthetic_dir)
    try:
        run = scheduler.wait(runner.store, run.id, timeout=120)
    finally:
        for proc in list(jobs._children.values()):
            if proc.poll() is None and str(store.root.resolve()) in " ".join(proc.args):
                proc.kill()
                proc.wait()

    assert run.status == "completed", run.message
    log = (store.run_dir(run.id) / jobs.LOG_NAME).read_text()
    assert "warning: The checksums of data_batch_1" in log


def test_case9_the_data_page_shows_the_datas_warnings(tmp_path, monkeypatch):
    """Already so before (kept): every page that shows data captions its warnings."""
    root, _ = unreadable_meta(tmp_path)
    monkeypatch.setenv("CIFAR_DATA_DIR", str(root))
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/data.py")
    at.run()

    assert not at.exception, [e.value for e in at.exception]
    captions = [c.value for c in at.caption]
    assert any("batches.meta is unreadable" in c for c in captions), captions
    assert any("checksums" in c for c in captions), captions


@pytest.mark.parametrize("command", ["train", "data"])
def test_case9_a_tree_of_one_class_is_refused(capsys, tmp_path, make_image_folders, command):
    """Before: it trained to 100 % (every image is a cat) with no word."""
    root = make_image_folders(tmp_path / "data", classes=("cat",))
    extra = ["--runs-dir", tmp_path / "runs", *TRAIN] if command == "train" else []

    code, out, err = run_cli(capsys, command, "--data-dir", root, *extra)

    error = one_error_line(code, err)
    assert "only one class (cat)" in error and "at least two" in error
    assert "train/<class>/" in error
    assert "Accuracy" not in out
    with pytest.raises(ImageFolderError):
        load_cifar10(root, download=False)


def test_case9_two_classes_are_enough(tmp_path, make_image_folders):
    """A guard (passed before too): the one-class check leaves two classes alone."""
    root = make_image_folders(tmp_path / "data", classes=("cat", "dog"))
    assert load_cifar10(root, download=False).classes == ("cat", "dog")


@pytest.mark.parametrize("missing", ["test", "train"])
def test_case9_an_image_tree_without_test_or_train_says_which_is_missing(
        capsys, tmp_path, make_image_folders, missing):
    """Before: no source was found, so CIFAR-10 was downloaded into the folder instead."""
    root = make_image_folders(tmp_path / "data", classes=("cat", "dog"))
    for image in (root / missing).rglob("*.png"):
        image.unlink()
    for folder in sorted((root / missing).rglob("*"), reverse=True):
        folder.rmdir()
    (root / missing).rmdir()
    there = "train" if missing == "test" else "test"

    code, _, err = run_cli(capsys, "data", "--data-dir", root)

    error = one_error_line(code, err)
    assert f"has a {there}/ folder but no {missing}/ folder" in error
    assert not (root / OFFICIAL_ARCHIVE).exists() and not (root / BATCH_DIR).exists()


# --- 10. partial cache files left by an interrupted first decode -------------------------------

def partial_cache(root: Path, pid: int, age_s: float = 0.0) -> Path:
    """A partial cache file as process pid leaves it when it is killed while writing."""
    cached = cache_file(root, find_source(root))
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".tmp{pid}")
    partial.write_bytes(b"\0" * 1_000_000)
    then = time.time() - age_s
    os.utime(partial, (then, then))
    return partial


def test_case10_a_killed_decodes_partial_cache_is_removed_on_the_next_load(tmp_path):
    """Before: the 30-75 MB file stayed forever, one more after each interrupted decode."""
    root = write_cifar_batches(tmp_path / "data")
    partial = partial_cache(root, dead_pid())

    load_cifar10(root, download=False)

    assert not partial.exists()
    assert [p.name for p in cache_dir(root).iterdir()] == [cache_file(root, find_source(root)).name]


def test_case10_a_partial_cache_untouched_for_an_hour_is_removed_though_its_pid_runs(tmp_path):
    """Before: kept. A pid can be reused; a writer at work touches its file all the time."""
    root = write_cifar_batches(tmp_path / "data")
    partial = partial_cache(root, os.getppid(), age_s=STALE_PARTIAL_S + 60)

    load_cifar10(root, download=False)

    assert not partial.exists()


def test_case10_a_partial_cache_that_a_live_process_writes_is_kept(tmp_path):
    """Another process's write in progress is left alone (so before too); once it is gone, its
    partial file goes (before: never)."""
    root = write_cifar_batches(tmp_path / "data")
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        partial = partial_cache(root, writer.pid)
        load_cifar10(root, download=False)
        assert partial.exists()
    finally:
        writer.kill()
        writer.wait()

    load_cifar10(root, download=False)  # the writer is gone now
    assert not partial.exists()


def test_case10_a_cache_write_cut_short_leaves_no_partial_file(tmp_path, monkeypatch):
    """Before: Ctrl-C during the first decode's cache write left the partial file behind."""
    root = write_cifar_batches(tmp_path / "data")

    def interrupted_save(obj, path):
        Path(path).write_bytes(b"\0" * 1_000_000)
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        load_cifar10(root, download=False)

    assert list(cache_dir(root).glob("*.tmp*")) == []


# --- kept: faults that already had one clear message -------------------------------------------

def test_keep_a_truncated_batch_file_is_named(capsys, tmp_path):
    root = write_cifar_batches(tmp_path / "data")
    batch = root / BATCH_DIR / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[: batch.stat().st_size // 2])

    error = one_error_line(*run_cli(capsys, "data", "--data-dir", root)[::2])

    assert "'data_batch_2' is truncated or damaged" in error


def test_keep_a_missing_batch_file_is_named(capsys, tmp_path):
    root = write_cifar_batches(tmp_path / "data")
    (root / BATCH_DIR / "data_batch_3").unlink()

    error = one_error_line(*run_cli(capsys, "data", "--data-dir", root)[::2])

    assert "'data_batch_3' is missing" in error


@pytest.mark.parametrize("inside", ["other-files", "not-a-tar"])
def test_keep_an_archive_of_something_else_is_named(capsys, tmp_path, inside):
    root = tmp_path / "data"
    archive = root / OFFICIAL_ARCHIVE
    if inside == "other-files":
        (tmp_path / "notes").mkdir()
        (tmp_path / "notes" / "a.txt").write_text("hello")
        make_tar(archive, tmp_path, ["notes"])
        words = f"'data_batch_1' is missing from {archive}"
    else:
        root.mkdir()
        archive.write_bytes(b"<html>Not found</html>")
        words = f"The archive {archive} is truncated or damaged"

    error = one_error_line(*run_cli(capsys, "data", "--data-dir", root)[::2])

    assert words in error


def test_keep_a_data_folder_that_is_a_file_is_refused(capsys, tmp_path):
    path = tmp_path / "data"
    path.write_text("oops")

    error = one_error_line(*run_cli(capsys, "data", "--data-dir", path)[::2])

    assert f"The data folder {path} is a file" in error

"""Getting CIFAR-10 from the internet (torchvision's download, here or in the background), and
what the data folder holds meanwhile, in words for the dashboard.

The download reports how it goes in a small JSON file of its own in the data folder
(`.cifar_core_download.json`: state downloading, failed or done, message, pid, time), so that
whoever started it, here or in another process, can tell the user why the last try failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cifar_core.data.cache import cache_file
from cifar_core.data.dataset import (
    DOWNLOAD_MARKER,
    OFFICIAL_ARCHIVE,
    OFFICIAL_ARCHIVE_BYTES,
    OFFLINE_HELP,
    Progress,
    default_data_dir,
)
from cifar_core.data.registry import DEFAULT_DATASET, DatasetSpec, dataset_spec
from cifar_core.data.sources import Source, find_source
from cifar_core.errors import DataError, DataNotFoundError
from cifar_core.processes import pid_alive

DOWNLOAD_STATUS_FILE = ".cifar_core_download.json"
# The background download's printed output, for people; the status file is what code reads.
DOWNLOAD_LOG = ".cifar_core_download.log"


@dataclass(frozen=True)
class LastDownload:
    """What the status file says about the latest download in a data folder."""

    state: str  # downloading, failed or done
    message: str
    pid: int
    time: float
    dataset: str = DEFAULT_DATASET  # (status files written before there were others: CIFAR-10)


def _report(root: Path, state: str, message: str, pid: int | None = None,
            dataset: str = DEFAULT_DATASET) -> None:
    record = {"state": state, "message": message, "pid": pid or os.getpid(), "time": time.time(),
              "dataset": dataset}
    path = root / DOWNLOAD_STATUS_FILE
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    # Replaced in one step, so a reader never sees half a file; a status we cannot write must
    # not hide the download's own outcome (or its error).
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)


def last_download(root: Path | str) -> LastDownload | None:
    """The latest download's state from its status file, or None if there is none (or unreadable).
    A download that was killed leaves 'downloading' behind: download_status tells it by its pid."""
    try:
        record = json.loads((Path(root) / DOWNLOAD_STATUS_FILE).read_text())
        return LastDownload(str(record["state"]), str(record.get("message", "")),
                            int(record.get("pid", 0)), float(record.get("time", 0.0)),
                            str(record.get("dataset", DEFAULT_DATASET)))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def download_failure_reason(exc: BaseException, title: str = "CIFAR-10") -> str:
    """Why a download (of the data set called `title`) failed, in words that end a sentence
    ("... failed: <reason>")."""
    if isinstance(exc, urllib.error.URLError):
        cause = exc.reason
        detail = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
        if isinstance(cause, socket.gaierror) or "Name or service not known" in detail:
            return (f"this machine cannot reach the {title} server (its name could not be "
                    f"looked up: {detail}). Is it connected to the internet?")
        return f"the {title} server could not be reached ({detail})."
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}."
    return f"{str(exc).rstrip('.')}."


def download_cifar10(root: Path | str, progress: Progress) -> Source:
    """The tutorial's own download: torchvision.datasets.CIFAR10(root, download=True); returns the
    source it left. DataNotFoundError, with the offline options, if it fails."""
    from torchvision.datasets import CIFAR10

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    marker = root / DOWNLOAD_MARKER
    progress(f"Downloading CIFAR-10 (170 MB) into {root} ...")
    try:
        marker.write_text(str(os.getpid()))
        _report(root, "downloading", f"Downloading CIFAR-10 into {root}.")
        CIFAR10(root=str(root), train=True, download=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        partial = root / OFFICIAL_ARCHIVE
        if partial.is_file() and partial.stat().st_size < OFFICIAL_ARCHIVE_BYTES:
            partial.unlink(missing_ok=True)
        reason = download_failure_reason(exc)
        error = DataNotFoundError(
            f"No CIFAR-10 data in {root.resolve()} and the download failed: {reason} "
            + OFFLINE_HELP
        )
        # The status file keeps the reason alone: the dashboard puts it after its own "No
        # CIFAR-10 data in ..." and the offline options (they were there twice).
        _report(root, "failed", reason)
        raise error from None
    finally:
        marker.unlink(missing_ok=True)
    source = find_source(root)
    if source is None:
        error = DataNotFoundError(f"The download left no data in {root}. " + OFFLINE_HELP)
        _report(root, "failed", f"it left no data in {root}.")
        raise error
    _report(root, "done", f"Downloaded {source.describe()}.")
    return source


def download_with_torchvision(root: Path | str, dataset: str, title: str,
                               fetch: Callable[[str], object],
                               find: Callable[[Path], Source | None], offline_help: str,
                               progress: Progress) -> Source:
    """Another data set's download by torchvision: `fetch(root)` is its dataset class called
    with download=True; returns the source `find` then sees in the data folder. Reports to the
    status file as CIFAR-10's download does. DataNotFoundError, with `offline_help`, if it
    fails or leaves nothing `find` knows."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    marker = root / DOWNLOAD_MARKER
    progress(f"Downloading {title} into {root} ...")
    try:
        marker.write_text(str(os.getpid()))
        _report(root, "downloading", f"Downloading {title} into {root}.", dataset=dataset)
        fetch(str(root))
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        reason = download_failure_reason(exc, title)
        _report(root, "failed", reason, dataset=dataset)
        raise DataNotFoundError(
            f"No {title} data in {root.resolve()} and the download failed: {reason} "
            f"{offline_help}") from None
    finally:
        marker.unlink(missing_ok=True)
    source = find(root)
    if source is None:
        _report(root, "failed", f"it left no data in {root}.", dataset=dataset)
        raise DataNotFoundError(f"The download left no {title} data in {root}. {offline_help}")
    _report(root, "done", f"Downloaded {source.describe()}.", dataset=dataset)
    return source


# Popen objects of the background downloads this process started, polled by download_status so
# that a finished one does not stay a zombie.
_downloaders: dict[int, subprocess.Popen] = {}


def start_data_download(data_dir: Path | str | None = None,
                        dataset: str = DEFAULT_DATASET) -> int:
    """Download and decode the data set `dataset` (CIFAR-10 unless told) in a background process
    (`python -m cifar_core data --dataset NAME`); follow it with data_status(data_dir, dataset).
    Returns the process id."""
    spec = dataset_spec(dataset, data_dir)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "cifar_core", "data", "--data-dir", str(data_dir.resolve())]
    if spec.name != DEFAULT_DATASET:
        command += ["--dataset", spec.name]
    with open(data_dir / DOWNLOAD_LOG, "wb") as log:  # a fresh log: only this try's output
        proc = subprocess.Popen(
            command,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=str(Path(__file__).resolve().parents[2]))
    _downloaders[proc.pid] = proc
    # Written here too (the child rewrites both), so the status says "downloading" at once, and
    # an earlier try's failure is not shown as this one's if the child dies before it reports.
    (data_dir / DOWNLOAD_MARKER).write_text(str(proc.pid))
    _report(data_dir, "downloading", f"Downloading {spec.title} into {data_dir}.", pid=proc.pid,
            dataset=spec.name)
    return proc.pid


def download_status(root: Path, dataset: str | None = None) -> float | None:
    """Fraction of the data set's download done so far, or None if no download of it (of any
    data set: `dataset` None) is running in the data folder."""
    for pid, proc in list(_downloaders.items()):
        if proc.poll() is not None:
            del _downloaders[pid]
    root = Path(root)
    marker = root / DOWNLOAD_MARKER
    try:
        pid = int(marker.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    archive = root / OFFICIAL_ARCHIVE
    last = last_download(root)
    downloading = last.dataset if last is not None else DEFAULT_DATASET
    if pid and not pid_alive(pid):
        # The downloader died: drop what it left half done, so the user can simply try again.
        marker.unlink(missing_ok=True)
        if (downloading == DEFAULT_DATASET and archive.is_file()
                and archive.stat().st_size < OFFICIAL_ARCHIVE_BYTES):
            archive.unlink(missing_ok=True)
        return None
    if dataset is not None and dataset != downloading:
        return None
    if downloading == DEFAULT_DATASET:
        size = archive.stat().st_size if archive.exists() else 0
        return min(1.0, size / OFFICIAL_ARCHIVE_BYTES)
    try:
        total = dataset_spec(downloading, root).download_bytes
        since = marker.stat().st_mtime - 1
    except (DataError, OSError):
        return 0.0
    return min(1.0, _downloaded_bytes(root, since) / total) if total else 0.0


def _downloaded_bytes(root: Path, since: float) -> int:
    """Bytes of the files torchvision's downloads write (.gz, .mat, in the data folder or its
    <Name>/raw/ folders) changed since `since`: how far a download has got."""
    done = 0
    for pattern in ("*.gz", "*.mat", "*/raw/*.gz"):
        for f in root.glob(pattern):
            with contextlib.suppress(OSError):
                st = f.stat()
                if st.st_mtime >= since:
                    done += st.st_size
    return done


@dataclass(frozen=True)
class DataStatus:
    """What the data folder holds of a data set, in words: ready (decoded and cached), found (a
    copy, not decoded yet), downloading or missing."""

    state: str
    message: str
    fraction: float | None = None  # of the download, while downloading
    downloadable: bool = False  # missing, but a download can fetch it


def _found(spec: DatasetSpec, root: Path) -> Source | None:
    """The data set's copy here, or None (also where looking for it raises: loading says why)."""
    try:
        return find_source(root) if spec.name == DEFAULT_DATASET else spec.find(root)
    except DataError:
        return None


def dataset_state(spec: DatasetSpec, root: Path | str | None = None) -> DataStatus:
    """Cheap look at what the data folder holds of the data set `spec` (no decoding), for a
    status line: the copy found and where, cached, being downloaded, or missing."""
    root = Path(root) if root is not None else default_data_dir()
    fraction = download_status(root, spec.name)
    if fraction is not None:
        size = f"{spec.download_bytes / 1e6:,.0f} MB" if spec.download_bytes else "its files"
        return DataStatus("downloading", f"Downloading {spec.title} into {root}: "
                                         f"{fraction:.0%} of {size}.", fraction)
    source = _found(spec, root)
    if source is None:
        last = last_download(root)
        failed = (f" The last download failed: {last.message}"
                  if last is not None and last.state == "failed" and last.dataset == spec.name
                  else "")
        return DataStatus("missing", f"No {spec.title} data in {root.resolve()}.{failed}",
                          downloadable=spec.download is not None)
    if cache_file(root, source, spec.name).is_file():
        return DataStatus("ready", f"Ready: {source.describe()}.")
    # (CIFAR-10's decode was measured; the others' take from a second to minutes.)
    how_long = " (about 10 s)" if spec.name == DEFAULT_DATASET else ""
    return DataStatus("found", f"Found {source.describe()}; it is decoded once on first use"
                               f"{how_long}.")


def data_status(root: Path | str | None = None, dataset: str = DEFAULT_DATASET) -> DataStatus:
    """dataset_state of the data set named `dataset` (CIFAR-10 unless told) in the data folder
    `root` (None: the default one)."""
    return dataset_state(dataset_spec(dataset, root), root)


def is_cached(root: Path | None = None, dataset: str = DEFAULT_DATASET) -> bool:
    """True when the data set is decoded and cached, so loading takes well under a second."""
    return data_status(root, dataset).state == "ready"

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
from cifar_core.data.sources import Source, find_source
from cifar_core.errors import DataNotFoundError
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


def _report(root: Path, state: str, message: str, pid: int | None = None) -> None:
    record = {"state": state, "message": message, "pid": pid or os.getpid(), "time": time.time()}
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
                            int(record.get("pid", 0)), float(record.get("time", 0.0)))
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


def download_with_torchvision(root: Path | str, title: str, fetch: Callable[[str], object],
                               find: Callable[[Path], Source | None], offline_help: str,
                               progress: Progress) -> Source:
    """Another data set's download by torchvision: `fetch(root)` is its dataset class called
    with download=True; returns the source `find` then sees in the data folder.
    DataNotFoundError, with `offline_help`, if it fails or leaves nothing `find` knows."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    progress(f"Downloading {title} into {root} ...")
    try:
        fetch(str(root))
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise DataNotFoundError(
            f"No {title} data in {root.resolve()} and the download failed: "
            f"{download_failure_reason(exc, title)} {offline_help}") from None
    source = find(root)
    if source is None:
        raise DataNotFoundError(f"The download left no {title} data in {root}. {offline_help}")
    return source


# Popen objects of the background downloads this process started, polled by download_status so
# that a finished one does not stay a zombie.
_downloaders: dict[int, subprocess.Popen] = {}


def start_data_download(data_dir: Path | str | None = None) -> int:
    """Download and decode CIFAR-10 in a background process (`python -m cifar_core data`);
    follow it with data_status(). Returns the process id."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / DOWNLOAD_LOG, "wb") as log:  # a fresh log: only this try's output
        proc = subprocess.Popen(
            [sys.executable, "-m", "cifar_core", "data", "--data-dir", str(data_dir.resolve())],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=str(Path(__file__).resolve().parents[2]))
    _downloaders[proc.pid] = proc
    # Written here too (the child rewrites both), so the status says "downloading" at once, and
    # an earlier try's failure is not shown as this one's if the child dies before it reports.
    (data_dir / DOWNLOAD_MARKER).write_text(str(proc.pid))
    _report(data_dir, "downloading", f"Downloading CIFAR-10 into {data_dir}.", pid=proc.pid)
    return proc.pid


def download_status(root: Path) -> float | None:
    """Fraction of the official archive downloaded so far, or None if no download is running."""
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
    if pid and not pid_alive(pid):
        # The downloader died: drop what it left half done, so the user can simply try again.
        marker.unlink(missing_ok=True)
        if archive.is_file() and archive.stat().st_size < OFFICIAL_ARCHIVE_BYTES:
            archive.unlink(missing_ok=True)
        return None
    size = archive.stat().st_size if archive.exists() else 0
    return min(1.0, size / OFFICIAL_ARCHIVE_BYTES)


@dataclass(frozen=True)
class DataStatus:
    """What the data folder holds, in words: ready, found, downloading or missing."""

    state: str
    message: str
    fraction: float | None = None  # of the download, while downloading


def data_status(root: Path | str | None = None) -> DataStatus:
    """Cheap look at the data folder (no decoding), for a status line."""
    root = Path(root) if root is not None else default_data_dir()
    fraction = download_status(root)
    if fraction is not None:
        return DataStatus("downloading", f"Downloading CIFAR-10 into {root}: {fraction:.0%} "
                                         f"of 170 MB.", fraction)
    source = find_source(root)
    if source is None:
        last = last_download(root)
        failed = (f" The last download failed: {last.message}"
                  if last is not None and last.state == "failed" else "")
        return DataStatus("missing", f"No CIFAR-10 data in {root.resolve()}.{failed}")
    if cache_file(root, source).is_file():
        return DataStatus("ready", f"Ready: {source.describe()}.")
    return DataStatus("found", f"Found {source.describe()}; it is decoded once on first use "
                               "(about 10 s).")


def is_cached(root: Path | None = None) -> bool:
    """True when the data is decoded and cached, so loading takes well under a second."""
    root = Path(root) if root is not None else default_data_dir()
    source = find_source(root)
    return source is not None and cache_file(root, source).is_file()

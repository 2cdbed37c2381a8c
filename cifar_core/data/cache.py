"""The decoded tensors kept on disk, so a data folder is decoded only once.

The cache lives next to the data (or in `~/.cache/cifar_core` when that folder is read-only) and
is keyed by the source's file sizes and times, so a changed source is decoded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from pathlib import Path

import numpy as np
import torch

from cifar_core.data.dataset import SPLITS
from cifar_core.data.sources import Source
from cifar_core.processes import pid_alive

# Bump when the cache's contents change meaning, so old caches are decoded again.
CACHE_VERSION = 1
# A partial cache file untouched this long is stale even if a process with its writer's pid
# runs (pids are reused); a writer at work touches it every moment (seconds for the whole file).
STALE_PARTIAL_S = 3600.0


def cache_dir(root: Path) -> Path:
    """Where decoded tensors are kept: next to the data, or in ~/.cache if that is read-only."""
    root = Path(root)
    # os.access alone says yes to root (uid 0) even where the owner made the folder read-only.
    if os.access(root, os.W_OK) and root.stat().st_mode & 0o222:
        return root / ".cifar_core_cache"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cifar_core" / hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]


def fingerprint(source: Source) -> str:
    """Changes when any file of the source is added, removed, resized or touched."""
    h = hashlib.sha1(f"{CACHE_VERSION}|{source.kind}|{source.path.resolve()}".encode())
    if source.files:  # a folder holding other things too (the data folder itself)
        files = list(source.files)
    elif source.kind == "folder-dir":  # only the image trees: the cache lives beside them
        files = [f for split in SPLITS for f in _walk_files(source.path / split)]
    else:
        files = [source.path] if source.path.is_file() else _walk_files(source.path)
    for f in files:
        st = f.stat()
        h.update(f"|{f.relative_to(source.path.parent)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _walk_files(top: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        out.extend(Path(dirpath) / f for f in sorted(filenames))
    return out


def cache_file(root: Path, source: Source, dataset: str = "cifar10") -> Path:
    """The cache file of this data set's source in this data folder (it may not exist yet)."""
    return cache_dir(root) / f"{dataset}-{fingerprint(source)}.pt"


def _same_dataset(cache: Path, other: Path) -> bool:
    """Whether `other` is a cache file of the data set `cache` is of (name + '-' + 16 hex)."""
    dataset = cache.name[: -len("-0123456789abcdef.pt")]
    return re.fullmatch(re.escape(dataset) + r"-[0-9a-f]{16}\.pt", other.name) is not None


def drop_caches(root: Path, dataset: str) -> list[Path]:
    """Delete the cache files of the data set `dataset` in this data folder (a data set that is
    forgotten); returns what it deleted."""
    folder = cache_dir(root) if Path(root).is_dir() else None
    if folder is None or not folder.is_dir():
        return []
    pattern = re.compile(re.escape(dataset) + r"-[0-9a-f]{16}\.pt")
    dropped = [f for f in folder.glob("*.pt") if pattern.fullmatch(f.name)]
    for f in dropped:
        with contextlib.suppress(OSError):
            f.unlink()
    return dropped


def write_cache(path: Path, decoded: dict) -> None:
    """Save decoded arrays atomically and drop older caches; a failure is silently skipped."""
    tmp = _partial_file(path, os.getpid())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                    for k, v in decoded.items()}, tmp)
        os.replace(tmp, path)
        for old in path.parent.glob("*.pt"):
            if old != path and _same_dataset(path, old):
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a cache we cannot write only costs time on the next start
    finally:
        # A write cut short (Ctrl-C, a full disk) leaves no partial file; a killed process
        # does, and remove_stale_partials clears it on a later load.
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _partial_file(path: Path, pid: int) -> Path:
    """Where process pid writes the cache file path before renaming it into place."""
    return path.with_suffix(f".tmp{pid}")


def remove_stale_partials(folder: Path) -> list[Path]:
    """Delete the partial cache files in folder that no process is writing any more: those
    whose writer has exited, or untouched for STALE_PARTIAL_S. Returns what it deleted."""
    removed = []
    for partial in Path(folder).glob("*-*.tmp*"):
        pid = partial.suffix.removeprefix(".tmp")
        try:
            untouched_s = time.time() - partial.stat().st_mtime
        except OSError:
            continue  # renamed into place or removed meanwhile
        if not pid.isdigit():
            continue  # not one of ours
        if pid_alive(int(pid)) and untouched_s < STALE_PARTIAL_S:
            continue  # its writer may be at it now
        with contextlib.suppress(OSError):
            partial.unlink()
            removed.append(partial)
    return removed


def read_cache(path: Path) -> dict | None:
    """The decoded tensors saved at path, or None if they are missing or unreadable."""
    try:
        return torch.load(path, weights_only=True)
    except Exception:
        return None  # damaged or foreign: decode again

"""The decoded tensors kept on disk, so a data folder is decoded only once.

The cache lives next to the data (or in `~/.cache/cifar_core` when that folder is read-only) and
is keyed by the source's file sizes and times, so a changed source is decoded again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from cifar_core.dataset import SPLITS
from cifar_core.sources import Source

# Bump when the cache's contents change meaning, so old caches are decoded again.
CACHE_VERSION = 1


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
    if source.kind == "folder-dir":  # only the image trees: the cache lives beside them
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


def cache_file(root: Path, source: Source) -> Path:
    """The cache file of this source in this data folder (it may not exist yet)."""
    return cache_dir(root) / f"cifar10-{fingerprint(source)}.pt"


def write_cache(path: Path, decoded: dict) -> None:
    """Save decoded arrays atomically and drop older caches; a failure is silently skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                    for k, v in decoded.items()}, tmp)
        os.replace(tmp, path)
        for old in path.parent.glob("cifar10-*.pt"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a cache we cannot write only costs time on the next start


def read_cache(path: Path) -> dict | None:
    """The decoded tensors saved at path, or None if they are missing or unreadable."""
    try:
        return torch.load(path, weights_only=True)
    except Exception:
        return None  # damaged or foreign: decode again

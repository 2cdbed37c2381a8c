"""What can go wrong with the run store's file and folder, in the user's words, and the mending.

A failed SQLite or file call becomes a StoreError that says what happened and what to do. A
store file that is not a database (garbage, truncated) is moved aside to
`runs.sqlite.broken-<time>`; cifar_core.runs.store then starts a fresh one and puts back what this
module can still find: the rows the old file still gives, and the runs whose folders hold a
saved network. A read-only folder whose store can still be read is opened read-only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from cifar_core.data.own_sets import SETS_FOLDER  # the Teach page's sets, not a run
from cifar_core.errors import StoreError
from cifar_core.runs.folders import is_plain_name

BROKEN_INFIX = ".broken-"
LOCK_NAME = ".runs.sqlite.lock"
# SQLite's extra files beside a WAL-mode database; they belong to the file they came with.
SIDE_FILES = ("-wal", "-shm")
CHECKPOINT_NAME = "cifar_net.pth"  # as training.checkpoint.DEFAULT_NAME (torch-free here)
# SQLite reports a full disk under its WAL as an I/O error (SQLITE_IOERR_WRITE and kin), not
# SQLITE_FULL: with less free space than this on the folder's disk, that is what it is.
FULL_BELOW_BYTES = 32 * 2**20


def read_only_message(folder: Path) -> str:
    return (f"The runs folder {folder} cannot be written (it is read-only, or belongs to another "
            "user). To train, set CIFAR_RUNS_DIR (or --runs-dir) to a folder you can write, e.g. "
            f"CIFAR_RUNS_DIR=$HOME/cifar-runs, or make {folder} writable.")


def full_message(folder: Path, detail: str) -> str:
    return (f"The disk holding the runs folder {folder} is full ({detail}). Free some space, or "
            "set CIFAR_RUNS_DIR (or --runs-dir) to a folder on another disk.")


def damaged_message(db_path: Path, detail: str) -> str:
    return (f"The run store {db_path} is damaged ({detail}). Open it again (any "
            "'python -m cifar_core runs' command, or restart the dashboard): the damaged file is "
            "then moved aside and a fresh store started with the runs that can be recovered.")


def store_error(exc: sqlite3.Error, db_path: Path) -> StoreError:
    """The StoreError a failed SQLite call on db_path stands for."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc) or type(exc).__name__
    folder = db_path.parent
    if (name.startswith("SQLITE_READONLY") or "readonly" in text
            or (name.startswith("SQLITE_CANTOPEN") and not os.access(folder, os.W_OK))):
        return StoreError(read_only_message(folder), "read_only", text)
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return StoreError(full_message(folder, text), "full", text)
    if name.startswith("SQLITE_IOERR") or "disk I/O error" in text:
        free = free_bytes(folder)
        if free is not None and free < FULL_BELOW_BYTES:
            return StoreError(full_message(folder, f"{text}; {free:,} bytes free"), "full",
                              text)
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "malformed" in text \
            or "not a database" in text:
        return StoreError(damaged_message(db_path, text), "damaged", text)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return StoreError(f"The run store {db_path} stayed locked by another process for 30 s "
                          f"({text}). Try again in a moment.", "busy", text)
    return StoreError(f"The run store {db_path} cannot be used ({text}).", "other", text)


def free_bytes(folder: Path) -> int | None:
    """Free space on the disk holding folder, for this user; None if it cannot be told."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def folder_error(exc: OSError, folder: Path) -> StoreError:
    """The StoreError a failed file operation in the runs folder stands for."""
    text = exc.strerror or str(exc)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreError(read_only_message(folder), "read_only", text)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(full_message(folder, text), "full", text)
    return StoreError(f"The runs folder {folder} cannot be used ({text}).", "other", text)


def read_only_uri(db_path: Path) -> str | None:
    """A URI that reads db_path without writing beside it, or None if it cannot be read so.
    ('mode=ro' still needs the WAL's side files; 'immutable' needs nothing, for a folder
    nobody can write anyway.)"""
    path = quote(str(db_path.resolve()))
    for params in ("mode=ro", "immutable=1"):
        uri = f"file:{path}?{params}"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
                con.execute("SELECT COUNT(*) FROM runs").fetchone()
        except sqlite3.Error:
            continue
        return uri
    return None


@contextlib.contextmanager
def recovery_lock(root: Path) -> Iterator[None]:
    """One process at a time mends a store (the others then find it mended)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): mending is rare enough to go without
        yield
        return
    with open(root / LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def replace_damaged(db_path: Path, why: str, migrate, put_back) -> str:
    """Move the damaged store file aside, start a fresh one (`migrate`), put back (`put_back`)
    what the old file and the run folders still give; returns what was done, in words."""
    root = db_path.parent
    with recovery_lock(root):
        try:  # another process may have mended it while this one waited for the lock
            migrate()
            return (f"The run store {db_path} was found damaged and has been replaced meanwhile "
                    f"(the old file is kept as {db_path.name}{BROKEN_INFIX}<time>).")
        except StoreError as exc:
            if exc.reason != "damaged":
                raise
        try:
            broken = move_aside(db_path)
        except OSError as exc:
            raise folder_error(exc, root) from None
        migrate()
        found = salvage(broken)
        from_file = put_back(found["runs"], found["events"], found["settings"])
        rows, left = runs_from_folders(root, set(from_file))
        from_folders = put_back(rows, [], [])
        left += [row["id"] for row in rows if row["id"] not in from_folders]
    return recovery_notice(db_path, why, broken, from_file, from_folders, sorted(left))


def put_back(con: sqlite3.Connection, runs: list[dict], events: list[dict],
             settings: list[dict], readable) -> list[str]:
    """Insert recovered rows (as stored) into a fresh store: the runs that `readable` accepts,
    their events, the settings. Returns the ids of the runs put back."""
    columns = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    kept = []
    for row in runs:
        values = {k: v for k, v in row.items() if k in columns}
        if not readable(values):
            continue
        try:
            con.execute(f"INSERT OR IGNORE INTO runs({', '.join(values)}) "  # noqa: S608
                        f"VALUES({', '.join('?' * len(values))})", tuple(values.values()))
        except sqlite3.Error:
            continue
        kept.append(row["id"])
    for event in events:
        if event.get("run_id") in kept:
            with contextlib.suppress(sqlite3.Error):
                con.execute("INSERT OR IGNORE INTO events(seq, run_id, kind, data) "
                            "VALUES(?, ?, ?, ?)", (event.get("seq"), event["run_id"],
                                                   event.get("kind"), event.get("data")))
    for setting in settings:
        with contextlib.suppress(sqlite3.Error, KeyError):
            con.execute("INSERT OR IGNORE INTO settings(key, value) VALUES(?, ?)",
                        (setting["key"], setting["value"]))
    return kept


def move_aside(db_path: Path) -> Path:
    """Rename the store file (with its side files) to runs.sqlite.broken-<time>; returns it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    broken = db_path.with_name(f"{db_path.name}{BROKEN_INFIX}{stamp}")
    n = 1
    while broken.exists():
        n += 1
        broken = db_path.with_name(f"{db_path.name}{BROKEN_INFIX}{stamp}-{n}")
    os.replace(db_path, broken)
    for suffix in SIDE_FILES:
        side = db_path.with_name(db_path.name + suffix)
        if side.exists():
            os.replace(side, broken.with_name(broken.name + suffix))
    return broken


def salvage(broken: Path) -> dict[str, list[dict]]:
    """The rows of each table that a damaged store file still gives, as far as reading gets."""
    found: dict[str, list[dict]] = {"runs": [], "events": [], "settings": []}
    try:
        con = sqlite3.connect(f"file:{quote(str(broken.resolve()))}?mode=ro", uri=True)
    except sqlite3.Error:
        return found
    with contextlib.closing(con):
        con.row_factory = sqlite3.Row
        for table, rows in found.items():
            try:
                for row in con.execute(f"SELECT * FROM {table}"):  # noqa: S608 (fixed names)
                    rows.append(dict(row))
            except sqlite3.Error:
                pass  # the rest of this table is unreadable: keep what came before it
    return found


def runs_from_folders(root: Path, known: set[str]) -> tuple[list[dict], list[str]]:
    """Rows (as stored: JSON text) for the run folders under root not in `known` that hold a
    readable saved network (settings and results come from the checkpoint), and the names of
    the other folders."""
    from cifar_core.errors import CifarError
    from cifar_core.training.checkpoint import (
        load_checkpoint,  # torch only when there is mending to do
    )

    rows, without = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name in known or folder.name == SETS_FOLDER or not is_plain_name(folder.name):
            continue
        checkpoint = folder / CHECKPOINT_NAME
        try:
            saved = load_checkpoint(checkpoint)
        except (CifarError, OSError):
            without.append(folder.name)
            continue
        metrics = dict(saved.metrics or {})
        epochs = (saved.config or {}).get("epochs")
        whole = metrics.get("epochs_done") is None or metrics.get("epochs_done") == epochs
        rows.append({
            "id": folder.name, "created": _created(folder),
            "config": json.dumps(dict(saved.config or {})),
            "data_dir": "", "origin": "recovered", "status": "completed" if whole else "stopped",
            "pid": None, "started": None, "finished": checkpoint.stat().st_mtime,
            "stop_requested": 0,
            "message": "Recovered from its folder after the run store was found damaged; its "
                       "loss curve is lost.",
            "metrics": json.dumps(metrics) if metrics else None,
            "checkpoint": f"{folder.name}/{CHECKPOINT_NAME}",  # (relative: the folder may move)
        })
    return rows, without


def _created(folder: Path) -> float:
    """When a run was created: from its id (e.g. 20261126-153012-a1b2), else the folder's time."""
    try:
        return datetime.strptime(folder.name[:15], "%Y%m%d-%H%M%S").timestamp()
    except ValueError:
        return folder.stat().st_mtime


def runs_were(count: int) -> str:
    return f"{count:,} run was" if count == 1 else f"{count:,} runs were"


def recovery_notice(db_path: Path, why: str, broken: Path, from_file: list[str],
                    from_folders: list[str], left: list[str]) -> str:
    """What was done about a damaged store, for the CLI's warning and the dashboard's message."""
    def some(ids: list[str]) -> str:
        return ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")

    parts = [f"The run store {db_path} could not be read ({why}): it was moved aside to "
             f"{broken.name} and a fresh store was started."]
    if from_file:
        parts.append(f"{runs_were(len(from_file))} read back from the old file "
                     f"({some(from_file)}).")
    if from_folders:
        parts.append(f"{runs_were(len(from_folders))} recovered from their folders' saved "
                     f"networks, without their loss curves ({some(from_folders)}).")
    if left:
        parts.append(f"Folders without a readable saved network, left as they are: "
                     f"{some(left)}.")
    if not (from_file or from_folders or left):
        parts.append("No runs could be recovered.")
    return " ".join(parts)

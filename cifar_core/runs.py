"""The run store: every training, its settings, status, events, metrics and checkpoint.

One SQLite file (WAL mode, so pages read while a job writes) plus one folder per run for its
checkpoint and log, under $CIFAR_RUNS_DIR or ./runs. Every call opens its own short-lived
connection, so the store is safe to use from any thread or process.

The file carries a schema version (`PRAGMA user_version`); opening it applies the MIGRATIONS it
has not had yet, in order, each in one transaction, so a store written by an older version
opens and keeps all its runs. To change the schema, append a migration; never edit one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cifar_core.errors import RunError
from cifar_core.events import Event, event_from_dict

if TYPE_CHECKING:
    from cifar_core.config import TrainConfig

STATUSES = ("queued", "running", "completed", "stopped", "diverged", "failed")
ACTIVE = ("queued", "running")
FINISHED = ("completed", "stopped", "diverged", "failed")
DB_NAME = "runs.sqlite"

# Version 1 is the schema as it was before the store had versions: IF NOT EXISTS, so that a
# file written then (user_version 0) takes it without a change.
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    config TEXT NOT NULL,
    data_dir TEXT NOT NULL,
    origin TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER,
    started REAL,
    finished REAL,
    message TEXT NOT NULL DEFAULT '',
    metrics TEXT,
    checkpoint TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_run ON events(run_id, seq);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# (version, SQL): what turns a store of version - 1 into this version, in order. Statements are
# split at ';' (so none may hold one inside a string or a trigger body).
MIGRATIONS: list[tuple[int, str]] = [
    (1, SCHEMA_V1),
]


def schema_version() -> int:
    """The schema version this code writes."""
    return MIGRATIONS[-1][0]


def default_runs_dir() -> Path:
    """The runs folder: $CIFAR_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("CIFAR_RUNS_DIR") or "./runs")


@dataclass(frozen=True)
class Run:
    """One training as the store knows it."""

    id: str
    created: float  # unix time
    config: dict
    data_dir: str
    origin: str  # 'cli' or 'dashboard'
    status: str
    pid: int | None
    started: float | None
    finished: float | None
    message: str
    metrics: dict | None
    checkpoint: str | None
    stop_requested: bool

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (or to now while it runs)."""
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    @property
    def accuracy(self) -> float | None:
        return (self.metrics or {}).get("accuracy")

    @property
    def settings(self) -> dict:
        """The run's settings for showing: as stored, with today's defaults for settings added
        since it ran. Unlike train_config, never refuses a value (e.g. a model that only a
        newer version knows), so one such run cannot hide the others."""
        from cifar_core.config import defaults

        known = defaults()
        return {**known, **{k: v for k, v in self.config.items() if k in known}}

    @property
    def train_config(self) -> TrainConfig:
        """The run's settings as a TrainConfig (settings added since it ran take defaults)."""
        from cifar_core.config import TrainConfig  # torch only when settings are wanted

        return TrainConfig.from_dict(self.config)

    def to_dict(self) -> dict:
        return {**self.__dict__, "duration_s": self.duration_s}


def _row_to_run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"], created=row["created"], config=json.loads(row["config"]),
        data_dir=row["data_dir"], origin=row["origin"], status=row["status"], pid=row["pid"],
        started=row["started"], finished=row["finished"], message=row["message"],
        metrics=json.loads(row["metrics"]) if row["metrics"] else None,
        checkpoint=row["checkpoint"], stop_requested=bool(row["stop_requested"]),
    )


class RunStore:
    """Runs and their events in `root/runs.sqlite`, files in `root/<run id>/`."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"Cannot create the runs folder {self.root} ({exc.strerror}). "
                           "Set CIFAR_RUNS_DIR (or --runs-dir) to a writable folder.") from None
        self.db_path = self.root / DB_NAME
        self._migrate()


    def _migrate(self) -> None:
        """Bring the file up to schema_version(), one migration per transaction."""
        with self._connect() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > schema_version():
            raise RunError(f"The run store {self.db_path} was written by a newer version of this "
                           f"app (schema {version}; this one knows up to {schema_version()}). "
                           "Update the app, or set CIFAR_RUNS_DIR (or --runs-dir) to another "
                           "folder.")
        with self._connect() as con:  # (after the check: a newer file is left as it is)
            con.execute("PRAGMA journal_mode=WAL")
        for target, sql in MIGRATIONS:
            if target <= version:
                continue
            with self._transaction() as con:
                # Another process may have migrated meanwhile: the write lock makes this exact.
                if con.execute("PRAGMA user_version").fetchone()[0] >= target:
                    continue
                for statement in filter(str.strip, sql.split(";")):
                    con.execute(statement)
                con.execute(f"PRAGMA user_version = {int(target)}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise RunError(f"Cannot open the run store {self.db_path} ({exc}).") from None
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("PRAGMA busy_timeout=30000")
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front, so read-then-write steps are atomic."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    # --- settings ---------------------------------------------------------------------------

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        with self._connect() as con:
            row = con.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return row["value"] if row else default

    def set_setting(self, key: str, value: str) -> None:
        with self._connect() as con:
            con.execute("INSERT INTO settings(key, value) VALUES(?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    # --- runs -------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        """The folder holding this run's checkpoint and log."""
        return self.root / run_id

    def create(self, config: dict, data_dir: str, origin: str, status: str = "queued",
               pid: int | None = None) -> Run:
        """A new run with a fresh id, e.g. 20261126-153012-a1b2."""
        now = time.time()
        for _ in range(20):  # ids are short to read; on the rare clash, draw another
            run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
            try:
                with self._connect() as con:
                    con.execute(
                        "INSERT INTO runs(id, created, config, data_dir, origin, status, pid, "
                        "started) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, now, json.dumps(config), str(data_dir), origin, status, pid,
                         now if status == "running" else None))
                break
            except sqlite3.IntegrityError:
                continue
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return self.get(run_id)

    def get(self, run_id: str) -> Run:
        """The run with this id; RunError if there is none."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise RunError(f"There is no run '{run_id}'. List the runs with "
                           "'python -m cifar_core runs list'.")
        return _row_to_run(row)

    def list(self, status: str | tuple[str, ...] | None = None) -> list[Run]:
        """All runs, newest first; only those with the given status(es) if any."""
        query, args = "SELECT * FROM runs", ()
        if status:
            wanted = (status,) if isinstance(status, str) else tuple(status)
            unknown = [s for s in wanted if s not in STATUSES]
            if unknown:
                raise RunError(f"Unknown status '{unknown[0]}': use one of {', '.join(STATUSES)}.")
            query += f" WHERE status IN ({','.join('?' * len(wanted))})"
            args = wanted
        with self._connect() as con:
            rows = con.execute(query + " ORDER BY created DESC, id DESC", args).fetchall()
        return [_row_to_run(r) for r in rows]

    def set_running(self, run_id: str, pid: int) -> bool:
        """Record the process training this run; False (and no change) if the run has already
        ended, e.g. stopped while queued or given up on, so a late process cannot revive it."""
        with self._connect() as con:
            cur = con.execute("UPDATE runs SET status='running', pid=?, "
                              "started=COALESCE(started, ?) WHERE id=? "
                              "AND status IN ('queued', 'running')", (pid, time.time(), run_id))
            return cur.rowcount == 1

    def claim_queued(self, max_parallel: int) -> list[Run]:
        """Atomically mark as many queued runs 'running' (oldest first) as free slots allow."""
        with self._connect() as con:  # the common case, nothing queued, needs no write lock
            if not con.execute("SELECT 1 FROM runs WHERE status='queued' LIMIT 1").fetchone():
                return []
        with self._transaction() as con:
            running = con.execute("SELECT COUNT(*) FROM runs WHERE status='running'").fetchone()[0]
            free = max(0, max_parallel - running)
            rows = con.execute("SELECT id FROM runs WHERE status='queued' "
                               "ORDER BY created, id LIMIT ?", (free,)).fetchall()
            ids = [r["id"] for r in rows]
            now = time.time()
            for run_id in ids:
                con.execute("UPDATE runs SET status='running', started=? WHERE id=?",
                            (now, run_id))
        return [self.get(run_id) for run_id in ids]

    def finish(self, run_id: str, status: str, message: str = "", metrics: dict | None = None,
               checkpoint: str | None = None) -> None:
        """Record the end of a run (only once: a finished run keeps its first ending)."""
        if status not in FINISHED:
            raise ValueError(f"a run ends as one of {', '.join(FINISHED)}, not {status!r}")
        with self._connect() as con:
            con.execute(
                "UPDATE runs SET status=?, message=?, metrics=?, checkpoint=?, finished=? "
                "WHERE id=? AND status IN ('queued', 'running')",
                (status, message, json.dumps(metrics) if metrics is not None else None,
                 checkpoint, time.time(), run_id))

    def request_stop(self, run_id: str) -> None:
        with self._connect() as con:
            con.execute("UPDATE runs SET stop_requested=1 WHERE id=?", (run_id,))

    def stop_requested(self, run_id: str) -> bool:
        with self._connect() as con:
            row = con.execute("SELECT stop_requested FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row and row[0])

    def load_model(self, run_id: str):
        """The run's trained network as a checkpoint.Checkpoint; RunError if it has none."""
        from cifar_core.checkpoint import load_checkpoint  # torch only when a model is wanted

        run = self.get(run_id)
        if not run.checkpoint:
            raise RunError(f"Run {run_id} has no saved network ({run.status}"
                           + (f": {run.message}" if run.message else "") + ").")
        return load_checkpoint(run.checkpoint)

    def delete(self, run_id: str) -> None:
        """Remove a run that is not running, with its events and files."""
        run = self.get(run_id)
        if run.status == "running":
            raise RunError(f"Run {run_id} is still running: stop it first, then delete it.")
        with self._connect() as con:
            con.execute("DELETE FROM runs WHERE id=?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    # --- events -----------------------------------------------------------------------------

    def add_event(self, run_id: str, event: Event | dict) -> int:
        """Append one event (an Event, or its to_dict() form); returns its sequence number."""
        record = event if isinstance(event, dict) else event.to_dict()
        with self._connect() as con:
            cur = con.execute("INSERT INTO events(run_id, kind, data) VALUES(?, ?, ?)",
                              (run_id, record["kind"], json.dumps(record)))
            return cur.lastrowid

    def events(self, run_id: str, since: int = 0,
               kind: str | None = None) -> list[tuple[int, Event]]:
        """(seq, event) pairs after `since`, oldest first; pass the last seq for only new ones.
        A row that is not a readable event is skipped."""
        query = "SELECT seq, data FROM events WHERE run_id=? AND seq>?"
        args: tuple = (run_id, since)
        if kind:
            query += " AND kind=?"
            args += (kind,)
        with self._connect() as con:
            rows = con.execute(query + " ORDER BY seq", args).fetchall()
        events = ((r["seq"], _event_or_none(r["data"])) for r in rows)
        return [(seq, event) for seq, event in events if event is not None]

    def latest_event(self, run_id: str, kind: str | None = None) -> Event | None:
        """The newest event of a run (of one kind if given), or None. As in events(), a row
        that is not a readable event is skipped."""
        query, args = "SELECT data FROM events WHERE run_id=?", (run_id,)
        if kind:
            query, args = query + " AND kind=?", (run_id, kind)
        with self._connect() as con:
            for row in con.execute(query + " ORDER BY seq DESC", args):
                event = _event_or_none(row["data"])
                if event is not None:
                    return event
        return None


def _event_or_none(data: str) -> Event | None:
    try:
        return event_from_dict(json.loads(data))
    except (ValueError, TypeError):
        return None

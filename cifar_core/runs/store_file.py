"""The run store's SQLite file: its schema version and migrations, opening it (also when it is
damaged or its folder read-only), connections and transactions.

The file carries a schema version (`PRAGMA user_version`); opening it applies the MIGRATIONS it
has not had yet, in order, each in one transaction, so a store written by an older version
opens and keeps all its runs. To change the schema, append a migration; never edit one.
cifar_core.runs.store builds the run store on top of this.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cifar_core.errors import RunError, StoreError
from cifar_core.runs import faults

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
    # Sweeps (cifar_core.sweeps.store): a named set of runs over a search space. A run knows its
    # sweep and its trial number there (Optuna's, for the smart strategy and early stopping), once.
    # No foreign key: a run recovered from a damaged file without its sweep must still load.
    (2, """
CREATE TABLE sweeps (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    name TEXT NOT NULL,
    space TEXT NOT NULL,
    data_dir TEXT NOT NULL,
    origin TEXT NOT NULL,
    engine TEXT NOT NULL DEFAULT 'local',
    address TEXT NOT NULL DEFAULT '',
    parallel INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    finished REAL,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    pid INTEGER
);
ALTER TABLE runs ADD COLUMN sweep_id TEXT;
ALTER TABLE runs ADD COLUMN trial INTEGER;
CREATE UNIQUE INDEX runs_by_sweep ON runs(sweep_id, trial)
"""),
    # Data sets (cifar_core.data.registry): a run and a sweep record the data set they train on
    # (runs from before read as CIFAR-10), a run also its class names once its data is loaded
    # (NULL until then: the data set's own).
    (3, """
ALTER TABLE runs ADD COLUMN dataset TEXT NOT NULL DEFAULT 'cifar10';
ALTER TABLE runs ADD COLUMN classes TEXT;
ALTER TABLE sweeps ADD COLUMN dataset TEXT NOT NULL DEFAULT 'cifar10'
"""),
    # What a person writes about a run (cifar_core.runs.annotations): a name (NULL: none, the
    # run shows one made from its settings), a note, and its tags as a JSON list.
    (4, """
ALTER TABLE runs ADD COLUMN name TEXT;
ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'
"""),
]


def schema_version() -> int:
    """The schema version this code writes."""
    return MIGRATIONS[-1][0]


class StoreFile:
    """One SQLite file brought up to schema_version() when opened: a damaged file is moved
    aside and a fresh one started with what could be recovered, a read-only one opens
    read-only; `notices` says what was done, in words for the user."""

    def _open_file(self, db_path: Path) -> None:
        self.db_path = db_path
        self._read_only_uri: str | None = None
        # What opening the store had to do or cannot do, in words for the user (CLI warnings,
        # the dashboard's message): a damaged file replaced, a read-only folder.
        self.notices: list[str] = []
        try:
            self._migrate()
        except StoreError as exc:
            if exc.reason == "damaged":
                self.notices.append(faults.replace_damaged(
                    self.db_path, exc.detail, migrate=self._migrate, put_back=self._put_back))
            elif exc.reason == "read_only":
                self._open_read_only(exc)
            else:
                raise

    def _readable(self, row: dict) -> bool:
        """Whether a recovered row can be put back (the run store says)."""
        return True

    @property
    def read_only(self) -> bool:
        """True when the folder cannot be written: runs can be read, not started or changed."""
        return self._read_only_uri is not None

    def _open_read_only(self, refusal: StoreError) -> None:
        uri = faults.read_only_uri(self.db_path) if self.db_path.exists() else None
        if uri is None:
            raise refusal
        self._read_only_uri = uri
        if self._stored_version() != schema_version():  # it cannot be brought up to date
            self._read_only_uri = None
            raise refusal
        self.notices.append(f"{refusal} Meanwhile its runs can be looked at, not changed.")

    def _stored_version(self) -> int:
        with self._connect() as con:
            return con.execute("PRAGMA user_version").fetchone()[0]

    def _put_back(self, runs: list[dict], events: list[dict], settings: list[dict]) -> list[str]:
        """Insert recovered rows (as stored) that read as runs; returns their ids."""
        with self._transaction() as con:
            return faults.put_back(con, runs, events, settings, self._readable)

    def _migrate(self) -> None:
        """Bring the file up to schema_version(), one migration per transaction; StoreError
        (reason 'damaged') for a file that is not a sound database."""
        with self._connect() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            # A truncated file can still give its header: read every page once (a short wait
            # at a store's usual size: bench/RESULTS.md, "Figures once quoted in code
            # comments"), so that damage is found here, where it can be mended, not in a page.
            problem = con.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise StoreError(faults.damaged_message(self.db_path, problem), "damaged",
                             problem)
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
        """A connection of its own; a failing SQLite call comes out as a StoreError that says
        what to do (IntegrityError excepted: create() handles an id that is taken)."""
        try:
            if self._read_only_uri:
                con = sqlite3.connect(self._read_only_uri, uri=True, timeout=30,
                                      isolation_level=None)
            else:
                con = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise faults.store_error(exc, self.db_path) from None
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA busy_timeout=30000")
            yield con
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise faults.store_error(exc, self.db_path) from None
        finally:
            with contextlib.suppress(sqlite3.Error):
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
                with contextlib.suppress(sqlite3.Error):  # the error that got here says more
                    con.execute("ROLLBACK")
                raise

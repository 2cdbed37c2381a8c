"""The run store: every training, its settings, status, events, metrics and checkpoint.

One SQLite file (WAL mode, so pages read while a job writes) plus one folder per run for its
checkpoint and log, under $CIFAR_RUNS_DIR or ./runs. Every call opens its own short-lived
connection, so the store is safe to use from any thread or process.

The file carries a schema version and migrations (cifar_core.runs.store_file, which also opens it,
damaged or read-only), so a store written by an older version opens and keeps all its runs.

Nothing stored can send a file operation outside the runs folder: run ids and checkpoint paths
are resolved and checked (run_dir, checkpoint_path). A row that cannot be read is left out of
the lists (damaged_runs says which); a store file that is not a database is moved aside and a
fresh one started with what can be recovered, and a read-only folder opens read-only (see
cifar_core.runs.faults; `notices` says what was done).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cifar_core.errors import RunError, StoreError
from cifar_core.places import default_runs_dir  # noqa: F401 (named here for callers)
from cifar_core.runs import faults
from cifar_core.runs.annotations import clean_name, clean_note, clean_tags
from cifar_core.runs.folders import RunFolders, is_plain_name
from cifar_core.runs.spread import spread_positions
from cifar_core.runs.store_file import DB_NAME, StoreFile
from cifar_core.training.events import Event, event_from_dict

if TYPE_CHECKING:
    from cifar_core.training.config import TrainConfig

# 'pruned': stopped early by its sweep, as behind the others (cifar_core.sweeps.engine).
STATUSES = ("queued", "running", "completed", "stopped", "pruned", "diverged", "failed")
ACTIVE = ("queued", "running")
FINISHED = ("completed", "stopped", "pruned", "diverged", "failed")
# The endings that leave a network to look at.
SAVED = ("completed", "stopped", "pruned")



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
    sweep_id: str | None = None  # the sweep it belongs to (cifar_core.sweeps.store)
    trial: int | None = None  # its number in that sweep
    dataset: str = "cifar10"  # the data set it trains on (cifar_core.data.registry)
    # Its class names, recorded when its data was loaded (None before: the data set's own).
    classes: tuple[str, ...] | None = None
    # What a person wrote about it (cifar_core.runs.annotations); a run without a name shows
    # one made from its settings (cifar_core.runs.naming).
    name: str | None = None
    note: str = ""
    tags: tuple[str, ...] = ()

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
        from cifar_core.training.config import defaults

        known = defaults()
        return {**known, **{k: v for k, v in self.config.items() if k in known}}

    @property
    def train_config(self) -> TrainConfig:
        """The run's settings as a TrainConfig (settings added since it ran take defaults)."""
        from cifar_core.training.config import TrainConfig  # torch only when settings are wanted

        return TrainConfig.from_dict(self.config)

    def to_dict(self) -> dict:
        return {**self.__dict__, "duration_s": self.duration_s}


class TrialTaken(RunError):
    """A sweep's trial that already has its run (made by another process meanwhile)."""


class _DamagedRow(Exception):
    """A runs row that cannot be read as a Run (edited or damaged)."""

    def __init__(self, run_id: str, why: str):
        super().__init__(f"Run {run_id!r} cannot be read: {why}.")
        self.run_id, self.why = run_id, why


class RunStore(StoreFile):
    """Runs and their events in `root/runs.sqlite`, files in `root/<run id>/`."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"Cannot create the runs folder {self.root} ({exc.strerror}). "
                           "Set CIFAR_RUNS_DIR (or --runs-dir) to a writable folder.") from None
        self.folders = RunFolders(self.root)
        self._open_file(self.root / DB_NAME)

    def _readable(self, row: dict) -> bool:
        try:
            self._run_from_row(row)
            return True
        except (_DamagedRow, KeyError):
            return False

    # --- the file, for what is kept beside the runs (cifar_core.sweeps.store) ----------------

    def connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """`with store.connect() as con:` a connection of its own to the store's file (opened
        read-only when the folder is), closed at the end of the block; a failing SQLite call
        comes out as a StoreError that says what to do (IntegrityError excepted)."""
        return self._connect()

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """`with store.transaction() as con:` a connection that holds the file's write lock
        from the start (BEGIN IMMEDIATE), committed at the end of the block and rolled back on
        an error, so that a read-then-write step is atomic against other processes."""
        return self._transaction()

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
        """The folder holding this run's checkpoint and log, directly inside the runs folder;
        RunError for an id that would lead anywhere else (see cifar_core.runs.folders)."""
        return self.folders.folder(run_id)

    def checkpoint_path(self, run_id: str) -> Path:
        """Where the run's saved network is; RunError if it has none, or if the store points
        outside the run's folder (then nothing is read)."""
        with self._connect() as con:
            row = con.execute("SELECT status, message, checkpoint FROM runs WHERE id=?",
                              (run_id,)).fetchone()
        if row is None:
            raise RunError(f"There is no run '{run_id}'. List the runs with "
                           "'python -m cifar_core runs list'.")
        if not row["checkpoint"]:
            raise RunError(f"Run {run_id} has no saved network ({row['status']}"
                           + (f": {row['message']}" if row["message"] else "") + ").")
        inside = self.folders.checkpoint(run_id, row["checkpoint"])
        if inside is None:
            raise self.folders.refused_checkpoint(run_id, row["checkpoint"])
        return Path(inside)

    def _run_from_row(self, row) -> Run:
        """The Run a row describes; _DamagedRow if it cannot be read as one. A checkpoint path
        outside the run's folder is dropped (and the run's message says so)."""
        run_id = row["id"]
        try:
            config = json.loads(row["config"])
            metrics = json.loads(row["metrics"]) if row["metrics"] else None
        except (ValueError, TypeError) as exc:
            raise _DamagedRow(run_id, f"its settings or results are not readable JSON ({exc})") \
                from None
        if not isinstance(config, dict) or not isinstance(metrics, dict | None):
            raise _DamagedRow(run_id, "its settings or results are not a JSON object")
        if row["status"] not in STATUSES:
            raise _DamagedRow(run_id, f"its status {row['status']!r} is not one this app knows")
        try:
            self.run_dir(run_id)
        except RunError:
            raise _DamagedRow(run_id, "its id is not a folder name inside the runs folder "
                                      "(the run store may have been edited)") from None
        stored, message = row["checkpoint"], row["message"]
        checkpoint = self.folders.checkpoint(run_id, stored) if stored else None
        if stored and checkpoint is None:
            message = (f"{message} (Its checkpoint path {stored} lies outside its folder, so it "
                       "is ignored: the run store may have been edited.)").strip()
        return Run(
            id=run_id, created=row["created"], config=config, data_dir=row["data_dir"],
            origin=row["origin"], status=row["status"], pid=row["pid"], started=row["started"],
            finished=row["finished"], message=message, metrics=metrics, checkpoint=checkpoint,
            stop_requested=bool(row["stop_requested"]),
            # (sqlite3.Row's `in` looks at the values, hence keys(); a recovered row is a dict)
            sweep_id=row["sweep_id"] if "sweep_id" in row.keys() else None,  # noqa: SIM118
            trial=row["trial"] if "trial" in row.keys() else None,  # noqa: SIM118
            dataset=_text(row, "dataset") or "cifar10",
            classes=_class_names(row),
            name=_text(row, "name") or None,
            note=_text(row, "note") or "",
            tags=_tags(row),
        )

    def create(self, config: dict, data_dir: str, origin: str, status: str = "queued",
               pid: int | None = None, sweep_id: str | None = None,
               trial: int | None = None, dataset: str = "cifar10") -> Run:
        """A new run with a fresh id, e.g. 20261126-153012-a1b2 (in a sweep: its trial
        number there), training on the registered data set `dataset`."""
        now = time.time()
        for _ in range(20):  # ids are short to read; on the rare clash, draw another
            run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
            try:
                with self._connect() as con:
                    con.execute(
                        "INSERT INTO runs(id, created, config, data_dir, origin, status, pid, "
                        "started, sweep_id, trial, dataset) "
                        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, now, json.dumps(config), str(data_dir), origin, status, pid,
                         now if status == "running" else None, sweep_id, trial, dataset))
                break
            except sqlite3.IntegrityError as exc:
                if "sweep_id" in str(exc):  # another process made this trial's run first
                    raise TrialTaken(f"Trial {trial} of sweep {sweep_id} already has its run.") \
                        from None
                continue
        try:
            self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a run without its folder could save nothing: take it back
            with contextlib.suppress(StoreError), self._connect() as con:
                con.execute("DELETE FROM runs WHERE id=?", (run_id,))
            raise faults.folder_error(exc, self.root) from None
        return self.get(run_id)

    def get(self, run_id: str) -> Run:
        """The run with this id; RunError if there is none."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise RunError(f"There is no run '{run_id}'. List the runs with "
                           "'python -m cifar_core runs list'.")
        try:
            return self._run_from_row(row)
        except _DamagedRow as exc:
            raise RunError(f"{exc} Delete it with 'python -m cifar_core runs delete "
                           f"{run_id}'.") from None

    def list(self, status: str | tuple[str, ...] | None = None,
             sweep_id: str | None = None) -> list[Run]:
        """All runs, newest first; only those with the given status(es) if any, of one sweep
        if given. A row that cannot be read is left out (damaged_runs says which), so it cannot
        hide the others."""
        conditions, args = [], ()
        if status:
            wanted = (status,) if isinstance(status, str) else tuple(status)
            unknown = [s for s in wanted if s not in STATUSES]
            if unknown:
                raise RunError(f"Unknown status '{unknown[0]}': use one of {', '.join(STATUSES)}.")
            conditions.append(f"status IN ({','.join('?' * len(wanted))})")
            args = wanted
        if sweep_id is not None:
            conditions.append("sweep_id=?")
            args += (sweep_id,)
        query = "SELECT * FROM runs" + (f" WHERE {' AND '.join(conditions)}" if conditions
                                        else "")
        with self._connect() as con:
            rows = con.execute(query + " ORDER BY created DESC, id DESC", args).fetchall()
        runs = []
        for row in rows:
            with contextlib.suppress(_DamagedRow):
                runs.append(self._run_from_row(row))
        return runs

    def damaged_runs(self) -> list[str]:
        """A warning for each run row that cannot be read (and so is left out of list())."""
        with self._connect() as con:
            rows = con.execute("SELECT * FROM runs ORDER BY created DESC, id DESC").fetchall()
        warnings = []
        for row in rows:
            try:
                self._run_from_row(row)
            except _DamagedRow as exc:
                fix = ("" if not is_plain_name(str(exc.run_id)) else
                       f" 'python -m cifar_core runs delete {exc.run_id}' removes it.")
                warnings.append(f"{exc} It is left out of the lists.{fix}")
        return warnings

    def set_running(self, run_id: str, pid: int) -> bool:
        """Record the process training this run; False (and no change) if the run has already
        ended, e.g. stopped while queued or given up on, so a late process cannot revive it."""
        with self._connect() as con:
            cur = con.execute("UPDATE runs SET status='running', pid=?, "
                              "started=COALESCE(started, ?) WHERE id=? "
                              "AND status IN ('queued', 'running')", (pid, time.time(), run_id))
            return cur.rowcount == 1

    def sweep_parallel(self) -> int:
        """The most runs side by side that a running sweep on this machine asks for (0 with
        none running): the job runner makes room for them (JobRunner.max_parallel)."""
        with self._connect() as con:
            row = con.execute("SELECT MAX(parallel) FROM sweeps WHERE status='running' "
                              "AND engine='local'").fetchone()
        return int(row[0] or 0)

    def claim_queued(self, max_parallel: int) -> list[Run]:
        """Atomically mark as many queued runs 'running' (oldest first) as free slots allow.
        Runs of a sweep on another engine (Ray) are left to it, and do not take slots here."""
        local = ("(sweep_id IS NULL OR sweep_id NOT IN "
                 "(SELECT id FROM sweeps WHERE engine != 'local'))")
        with self._connect() as con:  # the common case, nothing queued, needs no write lock
            if not con.execute(f"SELECT 1 FROM runs WHERE status='queued' AND {local} "
                               "LIMIT 1").fetchone():
                return []
        with self._transaction() as con:
            running = con.execute(f"SELECT COUNT(*) FROM runs WHERE status='running' "
                                  f"AND {local}").fetchone()[0]
            free = max(0, max_parallel - running)
            rows = con.execute(f"SELECT id FROM runs WHERE status='queued' AND {local} "
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
        if checkpoint is not None:
            checkpoint = self.folders.stored_checkpoint(run_id, str(checkpoint))
        with self._connect() as con:
            con.execute(
                "UPDATE runs SET status=?, message=?, metrics=?, checkpoint=?, finished=? "
                "WHERE id=? AND status IN ('queued', 'running')",
                (status, message, json.dumps(metrics) if metrics is not None else None,
                 checkpoint, time.time(), run_id))

    def record_classes(self, run_id: str, classes: tuple[str, ...]) -> None:
        """Keep the class names of the data the run trains on (known once it is loaded)."""
        with self._connect() as con:
            con.execute("UPDATE runs SET classes=? WHERE id=?",
                        (json.dumps(list(classes)), run_id))

    def record_results(self, run_id: str, message: str, metrics: dict, data_dir: str) -> None:
        """Test results that come after a run ended (an imported network tested once the data
        is there), with the data they were measured on; only for a completed run."""
        with self._connect() as con:
            con.execute("UPDATE runs SET message=?, metrics=?, data_dir=? "
                        "WHERE id=? AND status='completed'",
                        (message, json.dumps(metrics), str(data_dir), run_id))

    # --- what a person writes about a run (cifar_core.runs.annotations) --------------------

    def set_name(self, run_id: str, name: str | None) -> Run:
        """Name the run (annotations.clean_name; empty: no name of its own, the made-up one
        is shown); the run as it is now. RunError for a bad name or an unknown run."""
        return self._annotate(run_id, "name", clean_name(name))

    def set_note(self, run_id: str, note: str | None) -> Run:
        """Keep a note with the run (annotations.clean_note; empty: none)."""
        return self._annotate(run_id, "note", clean_note(note))

    def set_tags(self, run_id: str, tags) -> Run:
        """Give the run exactly these tags (annotations.clean_tags; none: no tags)."""
        return self._annotate(run_id, "tags", json.dumps(list(clean_tags(tags))))

    def tag(self, run_id: str, tags, remove: bool = False) -> Run:
        """Add these tags to the run's (or take them off, with `remove`); RunError for none."""
        wanted = clean_tags(tags)
        if not wanted:
            raise RunError("Give at least one tag, e.g. baseline.")
        with self._transaction() as con:  # read and write at once: another tag may come in
            row = con.execute("SELECT tags FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                raise _no_run(run_id)
            have = set(_tags(row))
            kept = clean_tags(have - set(wanted) if remove else have | set(wanted))
            con.execute("UPDATE runs SET tags=? WHERE id=?", (json.dumps(list(kept)), run_id))
        return self.get(run_id)

    def _annotate(self, run_id: str, column: str, value) -> Run:
        with self._connect() as con:
            # (column is one of three names above, never a user's text)
            changed = con.execute(f"UPDATE runs SET {column}=? WHERE id=?",  # noqa: S608
                                  (value, run_id)).rowcount
        if not changed:
            raise _no_run(run_id)
        return self.get(run_id)

    def request_stop(self, run_id: str) -> None:
        with self._connect() as con:
            con.execute("UPDATE runs SET stop_requested=1 WHERE id=?", (run_id,))

    def stop_requested(self, run_id: str) -> bool:
        with self._connect() as con:
            row = con.execute("SELECT stop_requested FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row and row[0])

    def load_model(self, run_id: str):
        """The run's trained network as a checkpoint.Checkpoint; RunError if it has none (or
        the store points outside the run's folder)."""
        # torch only when a model is wanted
        from cifar_core.training.checkpoint import load_checkpoint

        return load_checkpoint(self.checkpoint_path(run_id))

    def delete(self, run_id: str) -> None:
        """Remove a run that is not running, with its events and files (a run whose row is
        damaged too). RunError, and nothing touched, for an id that leads outside the folder."""
        folder = self.run_dir(run_id)
        with self._connect() as con:
            row = con.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise RunError(f"There is no run '{run_id}'. List the runs with "
                           "'python -m cifar_core runs list'.")
        if row["status"] == "running":
            raise RunError(f"Run {run_id} is still running: stop it first, then delete it.")
        with self._connect() as con:
            con.execute("DELETE FROM runs WHERE id=?", (run_id,))
        shutil.rmtree(folder, ignore_errors=True)

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

    def spread_events(self, run_id: str, kind: str, limit: int,
                      recent: int = 0) -> tuple[int, list[tuple[int, int, Event]]]:
        """For a chart of a long run: how many events of this kind the run has, and (position,
        seq, event) for those cifar_core.runs.spread.spread_positions picks (the first, the
        last, the `recent` most recent and an even spread of the rest; at most `limit`), oldest
        first. Reads the JSON of the picked rows only. As in events(), an unreadable row is
        skipped."""
        with self._connect() as con:
            seqs = [row[0] for row in con.execute(
                "SELECT seq FROM events WHERE run_id=? AND kind=? ORDER BY seq", (run_id, kind))]
            position_of = {seqs[p]: p for p in spread_positions(len(seqs), limit, recent)}
            wanted, rows = list(position_of), []
            for start in range(0, len(wanted), 500):  # SQLite allows 999 parameters or more
                chunk = wanted[start:start + 500]
                rows += con.execute(f"SELECT seq, data FROM events WHERE seq IN "
                                    f"({','.join('?' * len(chunk))}) ORDER BY seq",
                                    chunk).fetchall()
        events = ((position_of[r["seq"]], r["seq"], _event_or_none(r["data"])) for r in rows)
        return len(seqs), [(p, seq, event) for p, seq, event in events if event is not None]


def _event_or_none(data: str) -> Event | None:
    try:
        return event_from_dict(json.loads(data))
    except (ValueError, TypeError):
        return None


def _text(row, key: str) -> str | None:
    """A text column of a row (a recovered row, a dict, may lack it); None if missing."""
    value = row[key] if key in row.keys() else None  # noqa: SIM118 (sqlite3.Row's `in`)
    return value if isinstance(value, str) else None


def _no_run(run_id: str) -> RunError:
    return RunError(f"There is no run '{run_id}'. List the runs with "
                    "'python -m cifar_core runs list'.")


def _tags(row) -> tuple[str, ...]:
    """The run's tags; none where none (or none readable) are kept."""
    try:
        tags = json.loads(_text(row, "tags") or "[]")
    except ValueError:
        return ()
    return tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else ()


def _class_names(row) -> tuple[str, ...] | None:
    """The recorded class names, or None where none (or none readable) are recorded."""
    try:
        names = json.loads(_text(row, "classes") or "null")
    except ValueError:
        return None
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return tuple(names)
    return None

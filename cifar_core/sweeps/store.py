"""Sweeps as the run store keeps them: a named set of runs over a search space, where they run
(this machine or a Ray cluster), how many side by side, and how the sweep stands.

A sweep's runs are ordinary runs (cifar_core.runs.store) that know their sweep and trial number; the
sweep's row holds what is common. What a sweep does next is cifar_core.sweeps.engine'.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from cifar_core.errors import RunError
from cifar_core.runs.names import sweep_name
from cifar_core.runs.store import ACTIVE, Run, RunStore, TrialTaken
from cifar_core.sweeps.space import SearchSpace

SWEEP_STATUSES = ("running", "completed", "stopped", "failed")
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Sweep:
    """One sweep as the store knows it."""

    id: str
    created: float  # unix time
    name: str
    space: SearchSpace
    data_dir: str
    origin: str  # 'cli' or 'dashboard'
    engine: str  # 'local' or 'ray'
    address: str  # the Ray cluster's address ('' : a cluster of this machine alone)
    parallel: int  # runs side by side (local engine)
    status: str
    message: str
    finished: float | None
    stop_requested: bool
    pid: int | None  # the process driving it (Ray engine)
    dataset: str = "cifar10"  # the registered data set every run of it trains on

    @property
    def is_active(self) -> bool:
        return self.status == "running"

    @property
    def deadline(self) -> float | None:
        """After this time no run of the sweep starts (its minutes budget)."""
        return None if self.space.minutes is None else self.created + self.space.minutes * 60

    def to_dict(self) -> dict:
        return {**self.__dict__, "space": self.space.to_dict()}


@dataclass(frozen=True)
class DamagedSweep:
    """A sweep whose row cannot be read (edited or damaged): what the lists say instead of
    leaving it out without a word. It can only be deleted."""

    id: str
    message: str


class SweepStore:
    """The sweeps of one run store."""

    def __init__(self, store: RunStore):
        self.store = store

    def create(self, name: str, space: SearchSpace, data_dir: str, origin: str,
               engine: str = "local", address: str = "", parallel: int = 1,
               dataset: str = "cifar10") -> Sweep:
        """A new running sweep with a fresh id, e.g. sweep-20261202-101500-a1b2, whose runs
        train on the registered data set `dataset`."""
        if engine not in ENGINES:
            raise RunError(f"The engine must be one of {', '.join(ENGINES)} (got {engine!r}).")
        now = time.time()
        for _ in range(20):
            sweep_id = time.strftime("sweep-%Y%m%d-%H%M%S-") + secrets.token_hex(2)
            try:
                with self.store.connect() as con:
                    con.execute(
                        "INSERT INTO sweeps(id, created, name, space, data_dir, origin, engine, "
                        "address, parallel, status, dataset) "
                        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                        (sweep_id, now, sweep_name(name) or sweep_id, json.dumps(space.to_dict()),
                         str(data_dir), origin, engine, address, int(parallel), dataset))
                break
            except sqlite3.IntegrityError:
                continue
        return self.get(sweep_id)

    @staticmethod
    def _from_row(row) -> Sweep:
        # As create() keeps a name now; rows kept before names were cut are read the same way.
        return Sweep(id=row["id"], created=row["created"],
                     name=sweep_name(row["name"]) or row["id"],
                     space=SearchSpace.from_dict(json.loads(row["space"])),
                     data_dir=row["data_dir"], origin=row["origin"], engine=row["engine"],
                     address=row["address"], parallel=row["parallel"], status=row["status"],
                     message=row["message"], finished=row["finished"],
                     stop_requested=bool(row["stop_requested"]), pid=row["pid"],
                     dataset=row["dataset"])

    def get(self, sweep_id: str) -> Sweep:
        """The sweep with this id; RunError if there is none."""
        with self.store.connect() as con:
            row = con.execute("SELECT * FROM sweeps WHERE id=?", (sweep_id,)).fetchone()
        if row is None:
            raise RunError(f"There is no sweep '{sweep_id}'. List the sweeps with "
                           "'python -m cifar_core sweep list'.")
        try:
            return self._from_row(row)
        except (ValueError, TypeError, KeyError) as exc:
            raise RunError(f"Sweep {sweep_id} cannot be read ({exc}).") from None

    def list(self, status: str | tuple[str, ...] | None = None) -> list[Sweep]:
        """All sweeps, newest first (those with the given status(es) if any); a row that
        cannot be read is left out."""
        query, args = "SELECT * FROM sweeps", ()
        if status:
            wanted = (status,) if isinstance(status, str) else tuple(status)
            query += f" WHERE status IN ({','.join('?' * len(wanted))})"
            args = wanted
        with self.store.connect() as con:
            rows = con.execute(query + " ORDER BY created DESC, id DESC", args).fetchall()
        sweeps = []
        for row in rows:
            try:
                sweeps.append(self._from_row(row))
            except (ValueError, TypeError, KeyError):
                continue
        return sweeps

    def damaged_sweeps(self) -> list[DamagedSweep]:
        """The sweeps whose rows cannot be read (and so are left out of list()), newest
        first, each with a message saying so in plain words."""
        with self.store.connect() as con:
            rows = con.execute("SELECT * FROM sweeps ORDER BY created DESC, id DESC").fetchall()
        damaged = []
        for row in rows:
            try:
                self._from_row(row)
            except (ValueError, TypeError, KeyError):
                name = row["name"] if isinstance(row["name"], str) and row["name"] else row["id"]
                damaged.append(DamagedSweep(str(row["id"]), (
                    f"Sweep {name[:80]} cannot be read: what the run store keeps of it is "
                    "damaged, so it is left out. Its runs are listed with the others; it can "
                    "only be deleted (with its runs).")))
        return damaged

    def runs(self, sweep_id: str) -> list[Run]:
        """The sweep's runs, in the order they were made (trial order)."""
        return sorted(self.store.list(sweep_id=sweep_id), key=lambda r: (r.created, r.id))

    def add_run(self, sweep: Sweep, config: dict, trial: int) -> Run | None:
        """Queue one more run of the sweep, unless this trial's run has been made already
        (another process advancing the same sweep) or the sweep has ended: then None."""
        with self.store.connect() as con:
            row = con.execute("SELECT status FROM sweeps WHERE id=?", (sweep.id,)).fetchone()
        if row is None or row["status"] != "running":
            return None
        try:
            return self.store.create(config, sweep.data_dir, sweep.origin, sweep_id=sweep.id,
                                     trial=trial, dataset=sweep.dataset)
        except TrialTaken:
            return None

    def claim_queued(self, sweep_id: str, pid: int) -> list[Run]:
        """Atomically mark the sweep's queued runs 'running' in the process `pid` (a Ray
        sweep's driver, which trains them on its cluster), oldest first; returns them."""
        with self.store.transaction() as con:
            ids = [r["id"] for r in con.execute(
                "SELECT id FROM runs WHERE sweep_id=? AND status='queued' ORDER BY created, id",
                (sweep_id,)).fetchall()]
            now = time.time()
            for run_id in ids:
                con.execute("UPDATE runs SET status='running', pid=?, started=? WHERE id=?",
                            (pid, now, run_id))
        return [self.store.get(run_id) for run_id in ids]

    def set_parallel(self, sweep_id: str, parallel: int) -> None:
        """How many of the sweep's runs train side by side from now on."""
        with self.store.connect() as con:
            con.execute("UPDATE sweeps SET parallel=? WHERE id=?", (int(parallel), sweep_id))

    def set_pid(self, sweep_id: str, pid: int | None) -> None:
        with self.store.connect() as con:
            con.execute("UPDATE sweeps SET pid=? WHERE id=?", (pid, sweep_id))

    def request_stop(self, sweep_id: str) -> None:
        with self.store.connect() as con:
            con.execute("UPDATE sweeps SET stop_requested=1 WHERE id=?", (sweep_id,))

    def finish(self, sweep_id: str, status: str, message: str) -> None:
        """Record the end of a sweep (only once)."""
        if status not in SWEEP_STATUSES[1:]:
            raise ValueError(f"a sweep ends as one of {', '.join(SWEEP_STATUSES[1:])}, "
                             f"not {status!r}")
        with self.store.connect() as con:
            con.execute("UPDATE sweeps SET status=?, message=?, finished=? "
                        "WHERE id=? AND status='running'",
                        (status, message, time.time(), sweep_id))

    def delete(self, sweep_id: str) -> None:
        """Delete a sweep and all its runs with their files (a sweep whose row is damaged
        too); RunError while one still runs."""
        with self.store.connect() as con:
            row = con.execute("SELECT id FROM sweeps WHERE id=?", (sweep_id,)).fetchone()
        if row is None:
            raise RunError(f"There is no sweep '{sweep_id}'. List the sweeps with "
                           "'python -m cifar_core sweep list'.")
        runs = self.runs(sweep_id)
        busy = [r.id for r in runs if r.status in ACTIVE]
        if busy:
            raise RunError(f"Sweep {sweep_id} still has {len(busy)} run{'s' * (len(busy) != 1)} "
                           "queued or running: "
                           "stop it first, then delete it.")
        for run in runs:
            self.store.delete(run.id)
        with self.store.connect() as con:
            con.execute("DELETE FROM sweeps WHERE id=?", (sweep_id,))
        for kind in SWEEP_FILES:
            sweep_file(self.store, sweep_id, kind).unlink(missing_ok=True)


# A sweep's files beside the run store: Optuna's journal of its trials (smart strategy, early
# stopping), the lock that lets one process at a time advance it, its Ray driver's output.
SWEEP_FILES = ("optuna.log", "lock", "driver.log")


def sweep_file(store: RunStore, sweep_id: str, kind: str) -> Path:
    """One of the sweep's files (a kind in SWEEP_FILES), in the runs folder's 'sweeps'."""
    return store.root / "sweeps" / f"{sweep_id}.{kind}"


def optuna_journal(store: RunStore, sweep_id: str) -> Path:
    """Where Optuna keeps the sweep's trials."""
    return sweep_file(store, sweep_id, "optuna.log")

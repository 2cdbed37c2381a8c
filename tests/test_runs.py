"""cifar_core.runs.store: the run store (SQLite + one folder per run), and its schema versions."""

from __future__ import annotations

import json
import multiprocessing
import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
import torch

from cifar_core.errors import RunError
from cifar_core.runs import store as runs
from cifar_core.runs import store_file
from cifar_core.runs.store import DB_NAME, FINISHED, RunStore, default_runs_dir
from cifar_core.runs.store_file import schema_version
from cifar_core.training.config import TrainConfig, defaults
from cifar_core.training.events import DoneEvent, EpochEvent, StatsEvent

CONFIG = {"epochs": 2, "lr": 0.001, "momentum": 0.9, "batch_size": 4}


def stats_event(epoch: int = 1, minibatch: int = 1, loss: float = 2.0) -> StatsEvent:
    return StatsEvent(epoch=epoch, minibatch=minibatch, step=minibatch,
                      images_seen=4 * minibatch, loss=loss, images_per_s=100.0,
                      elapsed_s=0.1 * minibatch, fraction_done=0.5, eta_s=1.0,
                      images_per_epoch=100)


def epoch_event(epoch: int = 1, accuracy: float = 40.0) -> EpochEvent:
    return EpochEvent(epoch=epoch, test_accuracy=accuracy, images_seen=100 * epoch,
                      elapsed_s=2.0 * epoch)


def done_event(status: str = "completed") -> DoneEvent:
    return DoneEvent(status=status, message="Finished Training", epochs_done=1,
                     images_seen=100, train_s=1.5, images_per_s=66.7, elapsed_s=2.0,
                     training_step="tutorial step (autograd)", cores=2)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def test_create_and_get(store):
    run = store.create(CONFIG, "/data", "cli")

    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", run.id)
    assert (run.status, run.origin, run.config, run.data_dir) == ("queued", "cli", CONFIG,
                                                                  "/data")
    assert run.started is None and run.finished is None and run.pid is None
    assert run.duration_s is None and run.accuracy is None and not run.stop_requested
    assert run.is_active
    assert store.run_dir(run.id).is_dir()
    assert store.get(run.id) == run


def test_a_run_created_running_has_its_pid_and_start(store):
    before = time.time()
    run = store.create(CONFIG, "/data", "cli", status="running", pid=4242)
    assert run.status == "running" and run.pid == 4242
    assert before <= run.started <= time.time()
    assert run.duration_s >= 0


def test_an_unknown_id_is_a_run_error(store):
    with pytest.raises(RunError) as err:
        store.get("20990101-000000-beef")
    assert "no run '20990101-000000-beef'" in str(err.value)
    assert "runs list" in str(err.value)


def test_list_is_newest_first_and_filters_by_status(store):
    ids = []
    for _ in range(3):
        ids.append(store.create(CONFIG, "/data", "cli").id)
        time.sleep(0.01)
    store.finish(ids[1], "completed", "done", {"accuracy": 50.0})

    assert [r.id for r in store.list()] == ids[::-1]
    assert [r.id for r in store.list("completed")] == [ids[1]]
    assert [r.id for r in store.list("queued")] == [ids[2], ids[0]]
    assert [r.id for r in store.list(("queued", "completed"))] == ids[::-1]
    assert store.list("failed") == []
    with pytest.raises(RunError, match="Unknown status 'done'"):
        store.list("done")


def test_events_are_numbered_and_can_be_read_since_a_sequence_number(store):
    run = store.create(CONFIG, "/data", "cli")
    other = store.create(CONFIG, "/data", "cli")
    seqs = [store.add_event(run.id, stats_event(minibatch=i + 1, loss=2.0 - i))
            for i in range(3)]
    store.add_event(other.id, stats_event(loss=9.0))
    seqs.append(store.add_event(run.id, epoch_event(accuracy=40.0)))

    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    everything = store.events(run.id)
    assert [s for s, _ in everything] == seqs
    assert [e.loss for _, e in everything[:3]] == [2.0, 1.0, 0.0]
    assert store.events(run.id, since=seqs[1]) == everything[2:]
    assert store.events(run.id, since=seqs[-1]) == []
    assert [e.test_accuracy for _, e in store.events(run.id, kind="epoch")] == [40.0]
    assert [e.loss for _, e in store.events(other.id)] == [9.0]


def test_events_come_back_as_the_objects_stored_whether_given_as_objects_or_dicts(store):
    run = store.create(CONFIG, "/data", "cli")
    sent = [stats_event(), epoch_event(), done_event()]
    store.add_event(run.id, sent[0])
    store.add_event(run.id, sent[1].to_dict())  # the form a job's on_event sees
    store.add_event(run.id, sent[2])

    assert [e for _, e in store.events(run.id)] == sent
    assert store.latest_event(run.id, kind="done").training_step == "tutorial step (autograd)"


def test_finish_records_the_end_only_once(store):
    run = store.create(CONFIG, "/data", "cli", status="running", pid=1)
    metrics = {"accuracy": 61.5, "per_class": {"cat": 40.0}}
    checkpoint = str(store.run_dir(run.id) / "cifar_net.pth")  # (one elsewhere is refused)
    store.finish(run.id, "completed", "Finished", metrics, checkpoint)
    first = store.get(run.id)
    store.finish(run.id, "failed", "a later, wrong ending")

    final = store.get(run.id)
    assert final == first
    assert (final.status, final.message, final.metrics) == ("completed", "Finished", metrics)
    assert final.checkpoint == checkpoint
    assert final.accuracy == 61.5
    assert final.finished >= final.started and not final.is_active
    assert final.status in FINISHED


def test_stop_requests_are_recorded(store):
    run = store.create(CONFIG, "/data", "cli", status="running", pid=1)
    assert not store.stop_requested(run.id)
    store.request_stop(run.id)
    assert store.stop_requested(run.id) and store.get(run.id).stop_requested
    assert not store.stop_requested("no-such-run")


def test_delete_removes_the_run_its_events_and_folder(store):
    run = store.create(CONFIG, "/data", "cli")
    keep = store.create(CONFIG, "/data", "cli")
    store.add_event(run.id, stats_event())
    store.add_event(keep.id, stats_event())
    (store.run_dir(run.id) / "cifar_net.pth").write_bytes(b"weights")
    store.finish(run.id, "completed")
    assert len(store.events(run.id)) == 1

    store.delete(run.id)

    assert not store.run_dir(run.id).exists()
    assert store.events(run.id) == []
    with pytest.raises(RunError):
        store.get(run.id)
    assert [r.id for r in store.list()] == [keep.id]
    assert len(store.events(keep.id)) == 1


def test_deleting_a_running_run_is_refused(store):
    run = store.create(CONFIG, "/data", "cli", status="running", pid=1)
    with pytest.raises(RunError, match="still running"):
        store.delete(run.id)
    assert store.get(run.id).status == "running"
    assert store.run_dir(run.id).is_dir()
    with pytest.raises(RunError):
        store.delete("no-such-run")


def test_claim_queued_fills_free_slots_oldest_first(store):
    ids = []
    for _ in range(3):
        ids.append(store.create(CONFIG, "/data", "dashboard").id)
        time.sleep(0.01)
    assert [r.id for r in store.claim_queued(2)] == ids[:2]
    assert [r.id for r in store.claim_queued(2)] == []  # both slots are taken
    store.finish(ids[0], "completed")
    [claimed] = store.claim_queued(2)
    assert claimed.id == ids[2] and claimed.status == "running" and claimed.started


def test_settings_are_kept(store, tmp_path):
    assert store.get_setting("max_parallel") is None
    assert store.get_setting("max_parallel", "1") == "1"
    store.set_setting("max_parallel", "3")
    store.set_setting("max_parallel", "2")
    assert RunStore(tmp_path / "runs").get_setting("max_parallel") == "2"


def test_run_to_dict_is_plain_json(store):
    run = store.create(CONFIG, "/data", "cli", status="running", pid=7)
    values = json.loads(json.dumps(run.to_dict()))
    assert values["id"] == run.id and values["config"] == CONFIG and values["duration_s"] >= 0


def test_an_unusable_runs_folder_is_a_run_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RunError, match="CIFAR_RUNS_DIR"):
        RunStore(blocker / "runs")


def test_default_runs_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "r"))
    assert default_runs_dir() == tmp_path / "r"
    assert RunStore().root == tmp_path / "r"


# --- several processes at once --------------------------------------------------------------

EVENTS_PER_WRITER = 300


def _write_events(root: str, run_id: str, writer: int, errors) -> None:
    store = RunStore(root)
    try:
        for i in range(EVENTS_PER_WRITER):
            store.add_event(run_id, stats_event(epoch=writer, minibatch=i))
            if i % 50 == 0:
                store.set_running(run_id, 1000 + writer)
    except Exception as exc:  # reported to the test, which fails on any
        errors.put(f"writer {writer}: {type(exc).__name__}: {exc}")


def _read_events(root: str, run_id: str, writers_done, errors, seen) -> None:
    store = RunStore(root)
    last, count = 0, 0
    try:
        while True:
            finished = writers_done.is_set()
            new = store.events(run_id, since=last)
            for seq, _ in new:
                if seq <= last:
                    errors.put(f"reader: sequence went back from {last} to {seq}")
                last = seq
            count += len(new)
            store.get(run_id)
            store.list()
            if finished and not new:
                break
    except Exception as exc:
        errors.put(f"reader: {type(exc).__name__}: {exc}")
    seen.put(count)


def test_two_writers_and_a_reader_at_once_lose_nothing(store):
    ctx = multiprocessing.get_context("fork")
    run = store.create(CONFIG, "/data", "cli", status="running", pid=1)
    errors, seen, writers_done = ctx.Queue(), ctx.Queue(), ctx.Event()
    root = str(store.root)
    writers = [ctx.Process(target=_write_events, args=(root, run.id, w, errors))
               for w in (1, 2)]
    reader = ctx.Process(target=_read_events, args=(root, run.id, writers_done, errors, seen))
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    writers_done.set()
    reader.join(60)

    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert problems == []
    assert [w.exitcode for w in writers] == [0, 0] and reader.exitcode == 0
    assert seen.get(timeout=5) == 2 * EVENTS_PER_WRITER
    events = [e for _, e in store.events(run.id)]
    for w in (1, 2):
        assert [e.minibatch for e in events if e.epoch == w] == list(range(EVENTS_PER_WRITER))


def test_load_model_gives_the_runs_network_or_says_why_not(store, tmp_path):
    from cifar_core.training.checkpoint import save_checkpoint
    from cifar_core.training.models import Net

    run = store.create({"epochs": 1}, "/data", "test", status="running")
    with pytest.raises(RunError, match="no saved network"):
        store.load_model(run.id)
    net = Net()
    path = save_checkpoint(store.run_dir(run.id) / "cifar_net.pth", net, {"epochs": 1},
                           tuple("abcdefghij"), {"accuracy": 12.0})
    store.finish(run.id, "completed", "ok", {"accuracy": 12.0}, str(path))
    loaded = store.load_model(run.id)
    assert loaded.metrics == {"accuracy": 12.0} and loaded.classes == tuple("abcdefghij")
    for name, tensor in net.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor)


def test_latest_event_is_the_newest_of_its_kind(store):
    run = store.create({"epochs": 1}, "/data", "test", status="running")
    assert store.latest_event(run.id) is None
    store.add_event(run.id, stats_event(loss=2.0))
    store.add_event(run.id, stats_event(minibatch=2, loss=1.5))
    store.add_event(run.id, epoch_event(accuracy=30.0))
    assert store.latest_event(run.id, kind="stats").loss == 1.5
    assert store.latest_event(run.id) == epoch_event(accuracy=30.0)
    assert store.latest_event(run.id, kind="done") is None


def test_finish_with_a_status_that_is_not_an_ending_is_refused_and_changes_nothing(store):
    run = store.create(CONFIG, "/data", "cli", status="running", pid=1)
    for status in ("running", "queued", "done", ""):
        with pytest.raises(ValueError, match="completed"):
            store.finish(run.id, status, "a bad ending", {"accuracy": 1.0}, "/runs/x.pth")
        assert store.get(run.id) == run
    store.finish(run.id, "completed", "ok")  # a real ending is still taken afterwards
    assert store.get(run.id).status == "completed"


def test_a_damaged_event_row_is_skipped_and_the_others_are_still_returned(store):
    run = store.create(CONFIG, "/data", "cli", status="running", pid=1)
    first = store.add_event(run.id, stats_event(loss=2.0))
    damaged = [("stats", "{not json"), ("stats", "[1, 2]"), ("stats", "null"),
               ("stats", json.dumps({"kind": "stats", "loss": 1.0})),  # fields missing
               ("log", json.dumps({"kind": "log", "message": "a kind this version lacks"}))]
    with closing(sqlite3.connect(store.db_path)) as con, con:
        for kind, data in damaged[:2]:
            con.execute("INSERT INTO events(run_id, kind, data) VALUES(?, ?, ?)",
                        (run.id, kind, data))
    second = store.add_event(run.id, stats_event(minibatch=2, loss=1.5))
    with closing(sqlite3.connect(store.db_path)) as con, con:  # the newest rows are damaged
        for kind, data in damaged[2:]:
            con.execute("INSERT INTO events(run_id, kind, data) VALUES(?, ?, ?)",
                        (run.id, kind, data))

    expected = [(first, stats_event(loss=2.0)), (second, stats_event(minibatch=2, loss=1.5))]
    assert store.events(run.id) == expected
    assert store.events(run.id, kind="stats") == expected
    assert store.events(run.id, since=first) == expected[1:]
    assert store.latest_event(run.id) == expected[-1][1]
    assert store.latest_event(run.id, kind="stats") == expected[-1][1]


def test_spread_events_picks_a_spread_of_one_kind_and_reads_only_those_rows(store,
                                                                           monkeypatch):
    from cifar_core.runs.spread import spread_positions

    run = store.create(CONFIG, "/data", "cli", status="running", pid=1)
    other = store.create(CONFIG, "/data", "cli", status="running", pid=2)
    rows = [(run.id, "stats", json.dumps(stats_event(minibatch=i + 1).to_dict()))
            for i in range(5_000)]
    rows.insert(2_500, (run.id, "epoch", json.dumps(epoch_event().to_dict())))
    rows += [(other.id, "stats", json.dumps(stats_event().to_dict()))] * 10
    with closing(sqlite3.connect(store.db_path)) as con, con:
        con.executemany("INSERT INTO events(run_id, kind, data) VALUES(?, ?, ?)", rows)
    everything = store.events(run.id, kind="stats")
    parsed = []
    original = runs._event_or_none
    monkeypatch.setattr(runs, "_event_or_none", lambda data: parsed.append(1) or original(data))

    count, spread = store.spread_events(run.id, "stats", limit=300, recent=50)

    positions = spread_positions(5_000, 300, 50)
    assert count == 5_000 and len(parsed) == len(positions) <= 300
    assert spread == [(p, *everything[p]) for p in positions]
    assert store.spread_events(run.id, "epoch", limit=300) == (
        1, [(0, *store.events(run.id, kind="epoch")[0])])
    assert store.spread_events(run.id, "done", limit=300) == (0, [])
    assert store.spread_events(other.id, "stats", limit=300)[0] == 10


def test_train_config_is_a_train_config_and_an_older_runs_settings_get_the_defaults(store):
    # What a run stored before models had names (and before any later setting) holds.
    older = {"epochs": 3, "lr": 0.01, "momentum": 0.8, "batch_size": 8, "log_every": 10,
             "device": "cpu", "seed": 5, "train_size": 1000}
    run = store.create(older, "/data", "cli")

    config = run.train_config
    assert isinstance(config, TrainConfig)
    assert config.model == defaults()["model"]
    assert config.to_dict() == {**defaults(), **older}

    wide = store.create({**older, "model": "tutorial-wide"}, "/data", "cli")
    assert wide.train_config.model == "tutorial-wide"
    # A setting only a newer version knows is left out rather than refused.
    newer = store.create({**older, "warmup_epochs": 2}, "/data", "cli")
    assert newer.train_config == config


# --- schema versions ------------------------------------------------------------------------

# The store's schema before it had versions (runs/store.py at 598490c): a file written then
# has user_version 0.
UNVERSIONED_SCHEMA = """
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

# Settings and events as that version wrote them: no model, a DoneEvent without the step.
OLD_CONFIG = {"epochs": 1, "lr": 0.002, "momentum": 0.9, "batch_size": 4, "log_every": 5,
              "device": "cpu", "seed": 7, "train_size": None}
OLD_STATS = {"epoch": 1, "minibatch": 5, "step": 5, "images_seen": 20, "loss": 2.25,
             "images_per_s": 900.0, "elapsed_s": 0.1, "fraction_done": 0.2, "eta_s": 0.4,
             "images_per_epoch": 100, "kind": "stats"}
OLD_EPOCH = {"epoch": 1, "test_accuracy": 30.0, "images_seen": 100, "elapsed_s": 0.5,
             "kind": "epoch"}
OLD_DONE = {"status": "completed", "message": "Finished Training", "epochs_done": 1,
            "images_seen": 100, "train_s": 0.4, "images_per_s": 250.0, "elapsed_s": 0.6,
            "kind": "done"}


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as con:
        return con.execute("PRAGMA user_version").fetchone()[0]


def everything_in(path: Path, like: dict | None = None) -> dict[str, list[tuple]]:
    """Every row of every table of the store's file; with `like` (an earlier everything_in),
    only its tables and, in each, only as many columns as it had (those added since are
    checked apart)."""
    with closing(sqlite3.connect(path)) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        found = {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    if like is None:
        return found
    return {t: [row[:len(like[t][0])] if like[t] else row for row in found[t]] for t in like}


def columns_added_since(path: Path, before: dict) -> dict[str, set]:
    """The values of the columns a migration added to the tables in `before`, per table."""
    now = everything_in(path)
    return {t: {row[len(before[t][0]):] for row in now[t]} for t in before if before[t]}


def write_unversioned_store(root: Path) -> tuple[str, str]:
    """A run store as the version before schema versions left it: a completed run with its
    events and checkpoint, a failed run, and a setting. Returns the two run ids."""
    root.mkdir(parents=True)
    done_id, failed_id = "20250101-120000-aaaa", "20250101-130000-bbbb"
    with closing(sqlite3.connect(root / DB_NAME)) as con, con:
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(UNVERSIONED_SCHEMA)
        con.execute(
            "INSERT INTO runs(id, created, config, data_dir, origin, status, pid, started, "
            "finished, message, metrics, checkpoint, stop_requested) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (done_id, 1735732800.0, json.dumps(OLD_CONFIG), "/data", "cli", "completed", 41,
             1735732801.0, 1735732810.0, "Finished Training",
             json.dumps({"accuracy": 30.0, "per_class": {"cat": 30.0}}),
             str(root / done_id / "cifar_net.pth"), 0))
        con.execute(
            "INSERT INTO runs(id, created, config, data_dir, origin, status, message, "
            "stop_requested) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
            (failed_id, 1735736400.0, json.dumps({**OLD_CONFIG, "seed": 8}), "/data",
             "dashboard", "failed", "The training process never started.", 1))
        for event in (OLD_STATS, OLD_EPOCH, OLD_DONE):
            con.execute("INSERT INTO events(run_id, kind, data) VALUES(?, ?, ?)",
                        (done_id, event["kind"], json.dumps(event)))
        con.execute("INSERT INTO settings(key, value) VALUES('max_parallel', '2')")
    assert user_version(root / DB_NAME) == 0
    return done_id, failed_id


def test_a_store_from_before_schema_versions_opens_and_keeps_everything(tmp_path):
    root = tmp_path / "runs"
    done_id, failed_id = write_unversioned_store(root)
    before = everything_in(root / DB_NAME)

    store = RunStore(root)

    assert user_version(root / DB_NAME) == schema_version()
    assert everything_in(root / DB_NAME, like=before) == before
    # The columns added since are empty for the old runs (a run's sweep, trial, class names,
    # name, note and tags), but for the data set: they were all trained on CIFAR-10.
    added = columns_added_since(root / DB_NAME, before)
    assert added["runs"] == {(None, None, "cifar10", None, None, "", "[]")}
    assert all(len(values) == 1 for values in added.values())
    assert [r.id for r in store.list()] == [failed_id, done_id]
    done, failed = store.get(done_id), store.get(failed_id)
    assert (done.dataset, done.classes) == (failed.dataset, failed.classes) == ("cifar10", None)
    assert (done.status, done.pid, done.message, done.accuracy) == (
        "completed", 41, "Finished Training", 30.0)
    assert done.duration_s == pytest.approx(9.0)
    assert done.checkpoint == str(root / done_id / "cifar_net.pth")
    assert done.train_config.model == defaults()["model"] and done.train_config.seed == 7
    assert (failed.status, failed.origin, failed.stop_requested) == ("failed", "dashboard", True)
    stats, epoch, end = [e for _, e in store.events(done_id)]
    assert stats == StatsEvent(**{k: v for k, v in OLD_STATS.items() if k != "kind"})
    assert epoch == EpochEvent(epoch=1, test_accuracy=30.0, images_seen=100, elapsed_s=0.5)
    assert (end.status, end.images_per_s, end.training_step) == ("completed", 250.0, "")
    assert store.get_setting("max_parallel") == "2"
    # ... and it goes on working: new events follow the old ones.
    assert store.add_event(done_id, stats_event()) > max(s for s, _ in store.events(done_id)[:3])


def test_a_store_from_a_newer_version_is_refused_and_left_as_it_was(tmp_path):
    root = tmp_path / "runs"
    newer = RunStore(root)
    run = newer.create(CONFIG, "/data", "cli")
    newer.add_event(run.id, stats_event())
    with closing(sqlite3.connect(root / DB_NAME, isolation_level=None)) as con:
        con.execute(f"PRAGMA user_version = {schema_version() + 1}")
    before = (root / DB_NAME).read_bytes()

    with pytest.raises(RunError) as err:
        RunStore(root)

    message = str(err.value)
    assert "newer version" in message and str(root / DB_NAME) in message
    assert "Update the app" in message and "CIFAR_RUNS_DIR" in message
    assert (root / DB_NAME).read_bytes() == before
    assert user_version(root / DB_NAME) == schema_version() + 1


# (a column the store has not got: runs have a note of their own since schema 4)
ADD_NOTE_COLUMN = ("ALTER TABLE runs ADD COLUMN remark TEXT NOT NULL DEFAULT '';\n"
                   "INSERT INTO settings(key, value) VALUES('note column', 'added')")


def columns(path: Path, table: str) -> list[str]:
    with closing(sqlite3.connect(path)) as con:
        return [r[1] for r in con.execute(f"PRAGMA table_info({table})")]


def test_an_appended_migration_is_applied_once_and_keeps_the_rows(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    old = RunStore(root)
    run = old.create(CONFIG, "/data", "cli")
    seq = old.add_event(run.id, stats_event())
    old.set_setting("max_parallel", "2")
    version = schema_version()

    monkeypatch.setattr(store_file, "MIGRATIONS",
                        [*store_file.MIGRATIONS, (version + 1, ADD_NOTE_COLUMN)])
    store = RunStore(root)

    assert schema_version() == version + 1 == user_version(root / DB_NAME)
    assert "remark" in columns(root / DB_NAME, "runs")
    assert store.get(run.id) == run and store.events(run.id) == [(seq, stats_event())]
    assert store.get_setting("max_parallel") == "2"
    assert store.get_setting("note column") == "added"
    # Opened again, nothing is re-applied (the ALTER and the INSERT would both fail).
    again = RunStore(root)
    assert user_version(root / DB_NAME) == version + 1
    assert again.get(run.id) == run


def test_a_failing_migration_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    run = RunStore(root).create(CONFIG, "/data", "cli")
    version = schema_version()
    before = everything_in(root / DB_NAME)

    broken = ADD_NOTE_COLUMN + ";\nINSERT INTO no_such_table VALUES(1)"
    monkeypatch.setattr(store_file, "MIGRATIONS", [*store_file.MIGRATIONS, (version + 1, broken)])
    with pytest.raises(RunError, match="no_such_table"):  # said as the store's error
        RunStore(root)

    assert user_version(root / DB_NAME) == version
    assert "remark" not in columns(root / DB_NAME, "runs")  # the first statement was undone
    assert everything_in(root / DB_NAME) == before
    monkeypatch.setattr(store_file, "MIGRATIONS", [*store_file.MIGRATIONS[:-1],
                                             (version + 1, ADD_NOTE_COLUMN)])
    assert RunStore(root).get(run.id) == run  # the mended migration goes through
    assert "remark" in columns(root / DB_NAME, "runs")

"""cifar_core.runs: the run store (SQLite + one folder per run)."""

from __future__ import annotations

import json
import multiprocessing
import re
import time

import pytest
import torch

from cifar_core.errors import RunError
from cifar_core.runs import FINISHED, RunStore, default_runs_dir

CONFIG = {"epochs": 2, "lr": 0.001, "momentum": 0.9, "batch_size": 4}


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
    seqs = [store.add_event(run.id, {"kind": "stats", "loss": 2.0 - i}) for i in range(3)]
    store.add_event(other.id, {"kind": "stats", "loss": 9.0})
    seqs.append(store.add_event(run.id, {"kind": "epoch", "test_accuracy": 40.0}))

    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    everything = store.events(run.id)
    assert [s for s, _ in everything] == seqs
    assert [e["loss"] for _, e in everything[:3]] == [2.0, 1.0, 0.0]
    assert store.events(run.id, since=seqs[1]) == everything[2:]
    assert store.events(run.id, since=seqs[-1]) == []
    assert [e["kind"] for _, e in store.events(run.id, kind="epoch")] == ["epoch"]
    assert [e["loss"] for _, e in store.events(other.id)] == [9.0]


def test_finish_records_the_end_only_once(store):
    run = store.create(CONFIG, "/data", "cli", status="running", pid=1)
    metrics = {"accuracy": 61.5, "per_class": {"cat": 40.0}}
    store.finish(run.id, "completed", "Finished", metrics, "/runs/x/cifar_net.pth")
    first = store.get(run.id)
    store.finish(run.id, "failed", "a later, wrong ending")

    final = store.get(run.id)
    assert final == first
    assert (final.status, final.message, final.metrics) == ("completed", "Finished", metrics)
    assert final.checkpoint == "/runs/x/cifar_net.pth"
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
    store.add_event(run.id, {"kind": "stats"})
    (store.run_dir(run.id) / "cifar_net.pth").write_bytes(b"weights")
    store.finish(run.id, "completed")

    store.delete(run.id)

    assert not store.run_dir(run.id).exists()
    assert store.events(run.id) == []
    with pytest.raises(RunError):
        store.get(run.id)
    assert [r.id for r in store.list()] == [keep.id]


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
            store.add_event(run_id, {"kind": "stats", "writer": writer, "i": i})
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
        assert [e["i"] for e in events if e["writer"] == w] == list(range(EVENTS_PER_WRITER))


def test_load_model_gives_the_runs_network_or_says_why_not(store, tmp_path):
    from cifar_core.checkpoint import save_checkpoint
    from cifar_core.model import Net

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
    store.add_event(run.id, {"kind": "stats", "loss": 2.0})
    store.add_event(run.id, {"kind": "stats", "loss": 1.5})
    store.add_event(run.id, {"kind": "epoch", "test_accuracy": 30.0})
    assert store.latest_event(run.id, kind="stats")["loss"] == 1.5
    assert store.latest_event(run.id)["kind"] == "epoch"

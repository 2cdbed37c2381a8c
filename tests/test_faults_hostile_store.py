"""Issue 29, "What a hostile user found": a store or a sweep that locks up, and the sweep and
store cases of its tracebacks and wrong answers. One test (or a few) per item, named by its
number; each failed before its fix:

 5. a smart sweep with `seed = 1.5` broke every page and CLI command: the seed is checked, and
    one bad sweep fails with its reason while the scheduler goes on with the others;
 6. a damaged Optuna journal (a cut-off last line) raised JSONDecodeError and left its sweep
    running for ever;
 7. the sweep lock had no timeout: a process stuck holding it froze everyone;
 8. deleting one run of a running sweep left the sweep running for ever;
 9. grids and random draws were built whole (gigabytes, a MemoryError): runs are picked by
    index, lists capped;
10. moving the runs folder hid every network: checkpoints are found inside the folder;
13. `settings = 5` in a space file, and `runs list | head -1`, gave tracebacks;
14. a sweep that varies nothing (`sweep --lr 0.01`, an empty space file) started one run;
15. a device that is not here in a sweep's list was refused run by run, not up front;
16. a full disk under the WAL was reported as "disk I/O error";
21. a sweep row with damaged JSON disappeared without a word.
And issue 22, item 11: `train --bogus` pointed to the top-level --help.

Sweeps are made through the store and advanced directly (`advance_sweep`) or through the job
runner with its process launch left out, so no training process is started here, except where
a test says so.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from contextlib import closing
from pathlib import Path

import pytest
from conftest import run_cli

from cifar_core import scheduler
from cifar_core.data.dataset import OFFICIAL_CLASSES
from cifar_core.errors import StoreError
from cifar_core.runs import faults as store_faults
from cifar_core.runs.jobs import JobRunner
from cifar_core.runs.store import ACTIVE, DB_NAME, RunStore
from cifar_core.sweeps import engine as sweeps
from cifar_core.sweeps import smart as smart_search
from cifar_core.sweeps.space import (
    Axis,
    SearchSpace,
    SweepError,
    space_from_toml,
    space_problems,
)
from cifar_core.sweeps.store import SweepStore, optuna_journal, sweep_file
from cifar_core.training.checkpoint import load_checkpoint, save_checkpoint
from cifar_core.training.config import TrainConfig
from cifar_core.training.models import Net

REPO = Path(__file__).resolve().parents[1]
FIXED = (Axis("epochs", (1,)), Axis("batch_size", (20,)), Axis("device", ("cpu",)))


@pytest.fixture(autouse=True)
def _in_tmp(in_tmp_and_signals_kept):
    """Every test here: see conftest.in_tmp_and_signals_kept."""


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


@pytest.fixture
def no_launch(monkeypatch) -> list:
    """The job runner claims queued runs as usual but starts no training process; returns the
    runs it would have launched."""
    launched = []
    monkeypatch.setattr(JobRunner, "_launch", lambda self, run: launched.append(run.id))
    return launched


def new_sweep(store: RunStore, space: SearchSpace, parallel: int = 2, raw_space: dict | None
              = None):
    """A recorded sweep, as start_sweep records it (its study too), without its first runs.
    raw_space: the space's JSON as stored, for a sweep an older version let in."""
    sweep = SweepStore(store).create("", space, "/data", "cli", parallel=parallel)
    if raw_space is not None:
        with closing(sqlite3.connect(store.root / DB_NAME)) as con, con:
            con.execute("UPDATE sweeps SET space=? WHERE id=?", (json.dumps(raw_space), sweep.id))
    if smart_search.uses_optuna(space):
        smart_search.create_study(optuna_journal(store, sweep.id), sweep.id)
    return SweepStore(store).get(sweep.id)


def finish_active(store: RunStore, sweep_id: str, accuracy: float = 30.0) -> None:
    """End every queued or running run of the sweep as completed (as its training would)."""
    for i, run in enumerate(SweepStore(store).runs(sweep_id)):
        if run.status in ACTIVE:
            store.finish(run.id, "completed", "Finished", {"accuracy": accuracy + i})


def drive_to_end(store: RunStore, sweep_id: str, ticks: int = 30):
    """Advance the sweep and finish its runs until it ends (or `ticks` rounds pass)."""
    for _ in range(ticks):
        scheduler.tick(store)
        finish_active(store, sweep_id)
        sweep = SweepStore(store).get(sweep_id)
        if not sweep.is_active:
            return sweep
    return SweepStore(store).get(sweep_id)


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and "Error:" not in text.replace("error:", ""), text


# --- 5: a bad seed; one bad sweep cannot stop the others -------------------------------------

@pytest.mark.parametrize("seed", [1.5, "x", -1, True, 2**40])
def test_item5_a_seed_that_is_not_a_whole_number_is_refused(seed):
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1), *FIXED), strategy="smart",
                        runs=4, seed=seed)
    problems = space_problems(space)
    assert "seed" in problems and "whole number" in problems["seed"]


def test_item5_a_space_file_with_seed_1_5_is_refused_by_the_cli(capsys, tmp_path):
    file = tmp_path / "space.toml"
    file.write_text('strategy = "smart"\nruns = 4\nseed = 1.5\n[settings]\n'
                    'lr = {low = 0.001, high = 0.1}\nepochs = 1\n')
    code, out, err = run_cli(capsys, "sweep", "--space", file, "--runs-dir", tmp_path / "runs",
                             "--data-dir", tmp_path, "--no-wait")
    assert code == 2 and "seed" in err.lower() and "whole number" in err, err
    no_traceback(err)
    assert SweepStore(RunStore(tmp_path / "runs")).list() == []


def test_item5_one_bad_sweep_fails_with_its_reason_and_the_scheduler_goes_on(store, no_launch):
    """A smart sweep with seed 1.5 recorded by an older version: every scheduler tick raised
    TypeError, so no page, no CLI command and no queued run got further."""
    good_space = SearchSpace(axes=(Axis("lr", (0.001, 0.01)), *FIXED))
    bad_space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1), *FIXED), strategy="smart",
                            runs=4)
    bad = new_sweep(store, bad_space, raw_space={**bad_space.to_dict(), "seed": 1.5})
    good = new_sweep(store, good_space)
    alone = store.create(TrainConfig(epochs=1).to_dict(), "/data", "cli")

    scheduler.tick(store)  # raised TypeError before

    failed = SweepStore(store).get(bad.id)
    assert failed.status == "failed" and "seed" in failed.message.lower(), failed.message
    assert len(SweepStore(store).runs(good.id)) == 2  # the good sweep made its runs
    assert alone.id in no_launch  # and the queued run outside sweeps was started
    assert drive_to_end(store, good.id).status == "completed"


def test_item5_a_sweep_whose_next_run_cannot_be_made_fails_and_the_others_go_on(
        store, no_launch, monkeypatch):
    """Whatever breaks in one sweep's step (a bug, a library's error) ends that sweep in
    words; the others advance."""
    first = new_sweep(store, SearchSpace(axes=(Axis("lr", (0.001, 0.01)), *FIXED)))
    second = new_sweep(store, SearchSpace(axes=(Axis("momentum", (0.5, 0.9)), *FIXED)))
    real = sweeps._make_run

    def broken(store_, sweep, index):
        if sweep.id == first.id:
            raise MemoryError()
        return real(store_, sweep, index)

    monkeypatch.setattr(sweeps, "_make_run", broken)
    scheduler.tick(store)
    failed = SweepStore(store).get(first.id)
    assert failed.status == "failed" and "MemoryError" in failed.message
    assert "could not go on" in failed.message
    assert len(SweepStore(store).runs(second.id)) == 2


def test_item5_keep_a_sweep_an_older_version_let_in_that_can_run_goes_on(store, no_launch):
    """Checks added since (a space that varies nothing, a list over 50 values) refuse new
    sweeps; one already running with such a space is not failed for it."""
    one = new_sweep(store, SearchSpace(axes=(Axis("lr", (0.01,)), *FIXED)))
    long_list = SearchSpace(axes=(Axis("lr", tuple(0.0001 * (i + 1) for i in range(60))),
                                  *FIXED), strategy="random", runs=3)
    listed = new_sweep(store, long_list)
    assert space_problems(one.space) and space_problems(listed.space)
    for sweep, runs in ((one, 1), (listed, 3)):
        ended = drive_to_end(store, sweep.id)
        assert ended.status == "completed", ended.message
        assert len(SweepStore(store).runs(sweep.id)) == runs


def test_item5_cli_commands_work_beside_a_bad_sweep(capsys, store, no_launch):
    bad_space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1), *FIXED), strategy="smart",
                            runs=4)
    bad = new_sweep(store, bad_space, raw_space={**bad_space.to_dict(), "seed": 1.5})
    code, out, err = run_cli(capsys, "sweep", "list", "--runs-dir", store.root)
    assert code == 0 and bad.id in out and "failed" in out, err
    no_traceback(err)
    code, out, err = run_cli(capsys, "sweep", "delete", bad.id, "--runs-dir", store.root)
    assert code == 0, err
    assert SweepStore(store).list() == []


# --- 6: a damaged Optuna journal -------------------------------------------------------------

def test_item6_a_journal_with_a_cut_off_last_line_is_mended_and_the_sweep_goes_on(
        store, no_launch):
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1), *FIXED), strategy="smart",
                        runs=6)
    sweep = new_sweep(store, space)
    scheduler.tick(store)  # two trials asked
    journal = optuna_journal(store, sweep.id)
    text = journal.read_bytes()
    journal.write_bytes(text[:-25])  # a crash (or a full disk) in the middle of a write

    ended = drive_to_end(store, sweep.id)  # raised JSONDecodeError from the third tick on

    assert ended.status == "completed", ended.message
    runs = SweepStore(store).runs(sweep.id)
    assert len(runs) == 6 and len({r.trial for r in runs}) == 6


def test_item6_a_journal_damaged_past_mending_fails_its_sweep_in_words(capsys, store,
                                                                       no_launch):
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1), *FIXED), strategy="smart",
                        runs=6)
    sweep = new_sweep(store, space)
    scheduler.tick(store)
    finish_active(store, sweep.id)
    journal = optuna_journal(store, sweep.id)
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[1] = b'{"op_code": 4, "worker_id": "x", "tri\n'  # a line in the middle cut short
    journal.write_bytes(b"".join(lines))

    for _ in range(3):
        scheduler.tick(store)  # raised JSONDecodeError

    failed = SweepStore(store).get(sweep.id)
    assert failed.status == "failed"
    assert "damaged" in failed.message and str(journal.name) in failed.message
    assert "JSONDecodeError" not in failed.message
    code, out, err = run_cli(capsys, "sweep", "show", sweep.id, "--runs-dir", store.root)
    assert code == 0 and "failed" in out
    no_traceback(err)


# --- 7: the sweep lock -----------------------------------------------------------------------

def hold_lock(store: RunStore, sweep_id: str):
    """The sweep's lock taken and kept, as a process stopped inside advance_sweep keeps it."""
    path = sweep_file(store, sweep_id, "lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")  # noqa: SIM115 (released by the test)
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def test_item7_a_held_sweep_lock_does_not_freeze_the_scheduler(store, no_launch):
    sweep = new_sweep(store, SearchSpace(axes=(Axis("lr", (0.001, 0.01)), *FIXED)))
    alone = store.create(TrainConfig(epochs=1).to_dict(), "/data", "cli")
    handle = hold_lock(store, sweep.id)
    try:
        done = threading.Event()
        thread = threading.Thread(target=lambda: (scheduler.tick(store), done.set()),
                                  daemon=True)
        start = time.monotonic()
        thread.start()
        thread.join(20)
        took = time.monotonic() - start
        assert done.is_set(), "the tick still waits for the sweep's lock after 20 s"
        assert took < 10
        assert alone.id in no_launch  # the rest of the schedule went on
        assert SweepStore(store).runs(sweep.id) == []  # this sweep waits for its next tick
    finally:
        handle.close()
        thread.join(20)
    scheduler.tick(store)  # the lock free again: the sweep goes on
    assert len(SweepStore(store).runs(sweep.id)) == 2


def test_item7_keep_a_lock_left_by_a_killed_process_is_no_lock(store, no_launch):
    sweep = new_sweep(store, SearchSpace(axes=(Axis("lr", (0.001, 0.01)), *FIXED)))
    path = sweep_file(store, sweep.id, "lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"h = open({str(path)!r}, 'a'); fcntl.flock(h, fcntl.LOCK_EX)\n"
        "print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
    finally:
        holder.kill()
        holder.wait()
    start = time.monotonic()
    scheduler.tick(store)
    assert time.monotonic() - start < 5
    assert len(SweepStore(store).runs(sweep.id)) == 2


def test_item7_a_study_lock_left_by_a_killed_process_stalls_nothing(store, no_launch):
    """Optuna locks its journal with a link beside it, which a process killed while writing
    leaves behind; Optuna waits 30 s before it breaks such a lock, inside the sweep's step."""
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1), *FIXED), strategy="smart",
                        runs=4)
    sweep = new_sweep(store, space)
    scheduler.tick(store)
    finish_active(store, sweep.id)
    journal = optuna_journal(store, sweep.id)
    Path(f"{journal}.lock").symlink_to(journal)  # as the killed writer left it
    start = time.monotonic()
    scheduler.tick(store)  # tells the study how two runs ended, asks for two more
    took = time.monotonic() - start
    assert took < 15, f"{took:.0f} s"
    assert len(SweepStore(store).runs(sweep.id)) == 4


# --- 8: a run of a running sweep deleted -----------------------------------------------------

def test_item8_deleting_a_run_of_a_running_sweep_does_not_leave_it_running(store, no_launch):
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.01, 0.1, 0.2)), *FIXED))
    sweep = new_sweep(store, space, parallel=4)
    scheduler.tick(store)
    runs = SweepStore(store).runs(sweep.id)
    assert len(runs) == 4
    store.finish(runs[1].id, "failed", "a bad one")
    JobRunner(store).delete(runs[1].id)

    ended = drive_to_end(store, sweep.id, ticks=10)

    assert ended.status == "completed", "the sweep stays 'running 3/4' for ever"
    assert len(SweepStore(store).runs(sweep.id)) == 3  # nothing made twice


# --- 9: grids and random draws picked by index -----------------------------------------------

def peak_bytes(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_item9_a_few_runs_of_a_huge_grid_are_picked_without_building_it():
    # 50 x 50 x 50 = 125,000 combinations (the report's 4 x 50 points: 6.25 million, 3.5 GB)
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1, count=50),
                              Axis("momentum", low=0.5, high=0.99, count=50),
                              Axis("weight_decay", low=0.0, high=0.01, count=50), *FIXED),
                        runs=5)
    assert space_problems(space) == {}
    configs = []
    peak = peak_bytes(lambda: configs.extend(space.configs()))
    assert peak < 2_000_000, f"{peak:,} bytes for 5 runs"
    assert len(configs) == 5
    lrs = space.axis("lr").points()
    # The first five combinations, in order: the last setting varies fastest.
    assert [c["lr"] for c in configs] == [lrs[0]] * 5
    assert [c["weight_decay"] for c in configs] == list(space.axis("weight_decay").points()[:5])


def test_item9_a_random_draw_over_big_lists_is_picked_without_building_the_grid():
    # 50 x 50 x 10 = 25,000 combinations (the report's 1000 x 1000 x 10: lists now capped)
    space = SearchSpace(axes=(Axis("lr", tuple(round(0.001 * (i + 1), 6) for i in range(50))),
                              Axis("momentum", tuple(round(0.5 + 0.008 * i, 6)
                                                     for i in range(50))),
                              Axis("batch_size", tuple(range(1, 11))),
                              Axis("epochs", (1,)), Axis("device", ("cpu",))),
                        strategy="random", runs=20, seed=3)
    assert space_problems(space) == {}
    configs = []
    peak = peak_bytes(lambda: configs.extend(space.configs()))
    assert peak < 2_000_000, f"{peak:,} bytes for 20 draws"
    combos = [(c["lr"], c["momentum"], c["batch_size"]) for c in configs]
    assert len(set(combos)) == 20  # still without repeats
    assert configs == space.configs()  # the same draw every time (the seed)


def test_item9_a_list_longer_than_the_cap_is_refused_saying_the_limit():
    space = SearchSpace(axes=(Axis("lr", tuple(0.0001 * (i + 1) for i in range(1000))),
                              *FIXED), strategy="random", runs=5)
    problems = space_problems(space)
    assert "lr" in problems and "at most" in problems["lr"], problems


def test_item9_making_a_run_of_a_huge_grid_sweep_is_quick(store, no_launch):
    space = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1, count=50),
                              Axis("momentum", low=0.5, high=0.99, count=50),
                              Axis("weight_decay", low=0.0, high=0.01, count=50), *FIXED),
                        runs=5)
    sweep = new_sweep(store, space, parallel=5)
    peak = peak_bytes(lambda: sweeps.advance_sweep(store, sweep))
    assert peak < 5_000_000, f"{peak:,} bytes to make 5 runs"
    assert len(SweepStore(store).runs(sweep.id)) == 5


# --- 10: the runs folder moved ---------------------------------------------------------------

def finished_run_with_network(store: RunStore):
    run = store.create(TrainConfig(epochs=1).to_dict(), "/data", "cli", status="running", pid=1)
    path = store.run_dir(run.id).resolve() / "cifar_net.pth"
    save_checkpoint(path, Net(), TrainConfig(epochs=1).to_dict(), OFFICIAL_CLASSES,
                    {"accuracy": 42.0})
    # As the jobs stored it before: the absolute path of the time.
    store.finish(run.id, "completed", "Finished", {"accuracy": 42.0}, str(path))
    return run


def test_item10_a_moved_runs_folder_still_finds_every_network(tmp_path, store):
    run = finished_run_with_network(store)
    moved = tmp_path / "elsewhere" / "my-runs"
    moved.parent.mkdir()
    store.root.rename(moved)

    again = RunStore(moved)
    found = again.get(run.id)
    assert found.checkpoint is not None, found.message
    assert "outside its folder" not in found.message
    assert Path(found.checkpoint).parent.resolve() == (moved / run.id).resolve()
    assert again.load_model(run.id).metrics["accuracy"] == 42.0


def test_item10_a_network_saved_now_is_found_after_the_folder_moved_too(tmp_path, synthetic_dir):
    from cifar_core.runs.pipeline import execute_run

    store = RunStore(tmp_path / "runs")
    config = TrainConfig(epochs=1, batch_size=20, log_every=5, device="cpu", seed=0)
    run = store.create(config.to_dict(), str(synthetic_dir), "cli")
    assert execute_run(store, run.id).status == "completed"
    store.root.rename(tmp_path / "renamed")
    # Even with the old place holding another folder of that name, the moved one is read.
    (tmp_path / "runs" / run.id).mkdir(parents=True)

    found = RunStore(tmp_path / "renamed").get(run.id)
    assert found.checkpoint and Path(found.checkpoint).resolve().is_relative_to(
        (tmp_path / "renamed").resolve())
    assert load_checkpoint(found.checkpoint).model is not None


def test_item10_keep_a_path_naming_another_folder_is_still_refused(tmp_path, store):
    run = store.create(TrainConfig(epochs=1).to_dict(), "/data", "cli", status="running", pid=1)
    secret = tmp_path / "outside" / "secret.pth"
    secret.parent.mkdir()
    save_checkpoint(secret, Net(), TrainConfig(epochs=1).to_dict(), OFFICIAL_CLASSES, {})
    store.finish(run.id, "completed", "Finished", {"accuracy": 1.0}, str(secret))
    shown = store.get(run.id)
    assert shown.checkpoint is None and "outside its folder" in shown.message


# --- 13: tracebacks --------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["settings = 5", 'settings = "lr"', "settings = [1, 2]"])
def test_item13_settings_that_are_not_a_table_are_refused_in_words(text):
    with pytest.raises(SweepError, match=r"\[settings\]"):
        space_from_toml(text)


@pytest.mark.parametrize("argv", [["runs", "list"], ["sweep", "list"],
                                  ["runs", "show", "RUN"]])
def test_item13_output_into_a_closed_pipe_is_no_traceback(tmp_path, argv):
    store = RunStore(tmp_path / "runs")
    run = None
    for _ in range(3):
        run = store.create(TrainConfig(epochs=1).to_dict(), "/data", "cli")
        store.finish(run.id, "completed", "Finished", {"accuracy": 10.0})
    SweepStore(store).create("", SearchSpace(axes=(Axis("lr", (0.001, 0.01)), *FIXED)),
                             "/data", "cli")
    argv = [run.id if a == "RUN" else a for a in argv]
    proc = subprocess.Popen([sys.executable, "-m", "cifar_core", *argv, "--runs-dir",
                             str(store.root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=REPO)
    proc.stdout.close()  # as `| head -1` does once it has its line
    err = proc.stderr.read().decode()
    proc.wait(60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


# --- 14: a sweep that varies nothing ---------------------------------------------------------

@pytest.mark.parametrize("space", [
    SearchSpace(axes=(Axis("lr", (0.01,)),)),
    SearchSpace(),
    SearchSpace(axes=(Axis("lr", (0.01,)),), runs=1),
    SearchSpace(axes=(Axis("lr", (0.01,)),), strategy="random", runs=1),
])
def test_item14_a_space_that_varies_nothing_is_refused(space):
    problems = space_problems(space)
    assert problems.get("space", "").startswith("Nothing varies"), problems


def test_item14_cli_refuses_one_value_and_an_empty_space_file(capsys, tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    for flags in (["--lr", "0.01"], ["--space", str(empty)]):
        code, _, err = run_cli(capsys, "sweep", *flags, "--runs-dir", tmp_path / "runs",
                               "--data-dir", tmp_path, "--no-wait")
        assert code == 2 and "Nothing varies" in err, err
    store = RunStore(tmp_path / "runs")
    assert SweepStore(store).list() == [] and store.list() == []


# --- 15: a device that is not here -----------------------------------------------------------

def test_item15_a_device_list_with_one_not_here_is_refused_before_anything_starts(
        store, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    space = SearchSpace(axes=(Axis("lr", (0.001, 0.01)), Axis("epochs", (1,)),
                              Axis("device", ("cpu", "cuda:0"))))
    with pytest.raises(SweepError) as refused:
        sweeps.start_sweep(store, space, "/data")
    assert refused.value.field == "device" and "cuda:0" in str(refused.value)
    assert SweepStore(store).list() == [] and store.list() == []


# --- 16: a full disk under the WAL -----------------------------------------------------------

def test_item16_a_disk_io_error_on_a_full_disk_says_the_disk_is_full(tmp_path, monkeypatch):
    error = sqlite3.OperationalError("disk I/O error")
    db = tmp_path / DB_NAME
    monkeypatch.setattr(store_faults, "free_bytes", lambda folder: 0, raising=False)
    full = store_faults.store_error(error, db)
    assert full.reason == "full" and "is full" in str(full)
    monkeypatch.setattr(store_faults, "free_bytes", lambda folder: 50 * 2**30)
    other = store_faults.store_error(error, db)
    assert other.reason != "full" and "disk I/O error" in str(other)


def test_item16_free_bytes_reads_the_folder_s_disk(tmp_path):
    import shutil

    assert abs(store_faults.free_bytes(tmp_path) - shutil.disk_usage(tmp_path).free) < 2**30


class _FullDiskConnection(sqlite3.Connection):
    """Writes to events fail as SQLite fails them when the WAL cannot grow."""

    def execute(self, sql, *args):
        if "INTO events" in sql:
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)


def test_item16_a_store_write_on_a_full_disk_is_a_full_disk_error(store, monkeypatch):
    run = store.create(TrainConfig(epochs=1).to_dict(), "/data", "cli")
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(
        *a, factory=_FullDiskConnection, **k))
    monkeypatch.setattr(store_faults, "free_bytes", lambda folder: 4096, raising=False)
    with pytest.raises(StoreError) as refused:
        store.add_event(run.id, {"kind": "log", "message": "x"})
    assert refused.value.reason == "full" and "Free some space" in str(refused.value)


# --- 21: a damaged sweep row -----------------------------------------------------------------

def damage_sweep(store: RunStore, sweep_id: str) -> None:
    with closing(sqlite3.connect(store.root / DB_NAME)) as con, con:
        con.execute("UPDATE sweeps SET space=? WHERE id=?", ('{"axes": {"lr": ', sweep_id))


def test_item21_a_damaged_sweep_row_is_named_not_hidden_and_can_be_deleted(capsys, store,
                                                                            no_launch):
    kept = new_sweep(store, SearchSpace(axes=(Axis("lr", (0.001, 0.01)), *FIXED)))
    broken = new_sweep(store, SearchSpace(axes=(Axis("momentum", (0.5, 0.9)), *FIXED)))
    damage_sweep(store, broken.id)

    warnings = SweepStore(store).damaged_sweeps()
    assert len(warnings) == 1 and warnings[0].id == broken.id
    assert "cannot be read" in warnings[0].message and "delete" in warnings[0].message
    assert "Expecting" not in warnings[0].message  # the parser's words stay out
    assert [s.id for s in SweepStore(store).list()] == [kept.id]

    code, out, err = run_cli(capsys, "sweep", "list", "--runs-dir", store.root)
    assert code == 0 and kept.id in out and "cannot be read" in err
    assert f"sweep delete {broken.id}" in err
    code, out, err = run_cli(capsys, "sweep", "delete", broken.id, "--runs-dir", store.root)
    assert code == 0, err
    assert SweepStore(store).damaged_sweeps() == []
    assert [s.id for s in SweepStore(store).list()] == [kept.id]


def test_item21_the_sweep_page_shows_a_damaged_sweep_with_a_delete_button(
        store, runs_dir, monkeypatch, no_launch, synthetic_dir):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CIFAR_DATA_DIR", str(synthetic_dir))
    page_store = RunStore(runs_dir)
    broken = new_sweep(page_store, SearchSpace(axes=(Axis("lr", (0.001, 0.01)), *FIXED)))
    damage_sweep(page_store, broken.id)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/sweep.py").run()
    assert not at.exception
    shown = " ".join(w.value for w in at.warning)
    assert broken.id in shown and "cannot be read" in shown
    button = next(b for b in at.button if b.key == f"sw_delete_damaged_{broken.id}")
    button.click().run()
    assert SweepStore(page_store).damaged_sweeps() == []


# --- issue 22, item 11: a bad flag points to its command's help -------------------------------

@pytest.mark.parametrize("argv, helps", [
    (["train", "--bogus"], "python -m cifar_core train --help"),
    (["runs", "list", "--bogus"], "python -m cifar_core runs list --help"),
    (["sweep", "--bogus"], "python -m cifar_core sweep --help"),
])
def test_issue22_item11_a_bad_flag_points_to_its_command_s_help(capsys, argv, helps):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and f"see '{helps}'" in err and "--bogus" in err, err


# --- 5 and 6 on the pages: a bad sweep beside a good one -------------------------------------

def test_item5_item6_the_sweep_page_shows_bad_sweeps_as_failed_and_goes_on(
        runs_dir, monkeypatch, no_launch, synthetic_dir):
    """A sweep with seed 1.5 and one whose study's journal is damaged in the middle: the page
    said "Something went wrong: TypeError" (then JSONDecodeError) and nothing went on."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CIFAR_DATA_DIR", str(synthetic_dir))
    store = RunStore(runs_dir)
    smart = SearchSpace(axes=(Axis("lr", low=0.001, high=0.1), *FIXED), strategy="smart",
                        runs=4)
    damaged = new_sweep(store, smart)
    sweeps.advance_sweep(store, damaged)
    journal = optuna_journal(store, damaged.id)
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join([*lines[:1], b'{"op_code": 4, "tri\n', *lines[1:]]))
    finish_active(store, damaged.id)  # its runs ended: the study is to be told
    seeded = new_sweep(store, smart, raw_space={**smart.to_dict(), "seed": 1.5})

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/sweep.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if "Something went wrong" in e.value]
    for sweep_id, words in ((seeded.id, "seed"), (damaged.id, "damaged")):
        shown = SweepStore(store).get(sweep_id)
        assert shown.status == "failed" and words in shown.message, shown.message
    at.selectbox(key="sw_chosen").set_value(seeded.id).run()
    assert not at.exception
    progress = " ".join(p.proto.text for p in at.get("progress"))
    assert "Failed: The sweep could not go on" in progress and "seed" in progress, progress

"""Issue 12, "Safe by default": the run store's cases (3, 4, 5, 6 and 12), one test per fault,
named by its case. Each failed before its fix; the `keep_` tests guard what the fixes must not
break (killed jobs marked failed, two starts at once queued; tests/test_jobs.py has the slower
versions with real training processes).

A read-only folder is made for real with chmod, in a process for which chmod matters: as
another user than root, or, where the tests run as root, as root without the capability to
ignore file permissions (setpriv). Faults that cannot be made for real here (a disk filling up
in the middle of a run) are injected into the store's SQLite connections.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from conftest import run_cli, write_cifar_batches
from streamlit.testing.v1 import AppTest

from cifar_core import cli, scheduler
from cifar_core.data.dataset import OFFICIAL_CLASSES
from cifar_core.errors import RunError
from cifar_core.runs import jobs
from cifar_core.runs.jobs import JobRunner
from cifar_core.runs.pipeline import execute_run
from cifar_core.runs.store import DB_NAME, RunStore
from cifar_core.training.checkpoint import load_checkpoint, save_checkpoint
from cifar_core.training.config import TrainConfig
from cifar_core.training.models import Net

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
TIMEOUT = 60
CONFIG = TrainConfig(epochs=1, batch_size=10, log_every=2, seed=0, device="cpu").to_dict()
# Many short minibatches: a run that is still training whenever the test breaks its store.
LONG = dict(epochs=200, batch_size=10, log_every=1, lr=0.002, seed=0, device="cpu")


@pytest.fixture(autouse=True)
def _in_tmp(in_tmp_and_signals_kept):
    """Every test here: see conftest.in_tmp_and_signals_kept."""


def insert_row(root: Path, run_id: str, status: str = "completed", config: str | None = None,
               metrics: str | None = None, checkpoint: str | None = None,
               pid: int | None = None, created: float | None = None) -> None:
    """A runs row written straight into the store's file, as an edited or damaged store has."""
    with closing(sqlite3.connect(root / DB_NAME)) as con, con:
        con.execute("INSERT INTO runs(id, created, config, data_dir, origin, status, pid, "
                    "message, metrics, checkpoint) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, created or time.time(), config or json.dumps(CONFIG), "/data",
                     "cli", status, pid, "", metrics, checkpoint))


def metrics(accuracy: float) -> dict:
    """What a finished run records (the parts the CLI and the pages show)."""
    return {"accuracy": accuracy, "per_class": dict.fromkeys(OFFICIAL_CLASSES, accuracy),
            "test_images": 50, "epochs_done": 1, "images_per_s": 1000.0}


def save_net(path: Path, accuracy: float = 33.0) -> Path:
    """A real checkpoint of the tutorial's network, as a finished run leaves it."""
    return save_checkpoint(path, Net(), CONFIG, OFFICIAL_CLASSES, metrics(accuracy))


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and "sqlite3." not in text and "JSONDecodeError" not in text


# --- real read-only folders ------------------------------------------------------------------

def _chmod_matters_prefix() -> list[str] | None:
    """The command prefix that runs a process for which chmod matters, or None if there is none
    here: nothing as another user than root; as root, setpriv without CAP_DAC_OVERRIDE."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]


@pytest.fixture
def chmod_matters(tmp_path) -> list[str]:
    """The prefix for commands that must find a chmod-ed folder read-only (skips if none)."""
    prefix = _chmod_matters_prefix()
    if prefix is None:
        pytest.skip("running as root without setpriv: chmod cannot make a folder read-only")
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        made = subprocess.run([*prefix, sys.executable, "-c",
                               f"open({str(probe / 'x')!r}, 'w')"], capture_output=True)
    finally:
        probe.chmod(0o755)
    if made.returncode == 0:
        pytest.skip("chmod does not stop writes here (e.g. a filesystem that ignores modes)")
    return prefix


def make_read_only(root: Path) -> None:
    """root and everything in it read-only, as a read-only mount or someone else's folder."""
    for path in [*root.rglob("*"), root]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def cli_process(prefix: list[str], *argv, env: dict | None = None,
                timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "cifar_core", *map(str, argv)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env={**os.environ, **(env or {})})


# --- faults injected into the store's SQLite connections --------------------------------------

WRITES = ("INSERT", "UPDATE", "DELETE", "BEGIN", "REPLACE")


class _FaultyConnection(sqlite3.Connection):
    """A connection whose writes fail once the test says so (see inject_write_faults)."""

    faults: dict = {}

    def execute(self, sql, *args):
        plan = _FaultyConnection.faults
        verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if plan and verb in WRITES:
            if plan["table"] in sql:
                plan["seen"] += 1
                plan["tripped"] = plan["tripped"] or plan["seen"] > plan["after"]
                if plan["tripped"]:
                    raise sqlite3.OperationalError(plan["message"])
            elif plan["tripped"] and plan["every_write"]:
                raise sqlite3.OperationalError(plan["message"])
        return super().execute(sql, *args)


@pytest.fixture
def inject_write_faults(monkeypatch):
    """inject(message, after=N, table=T, every_write=...): the (N+1)th write to table T fails
    with OperationalError(message), and so does every later one to T, or, with every_write,
    every later write of the store at all."""
    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        return real_connect(*args, factory=_FaultyConnection, **kwargs)

    def inject(message: str, after: int, table: str, every_write: bool) -> dict:
        _FaultyConnection.faults.update(message=message, after=after, table=table,
                                        every_write=every_write, seen=0, tripped=False)
        return _FaultyConnection.faults

    monkeypatch.setattr(sqlite3, "connect", connect)
    yield inject
    _FaultyConnection.faults.clear()


# --- dashboard pages --------------------------------------------------------------------------

@pytest.fixture
def dashboard_env(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(data folder, runs folder) the dashboard uses."""
    data = write_cifar_batches(tmp_path / "data")
    monkeypatch.setenv("CIFAR_DATA_DIR", str(data))
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "runs"))
    return data, tmp_path / "runs"


def page(path: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if path:
        at.switch_page(path)
        at.run()
    return at


def everything_said(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [i.value for i in at.info] + [s.value for s in at.success]
    parts += [t.value for t in at.toast]
    return "\n".join(str(p) for p in parts)


def page_is_sound(at: AppTest) -> str:
    said = everything_said(at)
    assert not at.exception, [e.value for e in at.exception]
    assert "Something went wrong" not in said and "Traceback" not in said
    return said


# === 3. Paths built from stored data stay inside the runs folder ==============================

def test_case3_runs_delete_of_a_tampered_id_leaves_a_folder_outside_alone(capsys, tmp_path):
    store = RunStore(tmp_path / "runs")
    outside = tmp_path / "x"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    insert_row(store.root, "../x")

    code, out, err = run_cli(capsys, "runs", "--runs-dir", store.root, "delete", "../x")

    assert code == 2 and err.startswith("error: Refused") and len(err.splitlines()) == 1
    assert "runs folder" in err
    no_traceback(err)
    assert (outside / "precious.txt").read_text() == "keep me"
    assert "Deleted" not in out


def test_case3_run_dir_refuses_ids_that_lead_outside(tmp_path):
    # (Also the fault list's "traversal ids refused".)
    store = RunStore(tmp_path / "runs")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (store.root / "linked").symlink_to(outside, target_is_directory=True)
    for run_id in ("../x", "..", ".", "", "a/b", str(outside), "..\\x", "linked"):
        with pytest.raises(RunError, match="Refused"):
            store.run_dir(run_id)
        with pytest.raises(RunError):
            store.delete(run_id)
    insert_row(store.root, "linked", status="failed")
    with pytest.raises(RunError, match="Refused"):
        store.delete("linked")
    assert outside.is_dir() and (store.root / "linked").is_symlink()
    assert store.run_dir("20261201-120000-abcd") == store.root / "20261201-120000-abcd"


def test_case3_a_checkpoint_path_outside_the_run_is_never_read(capsys, tmp_path, dashboard_env):
    _, runs_dir = dashboard_env
    store = RunStore(runs_dir)
    secret = save_net(tmp_path / "outside" / "secret.pth")
    before = secret.read_bytes()
    run = store.create(CONFIG, "/data", "cli", status="running", pid=1)
    store.finish(run.id, "completed", "Finished", metrics(33.0), str(secret))
    # A link in the run's folder to a file elsewhere is refused the same way.
    linked = store.create(CONFIG, "/data", "cli", status="running", pid=1)
    (store.run_dir(linked.id) / "cifar_net.pth").symlink_to(secret)
    store.finish(linked.id, "completed", "Finished", metrics(33.0),
                 str(store.run_dir(linked.id) / "cifar_net.pth"))

    for run_id in (run.id, linked.id):
        with pytest.raises(RunError, match="Refused.*outside its folder"):
            store.load_model(run_id)
        shown = store.get(run_id)
        assert shown.checkpoint is None and "outside its folder" in shown.message
    code, out, err = run_cli(capsys, "runs", "--runs-dir", runs_dir, "show", run.id)
    assert code == 0 and "checkpoint:" not in out and "outside its folder" in out
    # The Runs page offers no download of it, the Evaluate page no evaluation.
    at = page("pages/runs.py")
    page_is_sound(at)
    assert not [b.label for b in at.get("download_button") if b.label.startswith("Network")]
    at = page("pages/evaluate.py")
    page_is_sound(at)
    assert secret.read_bytes() == before


def test_case3_a_tampered_runs_log_outside_is_not_read_by_reap(tmp_path):
    store = RunStore(tmp_path / "runs")
    outside = tmp_path / "x"
    outside.mkdir()
    (outside / jobs.LOG_NAME).write_text("SECRET line from a file outside the runs folder\n")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    insert_row(store.root, "../x", status="running", pid=gone.pid)

    JobRunner(store).reap()

    with closing(sqlite3.connect(store.db_path)) as con:
        message = con.execute("SELECT message FROM runs WHERE id='../x'").fetchone()[0]
    assert "SECRET" not in message
    assert "../x" not in [r.id for r in store.list()]
    assert any("../x" in w for w in store.damaged_runs())


# === 4. A damaged or read-only store ==========================================================

def test_case4_a_garbage_store_is_moved_aside_and_its_runs_recovered_from_folders(capsys,
                                                                                 tmp_path):
    root = tmp_path / "runs"
    store = RunStore(root)
    kept = store.create(CONFIG, "/data", "cli", status="running", pid=1)
    save_net(store.run_dir(kept.id) / "cifar_net.pth", accuracy=41.0)
    store.finish(kept.id, "completed", "Finished", metrics(41.0),
                 str(store.run_dir(kept.id) / "cifar_net.pth"))
    empty = store.create(CONFIG, "/data", "cli")
    garbage = b"this is not a database at all\n" * 40
    store.db_path.write_bytes(garbage)

    code, out, err = run_cli(capsys, "runs", "--runs-dir", root, "list")

    assert code == 0, err
    no_traceback(out + err)
    [broken] = root.glob(f"{DB_NAME}.broken-*")
    assert broken.read_bytes() == garbage
    assert err.startswith("warning: The run store") and "moved aside" in err
    assert broken.name in err and kept.id in err and empty.id in err
    assert "without a readable saved network" in err
    assert kept.id in out and "41.0 %" in out
    recovered = RunStore(root).get(kept.id)
    assert recovered.status == "completed" and recovered.accuracy == 41.0
    assert recovered.train_config.batch_size == 10
    assert load_checkpoint(RunStore(root).checkpoint_path(kept.id)).metrics["accuracy"] == 41.0


def test_case4_a_truncated_store_is_moved_aside_and_what_it_holds_is_kept(capsys, tmp_path):
    root = tmp_path / "runs"
    store = RunStore(root)
    ids = []
    for accuracy in (20.0, 30.0):
        run = store.create(CONFIG, "/data", "cli", status="running", pid=1)
        save_net(store.run_dir(run.id) / "cifar_net.pth", accuracy=accuracy)
        store.finish(run.id, "completed", "Finished", metrics(accuracy),
                     str(store.run_dir(run.id) / "cifar_net.pth"))
        ids.append(run.id)
    # Enough pages for a cut in the middle to lose some, in one transaction (add_event's one
    # each took most of this test's time).
    with closing(sqlite3.connect(store.db_path)) as con, con:
        con.executemany("INSERT INTO events(run_id, kind, data) VALUES(?, ?, ?)",
                        [(ids[0], "log", json.dumps({"kind": "log", "message": f"line {i}"}))
                         for i in range(2000)])
    size = store.db_path.stat().st_size
    with open(store.db_path, "r+b") as f:
        f.truncate(size // 2)

    code, out, err = run_cli(capsys, "runs", "--runs-dir", root, "list", "--json")

    assert code == 0, err
    no_traceback(out + err)
    assert "moved aside" in err and list(root.glob(f"{DB_NAME}.broken-*"))
    listed = {json.loads(line)["id"]: json.loads(line) for line in out.splitlines()}
    assert set(listed) == set(ids)
    assert {listed[i]["status"] for i in ids} == {"completed"}


def test_case4_a_damaged_run_row_is_left_out_with_a_warning(capsys, tmp_path):
    store = RunStore(tmp_path / "runs")
    good = store.create(CONFIG, "/data", "cli")
    insert_row(store.root, "20261201-100000-bad1", config="{not json")
    insert_row(store.root, "20261201-100000-bad2", metrics="[1, 2")
    other = store.create(CONFIG, "/data", "cli")

    code, out, err = run_cli(capsys, "runs", "--runs-dir", store.root, "list")
    assert code == 0, err
    no_traceback(out + err)
    assert good.id in out and other.id in out and "bad1" not in out and "bad2" not in out
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 2 and "bad1" in warnings[1] and "bad2" in warnings[0]
    assert "runs delete 20261201-100000-bad1" in err

    code, _, err = run_cli(capsys, "runs", "--runs-dir", store.root, "show",
                           "20261201-100000-bad1")
    assert code == 2 and err.startswith("error: Run '20261201-100000-bad1' cannot be read")
    no_traceback(err)
    code, out, err = run_cli(capsys, "runs", "--runs-dir", store.root, "delete",
                             "20261201-100000-bad1")
    assert code == 0 and "Deleted" in out
    assert len(store.damaged_runs()) == 1


def test_case4_the_runs_page_shows_the_other_runs_and_says_which_is_damaged(dashboard_env):
    _, runs_dir = dashboard_env
    store = RunStore(runs_dir)
    good = store.create(CONFIG, "/data", "dashboard", status="running", pid=1)
    store.finish(good.id, "failed", "Stopped by the test.")
    insert_row(runs_dir, "20261201-100000-bad1", metrics="{oops")

    at = page()  # the first page of a session says it, once
    page_is_sound(at)
    [toast] = [t.value for t in at.toast]
    assert "20261201-100000-bad1" in toast and "left out" in toast
    at.switch_page("pages/runs.py").run()

    page_is_sound(at)
    assert list(at.dataframe[0].value["run"]) == [good.id]
    assert not at.toast


def test_case4_the_home_page_after_a_garbage_store_says_what_was_done(dashboard_env):
    data, runs_dir = dashboard_env
    store = RunStore(runs_dir)
    run = store.create(CONFIG, str(data), "dashboard", status="running", pid=1)
    save_net(store.run_dir(run.id) / "cifar_net.pth", accuracy=47.0)
    store.finish(run.id, "completed", "Finished", metrics(47.0),
                 str(store.run_dir(run.id) / "cifar_net.pth"))
    store.db_path.write_bytes(b"\x00garbage" * 100)

    at = page()

    said = page_is_sound(at)
    toasts = [t.value for t in at.toast]
    assert len(toasts) == 1 and "moved aside" in toasts[0] and run.id in toasts[0]
    assert f"The latest finished run, **{run.id}**, reached 47.0 %" in said
    at.run()  # told once: not again on the next rerun
    assert not at.toast


PAGE_SCRIPT = textwrap.dedent("""
    import json, sys
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(sys.argv[1], default_timeout=60)
    at.run()
    toasts = [t.value for t in at.toast]
    at.switch_page("pages/train.py")
    at.run()
    seen = {"exception": [str(e.value) for e in at.exception],
            "toast": toasts, "main_error": [e.value for e in at.main.error],
            "all": "\\n".join(str(x.value) for x in [*at.markdown, *at.error, *at.info,
                                                      *at.caption, *at.warning,
                                                      *at.subheader])}
    start = next(b for b in at.button if b.label == "Start training")
    start.click().run()
    seen["after_start"] = [e.value for e in at.main.error]
    seen["after_start_exception"] = [str(e.value) for e in at.exception]
    print(json.dumps(seen))
""")


def test_case4_a_read_only_runs_folder_is_named_with_what_to_do(tmp_path, chmod_matters,
                                                                dashboard_env):
    data, runs_dir = dashboard_env
    store = RunStore(runs_dir)
    run = store.create(CONFIG, str(data), "cli", status="running", pid=1)
    store.finish(run.id, "failed", "Stopped by the test.")
    make_read_only(runs_dir)
    try:
        listed = cli_process(chmod_matters, "runs", "--runs-dir", runs_dir, "list")
        deleted = cli_process(chmod_matters, "runs", "--runs-dir", runs_dir, "delete", run.id)
        trained = cli_process(chmod_matters, "train", "--runs-dir", runs_dir, "--data-dir",
                              data, "--out", tmp_path / "net.pth", "--epochs", "1")
        script = tmp_path / "page.py"
        script.write_text(PAGE_SCRIPT)
        shown = subprocess.run([*chmod_matters, sys.executable, str(script), APP],
                               capture_output=True, text=True, cwd=REPO, timeout=120)
    finally:
        make_writable(runs_dir)

    assert listed.returncode == 0, listed.stderr
    assert run.id in listed.stdout
    for result in (listed, deleted, trained):
        no_traceback(result.stdout + result.stderr)
        assert str(runs_dir) in result.stderr and "CIFAR_RUNS_DIR" in result.stderr
    assert deleted.returncode == 2 and "error: The runs folder" in deleted.stderr
    assert trained.returncode == 2 and "loss:" not in trained.stdout
    assert [r.id for r in RunStore(runs_dir).list()] == [run.id]  # nothing deleted or added

    assert shown.returncode == 0, shown.stderr[-3000:]
    seen = json.loads(shown.stdout.strip().splitlines()[-1])
    assert seen["exception"] == [] and seen["after_start_exception"] == []
    assert "Something went wrong" not in seen["all"]
    assert len(seen["toast"]) == 1 and "CIFAR_RUNS_DIR" in seen["toast"][0]
    assert str(runs_dir) in seen["toast"][0]
    assert run.id in seen["all"]  # its runs can still be looked at
    # The refusal, said once beside the button; below it the followed run's ending as before
    # (the refusal used to end the page, since the Repeat field it is said in place).
    refusals = [e for e in seen["after_start"] if "CIFAR_RUNS_DIR" in e]
    assert len(refusals) == 1 and str(runs_dir) in refusals[0], seen["after_start"]
    assert [e for e in seen["after_start"] if e not in refusals] == \
        [e for e in seen["main_error"] if "CIFAR_RUNS_DIR" not in e]


# === 5. The store stops taking writes in the middle of a run ==================================

def test_case5_a_store_turning_read_only_mid_run_stops_saves_and_says_so(
        capsys, tmp_path, synthetic_dir, inject_write_faults):
    runs_dir, out = tmp_path / "runs", tmp_path / "kept" / "net.pth"
    # The 4th write to the events table on, and every later write, fail (finish too).
    plan = inject_write_faults("attempt to write a readonly database", after=3,
                               table="events", every_write=True)

    code, stdout, err = run_cli(capsys, "train", "--runs-dir", runs_dir, "--data-dir",
                                synthetic_dir, "--out", out,
                                *[f"--{k.replace('_', '-')}={v}" for k, v in LONG.items()])
    plan.clear()

    no_traceback(stdout + err)
    assert code == 2
    [error] = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "cannot be written" in error and "CIFAR_RUNS_DIR" in error
    assert "Training stopped after" in error and "saved in" in error
    assert "could not be marked failed" in error
    assert "Stopping the training" in err  # said when it happened, not only at the end
    saved = load_checkpoint(out)
    assert saved.metrics["images_seen"] < 200 * 100  # it stopped early ...
    assert saved.metrics["images_seen"] >= 3 * 10  # ... with what it had learned
    [run] = RunStore(runs_dir).list()
    assert run.status == "running"  # honestly: the store could not be told; reap will


def test_case5_a_full_disk_mid_run_marks_the_run_failed_with_its_network(
        tmp_path, synthetic_dir, inject_write_faults):
    store = RunStore(tmp_path / "runs")
    run = store.create(TrainConfig(**LONG).to_dict(), str(synthetic_dir), "dashboard",
                       status="running")
    # Only new events fail (the disk has room again by the end, as after a log is removed).
    inject_write_faults("database or disk is full", after=5, table="INTO events",
                        every_write=False)
    said = []

    ended = execute_run(store, run.id, on_event=said.append)

    stored = store.get(run.id)
    assert ended.status == stored.status == "failed"
    assert "disk holding the runs folder" in stored.message and "is full" in stored.message
    assert "Training stopped after" in stored.message
    assert stored.checkpoint and load_checkpoint(store.checkpoint_path(run.id))
    assert any("Stopping the training" in e.get("message", "") for e in said)
    assert len(store.events(run.id)) == 5


def test_case5_a_run_folder_that_cannot_hold_the_network_saves_it_elsewhere(
        tmp_path, synthetic_dir, monkeypatch):
    from cifar_core.runs import pipeline
    store = RunStore(tmp_path / "runs")
    run = store.create(TrainConfig(**{**LONG, "epochs": 1}).to_dict(), str(synthetic_dir),
                       "dashboard", status="running")
    real_save = pipeline.save_checkpoint

    def save(path, *args, **kwargs):
        if Path(path).parent == store.run_dir(run.id):
            raise OSError(28, "No space left on device")
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "save_checkpoint", save)
    monkeypatch.setattr(pipeline.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))

    ended = execute_run(store, run.id)

    assert ended.status == "failed" and store.get(run.id).status == "failed"
    kept = tmp_path / "tmp" / f"cifar_net-{run.id}.pth"
    assert str(kept) in ended.message and "No space left on device" in ended.message
    assert load_checkpoint(kept).metrics["epochs_done"] == 1


def test_case5_a_real_read_only_folder_mid_run(tmp_path, synthetic_dir, chmod_matters):
    runs_dir, out = tmp_path / "runs", tmp_path / "kept" / "net.pth"
    RunStore(runs_dir)
    child = subprocess.Popen(
        [*chmod_matters, sys.executable, "-m", "cifar_core", "train", "--runs-dir", runs_dir,
         "--data-dir", synthetic_dir, "--out", out,
         *[f"--{k.replace('_', '-')}={v}" for k, v in LONG.items()]],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            runs = RunStore(runs_dir).list()
            if runs and len(RunStore(runs_dir).events(runs[0].id, kind="stats")) >= 3:
                break
            assert child.poll() is None, child.communicate()
            time.sleep(0.1)
        make_read_only(runs_dir)
        stdout, err = child.communicate(timeout=TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
        make_writable(runs_dir)

    no_traceback(stdout + err)
    assert child.returncode == 2, err
    [error] = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "CIFAR_RUNS_DIR" in error and str(out) in error
    assert load_checkpoint(out).metrics["images_seen"] < 200 * 100
    [run] = RunStore(runs_dir).list()
    JobRunner(RunStore(runs_dir)).reap()  # its process has ended: now it is marked failed
    assert RunStore(runs_dir).get(run.id).status == "failed"


# === 6. train --out is checked before any training ============================================

@pytest.mark.parametrize("kind", ["folder", "empty", "under a file"])
def test_case6_a_bad_out_is_one_error_line_before_training(capsys, tmp_path, synthetic_dir,
                                                           kind):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = {"folder": str(tmp_path), "empty": "", "under a file": str(blocker / "net.pth")}[kind]

    started = time.monotonic()
    code, stdout, err = run_cli(capsys, "train", "--runs-dir", tmp_path / "runs", "--data-dir",
                                synthetic_dir, "--out", out, "--epochs", "1")

    assert code == 2
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert "--out" in err
    no_traceback(err)
    assert "loss:" not in stdout and time.monotonic() - started < 5
    assert RunStore(tmp_path / "runs").list() == []  # no run recorded
    assert blocker.read_text() == "x"


def test_case6_an_out_in_a_read_only_folder_is_refused_before_training(tmp_path, synthetic_dir,
                                                                      chmod_matters):
    locked = tmp_path / "locked"
    locked.mkdir()
    make_read_only(locked)
    try:
        result = cli_process(chmod_matters, "train", "--runs-dir", tmp_path / "runs",
                             "--data-dir", synthetic_dir, "--out", locked / "net.pth",
                             "--epochs", "1")
    finally:
        make_writable(locked)

    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --out {locked / 'net.pth'} cannot be written")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "loss:" not in result.stdout and RunStore(tmp_path / "runs").list() == []
    assert list(locked.iterdir()) == []


# === 12. Shared flags before or after the sub-command =========================================

@pytest.fixture
def two_runs(tmp_path) -> tuple[Path, str, str]:
    store = RunStore(tmp_path / "runs")
    done = store.create(CONFIG, "/data", "cli", status="running", pid=1)
    store.finish(done.id, "completed", "Finished", metrics(50.0))
    queued = store.create(CONFIG, "/data", "cli", status="running", pid=os.getpid())
    return store.root, done.id, queued.id


def _placements(runs_dir: Path, action: list[str], json_too: bool) -> list[list[str]]:
    """The action with --runs-dir (and --json) at every level: before 'runs', between 'runs'
    and the action, after the action."""
    found = []
    flags = [["--runs-dir", str(runs_dir)]] + ([["--json"]] if json_too else [])
    levels = ("top", "runs", "action")
    for spots in [(a, b) for a in levels for b in levels] if json_too else [(a,) for a in levels]:
        argv = {"top": [], "runs": [], "action": []}
        for flag, spot in zip(flags, spots, strict=True):
            argv[spot] += flag
        found.append([*argv["top"], "runs", *argv["runs"], *action, *argv["action"]])
    return found


@pytest.mark.parametrize("action", ["list", "show"])
def test_case12_runs_list_and_show_take_their_flags_anywhere(capsys, two_runs, action):
    runs_dir, done, _ = two_runs
    words = ["list"] if action == "list" else ["show", done]
    for argv in _placements(runs_dir, words, json_too=True):
        code, out, err = run_cli(capsys, *argv)
        assert code == 0, (argv, err)
        objects = [json.loads(line) for line in out.splitlines()]
        assert done in [o["id"] for o in objects], argv
    for argv in _placements(runs_dir, words, json_too=False):
        code, out, err = run_cli(capsys, *argv)
        assert code == 0 and done in out and not out.startswith("{"), (argv, err)


@pytest.mark.parametrize("action", ["stop", "delete"])
def test_case12_runs_stop_and_delete_take_their_flags_anywhere(capsys, tmp_path, action):
    for n in range(9):  # each placement of --runs-dir and --json
        store = RunStore(tmp_path / f"runs{n}")
        # Running in this (live) process, to be stopped; or finished, to be deleted.
        run = store.create(CONFIG, "/data", "cli", status="running", pid=os.getpid())
        if action == "delete":
            store.finish(run.id, "completed", "Finished")
        argv = _placements(store.root, [action, run.id], json_too=True)[n]
        code, out, err = run_cli(capsys, *argv)
        assert code == 0, (argv, err)
        assert json.loads(out)["run_id"] == run.id
        assert store.list() == [] if action == "delete" else store.stop_requested(run.id)


@pytest.mark.parametrize("argv, command, expected", [
    (["--data-dir", "D", "data"], "data", {"data_dir": Path("D"), "json": False}),
    (["--json", "data", "--data-dir", "D"], "data", {"data_dir": Path("D"), "json": True}),
    (["--json", "evaluate", "net.pth"], "evaluate", {"json": True}),
    (["--runs-dir", "R", "--data-dir", "D", "train", "--json", "--epochs", "1"], "train",
     {"runs_dir": Path("R"), "data_dir": Path("D"), "json": True, "epochs": 1}),
    (["train", "--runs-dir", "R", "--data-dir", "D"], "train",
     {"runs_dir": Path("R"), "data_dir": Path("D"), "json": False}),
    (["--runs-dir", "A", "runs", "--runs-dir", "B", "list"], "runs", {"runs_dir": Path("B")}),
])
def test_case12_train_data_and_evaluate_take_shared_flags_before_the_command(
        monkeypatch, argv, command, expected):
    seen = {}
    monkeypatch.setitem(cli.COMMANDS, command, lambda args: seen.update(vars(args)) or 0)
    assert cli.main(argv) == 0
    assert {k: seen[k] for k in expected} == expected


# === Kept: what the fixes must not break ======================================================

def test_keep_a_killed_job_is_marked_failed(tmp_path):
    # (tests/test_jobs.py kills a real training job; this one a stand-in process, fast.)
    store = RunStore(tmp_path / "runs")
    run = store.create(CONFIG, "/data", "dashboard")
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", run.id])
    store.claim_queued(1)
    store.set_running(run.id, job.pid)
    assert JobRunner(store).reap() == []
    job.send_signal(signal.SIGKILL)
    job.wait()

    assert JobRunner(store).reap() == [run.id]
    failed = store.get(run.id)
    assert failed.status == "failed" and "ended without finishing" in failed.message


def test_keep_two_starts_at_once_queue(tmp_path, monkeypatch, synthetic_dir):
    store = RunStore(tmp_path / "runs")
    launched = []
    monkeypatch.setattr(JobRunner, "_launch",
                        lambda self, run: launched.append(run.id) or
                        self.store.set_running(run.id, os.getpid()))
    runner = JobRunner(store, max_parallel=1)
    barrier = threading.Barrier(2)
    started = []

    def start(seed: int) -> None:
        barrier.wait()
        started.append(JobRunner(RunStore(store.root)).start(
            TrainConfig(**{**LONG, "seed": seed}), synthetic_dir).id)

    threads = [threading.Thread(target=start, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    statuses = sorted(store.get(i).status for i in started)
    assert statuses == ["queued", "running"] and len(launched) == 1
    assert runner.max_parallel == 1


def test_keep_a_run_outlives_the_dashboard_that_started_it_being_killed(tmp_path,
                                                                        synthetic_dir):
    """The dashboard's process group (here a stand-in that starts a run as the Train page does,
    then waits) is killed with SIGKILL mid-run, as a terminal's Ctrl-C or a service stop reaches
    the whole group: the run goes on in its own session and finishes, with its events and
    network, and a later dashboard sees it completed."""
    runs = tmp_path / "runs"
    config = TrainConfig(epochs=3, batch_size=4, log_every=5, seed=0, device="cpu")
    dashboard = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import json, sys, time
            from cifar_core.training.config import TrainConfig
            from cifar_core.runs.jobs import JobRunner
            from cifar_core.runs.store import RunStore
            run = JobRunner(RunStore({str(runs)!r})).start(
                TrainConfig(**json.loads(sys.argv[1])), {str(synthetic_dir)!r})
            print(run.id, flush=True)
            time.sleep(120)
        """), json.dumps(config.to_dict())],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
        start_new_session=True)
    try:
        run_id = dashboard.stdout.readline().strip()
        store = RunStore(runs)
        deadline = time.monotonic() + 60
        while not store.events(run_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.events(run_id), "the run should have started training"
        os.killpg(dashboard.pid, signal.SIGKILL)
        dashboard.wait(10)
        final = scheduler.wait(store, run_id, timeout=120)
    finally:
        if dashboard.poll() is None:
            dashboard.kill()
            dashboard.wait()
    assert final.status == "completed", final.message
    assert final.checkpoint and load_checkpoint(final.checkpoint).model_name == "tutorial"
    assert [e.kind for _, e in store.events(run_id)][-1] == "done"


def test_the_recovery_notice_counts_runs_in_words(tmp_path):
    # Issue 22 item 9: "1 run(s) were read back" is how a program counts, not a person.
    from cifar_core.runs.faults import recovery_notice
    one = recovery_notice(tmp_path / "runs.sqlite", "damaged", tmp_path / "runs.broken",
                          ["20261206-101500-a1b2"], ["20261206-101600-c3d4"], [])
    assert "(s)" not in one
    assert "1 run was read back" in one and "1 run was recovered" in one
    two = recovery_notice(tmp_path / "runs.sqlite", "damaged", tmp_path / "runs.broken",
                          ["a", "b"], [], [])
    assert "2 runs were read back" in two

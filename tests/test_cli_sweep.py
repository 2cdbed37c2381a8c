"""`python -m cifar_core sweep`: a sweep from flags or a space file, its lines, its best run,
and list / show / stop / delete; bad input is one error line."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from cifar_core import scheduler
from cifar_core.runs.store import RunStore
from cifar_core.sweeps.store import SweepStore

QUICK = ("--epochs", "1", "--batch-size", "20", "--log-every", "1", "--device", "cpu")


@pytest.fixture
def dirs(synthetic_dir, tmp_path, in_tmp_and_signals_kept):
    return ("--data-dir", synthetic_dir, "--runs-dir", tmp_path / "runs")


def test_a_sweep_prints_a_line_per_run_then_the_best_and_how_to_train_it(capsys, dirs):
    code, out, err = run_cli(capsys, "sweep", *dirs, "--lr", "0.002,0.02", "--momentum",
                             "0.9", *QUICK, "--parallel", "2")
    assert code == 0, err
    lines = out.splitlines()
    run_lines = [line for line in lines if " completed " in line]
    assert len(run_lines) == 2
    assert {("lr=0.002" in line, "lr=0.02" in line) for line in run_lines} == {(True, False),
                                                                              (False, True)}
    assert "2 runs, 2 side by side" in err
    best = next(line for line in lines if line.startswith("Best: run "))
    store = RunStore(dirs[3])
    (sweep,) = SweepStore(store).list()
    runs = SweepStore(store).runs(sweep.id)
    top = max(runs, key=lambda r: r.accuracy)
    assert top.id in best and f"{top.accuracy:.1f} %" in best
    again = lines[lines.index(best) + 1]
    assert again.startswith("  to train it again: python -m cifar_core train ")
    assert f"--lr {top.config['lr']}" in again and f"--seed {top.config['seed']}" in again


def test_json_gives_the_sweep_each_run_and_a_summary(capsys, dirs):
    code, out, _ = run_cli(capsys, "sweep", *dirs, "--lr", "0.002,0.02", *QUICK, "--json")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["kind"] for r in records] == ["sweep", "run", "run", "summary"]
    assert records[0]["runs"] == 2
    assert {r["settings"]["lr"] for r in records[1:3]} == {0.002, 0.02}
    assert records[-1]["status"] == "completed"
    assert records[-1]["best_accuracy"] == max(r["accuracy"] for r in records[1:3])


def test_a_space_file_with_flags_beside_it(capsys, dirs, tmp_path):
    file = tmp_path / "space.toml"
    file.write_text('strategy = "random"\nruns = 2\nseed = 5\n[settings]\n'
                    'lr = {low = 0.001, high = 0.05, log = true}\n')
    code, out, err = run_cli(capsys, "sweep", *dirs, "--space", file, *QUICK, "--json",
                             "--name", "from a file")
    assert code == 0, err
    (sweep,) = SweepStore(RunStore(dirs[3])).list()
    assert sweep.name == "from a file" and sweep.space.strategy == "random"
    assert all(0.001 <= r.config["lr"] <= 0.05 and r.config["epochs"] == 1
               for r in SweepStore(RunStore(dirs[3])).runs(sweep.id))


@pytest.mark.parametrize("argv, words", [
    (("--lr", "0.01,20"), "far too high"),
    (("--lr", "0.1:0.001"), "lower to a higher"),
    (("--lr", "1e-4:1e-1"), "how many points"),
    (("--lr", "1e-4:1e-1", "--strategy", "random"), "how many runs"),
    (("--model", "tutorial", "--width", "8,16"), "no width"),
    (("--lr", "0.001:0.1:30", "--momentum", "0.1:0.9:30"), "at most 500"),
    (("--lr", "0.01,0.1", "--epochs", "1", "--prune"), "2 epochs or more"),
    (("--space", "no-such.toml"), "cannot be read"),
    (("--lr", "0.01,0.1", "--parallel", "0"), "from 1 to 64"),
    (("--device", "cuda:7", "--lr", "0.01,0.1"), "cuda"),
])
def test_bad_sweeps_are_one_error_line_and_store_nothing(capsys, dirs, argv, words):
    code, out, err = run_cli(capsys, "sweep", *dirs, *argv)
    assert code == 2
    assert err.startswith("error: ") and words in err and len(err.strip().splitlines()) == 1
    assert SweepStore(RunStore(dirs[3])).list() == []


def test_list_show_stop_and_delete(capsys, dirs):
    code, _, _ = run_cli(capsys, "sweep", *dirs, "--lr", "0.002,0.02", *QUICK, "--name",
                         "tiny")
    assert code == 0
    store = RunStore(dirs[3])
    (sweep,) = SweepStore(store).list()
    runs_dir = dirs[2:]

    code, out, _ = run_cli(capsys, "sweep", "list", *runs_dir)
    assert code == 0 and sweep.id in out and "completed" in out and "2/2" in out

    code, out, _ = run_cli(capsys, "sweep", "show", sweep.id, *runs_dir)
    assert code == 0
    assert "grid, 2 of 2 runs" in out and "varies lr" in out and "Best: run" in out

    code, _, err = run_cli(capsys, "sweep", "stop", sweep.id, *runs_dir)
    assert code == 2 and "already ended" in err

    code, out, _ = run_cli(capsys, "sweep", "delete", sweep.id, *runs_dir, "--json")
    assert code == 0 and json.loads(out) == {"sweep_id": sweep.id, "deleted": True}
    assert store.list() == []

    code, _, err = run_cli(capsys, "sweep", "show", sweep.id, *runs_dir)
    assert code == 2 and "no sweep" in err


def test_no_sweeps_yet_says_how_to_start_one(capsys, dirs):
    code, out, _ = run_cli(capsys, "sweep", "list", *dirs[2:])
    assert code == 0 and "python -m cifar_core sweep --lr" in out


def test_no_wait_returns_at_once_and_the_sweep_goes_on(capsys, dirs):
    import time


    code, _, err = run_cli(capsys, "sweep", *dirs, "--lr", "0.002,0.02", "--runs", "1", *QUICK,
                           "--no-wait")
    assert code == 0, err
    store = RunStore(dirs[3])
    (sweep,) = SweepStore(store).list()
    deadline = time.monotonic() + 120
    while SweepStore(store).get(sweep.id).is_active and time.monotonic() < deadline:
        scheduler.tick(store)
        time.sleep(0.2)
    assert SweepStore(store).get(sweep.id).status == "completed"

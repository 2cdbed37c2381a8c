"""How the Runs page feels with a big store: 1,000 runs, 200 sweeps (issue 29, item 24).

    python bench/bench_runs_page.py [--runs 1000] [--sweeps 200] [--repeats 5] [--root DIR]

Seeds a fresh runs folder: `--sweeps` finished sweeps of a learning-rate grid with their runs
(4 each by default) and the remaining runs outside any sweep, all completed with made-up
metrics (an accuracy, per-class accuracies, a confusion matrix, a speed); the newest run also
has a small saved network (the Runs page offers it for download) and 20 loss reports; tiny
generated data (tests/conftest.py's write_cifar_batches). Then drives the app with
streamlit.testing.v1.AppTest in this process and times, on the wall clock (medians over
--repeats):
- open: a fresh session's first run of the Runs page (Home run first, untimed, as a person
  arrives; the first open of all, with imports and cold caches, is made before and not counted);
- click_setting: another setting chosen under "Which settings pay off";
- click_tick: a row of the first runs table ticked (the browser's message for it, as
  tests/test_newcomer_pages_runs.py sends it);
- click_compare: a run taken out of "Runs to compare".
`--root` runs another checkout's app (e.g. a `git worktree` of an earlier commit) to compare
before and after; its packages are imported from there. Figures: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--sweeps", type=int, default=200)
    parser.add_argument("--per-sweep", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the checkout whose app is timed (default: this one)")
    return parser.parse_args()


def seed_store(runs_dir: Path, data_dir: str, runs: int, sweeps: int, per_sweep: int) -> None:
    """The store described above (made through the store's own API)."""
    from cifar_core.data.dataset import OFFICIAL_CLASSES
    from cifar_core.runs.store import RunStore
    from cifar_core.sweeps.space import Axis, SearchSpace
    from cifar_core.sweeps.store import SweepStore
    from cifar_core.training.checkpoint import save_checkpoint
    from cifar_core.training.config import TrainConfig
    from cifar_core.training.events import StatsEvent
    from cifar_core.training.models import Net

    store, sweep_store = RunStore(runs_dir), SweepStore(RunStore(runs_dir))
    base = TrainConfig(epochs=1, batch_size=10, log_every=2, seed=0).to_dict()

    def metrics(i: int) -> dict:
        accuracy = 20 + (i * 37) % 60
        return {"accuracy": float(accuracy),
                "per_class": {c: float((accuracy + 7 * k) % 100)
                              for k, c in enumerate(OFFICIAL_CLASSES)},
                "confusion": [[10 if a == b else 1 for b in range(10)] for a in range(10)],
                "test_images": 200, "images_per_s": 2000.0 + i, "train_s": 30.0}

    made = 0
    lrs = [0.001, 0.003, 0.01, 0.03][:per_sweep]
    for s in range(sweeps):
        space = SearchSpace(axes=(Axis("lr", tuple(lrs)), Axis("epochs", (1,))))
        sweep = sweep_store.create(f"sweep {s}", space, data_dir, "cli")
        for trial, lr in enumerate(lrs):
            run = sweep_store.add_run(sweep, {**base, "lr": lr}, trial)
            store.set_running(run.id, os.getpid())
            store.finish(run.id, "completed", "", metrics(made))
            made += 1
        sweep_store.finish(sweep.id, "completed", "")
    for i in range(max(0, runs - made)):
        run = store.create({**base, "lr": 0.001 * (1 + i % 10)}, data_dir, "cli",
                           status="running", pid=os.getpid())
        checkpoint = None
        if i == runs - made - 1:  # the newest: a network to download, loss reports to draw
            path = store.run_dir(run.id) / "cifar_net.pth"
            save_checkpoint(path, Net(), base, OFFICIAL_CLASSES, metrics(i))
            checkpoint = str(path)
            for k in range(20):
                store.add_event(run.id, StatsEvent(
                    epoch=1, minibatch=2 * (k + 1), step=2 * (k + 1), images_seen=20 * (k + 1),
                    loss=2.3 - 0.05 * k, images_per_s=2000.0, elapsed_s=0.1 * k,
                    fraction_done=(k + 1) / 20, eta_s=0.1 * (19 - k), images_per_epoch=400))
        store.finish(run.id, "completed", "", metrics(i), checkpoint)


def tick(at, rows: list[int]) -> None:
    """Tick rows of the first runs table as the browser does (tests/test_newcomer_pages_runs)."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    table = next(d for d in at.dataframe if d.key is not None)
    states = at._tree.get_widget_states()
    kept = [w for w in states.widgets if w.id != table.proto.id]
    del states.widgets[:]
    states.widgets.extend(kept)
    states.widgets.append(WidgetState(id=table.proto.id, string_value=json.dumps(
        {"selection": {"rows": rows, "columns": [], "cells": []}})))
    at._run(states)


def timed(action, *args) -> float:
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(args.root))
    sys.path.insert(1, str(ROOT / "tests"))
    from conftest import write_cifar_batches
    from streamlit.testing.v1 import AppTest

    tmp = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    data_dir = write_cifar_batches(tmp / "data")
    os.environ["CIFAR_DATA_DIR"] = str(data_dir)
    os.environ["CIFAR_RUNS_DIR"] = str(tmp / "runs")
    os.environ.pop("CIFAR_DASHBOARD_PASSWORD", None)
    start = time.perf_counter()
    seed_store(tmp / "runs", str(data_dir), args.runs, args.sweeps, args.per_sweep)
    print(f"seeded {args.runs} runs, {args.sweeps} sweeps in "
          f"{time.perf_counter() - start:.1f} s ({tmp})", flush=True)
    app = str(args.root / "app.py")

    def fresh():
        at = AppTest.from_file(app, default_timeout=600)
        at.run()  # Home, as a person arrives
        at.switch_page("pages/runs.py")
        return at

    warm = fresh()
    warm.run()  # imports, caches: not counted
    assert not warm.exception, [e.value for e in warm.exception]
    figures: dict[str, list[float]] = {"open": [], "click_setting": [], "click_tick": [],
                                       "click_compare": []}
    for repeat in range(args.repeats):
        at = fresh()
        figures["open"].append(timed(at.run))
        assert not at.exception, [e.value for e in at.exception]
        setting = at.radio(key="scatter_setting")
        setting.set_value(setting.options[(repeat + 1) % len(setting.options)])
        figures["click_setting"].append(timed(at.run))
        figures["click_tick"].append(timed(tick, at, [repeat % 3]))
        box = at.multiselect(key="compare_runs")
        box.set_value(box.value[:-1])
        figures["click_compare"].append(timed(at.run))
        assert not at.exception, [e.value for e in at.exception]
    print(json.dumps({k: {"median_s": round(statistics.median(v), 3),
                          "all_s": [round(x, 3) for x in v]} for k, v in figures.items()},
                     indent=1))


if __name__ == "__main__":
    main()

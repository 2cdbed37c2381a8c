"""How close the dashboard's time estimates are to what runs take (issue 26).

    python bench/bench_estimate.py [--data-dir /tmp/cifar/batches] [--only-sweep]

Ten short runs of varied settings (models, widths, batch sizes, training-set sizes, epochs) and a
4-run sweep (learning rate x momentum, 2 side by side), on real CIFAR-10, in a fresh run store.
Before each starts, its estimate is made as the Train and Sweep pages make it
(training.estimate.estimate_run_time, sweeps.estimate.sweep_estimate: the store's earlier runs,
else speeds timed just now with the cores the job runner gives a run); then it is started as
the dashboard starts it (JobRunner.start, or start_sweep: every run its own process) and timed
from its start to its end (the run's duration: process start, imports, data loading, training,
the tests after each epoch and the final one, saving). Two runs repeat earlier settings, so that
their estimates come from earlier runs, as they do on the pages after a first run.

Printed: a table of estimate, its range, actual seconds and actual / estimate; the target is
every ratio within 0.67-1.5. Results and the commands: bench/RESULTS.md ("Issue 26: estimates").
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cifar_core import scheduler  # noqa: E402
from cifar_core.data.load import load_data  # noqa: E402
from cifar_core.runs.jobs import JobRunner  # noqa: E402
from cifar_core.runs.store import RunStore  # noqa: E402
from cifar_core.sweeps.engine import start_sweep  # noqa: E402
from cifar_core.sweeps.estimate import sweep_estimate  # noqa: E402
from cifar_core.sweeps.space import Axis, SearchSpace  # noqa: E402
from cifar_core.sweeps.store import SweepStore  # noqa: E402
from cifar_core.training.config import FAST_RECIPE, TrainConfig  # noqa: E402
from cifar_core.training.estimate import (  # noqa: E402
    earlier_overheads,
    estimate_run_time,
    measure_images_per_s,
    measure_test_images_per_s,
)
from cifar_core.training.speed import threads_for_background_runs  # noqa: E402

DEFAULT_DATA_DIR = Path(os.environ.get("CIFAR_DATA_DIR") or "/tmp/cifar/batches")
FAST = {**FAST_RECIPE, "device": "cpu", "train_size": None}
COMMON = dict(seed=0, log_every=50)
RUNS = [
    dict(model="tutorial", batch_size=4, epochs=1, train_size=2000),
    dict(model="tutorial", batch_size=16, epochs=2, train_size=5000, lr=0.01),
    dict(model="tutorial", batch_size=64, epochs=1, train_size=10000, lr=0.02),
    dict(FAST, width=8, batch_size=64, epochs=1, train_size=2000, lr=0.2),
    dict(FAST, width=8, batch_size=256, epochs=2, train_size=5000, lr=0.4),
    dict(FAST, width=16, batch_size=128, epochs=1, train_size=3000, lr=0.4),
    dict(model="tutorial", batch_size=16, epochs=2, train_size=5000, lr=0.005),  # as run 2
    dict(FAST, width=8, batch_size=64, epochs=1, train_size=2000, lr=0.1),  # as run 4
    dict(model="tutorial", batch_size=8, epochs=3, train_size=1500, lr=0.005),
    dict(FAST, width=32, batch_size=512, epochs=1, train_size=2048, lr=0.75),
]


def estimate_for(store: RunStore, config: TrainConfig, images: int, test_images: int,
                 threads: int):
    return estimate_run_time(
        config, images, store.list(), test_images,
        measure=lambda c: measure_images_per_s(c, threads),
        measure_test=lambda c: measure_test_images_per_s(c, threads),
        last_epoch=lambda r: store.latest_event(r.id, "epoch"))


def wait_for(store: RunStore, done) -> None:
    deadline = time.monotonic() + 1800
    while not done() and time.monotonic() < deadline:
        scheduler.tick(store)  # as the dashboard's pages do while open
        time.sleep(0.2)


def one_run(store: RunStore, runner: JobRunner, data_dir: Path, settings: dict,
            test_images: int, max_train: int) -> dict:
    config = TrainConfig(**{**COMMON, **settings})
    threads = threads_for_background_runs(runner.max_parallel)
    images = min(config.train_size or max_train, max_train)
    estimate = estimate_for(store, config, images, test_images, threads)
    run = runner.start(config, data_dir)
    wait_for(store, lambda: not store.get(run.id).is_active)
    run = store.get(run.id)
    # What it spent starting and testing, as the next estimate will read it.
    spent = earlier_overheads([run], config, lambda r: store.latest_event(r.id, "epoch"))
    print(f"  train_s {run.metrics.get('train_s', 0):.1f}, estimated training "
          f"{estimate.training.seconds:.1f}; start-up "
          f"{spent[0].startup_s if spent else float('nan'):.1f} s (estimated "
          f"{estimate.startup_s:.1f}), one test {spent[0].test_s if spent else float('nan'):.1f}"
          f" s (estimated {estimate.test_s:.1f})", flush=True)
    return {"what": describe(settings), "status": run.status, "estimate": estimate.seconds,
            "low": estimate.low_s, "high": estimate.high_s, "actual": run.duration_s,
            "training_only": estimate.training.seconds,
            "source": f"{estimate.training.source}/{estimate.overhead_source}"}


def describe(settings: dict) -> str:
    width = f" w{settings['width']}" if settings.get("width") else ""
    return (f"{settings['model']}{width} b{settings['batch_size']} "
            f"{settings['train_size']} img x {settings['epochs']} ep")


def the_sweep(store: RunStore, data_dir: Path, test_images: int, max_train: int) -> dict:
    space = SearchSpace(axes=(
        Axis("lr", (0.002, 0.02)), Axis("momentum", (0.8, 0.9)), Axis("epochs", (1,)),
        Axis("train_size", (2000,)), Axis("batch_size", (16,)), Axis("log_every", (25,)),
        Axis("device", ("cpu",)), Axis("seed", (0,))))
    parallel = 2
    threads = threads_for_background_runs(parallel)
    estimate = sweep_estimate(
        space, max_train, store.list(), lambda c: measure_images_per_s(c, threads), parallel,
        test_images, lambda c: measure_test_images_per_s(c, threads),
        lambda r: store.latest_event(r.id, "epoch"))
    started = time.perf_counter()
    sweep = start_sweep(store, space, data_dir, name="estimate", parallel=parallel)
    sweeps = SweepStore(store)
    wait_for(store, lambda: not sweeps.get(sweep.id).is_active)
    actual = time.perf_counter() - started
    return {"what": "sweep: lr 0.002/0.02 x momentum 0.8/0.9, tutorial b16 2000 img x 1 ep, "
                    "2 side by side", "status": sweeps.get(sweep.id).status,
            "estimate": estimate.seconds, "low": estimate.low_s, "high": estimate.high_s,
            "actual": actual, "training_only": None, "source": "sweep"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--only-sweep", action="store_true")
    args = parser.parse_args()
    data = load_data("cifar10", args.data_dir)
    test_images, max_train = len(data.test_labels), len(data.train_labels)
    del data
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs")
        runner = JobRunner(store, max_parallel=1)
        for settings in [] if args.only_sweep else RUNS:
            rows.append(one_run(store, runner, args.data_dir, settings, test_images, max_train))
            print_row(rows[-1])
        # The sweep in a store of its own: its estimate from speeds timed just now.
        sweep_store = RunStore(Path(tmp) / "sweep-runs")
        rows.append(the_sweep(sweep_store, args.data_dir, test_images, max_train))
        print_row(rows[-1])
    print()
    # The last column: what the estimate was before issue 26 (its training alone, at the same
    # speed), against what happened.
    print("| run | estimate (range) s | actual s | actual / estimate | from "
          "| actual / training alone |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        alone = "-" if row["training_only"] is None else \
            f"{row['actual'] / row['training_only']:.1f}"
        print(f"| {row['what']} | {row['estimate']:.0f} ({row['low']:.0f}-{row['high']:.0f}) "
              f"| {row['actual']:.0f} | {row['actual'] / row['estimate']:.2f} "
              f"| {row['source']} | {alone} |")
    ratios = [row["actual"] / row["estimate"] for row in rows]
    inside = sum(0.67 <= r <= 1.5 for r in ratios)
    print(f"\n{inside} of {len(ratios)} ratios within 0.67-1.5 (min {min(ratios):.2f}, "
          f"max {max(ratios):.2f})")


def print_row(row: dict) -> None:
    print(f"{row['what']:55s} {row['status']:10s} estimate {row['estimate']:6.1f} s "
          f"({row['low']:.0f}-{row['high']:.0f}) actual {row['actual']:6.1f} s "
          f"ratio {row['actual'] / row['estimate']:.2f} [{row['source']}]", flush=True)


if __name__ == "__main__":
    main()

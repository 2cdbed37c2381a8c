"""A 12-run grid sweep's wall time: one run at a time, side by side, and on a local Ray cluster
(issue 14).

    python bench/bench_sweep.py [--data-dir D] [--rounds 2] [--modes local-1 local-2 ray]
                                [--ray-address ADDR | --start-ray] [--train-size 10000]

The grid: lr 0.001 / 0.01 / 0.05 x momentum 0.8 / 0.9 x batch size 4 / 16, 1 epoch on 10,000
training images, the tutorial's network, one seed for all. Each mode starts the sweep exactly
as the dashboard and the CLI do (cifar_core.sweeps.engine.start_sweep, every run its own process or
Ray task) in a fresh run store, and waits for it to end. The modes take turns round after
round, so that a change in the machine's load falls on all of them alike.

Reported per mode: the wall time from the start to the sweep's end; the sum of its runs' own
times (each run's start to end, its process start and data loading included); and the ideal:
the runs' times *alone* (measured one at a time, mode local-1) summed and divided by how many
run side by side. Goal: wall <= 1.1 x ideal; Ray's wall at most 1.1 x the local runner's with
the same parallelism. `--start-ray` starts a Ray head node of this machine for the benchmark
(as a cluster is used: it runs before the sweep and after it) and ends it by its process group;
without an address the sweep's driver starts its own, which then counts in the wall time.
Results and the commands: bench/RESULTS.md ("Sweeps").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_train import machine_info  # noqa: E402

from cifar_core import scheduler  # noqa: E402
from cifar_core.runs.store import RunStore  # noqa: E402
from cifar_core.sweeps.engine import start_sweep  # noqa: E402
from cifar_core.sweeps.space import Axis, SearchSpace  # noqa: E402
from cifar_core.sweeps.store import SweepStore  # noqa: E402

OUT_DIR = ROOT / "bench" / "out"
DEFAULT_DATA_DIR = Path(os.environ.get("CIFAR_DATA_DIR") or "/tmp/cifar/batches")
MODES = {"local-1": ("local", 1), "local-2": ("local", 2), "ray": ("ray", 2)}


def grid(train_size: int) -> SearchSpace:
    return SearchSpace(axes=(
        Axis("lr", (0.001, 0.01, 0.05)), Axis("momentum", (0.8, 0.9)),
        Axis("batch_size", (4, 16)), Axis("epochs", (1,)), Axis("train_size", (train_size,)),
        Axis("log_every", (500,)), Axis("device", ("cpu",)), Axis("seed", (0,))))


def one_sweep(mode: str, data_dir: Path, train_size: int, address: str) -> dict:
    """Run the grid once in a fresh store; wall time and each run's own time."""
    engine, parallel = MODES[mode]
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs")
        started = time.perf_counter()
        sweep = start_sweep(store, grid(train_size), data_dir, name=mode, engine=engine,
                            address=address, parallel=parallel)
        sweeps = SweepStore(store)
        deadline = time.monotonic() + 3600
        while sweeps.get(sweep.id).is_active and time.monotonic() < deadline:
            if engine == "local":
                scheduler.tick(store)  # as the dashboard's pages do while open
            time.sleep(0.2)
        wall = time.perf_counter() - started
        sweep = sweeps.get(sweep.id)
        runs = sweeps.runs(sweep.id)
        return {"mode": mode, "status": sweep.status, "wall_s": wall, "parallel": parallel,
                "runs": [{"lr": r.config["lr"], "momentum": r.config["momentum"],
                          "batch_size": r.config["batch_size"], "status": r.status,
                          "accuracy": r.accuracy, "own_s": r.duration_s,
                          "images_per_s": (r.metrics or {}).get("images_per_s")}
                         for r in runs]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ray_head(cpus: int) -> Iterator[str]:
    """A Ray head node of this machine with token authentication, for the benchmark's time:
    its address (the token is put in this process's environment, which drivers inherit)."""
    token = secrets.token_hex(32)
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0")
    folder = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    port = _free_port()
    ray_bin = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    with open(os.path.join(folder, "head.log"), "wb") as log:
        head = subprocess.Popen(
            [ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
             f"--num-cpus={cpus}", "--num-gpus=0", "--include-dashboard=false",
             "--disable-usage-stats", "--block", f"--temp-dir={folder}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if head.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Ray head did not start; see {folder}/head.log")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                head.wait(5)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--ray-address", default="",
                        help="a running Ray cluster (default: the driver starts one)")
    parser.add_argument("--start-ray", action="store_true",
                        help="start a Ray head of this machine for the benchmark")
    parser.add_argument("--train-size", type=int, default=10_000)
    args = parser.parse_args()
    if args.start_ray and "ray" in args.modes:
        with ray_head(os.cpu_count() or 1) as address:
            args.ray_address = address
            run(args)
    else:
        run(args)


def run(args) -> None:
    info = machine_info("cpu")
    print(f"# {info['cpu']}, {info['cores']} cores; torch {info['torch']}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    results = []
    for round_ in range(1, args.rounds + 1):
        for mode in args.modes:
            result = one_sweep(mode, args.data_dir, args.train_size, args.ray_address)
            result["round"] = round_
            results.append(result)
            own = sum(r["own_s"] or 0 for r in result["runs"])
            print(f"round {round_} {mode:8} {result['status']:9} wall {result['wall_s']:6.1f} s"
                  f"  runs' own {own:6.1f} s  ({len(result['runs'])} runs)", flush=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    # The runs' times alone: medians over the rounds of mode local-1, per combination.
    alone = {}
    for result in results:
        if result["mode"] == "local-1":
            for run in result["runs"]:
                key = (run["lr"], run["momentum"], run["batch_size"])
                alone.setdefault(key, []).append(run["own_s"])
    alone_sum = sum(statistics.median(v) for v in alone.values()) if alone else None
    print("\n| mode | side by side | wall (median) | runs' own time, summed | ideal | "
          "wall / ideal |")
    print("|---|---:|---:|---:|---:|---:|")
    walls = {}
    for mode in args.modes:
        mine = [r for r in results if r["mode"] == mode]
        wall = statistics.median(r["wall_s"] for r in mine)
        walls[mode] = wall
        own = statistics.median(sum(x["own_s"] or 0 for x in r["runs"]) for r in mine)
        parallel = MODES[mode][1]
        ideal = alone_sum / parallel if alone_sum else None
        ratio = f"{wall / ideal:.2f}" if ideal else "-"
        print(f"| {mode} | {parallel} | {wall:.1f} s | {own:.1f} s | "
              f"{f'{ideal:.1f} s' if ideal else '-'} | {ratio} |")
    if "ray" in walls and "local-2" in walls:
        print(f"\nRay / local runner (2 side by side): {walls['ray'] / walls['local-2']:.2f}")
    print(f"\n(all rounds: {out})")


if __name__ == "__main__":
    main()

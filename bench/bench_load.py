"""Training in two halves (the default on Linux with 2+ cores) vs whole minibatches on one core,
with the machine idle and under other load, interleaved.

Each measurement is a fresh process that trains 1 epoch at the tutorial's settings through
training.loop.train; "whole" sets CIFAR_CORE_THREADS=1, which turns the split batch off. A load
process runs beside them: none, a busy loop, or one busy BUSY s in every PERIOD s. Prints
images/s per run, how often the governor switched, and the median ratio halves / whole.

    python bench/bench_load.py --data-dir /tmp/cifar/batches --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (busy s, period s); period 0: busy all the time; None: no load.
LOADS = {"idle": None, "busy loop": (1.0, 0.0), "busy 0.1 s / 1 s": (0.1, 1.0),
         "busy 0.3 s / 1 s": (0.3, 1.0), "busy 0.05 s / 0.2 s": (0.05, 0.2)}


def load(busy: float, period: float) -> None:
    """Keep a core busy for `busy` s in every `period` s (all the time if period is 0)."""
    while True:
        start = time.monotonic()
        while period == 0 or time.monotonic() - start < busy:
            pass
        time.sleep(period - busy)


def worker(data_dir: str, images: int) -> None:
    sys.path.insert(0, str(ROOT))
    from cifar_core.data.load import load_cifar10
    from cifar_core.training.config import TrainConfig
    from cifar_core.training.loop import build_model, train
    from cifar_core.training.speed.governor import CoreGovernor

    switches = []
    original = CoreGovernor.set

    def counting_set(self, count):
        if count != self.count:
            switches.append(count)
        original(self, count)

    CoreGovernor.set = counting_set
    data = load_cifar10(data_dir)
    config = TrainConfig(epochs=1, seed=0, train_size=images)
    done = list(train(config, data, build_model(config)))[-1]
    print(json.dumps({"images_per_s": done.images_per_s, "switches": len(switches)}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--images", type=int, default=None, help="training images (all)")
    parser.add_argument("--loads", nargs="+", default=list(LOADS), choices=list(LOADS))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=2, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        load(*args.load)
        return 0
    if args.worker:
        worker(args.data_dir, args.images)
        return 0
    print(f"{os.cpu_count()} cores; 1 epoch at the tutorial's settings, "
          f"{args.images or 'all'} images, {args.repeats} runs each, interleaved\n")
    print("| load | halves, images/s (switches) | whole, images/s | halves / whole |")
    print("|---|---|---|---:|")
    for name in args.loads:
        spec = LOADS[name]
        loader = None if spec is None else subprocess.Popen(
            [sys.executable, __file__, "--data-dir", args.data_dir, "--load", *map(str, spec)])
        try:
            time.sleep(0.5)
            results: dict[str, list[dict]] = {"halves": [], "whole": []}
            for repeat in range(args.repeats):
                arms = ["halves", "whole"] if repeat % 2 == 0 else ["whole", "halves"]
                for arm in arms:
                    env = {**os.environ}
                    env.pop("CIFAR_CORE_THREADS", None)
                    if arm == "whole":
                        env["CIFAR_CORE_THREADS"] = "1"
                    cmd = [sys.executable, __file__, "--worker", "--data-dir", args.data_dir]
                    if args.images:
                        cmd += ["--images", str(args.images)]
                    out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                         check=True).stdout
                    results[arm].append(json.loads(out.strip().splitlines()[-1]))
        finally:
            if loader is not None:
                loader.kill()
                loader.wait()
        halves = " / ".join(f"{r['images_per_s']:,.0f} ({r['switches']})"
                            for r in results["halves"])
        whole = " / ".join(f"{r['images_per_s']:,.0f}" for r in results["whole"])
        ratio = statistics.median(r["images_per_s"] for r in results["halves"]) / \
            statistics.median(r["images_per_s"] for r in results["whole"])
        print(f"| {name} | {halves} | {whole} | {ratio:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

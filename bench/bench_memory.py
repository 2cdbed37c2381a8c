"""Training with and without keep_freed_memory() (glibc's malloc limits), interleaved.

Each measurement is a fresh process that trains 1 epoch at the tutorial's settings (but the
batch size) through cifar_core.training.loop.train; "off" replaces cifar_core.training.speed.cpu's
keep_freed_memory with a no-op before training, so glibc keeps its defaults. Prints images/s
and peak RSS per run, and the median ratio on/off per batch size.

    python bench/bench_memory.py --data-dir /tmp/cifar/batches --batch-sizes 4 512 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def worker(arm: str, batch: int, data_dir: Path, images: int | None) -> None:
    import importlib

    from cifar_core.data.load import load_cifar10

    # The module (cifar_core's package namespace exports a function of the same name).
    train_module = importlib.import_module("cifar_core.training.loop")
    from cifar_core.training.config import TrainConfig
    from cifar_core.training.speed import cpu

    if arm == "off":
        cpu.keep_freed_memory = lambda: False
    data = load_cifar10(data_dir, download=False)
    config = TrainConfig(epochs=1, batch_size=batch, log_every=2000, seed=0,
                         train_size=images, device="cpu")
    done = list(train_module.train(config, data, train_module.build_model(config)))[-1]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images_per_s": done.images_per_s, "peak_rss_mb": peak_mb}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("CIFAR_DATA_DIR") or "/tmp/cifar/batches"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 512])
    parser.add_argument("--images", type=int, default=None, help="default: all 50,000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("ARM", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.data_dir, args.images)
        return 0

    print(f"{os.cpu_count()} cores; 1 epoch on {args.images or 50_000:,} images per run")
    for batch in args.batch_sizes:
        speeds: dict[str, list[float]] = {"on": [], "off": []}
        for round_ in range(1, args.rounds + 1):
            for arm in ("off", "on"):
                cmd = [sys.executable, __file__, "--worker", arm, str(batch),
                       "--data-dir", str(args.data_dir)]
                if args.images:
                    cmd += ["--images", str(args.images)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                result = json.loads(out.strip().splitlines()[-1])
                speeds[arm].append(result["images_per_s"])
                print(f"batch {batch:4d} round {round_} {arm:3s}: "
                      f"{result['images_per_s']:8,.0f} images/s, "
                      f"peak RSS {result['peak_rss_mb']:,.0f} MB", flush=True)
        ratios = [on / off for on, off in zip(speeds["on"], speeds["off"], strict=True)]
        print(f"batch {batch:4d}: median on {statistics.median(speeds['on']):,.0f}, "
              f"off {statistics.median(speeds['off']):,.0f} images/s; "
              f"median ratio on/off {statistics.median(ratios):.2f}x "
              f"(per round {', '.join(f'{r:.2f}' for r in ratios)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

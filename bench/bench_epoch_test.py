"""The test after each epoch, inside a training's settings: with evaluation's own settings
(oneDNN on, the process's threads: cifar_core.training.speed.cpu.inference_settings, as shipped) vs
as it ran before they existed (training's oneDNN off and one thread for tiny batches).

Each arm tests a trained-shape Net on all 10,000 test images, alternating, in one process.

    python bench/bench_epoch_test.py --data-dir /tmp/cifar/batches --rounds 7
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import torch

    from cifar_core.data.load import load_cifar10
    from cifar_core.training.config import TrainConfig
    from cifar_core.training.loop import accuracy_on_test_images, build_model
    from cifar_core.training.speed import open_step

    evaluate_module = sys.modules["cifar_core.training.evaluation"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("CIFAR_DATA_DIR") or "/tmp/cifar/batches"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=4, help="the training's batch size")
    args = parser.parse_args(argv)

    data = load_cifar10(args.data_dir, download=False)
    config = TrainConfig(batch_size=args.batch_size, seed=0, device="cpu")
    model = build_model(config)
    cpu = torch.device("cpu")
    shipped = evaluate_module.inference_settings

    def timed(own_settings: bool) -> float:
        evaluate_module.inference_settings = shipped if own_settings else (
            lambda *a, **k: contextlib.nullcontext())
        with open_step(model, config, cpu) as step:  # training's settings, as in a run
            start = time.perf_counter()
            with step.paused(0) if own_settings else contextlib.nullcontext():
                accuracy_on_test_images(model, data, cpu)
            return time.perf_counter() - start

    timed(True), timed(False)  # warm-up
    ratios, seconds = [], {True: [], False: []}
    for _ in range(args.rounds):
        new, old = timed(True), timed(False)
        seconds[True].append(new)
        seconds[False].append(old)
        ratios.append(old / new)
    evaluate_module.inference_settings = shipped
    print(f"{os.cpu_count()} cores, torch {torch.__version__}, batch {args.batch_size}: "
          f"test of {len(data.test_labels):,} images")
    print(f"  own settings (oneDNN on):    median {statistics.median(seconds[True]):.3f} s")
    print(f"  training's (oneDNN off):     median {statistics.median(seconds[False]):.3f} s")
    print(f"  speed-up, median of {args.rounds} interleaved pairs: "
          f"{statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

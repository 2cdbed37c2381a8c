"""NetStep (backward written out) vs TutorialStep (the tutorial's autograd step), interleaved.

Both train a fresh Net (same seed) on the same real training images in the same process,
alternating, under training.speed's CPU settings for the batch size (threads, oneDNN) or fixed
threads (--threads). Prints images/s per round and the median ratio.

    python bench/bench_step.py --data-dir /tmp/cifar/batches --batch-sizes 4 16 32 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import torch

    from cifar_core.data.dataset import normalize
    from cifar_core.data.load import load_cifar10
    from cifar_core.training.models import Net
    from cifar_core.training.speed import cpu as cpu_settings
    from cifar_core.training.speed.tutorial_step import TutorialStep as AutogradStep
    from cifar_core.training.speed.written_out import NetStep

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("CIFAR_DATA_DIR") or "/tmp/cifar/batches"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4])
    parser.add_argument("--images", type=int, default=8000, help="images per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="fixed thread count instead of the training settings")
    args = parser.parse_args(argv)

    data = load_cifar10(args.data_dir, download=False)
    inputs = normalize(data.train_images[:args.images])
    labels = data.train_labels[:args.images]
    print(f"{os.cpu_count()} cores, torch {torch.__version__}, {args.images:,} images per run")

    def measure(make, batch: int) -> float:
        torch.manual_seed(0)
        stepper = make(Net(), 0.001, 0.9)
        start = time.perf_counter()
        for i in range(0, len(labels), batch):
            stepper.step(inputs[i:i + batch], labels[i:i + batch])
        return len(labels) / (time.perf_counter() - start)

    for batch in args.batch_sizes:
        if args.threads:
            torch.set_num_threads(args.threads)
        settings = nullcontext() if args.threads else cpu_settings.settings(
            cpu_settings.training_threads(batch), cpu_settings.onednn_convolutions(batch))
        ratios = []
        with settings:
            threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
            measure(NetStep, batch)  # warm-up (oneDNN primitives, allocator)
            for round_ in range(1, args.rounds + 1):
                ours, autograd = measure(NetStep, batch), measure(AutogradStep, batch)
                ratios.append(ours / autograd)
                print(f"batch {batch:4d} round {round_}: NetStep {ours:8,.0f}  "
                      f"AutogradStep {autograd:8,.0f} images/s  ({ours / autograd:.2f}x)  "
                      f"threads {threads}, oneDNN {'on' if onednn else 'off'}")
        print(f"batch {batch:4d} median ratio NetStep / AutogradStep: "
              f"{statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

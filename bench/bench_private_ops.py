"""The written-out step with and without PyTorch's private ops, interleaved in one process.

Arms (each trains a fresh Net, same seed, on the same real images, batch 4, one thread, oneDNN
convolutions off, as a split-batch or one-core training runs):
  shipped      public F.max_pool2d / F.nll_loss, oneDNN's private product for conv1
  _C._nn       torch._C._nn.max_pool2d_with_indices / nll_loss_nd (what the F functions call,
               without their Python wrappers: the step before December 2026)
  torch.mm     conv1's two products through the public torch.mm instead of oneDNN's
               torch.ops.mkldnn._linear_pointwise (a different kernel: other rounding)
Prints images/s per arm and the median ratio of each arm to `shipped` (bench/RESULTS.md,
"Private ops").

    python bench/bench_private_ops.py --data-dir /tmp/cifar/batches --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import torch
    import torch.nn.functional as F

    from cifar_core.data.dataset import normalize
    from cifar_core.data.load import load_cifar10
    from cifar_core.training.models import Net
    from cifar_core.training.speed import cpu
    from cifar_core.training.speed import written_out as step_module

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("CIFAR_DATA_DIR") or "/tmp/cifar/batches"))
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    data = load_cifar10(args.data_dir, download=False)
    inputs = normalize(data.train_images[:args.images])
    labels = data.train_labels[:args.images]
    onednn_linear = step_module._onednn_linear
    private_f = types.SimpleNamespace(
        max_pool2d=lambda x, k, return_indices: torch._C._nn.max_pool2d_with_indices(x, k),
        nll_loss=lambda lp, y, reduction: torch._C._nn.nll_loss_nd(lp, y, None, 2, -100))
    arms = {"shipped": (F, onednn_linear), "_C._nn": (private_f, onednn_linear),
            "torch.mm": (F, lambda: None)}

    def measure(arm: str) -> float:
        step_module.F, step_module._onednn_linear = arms[arm]
        torch.manual_seed(0)
        step = step_module.NetStep(Net(), 0.001, 0.9)
        start = time.perf_counter()
        for i in range(0, len(labels), 4):
            step.step(inputs[i:i + 4], labels[i:i + 4])
        return len(labels) / (time.perf_counter() - start)

    speeds: dict[str, list[float]] = {arm: [] for arm in arms}
    with cpu.settings(threads=1, onednn=False):
        for arm in arms:
            measure(arm)  # warm-up
        for _ in range(args.rounds):
            for arm in arms:
                speeds[arm].append(measure(arm))
    step_module.F, step_module._onednn_linear = F, onednn_linear
    print(f"{os.cpu_count()} cores, torch {torch.__version__}, batch 4, "
          f"{args.images:,} images per measurement, {args.rounds} rounds")
    for arm, values in speeds.items():
        ratios = [a / b for a, b in zip(values, speeds["shipped"], strict=True)]
        print(f"  {arm:9s} median {statistics.median(values):8,.0f} images/s, "
              f"ratio to shipped {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

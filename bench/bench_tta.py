"""Test-time augmentation on trained networks (issue 28): each test setting's accuracy and
seconds on the 10,000 test pictures, for networks saved before (e.g. by
`bench/bench_presets.py --keep FOLDER`).

    python bench/bench_tta.py NETWORK.pth [...] [--data-dir D] [--below 1 0.8 0.7 0.6 0.5]

Rows: no augmentation, flip (2 views), flip+translate (airbench's 6 views), and flip+translate
only for the pictures whose plain answer is less sure than each --below value (selective
test-time augmentation); each row's share of pictures asked again. Every network is tested
with every row in turn, on this process's threads. Results: bench/RESULTS.md ("Issue 28").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fast import DEFAULT_DATA_DIR, machine  # noqa: E402


def rows_of(below: list[float]) -> list[tuple[str, dict]]:
    return [("none", {"tta": "none"}), ("flip", {"tta": "flip"}),
            ("flip+translate", {"tta": "flip+translate"}),
            *[(f"flip+translate below {b:g}", {"tta": "flip+translate", "tta_unsure_below": b})
              for b in below]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("networks", type=Path, nargs="+")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--below", type=float, nargs="+", default=[0.8, 0.7, 0.6, 0.5])
    args = parser.parse_args()
    from cifar_core.data.load import load_data
    from cifar_core.training.checkpoint import load_checkpoint
    from cifar_core.training.evaluation import evaluate, predict_probabilities

    print(f"Test-time augmentation on {len(args.networks)} networks, on {machine()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    rows = rows_of(args.below)
    found: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in rows}
    for path in args.networks:
        checkpoint = load_checkpoint(path)
        data = load_data(checkpoint.dataset, args.data_dir)
        plain = predict_probabilities(checkpoint.model, data.test_images, "cpu").amax(dim=1)
        for name, options in rows:
            started = time.perf_counter()
            result = evaluate(checkpoint.model, data, "cpu", **options)
            seconds = time.perf_counter() - started
            below = options.get("tta_unsure_below")
            asked = (100.0 * (plain < below).float().mean().item() if below is not None
                     else (0.0 if options["tta"] == "none" else 100.0))
            found[name].append((result.accuracy, seconds, asked))
    print("| test | accuracy % (mean) | test s (mean) | pictures asked again % |\n"
          "|---|---:|---:|---:|")
    for name, values in found.items():
        print(f"| {name} | {statistics.mean(v[0] for v in values):.2f} | "
              f"{statistics.mean(v[1] for v in values):.1f} | "
              f"{statistics.mean(v[2] for v in values):.0f} |")
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())

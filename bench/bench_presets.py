"""The CPU presets against the minutes their names promise (issue 28): each preset, 3 seeds.

    python bench/bench_presets.py [--data-dir D] [--presets cpu-1min cpu-2min cpu-5min]
                                  [--seeds 0 1 2] [--keep FOLDER]

Each training runs in a fresh process through the CLI, as bench/bench_fast.py's do (exactly
what a user runs), one after another, interleaved: seed by seed, every preset, so that whatever
else the machine does falls on all presets alike. Printed: a Markdown table of each preset's
mean test accuracy (with the spread over seeds), its mean and longest training time in minutes
(as the CLI reports it: tests left out), and whether the longest fits the minutes in its name;
everything as JSON in bench/out/. --keep: a folder to keep the trained networks in (e.g. to
try test-time settings on them; never commit them). Results: bench/RESULTS.md ("Issue 28").
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ablation import spread  # noqa: E402
from bench_fast import DEFAULT_DATA_DIR, OUT_DIR, machine, one_run  # noqa: E402


def promised_minutes(preset: str) -> float | None:
    """The minutes a preset's id promises ('cpu-2min' -> 2), None where it names none."""
    found = re.search(r"(\d+(?:\.\d+)?)min", preset)
    return float(found.group(1)) if found else None


def table(runs: dict[str, list[dict]]) -> str:
    lines = ["| preset | test accuracy % (mean ± sd) | training minutes (mean) | longest | "
             "fits its minutes | seeds |", "|---|---:|---:|---:|---|---:|"]
    for preset, done in runs.items():
        accuracy = [r["accuracy"] for r in done]
        minutes = [r["train_s"] / 60 for r in done]
        promised = promised_minutes(preset)
        fits = "" if promised is None else ("yes" if max(minutes) <= promised else "**no**")
        lines.append(f"| {preset} | {statistics.mean(accuracy):.2f}{spread(accuracy)} | "
                     f"{statistics.mean(minutes):.2f} | {max(minutes):.2f} | {fits} | "
                     f"{len(done)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--presets", nargs="+", default=["cpu-1min", "cpu-2min", "cpu-5min"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--keep", type=Path, default=None,
                        help="a folder to keep the trained networks in (never commit them)")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    print(f"Presets {args.presets}, seeds {args.seeds}, on {machine()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    runs: dict[str, list[dict]] = {preset: [] for preset in args.presets}
    for seed in args.seeds:  # interleaved: every preset for one seed, then the next seed
        for preset in args.presets:
            keep = args.keep / f"{preset}-seed{seed}.pth" if args.keep is not None else None
            run = one_run(args.data_dir, preset, seed, [], keep=keep)
            runs[preset].append(run)
            print(json.dumps({"preset": preset, **run}), flush=True)
    print(table(runs))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT_DIR / f"presets_{stamp}.json").write_text(json.dumps(
        {"machine": machine(), "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

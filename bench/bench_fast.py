"""The fast network's accuracy against training time: issue 13's CPU and GPU targets.

    python bench/bench_fast.py [--data-dir D] [--dataset cifar10] [--preset cpu-5min]
                               [--seeds 0 1 2] [--set width=24 epochs=8 ...] [--label NAME]

Each training runs in a fresh process through the CLI (`python -m cifar_core train --json`,
exactly what a user runs), the runs one after another (never side by side: they would share
the cores). From the JSON lines it records every epoch's test accuracy and the training time
up to it (tests left out), and the run's final accuracy and training time. It prints a
Markdown table (one row per seed, the mean below) and writes everything as JSON to bench/out/.
Results and the commands behind them: bench/RESULTS.md ("fast network").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
DEFAULT_DATA_DIR = Path(os.environ.get("CIFAR_DATA_DIR") or "/tmp/cifar/batches")
sys.path.insert(0, str(ROOT / "bench"))
from bench_train import machine_info  # noqa: E402  (the machine, as every benchmark names it)


def machine() -> str:
    """The CPU's name and core count (figures compare only within one machine)."""
    info = machine_info("cpu")
    return f"{info['cpu']}, {info['cores']} cores"


def flags_of(assignments: list[str]) -> list[str]:
    """['width=24', 'nesterov=false'] -> ['--width', '24', '--no-nesterov']."""
    flags = []
    for item in assignments:
        name, _, value = item.partition("=")
        flag = "--" + name.replace("_", "-")
        if value.lower() in ("true", "on"):
            flags.append(flag)
        elif value.lower() in ("false", "off"):
            flags.append("--no-" + flag[2:])
        else:
            flags += [flag, value]
    return flags


def one_run(data_dir: Path, preset: str | None, seed: int, extra: list[str],
            keep: Path | None = None) -> dict:
    """Train once in a fresh process; its epochs (accuracy, training seconds) and summary.
    `keep`: where to copy the trained network (else it goes with the temp folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "cifar_core", "train", "--json", "--data-dir",
                   str(data_dir), "--runs-dir", f"{tmp}/runs", "--out", f"{tmp}/net.pth",
                   "--seed", str(seed), *(["--preset", preset] if preset else []), *extra]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        wall_s = time.perf_counter() - started
        if keep is not None and done.returncode == 0:
            shutil.copyfile(f"{tmp}/net.pth", keep)
    if done.returncode != 0:
        raise SystemExit(f"training failed ({done.returncode}): {done.stderr[-2000:]}")
    epochs, summary, finished = [], {}, {}
    for line in done.stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("kind") == "epoch":
            epochs.append({"epoch": event["epoch"], "accuracy": event["test_accuracy"],
                           "train_s": event.get("train_s")})
        elif event.get("kind") == "done":
            finished = event
        elif event.get("kind") == "summary":
            summary = event
    return {"seed": seed, "epochs": epochs, "accuracy": summary.get("accuracy"),
            "train_s": finished.get("train_s"), "images_per_s": finished.get("images_per_s"),
            "training_step": finished.get("training_step"), "wall_s": wall_s}


def report(label: str, runs: list[dict]) -> str:
    lines = [f"### {label}", "",
             "| seed | test accuracy % | training s | images/s | accuracy after each epoch "
             "(training s) |", "|---:|---:|---:|---:|---|"]
    for run in runs:
        curve = ", ".join(f"{e['accuracy']:.1f} ({e['train_s']:.0f})" for e in run["epochs"])
        lines.append(f"| {run['seed']} | {run['accuracy']:.2f} | {run['train_s']:.1f} | "
                     f"{run['images_per_s']:,.0f} | {curve} |")
    accuracy = statistics.mean(r["accuracy"] for r in runs)
    seconds = statistics.mean(r["train_s"] for r in runs)
    lines.append(f"| **mean** | **{accuracy:.2f}** | **{seconds:.1f}** | | |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--dataset", default="cifar10",
                        help="the registered data set to train on (python -m cifar_core datasets)")
    parser.add_argument("--preset", default="cpu-5min")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="settings beside the preset's, e.g. width=24 epochs=8")
    parser.add_argument("--label", default=None)
    args = parser.parse_args()
    label = args.label or " ".join([f"preset {args.preset}", *args.set,
                                    *([f"on {args.dataset}"] if args.dataset != "cifar10" else [])])
    print(f"{label} on {machine()}, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    runs = []
    for seed in args.seeds:
        runs.append(one_run(args.data_dir, args.preset or None, seed,
                            ["--dataset", args.dataset, *flags_of(args.set)]))
        print(json.dumps(runs[-1]), flush=True)
    text = report(label, runs)
    print(text)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() else "_" for c in label)[:80]
    (OUT_DIR / f"fast_{name}.json").write_text(json.dumps(
        {"label": label, "machine": machine(), "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

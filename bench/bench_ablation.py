"""Issue 28's ablation, in airbench's table style: each trick added to the one before, on the
fast network's CPU preset at a fixed budget (its epochs), over several seeds.

    python bench/bench_ablation.py [--data-dir D] [--preset cpu-5min] [--seeds 0 1 2]
                                   [--alone] [--rows lookahead,muon ...] [--set epochs=6 ...]
    python bench/bench_ablation.py --tiny      # a check that it runs: 1,000 images, 1 seed

Rows, each adding one trick to the row above (with --alone, each trick alone on the preset):
baseline (the preset as it is), lookahead (weight averaging), alternating flip, multi-crop
test-time augmentation (flip+translate, airbench's level 2), selective test-time augmentation
(only for pictures the network is less than 90 % sure of), Muon for the filters, compile.
Every training runs in a fresh process through the CLI, as bench/bench_fast.py's do (exactly
what a user runs), one after another, interleaved: seed by seed, every row, so that whatever
else the machine does falls on all rows alike. A row that changes only the test (multi-crop and
selective test-time augmentation) trains nothing: it tests the network of the row whose
training it shares (same seed), here, with its own test-time augmentation, and records the
test's seconds beside that training's. Printed: a Markdown table of each row's mean
test accuracy (with the spread over seeds), seconds of training per epoch (compiling left
out: epochs after the first) and the whole training's seconds; everything as JSON in
bench/out/. Measured figures belong in bench/RESULTS.md, with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fast import DEFAULT_DATA_DIR, OUT_DIR, flags_of, machine, one_run  # noqa: E402

# (row name, the settings it adds), in airbench's order of its own ablation.
TRICKS = (
    ("baseline", []),
    ("lookahead", ["averaging=lookahead"]),
    ("alternating flip", ["alternating_flip=true"]),
    ("multi-crop TTA", ["tta=flip+translate"]),
    ("selective TTA", ["tta=flip+translate", "tta_unsure_below=0.9"]),
    ("muon", ["muon_lr=0.24"]),
    ("compile", ["compile=true"]),
)

# --tiny: a few minutes' check that every row trains and the table prints (no figures);
# batches of 100, so that a lookahead has steps to average (it pulls every 5).
TINY = ["train_size=1000", "epochs=2", "width=8", "batch_size=100", "lr=0.15"]


def rows_of(names: list[str] | None, alone: bool) -> list[tuple[str, list[str]]]:
    """Each row's name and settings: cumulative (each adds its trick to the row above), or
    alone (the baseline plus that trick only). `names`: the rows to keep (baseline always)."""
    known = {name for name, _ in TRICKS}
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise SystemExit(f"unknown row {unknown[0]!r}: choose from {', '.join(sorted(known))}")
    rows, so_far = [], {}
    for name, settings in TRICKS:
        if names and name != "baseline" and name not in names:
            continue
        added = dict(item.partition("=")[::2] for item in settings)
        chosen = added if alone else {**so_far, **added}
        if not alone:
            so_far = chosen
        rows.append((name if alone or name == "baseline" else f"+ {name}",
                     [f"{k}={v}" for k, v in chosen.items()]))
    return rows


# Settings that change only how the trained network is tested.
TEST_ONLY = ("tta", "tta_unsure_below")


def split(settings: list[str]) -> tuple[tuple[str, ...], dict]:
    """(the settings that change the training, the test's: {name: value})."""
    training = tuple(s for s in settings if s.partition("=")[0] not in TEST_ONLY)
    test = dict(s.partition("=")[::2] for s in settings if s.partition("=")[0] in TEST_ONLY)
    return training, test


def tested(run: dict, network: Path, data_dir: Path, test: dict) -> dict:
    """`run` (the training that made `network`) with the accuracy of `network` tested with
    its training's test changed by `test` (test-time augmentation), and the test's seconds."""
    from cifar_core.data.load import load_data
    from cifar_core.training.checkpoint import load_checkpoint
    from cifar_core.training.evaluation import evaluate

    checkpoint = load_checkpoint(network)
    data = load_data(checkpoint.dataset, data_dir)
    options = checkpoint.prediction_options()  # the training's own test, changed by `test`
    if "tta" in test:
        options["tta"] = test["tta"]
    if "tta_unsure_below" in test:
        options["tta_unsure_below"] = float(test["tta_unsure_below"])
    started = time.perf_counter()
    result = evaluate(checkpoint.model, data, "cpu", **options)
    return {**run, "accuracy": result.accuracy, "test_s": time.perf_counter() - started,
            "tested_from": "the same training's network"}


def seconds_per_epoch(run: dict) -> float | None:
    """Training seconds per epoch after the first (which holds compiling), or of the one
    epoch where there is only one."""
    epochs = run["epochs"]
    if not epochs or epochs[-1]["train_s"] is None:
        return None
    if len(epochs) == 1:
        return epochs[0]["train_s"]
    return (epochs[-1]["train_s"] - epochs[0]["train_s"]) / (len(epochs) - 1)


def spread(values: list[float]) -> str:
    return f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""


def table(rows: list[tuple[str, list[str]]], runs: dict[str, list[dict]]) -> str:
    """airbench's ablation table: one row per trick, mean accuracy and seconds."""
    lines = ["| row | adds | test accuracy % (mean ± sd) | s per epoch (after the first) "
             "| training s | test s (10,000 pictures) | seeds |",
             "|---|---|---:|---:|---:|---:|---:|"]
    before: list[str] = []
    for name, settings in rows:
        added = [item for item in settings if item not in before]
        before = settings
        done = runs.get(name, [])
        if not done:
            continue
        accuracy = [r["accuracy"] for r in done]
        per_epoch = [s for s in map(seconds_per_epoch, done) if s is not None]
        total = [r["train_s"] for r in done]
        test = [r["test_s"] for r in done if r.get("test_s") is not None]
        lines.append(f"| {name} | {' '.join(added) or '(the preset)'} | "
                     f"{statistics.mean(accuracy):.2f}{spread(accuracy)} | "
                     f"{statistics.mean(per_epoch):.1f} | {statistics.mean(total):.1f} | "
                     f"{f'{statistics.mean(test):.1f}' if test else ''} | {len(done)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--preset", default="cpu-5min")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--alone", action="store_true",
                        help="each trick alone on the preset, not added to the ones above")
    parser.add_argument("--rows", default=None,
                        help="comma-separated rows to run (the baseline always runs)")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="settings beside the preset's for every row (the budget: epochs)")
    parser.add_argument("--tiny", action="store_true",
                        help="a check that it works: ~1,000 images, 2 epochs, 1 seed")
    args = parser.parse_args()
    extra = [*TINY, *args.set] if args.tiny else args.set
    seeds = args.seeds[:1] if args.tiny else args.seeds
    rows = rows_of(args.rows.split(",") if args.rows else None, args.alone)
    print(f"Ablation on preset {args.preset} {' '.join(extra)} "
          f"({'each alone' if args.alone else 'each added to the row above'}), seeds "
          f"{seeds}, on {machine()}, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as networks:
        for seed in seeds:  # interleaved: every row for one seed, then the next seed
            trained: dict[tuple[str, ...], tuple[dict, Path]] = {}
            for name, settings in rows:
                training, test = split(settings)
                if training in trained and test:
                    run = tested(*trained[training], args.data_dir, test)
                else:
                    keep = Path(networks) / f"{len(trained)}-{seed}.pth"
                    run = one_run(args.data_dir, args.preset, seed,
                                  flags_of([*extra, *settings]), keep=keep)
                    trained.setdefault(training, (run, keep))
                    # the test's seconds, as the test-only rows record theirs
                    run["test_s"] = tested(run, keep, args.data_dir, test)["test_s"]
                runs.setdefault(name, []).append(run)
                print(json.dumps({"row": name, **run}), flush=True)
    text = table(rows, runs)
    print(text)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT_DIR / f"ablation_{'tiny_' if args.tiny else ''}{stamp}.json").write_text(json.dumps(
        {"preset": args.preset, "extra": extra, "alone": args.alone, "machine": machine(),
         "rows": rows, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

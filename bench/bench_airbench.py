"""Side by side with the peer (issue 28): airbench94's own code and the fast network, same
width, same epochs, one after the other on this machine.

    python bench/bench_airbench.py --peer PATH/airbench94.py [--data-dir D] [--preset cpu-5min]
                                   [--width 32] [--epochs 3] [--seeds 0 1 2] [--set name=value]

The peer is `legacy/airbench94.py` of github.com/KellerJordan/cifar10-airbench (its own code,
not in this repository: download it and name it with --peer). It is copied into a temp folder
with only the changes a CPU needs, each listed in CPU_CHANGES and each required to match
exactly (the script stops where the peer's text differs):

- its network and pictures in float32, not float16 on a GPU (this project's machines have no
  bf16 in hardware; the fast network's precision "auto" picks float32 on them too);
- its GPU timers (CUDA events) replaced by the clock (perf_counter), which times the same spans:
  the whitening set-up and each epoch's training, tests left out;
- its width (block1, block2 = block3 = 4 x block1, as the fast network's width) and its epochs
  set to ours, and one run per process, seeded.

Its data are CIFAR-10's pictures read by this project's loader, written in the peer's own
format (cifar10/train.pt, test.pt: uint8 N x 32 x 32 x 3). Each seed runs ours, then the peer's,
each in a fresh process, so whatever else the machine does falls on both alike. Printed: a
Markdown table (test accuracy with each one's own test-time augmentation, training seconds,
seconds per epoch after the first); everything as JSON in bench/out/. Results in
bench/RESULTS.md ("Issue 28: side by side with airbench94").
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ablation import seconds_per_epoch, spread  # noqa: E402
from bench_fast import DEFAULT_DATA_DIR, OUT_DIR, flags_of, machine, one_run  # noqa: E402

CLOCK = '''
import time as _time


class _Clock:  # (bench_airbench.py) the clock in place of CUDA's timing events
    def record(self):
        self.at = _time.perf_counter()

    def elapsed_time(self, other):
        return 1e3 * (other.at - self.at)

'''

# (what the peer says, what it says on a CPU, how many times it says it)
CPU_CHANGES = (
    ("import torchvision.transforms as T\n", "import torchvision.transforms as T\n" + CLOCK, 1),
    ("map_location=torch.device(gpu)", "map_location='cpu'", 1),
    ("(self.images.half() / 255)", "(self.images.float() / 255)", 1),
    ("net = net.half().cuda()", "net = net.float()", 1),
    ("starter = torch.cuda.Event(enable_timing=True)", "starter = _Clock()", 1),
    ("ender = torch.cuda.Event(enable_timing=True)", "ender = _Clock()", 1),
    ("torch.cuda.synchronize()", "pass", 3),
    ("accs = torch.tensor([main(run) for run in range(25)])",
     "torch.manual_seed(@SEED@)\n"
     "    hyp['net']['widths'] = {'block1': @WIDTH@, 'block2': 4 * @WIDTH@,\n"
     "                            'block3': 4 * @WIDTH@}\n"
     "    hyp['opt']['train_epochs'] = @EPOCHS@\n"
     "    accs = torch.tensor([main(run) for run in range(1)])", 1),
)


def peer_on_cpu(text: str, width: int, epochs: int, seed: int) -> str:
    """The peer's code with CPU_CHANGES made (SystemExit where its text is not as expected)."""
    for old, new, times in CPU_CHANGES:
        found = text.count(old)
        if found != times:
            raise SystemExit(f"the peer's code says {old!r} {found} times, not {times}: is it "
                             "legacy/airbench94.py of KellerJordan/cifar10-airbench?")
        text = text.replace(old, new)
    return (text.replace("@SEED@", str(seed)).replace("@WIDTH@", str(width))
            .replace("@EPOCHS@", str(epochs)))


def write_peer_data(data_dir: Path, folder: Path) -> None:
    """CIFAR-10 in the peer's own format, from this project's loader."""
    import torch

    from cifar_core.data.load import load_data

    data = load_data("cifar10", data_dir)
    (folder / "cifar10").mkdir(parents=True)
    for name, images, labels in (("train", data.train_images, data.train_labels),
                                 ("test", data.test_images, data.test_labels)):
        torch.save({"images": images.permute(0, 2, 3, 1).contiguous(),
                    "labels": labels.long(), "classes": list(data.classes)},
                   folder / "cifar10" / f"{name}.pt")


def peer_run(code: str, folder: Path, seed: int) -> dict:
    """Run the peer once in `folder`; its epochs' cumulative seconds and its accuracy."""
    script = folder / "airbench94_cpu.py"
    script.write_text(code)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, script.name], cwd=folder, capture_output=True,
                          text=True, check=False)
    wall_s = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the peer failed ({done.returncode}): {done.stderr[-2000:]}")
    epochs, accuracy = [], None
    for line in done.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7:
            continue
        epoch, val_acc, tta_acc, seconds = cells[1], cells[4], cells[5], cells[6]
        if epoch.isdigit():
            epochs.append({"epoch": int(epoch) + 1, "accuracy": 100 * float(val_acc),
                           "train_s": float(seconds)})
        elif epoch == "eval":
            accuracy = 100 * float(tta_acc)
    if accuracy is None:
        raise SystemExit(f"the peer printed no final accuracy: {done.stdout[-2000:]}")
    return {"seed": seed, "epochs": epochs, "accuracy": accuracy,
            "train_s": epochs[-1]["train_s"], "wall_s": wall_s}


def table(runs: dict[str, list[dict]]) -> str:
    lines = ["| network | test accuracy % (mean ± sd) | training s | s per epoch (after the "
             "first) | seeds |", "|---|---:|---:|---:|---:|"]
    for name, done in runs.items():
        accuracy = [r["accuracy"] for r in done]
        lines.append(f"| {name} | {statistics.mean(accuracy):.2f}{spread(accuracy)} | "
                     f"{statistics.mean(r['train_s'] for r in done):.1f} | "
                     f"{statistics.mean(seconds_per_epoch(r) for r in done):.1f} | "
                     f"{len(done)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", type=Path, required=True,
                        help="airbench94.py (legacy/ of KellerJordan/cifar10-airbench)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--preset", default="cpu-5min")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="settings of ours beside the preset's, width and epochs")
    args = parser.parse_args()
    text = args.peer.read_text()
    peer_on_cpu(text, args.width, args.epochs, 0)  # stops here where the text differs
    ours = flags_of([f"width={args.width}", f"epochs={args.epochs}", *args.set])
    print(f"Side by side: {args.preset} {' '.join(ours)} against airbench94 at width "
          f"{args.width}, {args.epochs} epochs, seeds {args.seeds}, on {machine()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    names = (f"ours ({args.preset}, width {args.width}, {args.epochs} epochs)",
             f"airbench94 on the CPU (width {args.width}, {args.epochs} epochs)")
    runs: dict[str, list[dict]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_peer_data(args.data_dir, folder)
        for seed in args.seeds:
            for name in names:
                if name.startswith("ours"):
                    run = one_run(args.data_dir, args.preset, seed, ours)
                else:
                    run = peer_run(peer_on_cpu(text, args.width, args.epochs, seed), folder,
                                   seed)
                runs[name].append(run)
                print(json.dumps({"network": name, **run}), flush=True)
    print(table(runs))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT_DIR / f"airbench_{stamp}.json").write_text(json.dumps(
        {"preset": args.preset, "ours": ours, "width": args.width, "epochs": args.epochs,
         "machine": machine(), "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

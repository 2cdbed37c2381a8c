"""Issue 25's target: teach 3 classes x 30 pictures in about a minute, starting from a CIFAR-10
network, and the same from scratch beside it.

The pictures are Fashion-MNIST's (classes the start network never saw), each made into a 32 x 32
colour picture exactly as the Teach page stores one: a PNG of the picture read by
cifar_core.explain.photos.read_photo (shape (3, 32, 32)) and saved as its network input. The 30
training pictures per class are drawn from the official training images (fixed by --pick-seed);
the held-out pictures are all official test images of those classes (1,000 each). They form a
folder data set in a temporary folder; its own test split (what each epoch's test looks at, as
the Teach page's few held-out pictures) is the first --epoch-test of each class, and the
accuracy reported is the saved network's on all held-out pictures. Each way trains as a normal
run (runs.pipeline.execute_run) with the preset "Teach: about a minute":

- start: from the network --start (a .pth; the lead's cpu-5min seed 0), its model and width,
  only the last layer learning (the earlier layers kept fixed: --freeze);
- scratch: the preset without a start network (runs.teach.teach_settings(None): the
  tutorial's network, every layer learning);
- scratch-same: the preset with the start network's model and width, from random weights,
  every layer learning;
- fine-tune (--fine-tune): from the start network, every layer learning: what the Teach
  button does (teach_settings for a run holding the start network).

    python bench/bench_teach.py --start /work/bench_runs/cpu5min-seed0.pth --seeds 0 1 2

Prints a markdown table (accuracy on the held-out pictures, seconds of training) and the
command. Figures: bench/RESULTS.md, "Issue 25".
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cifar_core.data.dataset import ImageData  # noqa: E402
from cifar_core.data.folders import add_folder_dataset  # noqa: E402
from cifar_core.data.idx import parse_idx  # noqa: E402
from cifar_core.explain.photos import read_photo  # noqa: E402
from cifar_core.runs.pipeline import execute_run  # noqa: E402
from cifar_core.runs.start import start_in_words, start_settings  # noqa: E402
from cifar_core.runs.store import RunStore  # noqa: E402
from cifar_core.runs.teach import TEACH_PRESET, teach_settings  # noqa: E402
from cifar_core.training.checkpoint import load_checkpoint  # noqa: E402
from cifar_core.training.config import TrainConfig, preset_values, settings  # noqa: E402
from cifar_core.training.evaluation import evaluate  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
DEFAULT_CLASSES = ("Trouser", "Sneaker", "Bag")
DEFAULT_START = Path("/work/bench_runs/cpu5min-seed0.pth")
SET_NAME = "teach-bench"


def cpu_model() -> str:
    """The CPU's model name as lscpu gives it (/proc/cpuinfo), else the platform's."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def read_split(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's official images (N, 28, 28) and labels of 'train' or 't10k'."""
    def read(name: str) -> np.ndarray:
        return parse_idx(gzip.decompress((FASHION / name).read_bytes()), name)
    return (read(f"{kind}-images-idx3-ubyte.gz"), read(f"{kind}-labels-idx1-ubyte.gz"))


def as_taught(pixels: np.ndarray) -> torch.Tensor:
    """A Fashion-MNIST picture as the Teach page keeps it: its PNG read by read_photo."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return read_photo(out.getvalue(), "picture.png", shape=(3, 32, 32)).network_input


def save_png(picture: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture.permute(1, 2, 0).numpy()).save(path, "PNG")


def folder_name(class_name: str) -> str:
    return class_name.replace("/", " or ")


def make_pictures(classes: tuple[str, ...], per_class: int, epoch_test: int, pick_seed: int,
                  folder: Path) -> ImageData:
    """Write folder/train/<class>/ (per_class pictures of each) and folder/test/<class>/ (the
    first epoch_test held-out ones); return every held-out picture as the network's input."""
    train_x, train_y = read_split("train")
    test_x, test_y = read_split("t10k")
    rng = np.random.default_rng(pick_seed)
    names = sorted(folder_name(c) for c in classes)  # the order loading gives
    held_images, held_labels = [], []
    for class_name in classes:
        label = FASHION_CLASSES.index(class_name)
        index = names.index(folder_name(class_name))
        chosen = rng.choice(np.flatnonzero(train_y == label), per_class, replace=False)
        for i in chosen:
            save_png(as_taught(train_x[i]), folder / "train" / folder_name(class_name) /
                     f"{i:05d}.png")
        for n, i in enumerate(np.flatnonzero(test_y == label)):
            picture = as_taught(test_x[i])
            held_images.append(picture)
            held_labels.append(index)
            if n < epoch_test:
                save_png(picture, folder / "test" / folder_name(class_name) / f"{i:05d}.png")
    images = torch.stack(held_images)
    labels = torch.tensor(held_labels)
    return ImageData(train_images=images[:1], train_labels=labels[:1], test_images=images,
                     test_labels=labels, classes=tuple(names), source="held out",
                     dataset=SET_NAME, title="held-out pictures")


def settings_for(way: str, start: Path | None, seed: int) -> dict:
    """The preset's settings for one way of teaching (what runs.teach.teach_settings gives for
    a run holding the start network, the file's path standing for its id)."""
    if way == "scratch":
        return {**teach_settings(None), "seed": seed}
    chosen = start_settings(load_checkpoint(start))
    if way == "scratch-same":  # the start network's model and width, from random weights
        return {**preset_values(TEACH_PRESET), **chosen, "start_from": None, "freeze": False,
                "seed": seed}
    return {**preset_values(TEACH_PRESET), **chosen, "start_from": str(start),
            "freeze": way == "start", "seed": seed}


def teach(store: RunStore, data_dir: Path, values: dict, held_out: ImageData) -> dict:
    run = store.create(TrainConfig(**values).to_dict(), str(data_dir), origin="bench",
                       status="running", dataset=SET_NAME)
    run = execute_run(store, run.id)
    if run.status != "completed":
        raise SystemExit(f"run {run.id} {run.status}: {run.message}")
    network = load_checkpoint(run.checkpoint)
    result = evaluate(network.model, held_out, **network.prediction_options())
    return {"accuracy": result.accuracy, "train_s": run.metrics["train_s"],
            "epoch_test": run.metrics["accuracy"], "run": run.id}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=Path, default=DEFAULT_START,
                        help=f"the start network's .pth (default: {DEFAULT_START})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--classes", nargs=3, default=list(DEFAULT_CLASSES),
                        choices=FASHION_CLASSES, metavar="CLASS")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--epoch-test", type=int, default=6,
                        help="held-out pictures per class tested after each epoch (the Teach "
                             "page holds out one in five)")
    parser.add_argument("--pick-seed", type=int, default=0)
    parser.add_argument("--ways", nargs="+", default=["start", "scratch", "scratch-same"],
                        choices=["start", "scratch", "scratch-same", "fine-tune"])
    parser.add_argument("--fine-tune", action="store_true", help="add the way 'fine-tune'")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a preset setting (e.g. --set epochs=10), for choosing "
                             "the preset's numbers")
    args = parser.parse_args(argv)
    ways = [*args.ways, *(["fine-tune"] if args.fine_tune else [])]
    declared = settings()
    overrides = {}
    for item in args.set:
        name, _, text = item.partition("=")
        kind = declared[name].kind
        overrides[name] = (text == "True") if kind is bool else kind(text)
    load_before = os.getloadavg()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="bench-teach-") as tmp:
        tmp = Path(tmp)
        began = time.perf_counter()
        held_out = make_pictures(tuple(args.classes), args.per_class, args.epoch_test,
                                 args.pick_seed, tmp / "pictures")
        add_folder_dataset(SET_NAME, tmp / "pictures", tmp / "data")
        print(f"Pictures made in {time.perf_counter() - began:.1f} s: {args.per_class} per "
              f"class to learn from, {len(held_out.test_labels):,} held out "
              f"({', '.join(args.classes)})", file=sys.stderr, flush=True)
        store = RunStore(tmp / "runs")
        rows = {}
        for way in ways:
            for seed in args.seeds:
                values = {**settings_for(way, args.start, seed), **overrides}
                result = teach(store, tmp / "data", values, held_out)
                rows.setdefault(way, []).append((seed, values, result))
                print(f"{way} seed {seed}: {result['accuracy']:.2f} % in "
                      f"{result['train_s']:.1f} s", file=sys.stderr, flush=True)
    start_words = start_in_words(load_checkpoint(args.start)) if set(ways) - {"scratch"} \
        else ""
    print(f"Teach preset '{TEACH_PRESET}' on 3 classes of Fashion-MNIST "
          f"({', '.join(args.classes)}), {args.per_class} pictures each as the Teach page keeps "
          f"them; accuracy on all {len(held_out.test_labels):,} official test pictures of those "
          f"classes. Start network: {args.start} ({start_words}).\n")
    print("| way | network | seed | accuracy (%) | training (s) | epochs | batch | lr | "
          "augment | frozen |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for way, results in rows.items():
        for seed, values, result in results:
            width = f" width {values['width']}" if values["width"] else ""
            print(f"| {way} | {values['model']}{width} | {seed} | {result['accuracy']:.2f} | "
                  f"{result['train_s']:.1f} | {values['epochs']} | {values['batch_size']} | "
                  f"{values['lr']:g} | {values['augment']} | {values['freeze']} |")
        print(f"| **{way}: mean** | | | **{mean(r['accuracy'] for _, _, r in results):.2f}** | "
              f"**{mean(r['train_s'] for _, _, r in results):.1f}** | | | | | |")
    print(f"\nCommand: python {shlex.join(['bench/bench_teach.py', *sys.argv[1:]])}")
    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}; load average (1 min) at the start "
          f"{load_before[0]:.2f}, at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

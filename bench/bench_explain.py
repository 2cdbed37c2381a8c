"""How long the library part of the "Try it" page takes for the tutorial's Net (issue 15's
targets: upload to probabilities drawn <= 0.5 s, an attribution map <= 1 s, on a 2-core CPU).

The picture is one of the real CIFAR-10 JPEGs (../shared/data/cifar10-jpg.tar.gz) enlarged to
256x256 and saved as a JPEG, as the browser test uploads it (a synthetic photo where the archive
is missing). Each step is timed `--repeats` times in this process after a first, cold call
(timed too), and importing explain.attribution (which brings Captum) once; printed: median,
fastest and slowest per step, as a markdown table, then one JSON line. `--busy` keeps the
other core busy meanwhile (a training running beside the page). Figures go to bench/RESULTS.md.

    python bench/bench_explain.py [--repeats 30] [--checkpoint cifar_net.pth] [--busy]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

_start = time.perf_counter()
from cifar_core.explain.attribution import (  # noqa: E402  (Captum, matplotlib, pandas come with it)
    ATTRIBUTION_METHODS,
    answer_sentence,
    attribution,
    class_probabilities,
    overlay,
)

IMPORT_S = time.perf_counter() - _start

from cifar_core.data.dataset import OFFICIAL_CLASSES  # noqa: E402
from cifar_core.explain.inside import (  # noqa: E402
    feature_map_grid,
    feature_maps,
    first_layer_filters,
    layer_table,
)
from cifar_core.explain.photos import read_photo  # noqa: E402

REAL_ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
REAL_PHOTO = "test/cat/0000.jpg"


def upload_bytes(side: int = 256) -> tuple[bytes, str]:
    """A side x side JPEG: a real CIFAR-10 photo enlarged, else a smooth synthetic picture."""
    if REAL_ARCHIVE.is_file():
        with tarfile.open(REAL_ARCHIVE) as archive:
            small = Image.open(io.BytesIO(archive.extractfile(REAL_PHOTO).read())).convert("RGB")
        source = f"{REAL_PHOTO} from {REAL_ARCHIVE.name}"
    else:
        rng = np.random.default_rng(0)
        small = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        source = "synthetic (no real archive here)"
    out = io.BytesIO()
    small.resize((side, side), Image.Resampling.BICUBIC).save(out, "JPEG", quality=90)
    return out.getvalue(), source


def tutorial_net(checkpoint: str | None) -> torch.nn.Module:
    if checkpoint:
        from cifar_core.training.checkpoint import load_checkpoint

        return load_checkpoint(checkpoint).model
    from cifar_core.training.models import Net

    torch.manual_seed(0)
    return Net().eval()


def timed(step: Callable[[], object], repeats: int) -> dict:
    start = time.perf_counter()
    step()
    cold = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"cold_s": cold, "median_s": statistics.median(times), "min_s": min(times),
            "max_s": max(times)}


def busy_loop() -> None:
    while True:
        pass


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--checkpoint", help="a cifar_net.pth of the tutorial's Net (default: "
                                             "a freshly initialised one; the speed is the same)")
    parser.add_argument("--busy", action="store_true", help="keep another core busy meanwhile")
    args = parser.parse_args()

    data, source = upload_bytes()
    model = tutorial_net(args.checkpoint)
    photo = read_photo(data, "photo.jpg")
    image = photo.network_input

    def upload_to_probabilities():
        seen = read_photo(data, "photo.jpg")
        probabilities = class_probabilities(model, seen.network_input)[0]
        return answer_sentence(probabilities, OFFICIAL_CLASSES)

    steps: dict[str, Callable[[], object]] = {
        "read_photo (256x256 JPEG bytes -> Photo)": lambda: read_photo(data, "photo.jpg"),
        "class_probabilities (1 picture)": lambda: class_probabilities(model, image),
        "upload -> probabilities + sentence": upload_to_probabilities,
    }
    for name in ATTRIBUTION_METHODS:
        steps[f"attribution {name} + overlay"] = (
            lambda name=name: overlay(image, attribution(model, image, method=name)))
    steps["layer_table"] = lambda: layer_table(model)
    steps["first_layer_filters"] = lambda: first_layer_filters(model)
    steps["feature_maps + grids"] = lambda: [feature_map_grid(m) for m in
                                            feature_maps(model, image).values()]

    helper = None
    if args.busy:
        helper = multiprocessing.Process(target=busy_loop, daemon=True)
        helper.start()
    load_before = os.getloadavg()
    try:
        results = {name: timed(step, args.repeats) for name, step in steps.items()}
    finally:
        if helper is not None:
            helper.terminate()
            helper.join()
    load_after = os.getloadavg()

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; picture: {source}, {len(data):,} bytes; "
          f"repeats {args.repeats}; other core busy: {args.busy}; load average "
          f"{load_before[0]:.2f} -> {load_after[0]:.2f}; importing cifar_core.explain.attribution "
          f"(after torch) {IMPORT_S:.2f} s; "
          f"answer: {upload_to_probabilities()}")
    print()
    print("| step | cold ms | median ms | fastest ms | slowest ms |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['cold_s'] * 1e3:.1f} | {r['median_s'] * 1e3:.1f} | "
              f"{r['min_s'] * 1e3:.1f} | {r['max_s'] * 1e3:.1f} |")
    print(json.dumps({"cpu": cpu_model(), "busy": args.busy, "repeats": args.repeats,
                      "import_explain_s": IMPORT_S,
                      "load": [load_before[0], load_after[0]], "results": results}))


if __name__ == "__main__":
    main()

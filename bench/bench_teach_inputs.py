"""Pictures into a set of your own: issue 25's input targets.

    python bench/bench_teach_inputs.py [--rounds 7]

- A camera click: one 640 x 480 JPEG (what st.camera_input gives) added to a class of a set
  that already holds 90 pictures, until the set is read again with it (cifar_core.data.own_sets
  add_pictures, then get_set and the class's newest tiles made as the Teach page makes them).
  The page's own rerun is not included (bench/bench_pages.py measures page reruns).
- A zip of 300 pictures: 300 640 x 480 JPEGs in 3 class folders, add_zip into an empty set.

Each round makes a fresh set in a temporary runs folder; the two measurements alternate, and
the medians are printed with the machine. Results: bench/RESULTS.md ("Issue 25").
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_train import machine_info  # noqa: E402

from cifar_core.data.grids import tiles  # noqa: E402
from cifar_core.data.own_sets import add_pictures, add_zip, create_set, get_set  # noqa: E402


def photo(seed: int, size=(640, 480)) -> bytes:
    """A camera-like JPEG: smooth colours, not noise (noise compresses and decodes unlike a
    photo)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    picture = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


def zipped(count: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(count):
            archive.writestr(f"class{i % 3}/{i:04d}.jpg", photo(i))
    return out.getvalue()


def camera_click(runs: Path, shot: bytes) -> float:
    create_set("clicks", classes=("a", "b", "c"), runs_dir=runs)
    for c in "abc":
        add_pictures("clicks", c, [photo(1000 + i) for i in range(30)], runs_dir=runs)
    start = time.perf_counter()
    add_pictures("clicks", "a", [shot], runs_dir=runs)
    own = get_set("clicks", runs_dir=runs)
    newest = next(c for c in own.classes if c.name == "a").pictures[-4:]
    images = np.stack([np.asarray(Image.open(p.path).convert("RGB")) for p in newest])
    tiles(images.transpose(0, 3, 1, 2), scale=2)
    return time.perf_counter() - start


def zip_of_300(runs: Path, archive: bytes) -> float:
    create_set("zipped", runs_dir=runs)
    start = time.perf_counter()
    added = add_zip("zipped", archive, runs_dir=runs)
    took = time.perf_counter() - start
    assert len(added.added) == 300, added.skipped[:3]
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    shot, archive = photo(7), zipped(300)
    clicks, zips = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            clicks.append(camera_click(Path(folder), shot))
        with tempfile.TemporaryDirectory() as folder:
            zips.append(zip_of_300(Path(folder), archive))
    info = machine_info("cpu")
    print(f"Machine: {info['cpu']}, {info['cores']} cores; {args.rounds} rounds")
    print("| what | median | all (s) | target |\n|---|---|---|---|")
    print(f"| camera click to its tile (library part) | {statistics.median(clicks):.3f} s | "
          f"{', '.join(f'{t:.3f}' for t in clicks)} | ≤ 0.5 s |")
    print(f"| zip of 300 pictures ({len(archive) / 2**20:.1f} MB) | "
          f"{statistics.median(zips):.2f} s | {', '.join(f'{t:.2f}' for t in zips)} | ≤ 5 s |")


if __name__ == "__main__":
    main()

"""How fast the Try it page answers, measured in a real browser (issue 15's targets on a 2-core
CPU: from upload to probabilities drawn at most 0.5 s, an attribution map at most 1 s, for the
tutorial's Net).

    python bench/bench_try_it.py [--repeats 7] [--checkpoint cifar_net.pth] [--data-dir D]

Starts `streamlit run app.py` on a free 127.0.0.1 port with a fresh runs folder holding one
network (--checkpoint imported, else an untrained tutorial Net: the same work per picture) and
the data of --data-dir (default: tiny generated batches, tests/conftest.py), and drives Debian's
Chromium headless with Playwright. The photo is one of the real CIFAR-10 JPEGs
(../shared/data/cifar10-jpg.tar.gz) enlarged to 256x256, a synthetic one where the archive is
missing. Timed from the browser's side (wall clock; median, fastest and slowest of --repeats):
- upload: the page freshly opened with "Upload pictures" chosen and nothing uploaded; from
  handing the file to the uploader's <input> (the browser then sends it to the server, which
  reruns the page) until the bar chart of the probabilities has all its bars drawn (checked at
  every animation frame);
- each attribution method: a click on its name in "Where it looked" until the overlay picture
  has changed and is loaded (the methods are chosen in turn, each from the one before, the
  first from Grad-CAM; so each is timed --repeats times).
A first upload and a first round of the methods (imports, first drawings in the server) are
made before timing and not counted; the first upload's time is printed as `cold`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from dashboard_server import start_server  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from conftest import REAL_ARCHIVE, write_cifar_batches  # noqa: E402

from cifar_core.data.load import load_cifar10  # noqa: E402
from cifar_core.explain.attribution import ATTRIBUTION_METHODS  # noqa: E402
from cifar_core.explain.network_imports import import_network  # noqa: E402
from cifar_core.runs.store import RunStore  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 120_000
REAL_PHOTO = "test/cat/0000.jpg"
BARS = "[data-testid=stMain] [data-testid=stVegaLiteChart] svg.marks .mark-rect path"
OVERLAY = "Where it looked to answer"


def photo(folder: Path, side: int = 256) -> tuple[Path, str]:
    """A side x side JPEG: a real CIFAR-10 photo enlarged, else a smooth synthetic picture."""
    if REAL_ARCHIVE.is_file():
        with tarfile.open(REAL_ARCHIVE) as archive:
            small = Image.open(io.BytesIO(archive.extractfile(REAL_PHOTO).read()))
        source = f"{REAL_PHOTO} from {REAL_ARCHIVE.name}"
    else:
        y, x = np.mgrid[0:32, 0:32]
        small = Image.fromarray(np.stack([x * 8, y * 8, (x + y) * 4], -1).astype(np.uint8))
        source = "synthetic (no real archive here)"
    path = folder / "photo.jpg"
    small.convert("RGB").resize((side, side), Image.Resampling.BICUBIC).save(path, quality=90)
    return path, source


def network_bytes(checkpoint: str | None) -> bytes:
    if checkpoint:
        return Path(checkpoint).read_bytes()
    import torch

    from cifar_core.training.models import Net

    torch.manual_seed(0)
    out = io.BytesIO()
    torch.save(Net().state_dict(), out)
    return out.getvalue()


def settled(page) -> None:
    """Two animation frames: what the last messages changed has been drawn."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def upload_page(page, url: str) -> None:
    """The page freshly opened, "Upload pictures" chosen, no chart on it."""
    page.goto(f"{url}/try_it")
    page.get_by_text("Upload pictures").click(timeout=TIMEOUT_MS)
    page.locator("[data-testid=stFileUploader]").filter(has_text="Pictures").wait_for(
        timeout=TIMEOUT_MS)
    page.wait_for_function(f"document.querySelectorAll('{BARS}').length === 0",
                           timeout=TIMEOUT_MS)
    settled(page)


def timed_upload(page, url: str, path: Path, classes: int) -> float:
    upload_page(page, url)
    field = page.locator("[data-testid=stFileUploader]").filter(
        has_text="Pictures").locator("input[type=file]")
    start = time.perf_counter()
    field.set_input_files(path)
    page.wait_for_function(f"document.querySelectorAll('{BARS}').length === {classes}",
                           timeout=TIMEOUT_MS, polling="raf")
    elapsed = time.perf_counter() - start
    page.get_by_text(OVERLAY).first.wait_for(timeout=TIMEOUT_MS)  # the rest of the page
    return elapsed


def overlay_source(page) -> str:
    return page.locator("[data-testid=stImage]").filter(has_text=OVERLAY).locator(
        "img").get_attribute("src", timeout=TIMEOUT_MS)


def timed_method(page, title: str) -> float:
    before = overlay_source(page)
    start = time.perf_counter()
    page.get_by_text(title, exact=True).click()
    page.wait_for_function(
        "([before, caption]) => [...document.querySelectorAll('[data-testid=stImage]')].some("
        "e => e.innerText.includes(caption) && e.querySelector('img') && "
        "e.querySelector('img').src !== before && e.querySelector('img').complete)",
        arg=[before, OVERLAY], timeout=TIMEOUT_MS, polling="raf")
    return time.perf_counter() - start


def measure(repeats: int, checkpoint: str | None, data_dir: Path | None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="try-it-bench-"))
    data_dir = data_dir or write_cifar_batches(work / "data")
    data = load_cifar10(data_dir, download=False)
    runs_dir = work / "runs"
    run = import_network(RunStore(runs_dir), network_bytes(checkpoint), "cifar_net.pth",
                         data=data, data_dir=str(data_dir))
    path, source = photo(work)
    titles = [m.title for m in ATTRIBUTION_METHODS.values()]
    times: dict[str, list[float]] = {"upload": [], **{t: [] for t in titles}}
    proc, url = start_server(data_dir, runs_dir)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            cold = timed_upload(page, url, path, len(data.classes))  # not counted
            for title in [*titles[1:], titles[0]]:
                timed_method(page, title)
            for _ in range(repeats):
                times["upload"].append(timed_upload(page, url, path, len(data.classes)))
                for title in [*titles[1:], titles[0]]:
                    times[title].append(timed_method(page, title))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"photo": source, "network": checkpoint or "untrained tutorial Net",
            "accuracy": run.accuracy, "cold_upload_s": round(cold, 3),
            "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
            "min_s": {k: round(min(v), 3) for k, v in times.items()},
            "max_s": {k: round(max(v), 3) for k, v in times.items()},
            "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()}}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--checkpoint", help="a cifar_net.pth to try (default: untrained Net)")
    parser.add_argument("--data-dir", type=Path, help="data folder (default: tiny generated)")
    args = parser.parse_args()
    load = os.getloadavg()
    result = measure(args.repeats, args.checkpoint, args.data_dir)
    report = {"cpu": f"{cpu_name()}, {os.cpu_count()} cores", "repeats": args.repeats,
              "load_before": load, "load_after": os.getloadavg(), **result}
    print(json.dumps(report, indent=1))
    print("\n| step | median | fastest | slowest | target |\n|---|---:|---:|---:|---:|")
    for step in result["median_s"]:
        target = "0.5 s" if step == "upload" else "1 s"
        label = ("upload -> probabilities drawn" if step == "upload"
                 else f"{step}: click -> overlay changed")
        print(f"| {label} | {result['median_s'][step]:.3f} s | {result['min_s'][step]:.3f} s | "
              f"{result['max_s'][step]:.3f} s | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How the dashboard feels: page load and "New batch" response times in a real browser, and the
speed of a run started from the Train page against the same run from the CLI.

    python bench/bench_dashboard.py --data-dir ../shared/data [--repeats 5] [--runs 2]

Starts `streamlit run app.py` on a free localhost port (fresh runs folder), drives Debian's
Chromium headless with Playwright. Times are wall-clock from the browser's side:
- page load: a browser navigation (full reload) until the page's last section is drawn, and a
  page switch: a click in the sidebar until the same (data already cached: the first, cold
  load is reported separately);
- new batch: click until every picture of the grid has changed;
- runs: the Train page and `python -m cifar_core train` alternate, same settings (tutorial
  settings, --train-size images, 1 epoch, seed 0); images/s as each run reports it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from dashboard_server import start_server  # noqa: E402

from cifar_core.runs.store import RunStore  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# What each page shows last: it is fully drawn once this text is there.
PAGES = {"": "One example of each class", "data": "Images per class",
         "train": "Start training", "evaluate": "The most confident mistakes",
         "runs": "Download or delete a run"}
TITLES = {"": "Home", "data": "Data", "train": "Train", "evaluate": "Evaluate", "runs": "Runs"}
IMAGES_JS = ("[...document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] img')]"
             ".map(i => i.src)")


def timed_load(page, url: str, marker: str) -> float:
    start = time.perf_counter()
    page.goto(url)
    page.get_by_text(marker).first.wait_for(timeout=120_000)
    return time.perf_counter() - start


def timed_switch(page, name: str, marker: str) -> float:
    """A click on the page's entry in the sidebar until the page is drawn (no browser reload)."""
    start = time.perf_counter()
    page.locator("[data-testid=stSidebarNav] a").filter(
        has_text=TITLES[name]).first.click()
    page.get_by_text(marker).first.wait_for(timeout=120_000)
    return time.perf_counter() - start


def new_batch_time(page) -> float:
    before = page.evaluate(IMAGES_JS)
    start = time.perf_counter()
    page.get_by_role("button", name="New batch").click()
    page.wait_for_function(
        f"before => {{ const now = {IMAGES_JS}; return now.length === before.length && "
        "now.every((src, i) => src !== before[i]); }", arg=before, timeout=60_000)
    return time.perf_counter() - start


def dashboard_run(page, url: str, store: RunStore, size: int) -> dict:
    page.goto(f"{url}/train")
    page.get_by_role("button", name="Start training").wait_for(timeout=120_000)
    page.get_by_text("Random seed").click()  # untick: a fixed seed, as the CLI run has
    time.sleep(0.5)
    for label, value in (("Epochs", 1), ("Training images", size), ("Log every", 2000),
                         ("Seed", 0)):
        field = page.get_by_role("spinbutton", name=label, exact=False).first
        field.fill(str(value))
        field.press("Enter")
        time.sleep(0.4)
    before = {r.id for r in store.list()}
    page.get_by_role("button", name="Start training").click()
    for _ in range(1200):
        new = [r for r in store.list() if r.id not in before]
        if new and new[0].status not in ("queued", "running"):
            return {"run": new[0].id, "status": new[0].status,
                    "images_per_s": new[0].metrics["images_per_s"], "config": new[0].config}
        time.sleep(0.5)
    raise RuntimeError("the dashboard run did not finish")


def cli_run(data_dir: Path, runs_dir: Path, size: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "cifar_core", "train", "--data-dir", str(data_dir),
         "--runs-dir", str(runs_dir), "--epochs", "1", "--train-size", str(size), "--seed", "0",
         "--json", "--out", str(runs_dir / "cli.pth")],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    return {"run": summary["run_id"], "status": summary["status"],
            "images_per_s": summary["images_per_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=2, help="dashboard/CLI pairs")
    parser.add_argument("--train-size", type=int, default=20_000)
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    runs_dir = Path(tempfile.mkdtemp(prefix="dash-bench-")) / "runs"
    store = RunStore(runs_dir)
    proc, url = start_server(data_dir, runs_dir)
    report: dict = {"machine": f"{os.cpu_count()} cores", "data": str(data_dir)}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            report["first_load_s"] = timed_load(page, url, PAGES[""])  # includes data loading
            runs = []
            for _ in range(args.runs):
                runs.append({"from": "dashboard", **dashboard_run(page, url, store,
                                                                  args.train_size)})
                runs.append({"from": "cli", **cli_run(data_dir, runs_dir, args.train_size)})
            report["runs"] = runs
            loads: dict[str, list[float]] = {name: [] for name in PAGES}
            for _ in range(args.repeats):
                for name, marker in PAGES.items():
                    loads[name].append(timed_load(page, f"{url}/{name}", marker))
            report["page_load_s"] = {n or "home": statistics.median(v) for n, v in loads.items()}
            report["page_load_all_s"] = {n or "home": v for n, v in loads.items()}
            switches: dict[str, list[float]] = {name: [] for name in PAGES}
            for _ in range(args.repeats):
                for name, marker in PAGES.items():
                    switches[name].append(timed_switch(page, name, marker))
            report["page_switch_s"] = {n or "home": statistics.median(v)
                                       for n, v in switches.items()}
            timed_load(page, f"{url}/data", PAGES["data"])
            page.wait_for_function(f"{IMAGES_JS}.length >= 16")
            clicks = [new_batch_time(page) for _ in range(args.repeats)]
            report["new_batch_s"] = {"median": statistics.median(clicks), "all": clicks}
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    dash = [r["images_per_s"] for r in report["runs"] if r["from"] == "dashboard"]
    cli = [r["images_per_s"] for r in report["runs"] if r["from"] == "cli"]
    report["dashboard_vs_cli"] = statistics.median(dash) / statistics.median(cli)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

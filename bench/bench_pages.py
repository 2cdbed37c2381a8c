"""How the Train and Runs pages feel with a long run: a run of N loss reports (a run with
`--log-every 1` makes one per minibatch) and the time to open and click through the pages in a
real browser.

    python bench/bench_pages.py --events 25000 100000 [--repeats 5]

For each N: a fresh runs folder with one completed run of N stats events (tutorial settings,
2 epochs, log_every 1: N / 2 minibatches of 4 images per epoch, events made with
training.events' dataclasses and written with one bulk insert into the store's events table),
two ordinary completed runs (log_every 2000) beside it, and tiny generated data
(tests/conftest.py's write_cifar_batches). Starts `streamlit run app.py` on a free 127.0.0.1
port with CIFAR_RUNS_DIR/CIFAR_DATA_DIR pointing there, drives Debian's Chromium headless with
Playwright, and times from the browser's side (wall clock, medians over --repeats):
- train_open: a browser navigation to /train until the loss chart's marks are drawn;
- runs_open: a navigation to /runs until its last section and all three charts are drawn;
- runs_setting: a click on another setting of "Which settings pay off" until the rerun it
  causes has finished (the server's script_finished message, then two animation frames);
- runs_tick: a click that ticks (or unticks) the long run's row in the runs table, until the
  same;
- train_live_open (last, since it adds a run): the long run's copy marked as running (a sleeping
  process stands in for its job) and the Train page opened until its chart is drawn.
The phases alternate within each repeat. A first navigation to Home, Train and Runs (cold: data
decoding, imports, each page's first drawing in the server) is made before timing and not
counted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
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

sys.path.insert(0, str(ROOT / "tests"))
from conftest import write_cifar_batches  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

from cifar_core.data.dataset import OFFICIAL_CLASSES  # noqa: E402
from cifar_core.runs.store import RunStore  # noqa: E402
from cifar_core.training.config import TrainConfig  # noqa: E402
from cifar_core.training.events import DoneEvent, EpochEvent, StatsEvent  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CHART_MARKS = "[data-testid=stVegaLiteChart] .marks"
TIMEOUT_MS = 180_000
FINISHED = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_SUCCESSFULLY")


# --- the run store ------------------------------------------------------------------------------

def long_run_events(count: int, epochs: int = 2, batch: int = 4,
                    images_per_s: float = 9_000.0) -> list[dict]:
    """`count` stats events of a log_every-1 run, an epoch event after each epoch, a done event:
    their to_dict() forms, as the training loop writes them."""
    per_epoch = math.ceil(count / epochs)
    images_per_epoch = per_epoch * batch
    total = images_per_epoch * epochs
    records, step = [], 0
    for epoch in range(1, epochs + 1):
        for minibatch in range(1, per_epoch + 1):
            step += 1
            if step > count:
                break
            seen = step * batch
            loss = 2.3 * math.exp(-seen / total) + 0.2 * math.sin(step * 0.7) ** 2
            elapsed = seen / images_per_s
            records.append(StatsEvent(
                epoch=epoch, minibatch=minibatch, step=step, images_seen=seen, loss=loss,
                images_per_s=images_per_s, elapsed_s=elapsed, fraction_done=seen / total,
                eta_s=(total - seen) / images_per_s, images_per_epoch=images_per_epoch,
            ).to_dict())
        records.append(EpochEvent(epoch=epoch, test_accuracy=40.0 + 8 * epoch,
                                  images_seen=min(step, count) * batch,
                                  elapsed_s=min(step, count) * batch / images_per_s).to_dict())
    seen = count * batch
    records.append(DoneEvent(status="completed", message=f"Finished {epochs} epoch(s).",
                             epochs_done=epochs, images_seen=seen, train_s=seen / images_per_s,
                             images_per_s=images_per_s, elapsed_s=seen / images_per_s,
                             training_step="written-out step", cores=1).to_dict())
    return records


def add_run(store: RunStore, data_dir: Path, events: list[dict], status: str = "completed",
            pid: int | None = None, **settings) -> str:
    """A run with these events, bulk-inserted (add_event opens a connection per event)."""
    config = TrainConfig(**{"epochs": 2, "batch_size": 4, "seed": 0, **settings})
    run = store.create(config.to_dict(), str(data_dir), origin="bench", status="running")
    with sqlite3.connect(store.db_path) as con:
        con.executemany("INSERT INTO events(run_id, kind, data) VALUES(?, ?, ?)",
                        [(run.id, e["kind"], json.dumps(e)) for e in events])
        if pid is not None:
            con.execute("UPDATE runs SET pid=? WHERE id=?", (pid, run.id))
    if status != "running":
        accuracy = 52.0 + settings.get("lr", 0.001) * 100
        per_class = {name: accuracy + i - 4.5 for i, name in enumerate(OFFICIAL_CLASSES)}
        confusion = [[100 if i == j else 10 for j in range(10)] for i in range(10)]
        store.finish(run.id, status, "Finished 2 epoch(s).", metrics={
            "accuracy": accuracy, "per_class": per_class, "confusion": confusion,
            "images_per_s": 9_000.0, "train_s": 11.1, "training_step": "written-out step",
            "cores": 1, "classes": list(OFFICIAL_CLASSES)})
    return run.id


def build_store(folder: Path, count: int, data_dir: Path) -> dict:
    store = RunStore(folder)
    small = long_run_events(13, epochs=2)  # log_every 2000 at 12,500 minibatches per epoch
    ids = {"small_a": add_run(store, data_dir, small, lr=0.002, log_every=2000),
           "small_b": add_run(store, data_dir, small, lr=0.005, log_every=2000)}
    ids["long"] = add_run(store, data_dir, long_run_events(count), log_every=1)
    return ids


# --- the browser --------------------------------------------------------------------------------

class Reruns:
    """Counts the finished script runs (not fragment runs) the server reports to the page."""

    def __init__(self, page):
        self.finished = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        if isinstance(payload, str):
            return
        try:
            msg = ForwardMsg.FromString(payload)
        except Exception:
            return
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished == FINISHED:
            self.finished += 1


def settled(page) -> None:
    """Two animation frames: what the last messages changed has been drawn."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def charts_drawn(page, count: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('{CHART_MARKS}').length >= {count}",
                           timeout=TIMEOUT_MS, polling="raf")


def open_train(page, url: str) -> float:
    start = time.perf_counter()
    page.goto(f"{url}/train")
    page.get_by_text("Start training").first.wait_for(timeout=TIMEOUT_MS)
    charts_drawn(page, 1)
    return time.perf_counter() - start


def open_runs(page, url: str) -> float:
    start = time.perf_counter()
    page.goto(f"{url}/runs")
    page.get_by_text("Download or delete a run").first.wait_for(timeout=TIMEOUT_MS)
    charts_drawn(page, 3)
    return time.perf_counter() - start


def timed_rerun(page, reruns: Reruns, click) -> float:
    before = reruns.finished
    start = time.perf_counter()
    click()
    while reruns.finished == before:
        page.wait_for_timeout(5)
        if time.perf_counter() - start > TIMEOUT_MS / 1000:
            raise TimeoutError("no rerun finished")
    settled(page)
    return time.perf_counter() - start


def click_setting(page, reruns: Reruns, index: int) -> float:
    """Pick the index-th option of the 'Setting' radio (one that is not chosen yet)."""
    options = page.locator("[data-testid=stRadioOption]")
    options.first.wait_for(timeout=TIMEOUT_MS)
    return timed_rerun(page, reruns, lambda: options.nth(index % options.count()).click())


def click_row(page, reruns: Reruns, row: int) -> float:
    """Tick (or untick) a row of the runs table: its selection box at the row's left edge."""
    grid = page.locator("[data-testid=stDataFrame]").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    row_height = 35  # Streamlit's default; the header is one row too
    x, y = box["x"] + 15, box["y"] + row_height * (row + 1) + row_height / 2
    grid.hover()
    return timed_rerun(page, reruns, lambda: page.mouse.click(x, y))


def measure(count: int, repeats: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="pages-bench-"))
    data_dir = write_cifar_batches(work / "data")
    runs_dir = work / "runs"
    start = time.perf_counter()
    ids = build_store(runs_dir, count, data_dir)
    build_s = time.perf_counter() - start
    proc, url = start_server(data_dir, runs_dir)
    sleeper = None
    times: dict[str, list[float]] = {"train_open": [], "runs_open": [], "runs_setting": [],
                                     "runs_tick": [], "train_live_open": []}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            reruns = Reruns(page)
            page.goto(url)  # cold start: imports, data decoding; not counted
            page.get_by_text("One example of each class").first.wait_for(timeout=TIMEOUT_MS)
            open_train(page, url)  # each page's first drawing in the server: not counted
            open_runs(page, url)
            for r in range(repeats):
                times["train_open"].append(open_train(page, url))
                times["runs_open"].append(open_runs(page, url))
                times["runs_setting"].append(click_setting(page, reruns, r + 1))
                # The table lists the newest run first: the long run is row 0.
                times["runs_tick"].append(click_row(page, reruns, 0))
            # A live copy of the long run. Its "job" is a sleeping process whose command line
            # names cifar_core, so the job runner takes it for a live job.
            sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)",
                                        "cifar_core-bench-stand-in"])
            add_run(RunStore(runs_dir), data_dir, long_run_events(count)[:-1], status="running",
                    pid=sleeper.pid, log_every=1)
            for _ in range(repeats):
                times["train_live_open"].append(open_train(page, url))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if sleeper is not None:
            sleeper.terminate()
            sleeper.wait(timeout=10)
    return {"events": count, "runs": ids, "store_build_s": round(build_s, 2),
            "median_s": {k: round(statistics.median(v), 3) for k, v in times.items() if v},
            "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[25_000, 100_000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    report = {"machine": f"{os.cpu_count()} cores", "load_before": os.getloadavg(),
              "results": [measure(n, args.repeats) for n in args.events]}
    print(json.dumps(report, indent=1))
    print("\n| events | " + " | ".join(report["results"][0]["median_s"]) + " |")
    for result in report["results"]:
        print(f"| {result['events']:,} | "
              + " | ".join(f"{v:.2f} s" for v in result["median_s"].values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

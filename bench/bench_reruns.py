"""Where a click's time goes on the server: the Python time of each rerun a click causes, under
streamlit.testing.v1.AppTest, on the real images, without a browser.

    python bench/bench_reruns.py --data-dir /tmp/cifar/batches [--repeats 10] [--json FILE]

A fresh runs folder gets one finished run (1 epoch of 1,000 images, trained here, so Evaluate has
a network to test). Then, each action --repeats times (medians, fastest-slowest):
- data_new_batch, data_filter (the class filter between none and two classes), data_size (the
  batch size between 16 and 32), eval_new_batch: `script` is the whole page's rerun, as AppTest
  makes it (AppTest reruns the whole script, not a fragment); `fragment` is the time inside the
  fragment the click reruns in a browser (pages/data.py batch_ui, pages/evaluate.py
  predictions_ui): what the server spends on that click in Python;
- switch_<page>: the page opened from the one before it in the navigation (the whole script,
  sidebar included); open_home: a new session's first run (Home).
Times are taken on the script's own thread (AppTest runs the script in a thread of its own):
`script` from its start to its end, `fragment` from cProfile's cumulative time of the fragment's
function in that thread (cProfile's overhead included: the figures are upper bounds). Each page's
script is compiled once, as a server does (AppTest would compile it on every run). AppTest's own
work (reading the elements back) is not counted.
What the browser adds (the round trip, fetching and drawing the pictures) is bench_clicks.py's.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamlit.runtime.scriptrunner.script_cache import ScriptCache  # noqa: E402
from streamlit.testing.v1 import AppTest, app_test, local_script_runner  # noqa: E402
from streamlit.testing.v1.local_script_runner import LocalScriptRunner  # noqa: E402

from cifar_core.runs.pipeline import execute_run  # noqa: E402
from cifar_core.runs.store import RunStore  # noqa: E402
from cifar_core.training.config import TrainConfig  # noqa: E402

APP = str(ROOT / "app.py")
# The fragment each click reruns in a browser: (file name, function name).
FRAGMENTS = {"data": ("data.py", "batch_ui"), "eval": ("evaluate.py", "predictions_ui")}
PAGES = {"data": "pages/data.py", "train": "pages/train.py",
         "sweep": "pages/sweep.py", "evaluate": "pages/evaluate.py", "try_it": "pages/try_it.py",
         "runs": "pages/runs.py"}


class ScriptClock:
    """Times each script run on its own thread, with cProfile on that thread."""

    def __init__(self):
        self.seconds: float = 0.0
        self.profile: cProfile.Profile | None = None
        self._lock = threading.Lock()
        original = LocalScriptRunner._run_script_thread
        clock = self

        def timed(runner, *args, **kwargs):
            profile = cProfile.Profile()
            start = time.perf_counter()
            profile.enable()
            try:
                return original(runner, *args, **kwargs)
            finally:
                profile.disable()
                with clock._lock:
                    clock.seconds = time.perf_counter() - start
                    clock.profile = profile

        LocalScriptRunner._run_script_thread = timed
        # A server compiles each page's script once (Streamlit's ScriptCache, one per runtime);
        # AppTest makes a new cache for every run, so each rerun would pay for compiling and
        # 'magic' (about 0.05 s a script here), which no click in a browser pays.
        shared = ScriptCache()
        local_script_runner.ScriptCache = lambda: shared
        app_test.ScriptCache = lambda: shared

    def inside(self, file_name: str, function: str) -> float:
        """Cumulative seconds of `function` (defined in a file named `file_name`), last run."""
        stats = pstats.Stats(self.profile)
        return sum(row[3] for (path, _, name), row in stats.stats.items()
                   if name == function and Path(path).name == file_name)


def finished_run(runs_dir: Path, data_dir: str) -> str:
    store = RunStore(runs_dir)
    config = TrainConfig(epochs=1, batch_size=10, log_every=20, seed=0, train_size=1000)
    run = store.create(config.to_dict(), data_dir, origin="bench", status="running")
    return execute_run(store, run.id).id


def summary(values: list[float]) -> dict:
    return {"median_s": statistics.median(values), "min_s": min(values), "max_s": max(values),
            "n": len(values)}


def measure(repeats: int) -> dict:
    clock = ScriptClock()
    results: dict[str, dict] = {}

    def record(name: str, fragment: tuple[str, str] | None, action) -> None:
        scripts, inside = [], []
        for i in range(repeats + 1):
            action(i)
            if i == 0:
                continue  # the first: caches filled, not counted
            scripts.append(clock.seconds)
            if fragment:
                inside.append(clock.inside(*fragment))
        results[name] = {"script": summary(scripts)}
        if fragment:
            results[name]["fragment"] = summary(inside)

    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGES["data"]).run()
    record("data_new_batch", FRAGMENTS["data"],
           lambda i: next(b for b in at.button if b.label == "New batch").click().run())
    record("data_filter", FRAGMENTS["data"],
           lambda i: at.multiselect[0].set_value(["cat", "dog"] if i % 2 else []).run())
    record("data_size", FRAGMENTS["data"],
           lambda i: at.slider[0].set_value(32 if i % 2 else 16).run())
    at.switch_page(PAGES["evaluate"]).run()
    record("eval_new_batch", FRAGMENTS["eval"],
           lambda i: at.button(key="eval_new_batch").click().run())
    order = list(PAGES)
    for name, page in PAGES.items():
        before = order[order.index(name) - 1]  # the page it is switched from

        def switch(i, page=page, before=before):
            at.switch_page(PAGES[before]).run()
            at.switch_page(page).run()
        record(f"switch_{name}", None, switch)
    # Home is a function, which AppTest cannot switch to: a new session's first run opens it.
    record("open_home", None, lambda i: AppTest.from_file(APP, default_timeout=120).run())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = str(Path(args.data_dir).resolve())
        os.environ["CIFAR_DATA_DIR"] = data_dir
        os.environ["CIFAR_RUNS_DIR"] = str(Path(tmp) / "runs")
        finished_run(Path(tmp) / "runs", data_dir)
        results = measure(args.repeats)
    print(f"{'action':<18} {'script: median (fastest-slowest)':>34} {'fragment':>26}")
    for name, parts in results.items():
        line = f"{name:<18} " + " ".join(
            f"{p['median_s']:>10.3f} s ({p['min_s']:.3f}-{p['max_s']:.3f})"
            for p in parts.values())
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"load": os.getloadavg(), **results}, indent=1))


if __name__ == "__main__":
    main()

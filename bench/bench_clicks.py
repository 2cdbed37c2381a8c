"""Does every click answer at once (issue 16)? Times, in a real browser on the real images, from
a click to what it changes drawn, for one checkout or several side by side (before and after).

    python bench/bench_clicks.py [--trees before=/tmp/before16 after=.] [--repeats 10]
        [--data-dir ../shared/data] [--train-epochs 4 | --no-train]

For each checkout (`label=path`, default: this one): a fresh runs folder holding one run trained
by the first checkout's CLI on the data (2 epochs of 2,000 images, so Evaluate, Try it and Runs have
a network, charts and pictures to draw), and `streamlit run app.py` from that checkout on a free
127.0.0.1 port (bench/dashboard_server.py). Debian's Chromium, headless, driven by Playwright.
The checkouts take turns within each repetition (before, after, before, after ...), so that
whatever else the machine does hits both alike. Timed from the browser's side (wall clock;
medians of --repeats, fastest and slowest too):
- new_batch (Data), filter (Data: a class added to "Only these classes"), size (Data: "How
  many" one step up), eval_new_batch (Evaluate): from the click (or key press) until the
  batch's pictures are all new, loaded and drawn, and nothing on the page is stale;
- switch_<page>: a click on the page in the sidebar (from the page before it in the menu)
  until the page is drawn: its script run finished, its text there, no skeleton, nothing
  stale, every visible picture loaded, every chart's marks drawn;
- open_<page>: the page's address opened in a cold tab (a new browser context: no cache, no
  session) until the same; open_tab_<page>: the same in a new tab of the browser that shows the
  dashboard already (its cache holds Streamlit's JavaScript, as after a first visit; a new
  session);
- server_<click>: the part of new_batch and eval_new_batch until the server's message that the
  script (or fragment) run has finished arrived: the rest is the browser's drawing.
- page_<action>: the same action timed on the page's own clock, from the person's input (the
  pointer or a key going down) to the animation frame that found it drawn; for open_*, from
  the navigation's start. The figures above start at Playwright's call, which first scrolls to
  the element and waits two frames for it to hold still.
With a training (unless --no-train): per checkout, a run of --train-epochs epochs of all the
training images started from its Train page with no browser left open (the tab closed at once),
then the same run started again while the timed actions above repeat in turn until it ends,
and once more with its Train page open and nothing clicked (as a person watches it); each
run's images/s as the run reports it. The first opening of each page (imports, first
drawings in a fresh server) is made before timing and not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from dashboard_server import start_server  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

from cifar_core.processes import pid_alive  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 1200}
TIMEOUT_MS = 120_000
# Each page's address, its title in the sidebar, a text of the page (in every checkout compared)
# and the fewest charts it draws (with the one finished run this benchmark seeds).
PAGES = {
    "home": ("", "Home", "Compare runs", 0),
    "data": ("data", "Data", "Images per class", 1),
    "train": ("train", "Train", "Start training", 0),
    "sweep": ("sweep", "Sweep", "Try many settings at once", 0),
    "evaluate": ("evaluate", "Evaluate", "Green frame: right", 0),
    "try_it": ("try_it", "Try it", "Inside the network", 1),
    "runs": ("runs", "Runs", "Download or delete a run", 2),
}
# Drawn: the page's script run has finished (the app's data-test-script-state, which Streamlit
# sets for tests: everything the run sent has arrived), the marker's text is on the page, no
# skeleton and nothing stale (Streamlit marks what a rerun has not re-sent yet), every visible
# picture loaded, every chart's marks drawn and at least `charts` charts.
DRAWN_JS = """([marker, charts]) => {
  const main = document.querySelector('[data-testid=stMain]');
  if (!document.querySelector('[data-test-script-state=notRunning]')) return false;
  if (!main || !main.innerText.includes(marker)) return false;
  if (document.querySelector('[data-testid=stSkeleton], [data-testid=stAppSkeleton]'))
    return false;
  if (document.querySelector('[data-stale=true]')) return false;
  const imgs = [...main.querySelectorAll('img')]
    .filter(i => i.checkVisibility());
  if (!imgs.every(i => i.complete && i.naturalWidth > 0)) return false;
  const drawn = [...main.querySelectorAll('[data-testid=stVegaLiteChart]')].map(
    c => c.querySelector('.marks') !== null);
  return drawn.length >= charts && drawn.every(d => d) && performance.now();
}"""
# The batch's pictures: the first element of the page with pictures (outside any expander;
# st.image's pictures or a show_tiles HTML block of them).
TILES_JS = """() => {
  const main = document.querySelector('[data-testid=stMain]');
  const first = [...main.querySelectorAll('[data-testid=stElementContainer]')].find(
    e => e.querySelector('img') && !e.closest('[data-testid=stExpander]'));
  return first ? [...first.querySelectorAll('img')].map(i => i.src) : [];
}"""
NEW_TILES_JS = """([before, count]) => {
  const main = document.querySelector('[data-testid=stMain]');
  if (document.querySelector('[data-stale=true]')) return false;
  const first = [...main.querySelectorAll('[data-testid=stElementContainer]')].find(
    e => e.querySelector('img') && !e.closest('[data-testid=stExpander]'));
  if (!first) return false;
  const imgs = [...first.querySelectorAll('img')];
  return imgs.length === count && imgs.map(i => i.src).join() !== before.join()
    && imgs.every(i => i.complete && i.naturalWidth > 0) && performance.now();
}"""
# The page's own clock at the person's first input since the last reset: the pointer going down
# on a button or link, or a key going down. Measured from there, a figure leaves out what
# Playwright does before it clicks (scrolling, waiting two frames for the element to hold still).
INPUT_JS = """
window.__inputAt = null;
for (const type of ['pointerdown', 'keydown'])
  addEventListener(type, () => {
    if (window.__inputAt === null) window.__inputAt = performance.now();
  }, true);
"""
RESET_INPUT_JS = "() => { window.__inputAt = null; }"
FINISHED = {ForwardMsg.ScriptFinishedStatus.Value(name) for name in
            ("FINISHED_SUCCESSFULLY", "FINISHED_FRAGMENT_RUN_SUCCESSFULLY")}


class ScriptRuns:
    """When the server last said that a script or fragment run finished."""

    def __init__(self, page):
        self.count, self.last = 0, 0.0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        if isinstance(payload, str):
            return
        try:
            msg = ForwardMsg.FromString(payload)
        except Exception:
            return
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished in FINISHED:
            self.count += 1
            self.last = time.perf_counter()


def settled(page) -> None:
    """Two animation frames: what the last change did has been painted."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


WHY_NOT_DRAWN_JS = """(marker) => {
  const main = document.querySelector('[data-testid=stMain]');
  return {marker: !!main && main.innerText.includes(marker),
    skeletons: document.querySelectorAll('[data-testid=stSkeleton]').length,
    stale: document.querySelectorAll('[data-stale=true]').length,
    charts: [...document.querySelectorAll('[data-testid=stVegaLiteChart]')].map(
      c => c.querySelector('.marks') !== null)};
}"""


def wait_drawn(page, name: str) -> float:
    """Waits until the page is drawn; the page's clock then (ms since its navigation began,
    read in the animation frame that found it drawn)."""
    _, _, marker, charts = PAGES[name]
    try:
        at = page.wait_for_function(DRAWN_JS, arg=[marker, charts], timeout=TIMEOUT_MS,
                                    polling="raf").json_value()
    except Exception as exc:
        raise RuntimeError(f"{name} not drawn: {page.evaluate(WHY_NOT_DRAWN_JS, marker)}") \
            from exc
    settled(page)
    return at


def since_input(page, drawn_at: float) -> float:
    """Seconds from the person's input (INPUT_JS) to `drawn_at` on the page's clock."""
    started = page.evaluate("() => window.__inputAt")
    return (drawn_at - started) / 1000 if started is not None else float("nan")


def timed_open(tab, url: str, name: str) -> tuple[float, float]:
    """The page's address opened in `tab`: (seconds from the call, seconds from the
    navigation's start on the page's clock)."""
    start = time.perf_counter()
    tab.goto(f"{url}/{PAGES[name][0]}")
    at = wait_drawn(tab, name)
    return time.perf_counter() - start, at / 1000


def open_cold(browser, url: str, name: str) -> tuple[float, float]:
    """A new browser context (no cache, no session) opening the page's address."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        return timed_open(context.new_page(), url, name)
    finally:
        context.close()


def open_tab(page, url: str, name: str) -> tuple[float, float]:
    """A new tab of the browser that already shows the dashboard (its cache holds Streamlit's
    JavaScript, as a person's browser does after the first visit; a new session) opening the
    page's address."""
    tab = page.context.new_page()
    try:
        return timed_open(tab, url, name)
    finally:
        tab.close()


def switch(page, name: str) -> tuple[float, float]:
    """(seconds from Playwright's click call, seconds from the pointer going down)."""
    link = page.locator("[data-testid=stSidebarNav] a").filter(has_text=PAGES[name][1]).first
    page.evaluate(RESET_INPUT_JS)
    start = time.perf_counter()
    link.click()
    at = wait_drawn(page, name)
    return time.perf_counter() - start, since_input(page, at)


def new_pictures(page, runs: ScriptRuns, act, count: int) -> tuple[float, float, float]:
    """(seconds until the batch's `count` pictures are new and drawn, seconds until the
    server's script_finished for it arrived, both from the action's call; seconds from the
    person's input to drawn on the page's clock) for the action `act`."""
    before = page.evaluate(TILES_JS)
    page.evaluate(RESET_INPUT_JS)
    finished = runs.count
    start = time.perf_counter()
    act()
    at = page.wait_for_function(NEW_TILES_JS, arg=[before, count], timeout=TIMEOUT_MS,
                                polling="raf").json_value()
    settled(page)
    drawn = time.perf_counter() - start
    server = runs.last - start if runs.count > finished else float("nan")
    return drawn, server, since_input(page, at)


def size_slider(page):
    return page.locator("[data-testid=stSlider]").filter(has_text="How many").locator(
        "input[type=range]")


def data_clicks(page, runs: ScriptRuns, url: str, r: int) -> dict[str, tuple]:
    """New batch, a class filter and a size step on the Data page (left as it was found)."""
    page.goto(f"{url}/data")
    wait_drawn(page, "data")
    out = {"new_batch": new_pictures(
        page, runs, lambda: page.get_by_role("button", name="New batch").click(), 16)}
    classes = page.locator("[data-testid=stMultiSelect]").filter(has_text="Only these classes")
    cls = ["cat", "ship", "frog", "truck", "bird", "horse", "deer", "dog", "airplane",
           "automobile"][r % 10]

    def add_class():
        classes.locator("input").fill(cls)
        classes.locator("input").press("Enter")

    out["filter"] = new_pictures(page, runs, add_class, 16)
    # Remove it again (not timed): the next step starts from every class.
    before = page.evaluate(TILES_JS)
    classes.locator("input").press("Backspace")
    page.wait_for_function(NEW_TILES_JS, arg=[before, 16], timeout=TIMEOUT_MS, polling="raf")
    size_slider(page).focus()
    out["size"] = new_pictures(page, runs, lambda: page.keyboard.press("ArrowRight"), 20)
    before = page.evaluate(TILES_JS)
    page.keyboard.press("ArrowLeft")  # back to 16 (not timed)
    page.wait_for_function(NEW_TILES_JS, arg=[before, 16], timeout=TIMEOUT_MS, polling="raf")
    return out


def eval_click(page, runs: ScriptRuns, url: str) -> tuple[float, float, float]:
    page.goto(f"{url}/evaluate")
    wait_drawn(page, "evaluate")
    return new_pictures(page, runs, lambda: page.get_by_role("button", name="New batch").click(),
                        16)


def one_round(browser, page, runs: ScriptRuns, url: str, r: int, times: dict) -> None:
    """Every timed action once, into times[action] (lists of seconds); `page_<action>`: the
    same from the person's input (or the navigation's start) on the page's clock."""
    def add(action: str, wall: float, on_page: float) -> None:
        times.setdefault(action, []).append(wall)
        times.setdefault(f"page_{action}", []).append(on_page)

    for name in PAGES:
        add(f"open_{name}", *open_cold(browser, url, name))
    page.goto(f"{url}/{PAGES['runs'][0]}")
    wait_drawn(page, "runs")
    for name in PAGES:
        add(f"open_tab_{name}", *open_tab(page, url, name))
    for name in PAGES:
        add(f"switch_{name}", *switch(page, name))
    for action, (drawn, server, on_page) in {**data_clicks(page, runs, url, r),
                                             "eval_new_batch": eval_click(page, runs, url)
                                             }.items():
        add(action, drawn, on_page)
        if action in ("new_batch", "eval_new_batch"):
            times.setdefault(f"server_{action}", []).append(server)


def warm_up(page, url: str) -> None:
    for name in PAGES:
        page.goto(f"{url}/{PAGES[name][0]}")
        wait_drawn(page, name)


def summary(times: dict) -> dict:
    """Median, fastest, slowest and count of each action's figures (NaN, a figure that could
    not be taken, left out)."""
    kept = {action: [x for x in v if x == x] for action, v in times.items()}
    return {action: {"median": round(statistics.median(v), 3), "min": round(min(v), 3),
                     "max": round(max(v), 3), "n": len(v)} for action, v in kept.items() if v}


# --- training started from the dashboard -----------------------------------------------------

class TreeRuns:
    """A checkout's runs, read straight from its run store's file, read-only: opening it as a
    RunStore of this checkout would bring it up to this checkout's schema, which an older
    checkout's jobs then refuse to write (that stopped the training phase of a before/after
    run once the store had a schema 2)."""

    def __init__(self, root):
        self.db = Path(root) / "runs.sqlite"

    def _rows(self, query: str, args: tuple = ()) -> list[sqlite3.Row]:
        with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)) as con:
            con.row_factory = sqlite3.Row
            return con.execute(query, args).fetchall()

    def ids(self) -> set[str]:
        return {row["id"] for row in self._rows("SELECT id FROM runs")}

    def run(self, run_id: str) -> dict:
        row = self._rows("SELECT status, pid, metrics FROM runs WHERE id=?", (run_id,))[0]
        active = row["status"] in ("queued", "running")
        if row["status"] == "running" and row["pid"] and not pid_alive(row["pid"]):
            active = False  # its job died, and no page is open to mark it failed
        return {"status": row["status"], "active": active,
                "metrics": json.loads(row["metrics"]) if row["metrics"] else {}}


def start_training(page, url: str, store: TreeRuns, epochs: int) -> str:
    """Start a run of `epochs` epochs (all training images, other settings as the form has
    them) from the Train page; its id."""
    page.goto(f"{url}/train")
    page.get_by_role("button", name="Start training").wait_for(timeout=TIMEOUT_MS)
    field = page.get_by_role("spinbutton", name="Epochs").first
    field.fill(str(epochs))
    field.press("Enter")
    time.sleep(1.0)
    before = store.ids()
    page.get_by_role("button", name="Start training").click()
    for _ in range(600):
        new = store.ids() - before
        if new:
            return next(iter(new))
        time.sleep(0.1)
    raise RuntimeError("the Train page started no run")


def wait_run(store: TreeRuns, run_id: str, timeout: float = 1800) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = store.run(run_id)
        if not run["active"]:
            return {"run": run_id, "status": run["status"],
                    "images_per_s": run["metrics"].get("images_per_s")}
        time.sleep(0.5)
    raise RuntimeError(f"run {run_id} did not finish")


def training_phase(browser, tree: dict, epochs: int, repeats: int) -> dict:
    store = TreeRuns(tree["runs"])
    tab = browser.new_page(viewport=VIEWPORT)
    run_id = start_training(tab, tree["url"], store, epochs)
    tab.close()  # no browser open while it trains
    quiet = wait_run(store, run_id)
    page = browser.new_context(viewport=VIEWPORT).new_page()  # open_tab opens tabs beside it
    page.add_init_script(INPUT_JS)
    runs = ScriptRuns(page)
    run_id = start_training(page, tree["url"], store, epochs)
    times: dict[str, list[float]] = {}
    rounds = 0
    while store.run(run_id)["active"] and rounds < repeats:
        one_round(browser, page, runs, tree["url"], rounds, times)
        rounds += 1
    still_running = store.run(run_id)["active"]
    busy = wait_run(store, run_id)
    page.close()
    # As a person watches a run: its Train page open (refreshing every second), nothing clicked.
    tab = browser.new_page(viewport=VIEWPORT)
    watched = wait_run(store, start_training(tab, tree["url"], store, epochs))
    tab.close()

    def ratio(run: dict) -> float | None:
        return (run["images_per_s"] / quiet["images_per_s"]
                if run["images_per_s"] and quiet["images_per_s"] else None)

    return {"quiet_run": quiet, "browsed_run": busy, "watched_run": watched, "rounds": rounds,
            "run_outlasted_rounds": still_running, "speed_ratio": ratio(busy),
            "watched_speed_ratio": ratio(watched), "times": summary(times)}


# --- setup ---------------------------------------------------------------------------------------

def seed_runs(tree: Path, data_dir: Path, runs_dir: Path) -> None:
    """One finished run, trained by the checkout's own CLI."""
    subprocess.run([sys.executable, "-m", "cifar_core", "train", "--data-dir", str(data_dir),
                    "--runs-dir", str(runs_dir), "--epochs", "2", "--train-size", "2000",
                    "--log-every", "100", "--seed", "0", "--out", str(runs_dir / "seed.pth")],
                   cwd=tree, check=True, capture_output=True, timeout=600)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs="+", default=[f"this={ROOT}"],
                        help="label=path of each checkout to serve")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--train-epochs", type=int, default=4)
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--out", type=Path, help="write the JSON report here too")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clicks-bench-"))
    trees = []
    for spec in args.trees:
        label, path = spec.split("=", 1)
        runs_dir = work / f"runs-{label}"
        # Every checkout gets the same kind of run: trained by the first checkout's CLI.
        seed_runs(Path(args.trees[0].split("=", 1)[1]).resolve(), args.data_dir.resolve(),
                  runs_dir)
        trees.append({"label": label, "path": str(Path(path).resolve()), "runs": runs_dir})
    report: dict = {"cpu": f"{cpu_name()}, {os.cpu_count()} cores", "data": str(args.data_dir),
                    "repeats": args.repeats, "started": time.strftime("%Y-%m-%d %H:%M"),
                    "load_before": os.getloadavg()}
    servers = []
    try:
        for tree in trees:
            proc, tree["url"] = start_server(args.data_dir.resolve(), tree["runs"],
                                             root=Path(tree["path"]))
            servers.append(proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            tabs = {}
            for tree in trees:
                # In a context of its own, which new tabs share (open_tab).
                page = browser.new_context(viewport=VIEWPORT).new_page()
                page.add_init_script(INPUT_JS)
                tabs[tree["label"]] = (page, ScriptRuns(page), {})
                warm_up(page, tree["url"])
            for r in range(args.repeats):
                for tree in trees:
                    page, runs, times = tabs[tree["label"]]
                    one_round(browser, page, runs, tree["url"], r, times)
                    print(json.dumps({"round": r + 1, "tree": tree["label"],
                                      "at": time.strftime("%H:%M:%S"),
                                      "load": os.getloadavg(), "times": times}),
                          file=sys.stderr, flush=True)
            report["idle"] = {label: summary(times) for label, (_, _, times) in tabs.items()}
            report["load_after_idle"] = os.getloadavg()
            for page, _, _ in tabs.values():
                page.close()
            if not args.no_train:
                report["training"] = {tree["label"]: training_phase(
                    browser, tree, args.train_epochs, args.repeats) for tree in trees}
                report["load_after_training"] = os.getloadavg()
            browser.close()
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=30)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M")
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)
    labels = [t["label"] for t in trees]
    print("\n| action | " + " | ".join(labels) + " |\n|---|" + "---:|" * len(labels))
    for action in report["idle"][labels[0]]:
        print(f"| {action} | " + " | ".join(
            f"{report['idle'][label][action]['median']:.2f} s" for label in labels) + " |")
    for label, result in report.get("training", {}).items():
        print(f"\ntraining, {label}: {result['rounds']} rounds, speed ratio "
              f"{result['speed_ratio']} (watched, no clicks: {result['watched_speed_ratio']})")
        for action, figures in result["times"].items():
            print(f"| {action} | {figures['median']:.2f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

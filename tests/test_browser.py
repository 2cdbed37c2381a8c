"""One real-browser walk through the whole app: `streamlit run app.py` on a free localhost port,
Debian's Chromium driven headless by Playwright. Before it, an inner page as a fresh server's
first request (a bookmark after a restart), on a server of its own.

Data: tiny generated batches by default. To take the README's screenshots on the real images:
    BROWSER_DATA_DIR=../shared/data BROWSER_SCREENSHOTS=docs BROWSER_TRAIN="2 4 10000 100" \
        BROWSER_SWEEP="2 16 5000 50 0.002,0.02 3" python -m pytest -m browser tests/test_browser.py
(BROWSER_TRAIN = epochs, batch size, training images, log every; BROWSER_SWEEP the same for the
Sweep page's four settings, their two learning rates and, optionally, repeats;
BROWSER_FASHION_TRAIN the Fashion-MNIST run's epochs, batch size, training images, log every
and learning rate).
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    CHROMIUM,
    CLASSES,
    REAL_ARCHIVE,
    finish_run,
    start_server,
    stop_server,
    store_with_every_state,
    write_cifar_batches,
)
from PIL import Image

from cifar_core.runs.store import RunStore
from cifar_core.sweeps.engine import best_run
from cifar_core.sweeps.store import SweepStore
from cifar_core.training.models import Net

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The dashboard served by `streamlit run app.py` until the module's tests are done."""
    tmp = tmp_path_factory.mktemp("browser")
    data_dir = os.environ.get("BROWSER_DATA_DIR") or str(
        write_cifar_batches(tmp / "data", train_per_batch=500, test_size=200))
    url, proc = start_server(Path(data_dir), tmp / "runs")
    yield url, tmp / "runs"
    output = stop_server(proc)
    assert "Traceback" not in output, output[-3000:]


@pytest.fixture
def fresh_server(tmp_path):
    """A dashboard of its own that has served no page yet, for what a first request sees."""
    url, proc = start_server(tmp_path / "no-data", tmp_path / "runs")
    yield url
    output = stop_server(proc)
    assert "Traceback" not in output, output[-3000:]


@pytest.fixture(scope="module")
def page(server, browser):
    tab = browser.new_page(viewport={"width": 1400, "height": 1500})
    tab.set_default_timeout(60_000)
    yield tab
    tab.close()


def shoot(page, name: str) -> None:
    """A screenshot for the README when BROWSER_SCREENSHOTS names a folder."""
    folder = os.environ.get("BROWSER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        time.sleep(1.5)  # let charts finish drawing
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def assert_no_error_shown(page) -> None:
    body = page.locator("[data-testid=stMain]").inner_text()
    assert "Traceback" not in body and "Something went wrong" not in body, body[:2000]


TILES = "[data-testid=stMain] .cifar-tiles img"


def image_sources(page) -> list[str]:
    """The sources of the page's picture tiles (layout.show_tiles)."""
    return page.locator(TILES).evaluate_all("imgs => imgs.map(i => i.src)")


def tile_sources(page, count: int) -> list[str]:
    """The sources of the page's picture tiles once `count` of them are drawn: the words drawn
    after the tiles can show first (a run on cd4f420 found none of Evaluate's 16 right after
    its caption showed, on a busy machine)."""
    page.locator(TILES).nth(count - 1).wait_for()
    return image_sources(page)


def sidebar_navigation(page) -> list[str]:
    """The page titles in the sidebar's navigation, top to bottom."""
    links = page.locator("[data-testid=stSidebarNav] [data-testid=stSidebarNavLink]")
    return [t.strip() for t in links.locator("[data-testid=stMarkdownContainer]").all_inner_texts()]


def test_an_inner_page_as_a_fresh_servers_first_request_has_the_apps_navigation(fresh_server,
                                                                               browser):
    # A bookmark or reload of /runs after a restart: Streamlit runs pages/runs.py straight from
    # the folder until st.navigation has run once, with a menu of the folder's file names
    # (app, data, evaluate, runs, train, ...). The page must still get Home's navigation.
    tab = browser.new_page()
    tab.set_default_timeout(60_000)
    try:
        tab.goto(f"{fresh_server}/runs")
        tab.get_by_text("No runs yet").wait_for()
        tab.locator("[data-testid=stSidebarNav]").wait_for()
        expected = ["Home", "Data", "Train", "Sweep", "Evaluate", "Try it", "Teach", "Runs"]
        deadline = time.monotonic() + 10
        while sidebar_navigation(tab) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sidebar_navigation(tab) == expected
        assert tab.locator("[data-testid=stMain] h1").first.inner_text() == "Runs"
        assert_no_error_shown(tab)
    finally:
        tab.close()


def test_click_through_the_whole_app(server, page):
    url, runs_dir = server
    # Home
    page.goto(url)
    page.get_by_text("One example of each class").wait_for()
    assert_no_error_shown(page)
    shoot(page, "home")

    # Data: a new batch replaces the pictures.
    page.goto(f"{url}/data")
    page.get_by_text("Images per class").wait_for()
    page.wait_for_function("document.querySelectorAll('[data-testid=stMain] "
                           ".cifar-tiles img').length >= 16")
    before = image_sources(page)
    shoot(page, "data")
    page.get_by_role("button", name="New batch").click()
    page.wait_for_function(
        "before => { const now = [...document.querySelectorAll('[data-testid=stMain] "
        ".cifar-tiles img')].map(i => i.src); "
        "return now.length >= 16 && now.join() !== before.join(); }", arg=before)
    assert_no_error_shown(page)

    # Train: start a short run and watch the loss chart gain points while it runs.
    # Long enough (about 25,000 steps) that the page sees the run going, however fast it trains.
    epochs, batch, size, log_every = (os.environ.get("BROWSER_TRAIN") or "10 1 2500 250").split()
    page.goto(f"{url}/train")
    page.get_by_role("button", name="Start training").wait_for()
    page.get_by_text("Training images: all").click()  # not all of them: the number below
    page.get_by_role("spinbutton", name=re.compile("^Training images")).and_(
        page.locator(":enabled")).wait_for()
    for label, value in (("Epochs", epochs), ("Batch size", batch),
                         ("Training images", size), ("Log every", log_every)):
        field = page.get_by_role("spinbutton", name=re.compile(f"^{label}"))
        field.fill(value)
        field.press("Enter")
        time.sleep(0.5)
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("button", name="Stop").or_(
        page.get_by_text("Finished: the network gets")).first.wait_for()
    reports = page.get_by_text(re.compile(r"\d+ loss reports? so far"))
    seen = set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if page.get_by_text("Finished: the network gets").count():
            break
        # all_inner_texts reads what is there without waiting: the fragment that shows the
        # count can be redrawn (or the run finish) between a count() and an inner_text().
        for text in reports.all_inner_texts()[:1]:
            seen.add(int(text.split()[0]))
            if len(seen) == 3:
                shoot(page, "train")
        time.sleep(0.5)
    assert len(seen) >= 2, f"the chart should gain points while the run trains (saw {seen})"
    assert max(seen) > min(seen)
    page.get_by_text("Finished: the network gets").wait_for(timeout=240_000)
    assert_no_error_shown(page)
    if len(seen) < 3:
        shoot(page, "train")

    # Evaluate: its first section's 16 pictures; the per-class table lists every class.
    page.goto(f"{url}/evaluate")
    page.get_by_text("Green frame: right").wait_for()
    assert len(tile_sources(page, 16)) == 16
    shoot(page, "evaluate")
    page.get_by_role("tab", name="Accuracy per class").click()
    page.locator("[data-testid=stDataFrame] [role=gridcell]").first.wait_for(state="attached")
    cells = page.locator("[data-testid=stDataFrame]").first.locator("[role=gridcell]")
    texts = {t.strip() for t in cells.all_text_contents()}
    assert set(CLASSES) <= texts, texts
    assert_no_error_shown(page)
    assert not image_sources(page), "another section's pictures stay off the page"
    shoot(page, "evaluate-per-class")

    # Runs: the run is there.
    run_id = next(p.name for p in runs_dir.iterdir() if p.is_dir())
    page.goto(f"{url}/runs")
    page.get_by_text("Which settings pay off").wait_for()
    # The table draws on a canvas; its cells exist for screen readers, hidden.
    page.get_by_text(run_id).first.wait_for(state="attached")
    assert_no_error_shown(page)
    shoot(page, "runs")


# Each page's address, its title in the sidebar and its heading.
PAGES = {"": ("Home", "Teach a computer to recognise pictures"), "data": ("Data", "The data"),
         "train": ("Train", "Train"), "sweep": ("Sweep", "Sweep"),
         "evaluate": ("Evaluate", "Evaluate"),
         "try_it": ("Try it", "Try it"), "runs": ("Runs", "Runs")}
NONE_OR_NAN = re.compile(r"\b(None|nan|NaN)\b")
STOPPING = "Stopping after the current batch"


def wait_drawn(page, heading: str, settle_s: float = 1.0) -> None:
    """The page with this heading is on screen: no skeleton, nothing stale (left over from the
    page before), and it stayed so for settle_s (the script's last elements have arrived)."""
    page.wait_for_function(
        """(heading) => { const h = document.querySelector('[data-testid=stMain] h1');
          return h && h.innerText.trim() === heading &&
            !document.querySelector('[data-testid=stSkeleton], [data-stale=true]'); }""",
        arg=heading)
    time.sleep(settle_s)
    page.wait_for_function("!document.querySelector('[data-testid=stSkeleton], "
                           "[data-stale=true]')")


def settled(page) -> None:
    """The page's script run is over and nothing on it is stale: while a run redraws the page,
    the elements it has not sent again yet stay beside the new ones (a field twice)."""
    page.wait_for_function("document.querySelector('[data-test-script-state=notRunning]') && "
                           "!document.querySelector('[data-stale=true]')")


def shown_text(page) -> str:
    """Everything a person can read: the page, the sidebar, toasts and the tables' cells."""
    cells = page.locator("[data-testid=stDataFrame] [role=gridcell]").all_text_contents()
    return page.locator("body").inner_text() + "\n" + "\n".join(cells)


def toasts(page) -> list[str]:
    return page.locator("[data-testid=stToast]").all_inner_texts()


def switch_page(page, path: str) -> None:
    title, heading = PAGES[path]
    page.locator("[data-testid=stSidebarNav] a").filter(has_text=title).first.click()
    wait_drawn(page, heading, settle_s=0.2)


def test_what_stop_says_stays_with_the_stopping_run(server, page):
    """Stop's words belong to the Train page while the run stops: never a toast, and nothing
    of them on the pages opened right afterwards or on Train once the run has stopped (issue
    16: a toast sent from the Train page's self-refreshing view came back on Evaluate)."""
    url, runs_dir = server
    page.goto(f"{url}/train", timeout=180_000)  # a fresh server's first page, if it is
    page.get_by_role("button", name="Start training").wait_for(timeout=180_000)
    field = page.get_by_role("spinbutton", name=re.compile("^Epochs"))
    field.fill("1000")  # far longer than the test: it is stopped
    field.press("Enter")
    time.sleep(0.5)
    before = {r.id for r in RunStore(runs_dir).list()}
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("button", name="Stop").wait_for()
    page.get_by_role("button", name="Stop").click()
    page.get_by_text(STOPPING).or_(page.get_by_text("Stopped")).first.wait_for()
    time.sleep(1)  # what Stop says has had its moment on Train (a toast would show by now)
    for path in ("evaluate", "runs", "data", "", "evaluate"):
        switch_page(page, path)
        deadline = time.monotonic() + 4  # such a toast came back about 3 s after the switch
        while time.monotonic() < deadline:
            assert not toasts(page), (path, toasts(page))
            assert STOPPING not in shown_text(page), path
            time.sleep(0.25)
    [run] = [r for r in RunStore(runs_dir).list() if r.id not in before]
    deadline = time.monotonic() + 120
    while RunStore(runs_dir).get(run.id).is_active and time.monotonic() < deadline:
        time.sleep(0.5)
    assert RunStore(runs_dir).get(run.id).status == "stopped"
    switch_page(page, "train")
    time.sleep(2)
    assert STOPPING not in shown_text(page) and not toasts(page)
    assert_no_error_shown(page)


@pytest.fixture
def seeded_store_server(tmp_path):
    """A dashboard over a store with a run in every state: completed, stopped, diverged,
    failed, queued, running (a stand-in process), and a completed run whose checkpoint file
    was deleted."""
    data_dir = write_cifar_batches(tmp_path / "data", train_per_batch=100, test_size=100)
    runs_dir = tmp_path / "runs"
    # Its command line names cifar_core, so the job runner takes it for a live training job.
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                                 "cifar_core-test-stand-in"])
    try:
        store_with_every_state(runs_dir, data_dir, running_pid=stand_in.pid)
        gone = RunStore(runs_dir).get(finish_run(runs_dir, data_dir, lr=0.02))
        Path(gone.checkpoint).unlink()
        url, proc = start_server(data_dir, runs_dir)
        yield url
        output = stop_server(proc)
        assert "Traceback" not in output, output[-3000:]
    finally:
        stand_in.terminate()
        stand_in.wait(timeout=10)


def test_no_page_of_a_seeded_store_shows_none_or_nan(seeded_store_server, browser):
    """What a newcomer reads on every page, runs in every state: never Python's None or a
    float's nan (in the text, the sidebar or a table's cells), never an error. Screenshots of
    each page go to BROWSER_WALK when it names a folder (to look at them as a newcomer)."""
    tab = browser.new_page(viewport={"width": 1400, "height": 1500})
    tab.set_default_timeout(60_000)
    walk = os.environ.get("BROWSER_WALK")
    try:
        for path, (_, heading) in PAGES.items():
            tab.goto(f"{seeded_store_server}/{path}")
            wait_drawn(tab, heading)
            # A page in sections (Evaluate's tabs) is read section by section.
            sections = tab.locator("[data-testid=stMain] [role=tab]").all_inner_texts()
            for number, section in enumerate(sections or [""]):
                if number:
                    tab.get_by_role("tab", name=section).click()
                    wait_drawn(tab, heading)
                shown = shown_text(tab).replace("The loss became NaN", "")  # the diverged run
                where = (path, section)
                assert not NONE_OR_NAN.search(shown), (where, NONE_OR_NAN.findall(shown))
                assert_no_error_shown(tab)
                if walk:
                    Path(walk).mkdir(parents=True, exist_ok=True)
                    name = "-".join(filter(None, ["seeded", path or "home", str(number or "")]))
                    tab.screenshot(path=str(Path(walk) / f"{name}.png"), full_page=True)
    finally:
        tab.close()


def real_photo(folder: Path, side: int = 256) -> Path:
    """One of the real CIFAR-10 JPEGs (../shared/data) scaled to side x side, as someone's photo
    would be uploaded; a smooth synthetic picture where the archive is absent."""
    if REAL_ARCHIVE.is_file():
        with tarfile.open(REAL_ARCHIVE) as archive:
            small = Image.open(io.BytesIO(archive.extractfile("test/cat/0000.jpg").read()))
    else:
        y, x = np.mgrid[0:32, 0:32]
        small = Image.fromarray(np.stack([x * 8, y * 8, (x + y) * 4], axis=-1).astype(np.uint8))
    path = folder / "my_cat.jpg"
    small.convert("RGB").resize((side, side), Image.Resampling.BICUBIC).save(path, quality=90)
    return path


class RunsCommand:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def test_try_it_answers_a_real_photo_and_refuses_bad_files(server, page, tmp_path):
    url, runs_dir = server
    # A finished run: the walk's own when it ran before, else one trained here on tiny data.
    if not any(r.checkpoint for r in RunStore(runs_dir).list()):
        finish_run(runs_dir, write_cifar_batches(tmp_path / "data"))
    page.goto(f"{url}/try_it")
    page.get_by_text("Upload pictures").click()
    pictures = page.locator("[data-testid=stFileUploader]").filter(has_text="Pictures")

    # A real photo: the probability chart with a bar per class, the sentence, and a map.
    pictures.locator("input[type=file]").set_input_files(real_photo(tmp_path))
    page.get_by_text("my_cat.jpg, 256 × 256 pixels").wait_for()
    page.get_by_text(re.compile(r"^The network (is|cannot)")).wait_for()
    # One bar per class, drawn.
    page.wait_for_function(f"document.querySelectorAll('[data-testid=stMain] "
                           f"[data-testid=stVegaLiteChart] svg.marks .mark-rect path').length "
                           f"=== {len(CLASSES)}")
    overlay = page.locator("[data-testid=stImage]").filter(has_text="Where it looked to answer")
    overlay.locator("img").wait_for()
    before = overlay.locator("img").get_attribute("src")
    page.get_by_text("Occlusion", exact=True).click()
    page.wait_for_function(
        "before => [...document.querySelectorAll('[data-testid=stImage]')].some(e => "
        "e.innerText.includes('Where it looked to answer') && e.querySelector('img').src "
        "!== before)", arg=before)
    page.get_by_text("hiding the picture under a small grey square").wait_for()
    assert_no_error_shown(page)
    shoot(page, "try_it")

    # A text file renamed .png: its sentence, and the photo is still answered.
    notes = tmp_path / "notes.png"
    notes.write_text("Shopping list: milk, eggs\n")
    pictures.locator("input[type=file]").set_input_files(notes)
    page.get_by_text("notes.png is not a picture, although its name ends in .png").wait_for()
    page.get_by_text("my_cat.jpg, 256 × 256 pixels").wait_for()
    assert_no_error_shown(page)

    # A malicious pickle named cifar_net.pth: refused, and its payload never runs.
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "cifar_net.pth"
    torch.save({"state_dict": Net().state_dict(), "note": RunsCommand(marker)}, evil)
    subprocess.run([sys.executable, "-c", "import sys, torch; "
                    "torch.load(sys.argv[1], weights_only=False)", str(evil)],
                   capture_output=True, timeout=120)
    assert marker.exists(), "the payload should run under torch.load(weights_only=False)"
    marker.unlink()
    runs_before = {r.id for r in RunStore(runs_dir).list()}
    page.get_by_text("Bring your own network (.pth)").click()
    networks = page.locator("[data-testid=stFileUploader]").filter(has_text="Network file")
    networks.locator("input[type=file]").set_input_files(evil)
    page.get_by_text("cifar_net.pth holds code or objects that are not plain weights, so it "
                     "was not opened").wait_for()
    time.sleep(1)  # anything the server would still do with the file, it has done by now
    assert not marker.exists(), "the payload ran"
    assert {r.id for r in RunStore(runs_dir).list()} == runs_before
    assert_no_error_shown(page)



def test_a_short_fast_run_from_the_train_page(server, page):
    """The fast network chosen in the form (width 8, 1 epoch, 500 images) trains to the end."""
    url, runs_dir = server

    def run_ids() -> set[str]:
        return {p.name for p in runs_dir.iterdir() if p.is_dir()} if runs_dir.exists() else set()

    before = run_ids()
    page.goto(f"{url}/train")
    page.get_by_role("button", name="Start training").wait_for()
    page.locator("[data-testid=stSelectbox]").filter(has_text="Model").first.click()
    page.get_by_role("option", name="Fast network").click()
    settled(page)
    page.get_by_text(re.compile(r"^Width: standard \(\d+\)$")).click()  # this width instead
    settled(page)
    if page.get_by_role("checkbox", name="Training images: all").is_checked():
        page.get_by_text("Training images: all").click()
    for label, value in (("Width", "8"), ("Epochs", "1"), ("Batch size", "50"),
                         ("Training images", "500"), ("Log every", "5")):
        settled(page)
        field = page.get_by_role("spinbutton", name=re.compile(f"^{label}"))
        field.and_(page.locator(":enabled")).wait_for()
        field.fill(value)
        field.press("Enter")
        time.sleep(0.5)
    page.get_by_text(re.compile(r"weights at width 8\.")).wait_for()
    page.get_by_role("button", name="Start training").click()
    deadline = time.monotonic() + 30
    while not run_ids() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    [run_id] = run_ids() - before
    page.get_by_text(f"Run {run_id} · completed").wait_for(timeout=240_000)
    assert_no_error_shown(page)
    config = RunStore(runs_dir).get(run_id).train_config
    assert (config.model, config.width, config.epochs) == ("fast", 8, 1)


def test_a_sweep_from_the_sweep_page_answers_and_its_best_settings_fill_the_train_form(server,
                                                                                      page):
    """Four runs (two learning rates by two momenta, 1 epoch of 500 images) defined with the
    Sweep page's fields and started there; once they are done, the parallel-coordinates chart
    is drawn, and "Use the best settings" fills the Train page's form with the best run's."""
    url, runs_dir = server
    before = {s.id for s in SweepStore(RunStore(runs_dir)).list()} if runs_dir.exists() \
        else set()
    page.goto(f"{url}/sweep")
    page.get_by_role("button", name="Start the sweep").wait_for()
    main = page.locator("[data-testid=stMain]")
    # BROWSER_SWEEP = epochs, batch size, training images, log every, learning rates: for the
    # README's picture on the real images, runs long enough to learn something.
    # A sixth value, repeats, runs each setting that many times (the README's picture of the
    # answer's error bars).
    epochs, batch, size, log_every, rates, *more = (
        os.environ.get("BROWSER_SWEEP") or "1 10 500 10 0.002,0.05").split()
    repeats = int(more[0]) if more else 1
    for label, value in (("Epochs", epochs), ("Batch size", batch), ("Log every", log_every),
                         ("Training images", size)):
        field = main.get_by_role("spinbutton", name=re.compile(f"^{label}"))
        field.fill(value)
        field.press("Enter")
        time.sleep(0.5)
    for label, values in (("Learning rate", rates.replace(",", ", ")),
                          ("Momentum", "0.5, 0.9")):
        main.get_by_role("radiogroup", name=label, exact=True).get_by_text(
            "list", exact=True).click()
        field = main.get_by_role("textbox", name=f"{label} values")
        field.fill(values)
        field.press("Enter")
        time.sleep(0.5)
    if repeats > 1:
        field = main.get_by_role("spinbutton", name=re.compile("^Repeats"))
        field.fill(str(repeats))
        field.press("Enter")
        time.sleep(0.5)
    page.get_by_text(re.compile(f"^{4 * repeats} runs, about ")).wait_for()
    page.get_by_role("button", name="Start the sweep").click()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
            {s.id for s in SweepStore(RunStore(runs_dir)).list()} - before):
        time.sleep(0.2)
    [sweep_id] = {s.id for s in SweepStore(RunStore(runs_dir)).list()} - before
    page.get_by_text("Every run at a glance").wait_for(timeout=300_000 * repeats)
    sweep = SweepStore(RunStore(runs_dir)).get(sweep_id)
    assert sweep.status == "completed", sweep.message
    assert sweep.space.size() == 4 * repeats
    # The parallel-coordinates chart, drawn: an axis per varied setting and the accuracy.
    # (Not the chart of each setting's mean drawn with repeats: its axis is "test accuracy (%)",
    # and its labels name the settings too.)
    chart = main.locator("[data-testid=stVegaLiteChart]").filter(has_text="Momentum").filter(
        has_text="Test accuracy").filter(has_not_text="accuracy (%)")
    chart.locator("svg, canvas").first.wait_for()
    # Every run's small loss chart, the last one's too (drawn once the sweep has ended).
    page.wait_for_function("[...document.querySelectorAll('[data-testid=stVegaLiteChart] svg "
                           "text')].some(t => t.textContent.startsWith('Trial 3 ·'))")
    assert_no_error_shown(page)
    # The README's picture of the Sweep page: its answer at the top of the window.
    page.get_by_text("The answer", exact=True).evaluate("e => e.scrollIntoView({block: 'start'})")
    shoot(page, "sweep")

    # A click on a line (one of its points) shows that run's loss; a box drawn over the first
    # axis keeps the runs through it (both selections come back to Python).
    chart.locator("svg .mark-symbol path").first.click(force=True)
    page.get_by_text(re.compile(r"^Loss of Trial \d")).first.wait_for()
    box = chart.bounding_box()
    page.mouse.move(box["x"] + 30, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 90, box["y"] + 240, steps=8)
    page.mouse.up()
    page.get_by_text(re.compile(f"^\\d+ of {4 * repeats} runs pass through Learning rate")
                     ).wait_for()
    assert_no_error_shown(page)

    best = best_run(SweepStore(RunStore(runs_dir)).runs(sweep_id))
    page.get_by_role("button", name="Use the best settings").click()
    wait_drawn(page, "Train")
    field = main.get_by_role("spinbutton", name=re.compile("^Learning rate"))
    assert float(field.input_value()) == pytest.approx(best.settings["lr"])
    assert float(main.get_by_role("spinbutton", name=re.compile("^Momentum")).input_value()) \
        == pytest.approx(best.settings["momentum"])
    assert_no_error_shown(page)


def fashion_mnist_here(folder: Path) -> bool:
    """Whether the real Fashion-MNIST files are where its reader looks (Debian's
    dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist)."""
    from cifar_core.data.registry import DATASETS, dataset_spec

    return "fashion-mnist" in DATASETS and dataset_spec("fashion-mnist").find(folder) is not None


def choose_option(page, label: str, option: str | re.Pattern) -> None:
    """Pick an option of the page's menu called `label` (a Streamlit selectbox)."""
    page.locator("[data-testid=stMain] [data-testid=stSelectbox]").filter(
        has_text=label).first.click()
    page.get_by_role("option", name=option).first.click()
    settled(page)


def test_a_fashion_mnist_run_from_the_train_page_is_opened_on_evaluate_and_try_it(server,
                                                                                  browser):
    """Fashion-MNIST chosen on Train (the real files), a short run of the tutorial's network
    trained from there; Evaluate and Try it open it on its own data set, with its class
    names (issue 24)."""
    url, runs_dir = server
    if not fashion_mnist_here(runs_dir.parent):
        pytest.skip("needs the real Fashion-MNIST files (apt-get install dataset-fashion-mnist)")
    fashion_classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                       "Sneaker", "Bag", "Ankle boot"]

    def run_ids() -> set[str]:
        return {p.name for p in runs_dir.iterdir() if p.is_dir()} if runs_dir.exists() else set()

    before = run_ids()
    # A tab of its own: the choice of data set stays with its browser session.
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.set_default_timeout(120_000)  # the first look at Fashion-MNIST decodes it (once)
    try:
        page.goto(f"{url}/train")
        page.get_by_role("button", name="Start training").wait_for()
        choose_option(page, "Data set", "Fashion-MNIST")
        page.get_by_role("button", name="Start training").wait_for()
        settled(page)
        if page.get_by_role("checkbox", name="Training images: all").is_checked():
            page.get_by_text("Training images: all").click()
        # BROWSER_FASHION_TRAIN = epochs, batch size, training images, log every, learning
        # rate: for the README's pictures, a run long enough to learn something.
        epochs, batch, size, log_every, lr = (
            os.environ.get("BROWSER_FASHION_TRAIN") or "1 50 2000 5 0.01").split()
        for label, value in (("Epochs", epochs), ("Batch size", batch),
                             ("Training images", size), ("Log every", log_every),
                             ("Learning rate", lr)):
            settled(page)
            field = page.get_by_role("spinbutton", name=re.compile(f"^{label}"))
            field.and_(page.locator(":enabled")).first.wait_for()
            # A rerun (the data set just chosen) may leave the old field beside the new one
            # for a moment: fill only once there is one.
            deadline = time.monotonic() + 30
            while field.count() != 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            field.fill(value)
            field.press("Enter")
            time.sleep(0.5)
        settled(page)
        page.get_by_text(re.compile(r"of 60,000\)")).first.wait_for()  # Fashion-MNIST's size
        page.get_by_role("button", name="Start training").click()
        deadline = time.monotonic() + 30
        while not run_ids() - before and time.monotonic() < deadline:
            time.sleep(0.2)
        [run_id] = run_ids() - before
        page.get_by_text(f"Run {run_id} · completed").wait_for(timeout=240_000)
        page.get_by_text("guessing would get 10").wait_for()
        assert_no_error_shown(page)
        run = RunStore(runs_dir).get(run_id)
        assert run.dataset == "fashion-mnist"
        assert list(run.classes) == fashion_classes
        shoot(page, "fashion-train")

        # Evaluate: the run tested on Fashion-MNIST's test images, its classes per class. The
        # menus call runs by their names (made from what differs where none is given).
        from cifar_core.runs.naming import display_names

        shown = re.compile("^" + re.escape(display_names(RunStore(runs_dir).list())[run_id])
                           + r" \(")
        page.goto(f"{url}/evaluate")
        page.get_by_text("Green frame: right").wait_for()
        choose_option(page, "Run", shown)
        page.get_by_text("Tested on the Fashion-MNIST test images").wait_for()
        page.get_by_text("Green frame: right").wait_for()
        assert len(tile_sources(page, 16)) == 16
        assert_no_error_shown(page)
        shoot(page, "fashion-evaluate")
        page.get_by_role("tab", name="Accuracy per class").click()
        page.locator("[data-testid=stDataFrame] [role=gridcell]").first.wait_for(
            state="attached")
        cells = page.locator("[data-testid=stDataFrame]").first.locator("[role=gridcell]")
        assert set(fashion_classes) <= {t.strip() for t in cells.all_text_contents()}

        # Try it: a test image of Fashion-MNIST, of the class chosen by its name.
        page.goto(f"{url}/try_it")
        page.get_by_text("Where it looked").first.wait_for()
        choose_option(page, "Network", shown)
        page.get_by_text("Trained on Fashion-MNIST").wait_for()
        choose_option(page, "Of the class", "Ankle boot")
        page.get_by_text(re.compile(r"\(Ankle boot\): what the network sees, 28 × 28 "
                                    r"pixels")).wait_for()
        page.get_by_text(re.compile(r"^The network (is|cannot)")).wait_for()
        # One bar per class of Fashion-MNIST, drawn.
        page.wait_for_function("document.querySelectorAll('[data-testid=stMain] "
                               "[data-testid=stVegaLiteChart] svg.marks .mark-rect path')"
                               ".length === 10")
        assert_no_error_shown(page)
        shoot(page, "fashion-try-it")
    finally:
        page.close()


TEACH_COLOURS = {"red": (220, 30, 30), "green": (30, 190, 40), "blue": (30, 40, 220)}


def coloured_pictures(folder: Path, name: str, colour, count: int = 8) -> list[Path]:
    """`count` PNG pictures of one colour with a little noise, each different: a class anyone
    tells apart at a glance."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(name))
    paths = []
    for i in range(count):
        pixels = np.clip(np.array(colour) + rng.integers(-30, 30, (48, 48, 3)), 0, 255)
        paths.append(folder / f"{name}-{i}.png")
        Image.fromarray(pixels.astype(np.uint8)).save(paths[-1])
    return paths


def test_teach_a_set_from_uploaded_files_then_try_it_answers_its_picture(server, page,
                                                                       tmp_path):
    """Issue 25: a 3-class set made on the Teach page from uploaded files, taught with the
    preset from a tiny start network trained here, and Try it answers one of its pictures
    with the right class."""
    url, runs_dir = server
    data_dir = Path(os.environ.get("BROWSER_DATA_DIR") or runs_dir.parent / "data")
    # A start network of CIFAR-10's shape: a tiny one trained here (seconds).
    finish_run(runs_dir, data_dir, train_size=1000)
    page.goto(f"{url}/teach")
    wait_drawn(page, "Teach")
    page.get_by_label("Its title").fill("Three colours")
    page.get_by_label("Its title").press("Enter")
    page.get_by_text("three-colours").wait_for()
    classes = page.get_by_label("Two or more class names, separated by commas")
    classes.fill(", ".join(TEACH_COLOURS))
    classes.press("Enter")
    settled(page)
    page.get_by_role("button", name="Make the set").click()
    page.get_by_text("0 pictures in 3 classes").wait_for()
    page.get_by_text("Picture files").click()
    settled(page)
    for name, colour in TEACH_COLOURS.items():
        choose_option(page, "Of the class", name)
        uploader = page.locator("[data-testid=stFileUploader]").filter(
            has_text=f"Pictures of {name}")
        uploader.locator("input[type=file]").set_input_files(
            coloured_pictures(tmp_path / name, name, colour))
        page.get_by_text(f"Added 8 pictures of {name}.").wait_for()
        settled(page)
    page.get_by_text("24 pictures in 3 classes").wait_for()
    assert len(tile_sources(page, 24)) == 24
    assert_no_error_shown(page)
    shoot(page, "teach")

    page.get_by_role("button", name=re.compile(r"Teach it \(Teach")).click()
    # Trained, it opens Try it on the new network with the camera on.
    page.wait_for_url(re.compile(r"/try_it"), timeout=300_000)
    page.get_by_text("Trained on Three colours").wait_for()
    assert page.get_by_role("switch", name="Turn the camera on").is_checked()
    page.get_by_text("Upload pictures").click()
    pictures = page.locator("[data-testid=stFileUploader]").filter(has_text="Pictures")
    blue = coloured_pictures(tmp_path / "more", "blue", TEACH_COLOURS["blue"], count=1)
    pictures.locator("input[type=file]").set_input_files(blue)
    # Its first answer is blue, however sure (answer_sentence's three ways to say it; "more
    # than 99 %" is one of its percentages: CI on 1d05a5d failed where .{1,8} stood for them).
    page.get_by_text(re.compile(r"^The network (is (more than 99|\d{1,3}) % sure this is a blue;"
                                r"|is not sure at "
                                r"all: its best guess is a blue,|cannot decide between a blue )")
                     ).wait_for()
    assert_no_error_shown(page)

"""One real-browser walk through the whole app: `streamlit run app.py` on a free localhost port,
Debian's Chromium driven headless by Playwright. Before it, an inner page as a fresh server's
first request (a bookmark after a restart), on a server of its own.

Data: tiny generated batches by default. To take the README's screenshots on the real images:
    BROWSER_DATA_DIR=../shared/data BROWSER_SCREENSHOTS=docs BROWSER_TRAIN="2 4 10000 100" \
        python -m pytest tests/test_browser.py
(BROWSER_TRAIN = epochs, batch size, training images, log every).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_cifar_batches
from test_app import CLASSES

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]
sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, runs_dir: Path) -> tuple[str, subprocess.Popen]:
    """`streamlit run app.py` on a free port of 127.0.0.1; its URL once it accepts connections
    (which opens no session: the first page request is still the test's to make)."""
    env = {**os.environ, "CIFAR_DATA_DIR": str(Path(data_dir).resolve()),
           "CIFAR_RUNS_DIR": str(runs_dir)}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return f"http://127.0.0.1:{port}", proc
        except OSError:
            time.sleep(0.3)
    output = stop_server(proc)
    pytest.fail("streamlit did not start: " + output[-3000:])


def stop_server(proc: subprocess.Popen) -> str:
    """Stop the server (its own PID, politely first) and return what it printed."""
    proc.terminate()
    try:
        output, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate(timeout=10)
    return output


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
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


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


def image_sources(page) -> list[str]:
    return page.locator("[data-testid=stMain] [data-testid=stImage] img").evaluate_all(
        "imgs => imgs.map(i => i.src)")


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
        expected = ["Home", "Data", "Train", "Evaluate", "Runs"]
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
                           "[data-testid=stImage] img').length >= 16")
    before = image_sources(page)
    shoot(page, "data")
    page.get_by_role("button", name="New batch").click()
    page.wait_for_function(
        "before => { const now = [...document.querySelectorAll('[data-testid=stMain] "
        "[data-testid=stImage] img')].map(i => i.src); "
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
        if reports.count():
            seen.add(int(reports.first.inner_text().split()[0]))
            if len(seen) == 3:
                shoot(page, "train")
        time.sleep(0.5)
    assert len(seen) >= 2, f"the chart should gain points while the run trains (saw {seen})"
    assert max(seen) > min(seen)
    page.get_by_text("Finished: the network gets").wait_for(timeout=240_000)
    assert_no_error_shown(page)
    if len(seen) < 3:
        shoot(page, "train")

    # Evaluate: the per-class table lists every class.
    page.goto(f"{url}/evaluate")
    page.get_by_text("Accuracy per class").wait_for()
    page.locator("[data-testid=stDataFrame] [role=gridcell]").first.wait_for(state="attached")
    cells = page.locator("[data-testid=stDataFrame]").first.locator("[role=gridcell]")
    texts = {t.strip() for t in cells.all_text_contents()}
    assert set(CLASSES) <= texts, texts
    assert_no_error_shown(page)
    shoot(page, "evaluate")

    # Runs: the run is there.
    run_id = next(p.name for p in runs_dir.iterdir() if p.is_dir())
    page.goto(f"{url}/runs")
    page.get_by_text("Which settings pay off").wait_for()
    # The table draws on a canvas; its cells exist for screen readers, hidden.
    page.get_by_text(run_id).first.wait_for(state="attached")
    assert_no_error_shown(page)
    shoot(page, "runs")


"""What a newcomer saw in a real browser (issue 22): the live loss chart on the first screen of
the Train page, and a fresh server's first page without Streamlit's list of the pages/ folder's
file names. A server of its own on 127.0.0.1 (test_browser's helpers), Debian's Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import start_server, stop_server, write_cifar_batches

from cifar_core.runs.store import RunStore
from cifar_core.training.config import TrainConfig
from cifar_core.training.events import StatsEvent

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")



def training_run(runs_dir) -> tuple[str, subprocess.Popen]:
    """A run 'training' a few loss reports in, and the process the dashboard takes for its
    job (it sleeps; its command line names the run, as a job's does)."""
    store = RunStore(runs_dir)
    config = TrainConfig(epochs=2, batch_size=10, log_every=2, seed=0).to_dict()
    run = store.create(config, "unused", "dashboard")
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", run.id])
    store.set_running(run.id, job.pid)
    for step in range(2, 21, 2):
        store.add_event(run.id, StatsEvent(
            epoch=1, minibatch=step, step=step, images_seen=10 * step, loss=2.3 - step / 50,
            images_per_s=100.0, elapsed_s=0.1 * step, fraction_done=step / 40, eta_s=4.0,
            images_per_epoch=200))
    return run.id, job


def test_the_live_loss_chart_is_on_the_first_screen(tmp_path, browser):
    # Right after Start, the chart was under the whole form: at 1400 x 900, on a 1280 x 720
    # projector and two screens down on a phone.
    data = write_cifar_batches(tmp_path / "data")
    runs = tmp_path / "runs"
    run_id, job = training_run(runs)
    url, proc = start_server(data, runs)
    try:
        for width, height in ((1400, 900), (1280, 720), (390, 844)):
            tab = browser.new_page(viewport={"width": width, "height": height},
                                   is_mobile=width < 500)
            tab.set_default_timeout(30_000)
            try:
                tab.goto(f"{url}/train")
                tab.get_by_text(f"Run {run_id}").first.wait_for()
                chart = tab.locator("[data-testid=stMain] [data-testid=stVegaLiteChart]").first
                chart.locator("svg, canvas").first.wait_for()
                box = chart.bounding_box()
                if os.environ.get("NEWCOMER_SHOTS"):
                    tab.screenshot(path=f"{os.environ['NEWCOMER_SHOTS']}/train-{width}.png")
                # Without a scroll: the whole chart on a desktop screen, most of it on a phone.
                visible = (height - box["y"]) / box["height"]
                assert visible >= (1.0 if width > 500 else 0.6), (width, height, box)
            finally:
                tab.close()
    finally:
        output = stop_server(proc)
        job.kill()
        job.wait(timeout=10)
    assert "Traceback" not in output, output[-3000:]


def test_a_fresh_servers_first_page_never_lists_the_page_files(tmp_path, browser):
    # Until app.py reached st.navigation (seconds of imports on a busy machine), Streamlit
    # showed its own menu of the pages/ folder: "app, data, evaluate, runs, sweep, train, try it".
    data = write_cifar_batches(tmp_path / "data")
    url, proc = start_server(data, tmp_path / "runs")
    seen = []
    tab = browser.new_page(viewport={"width": 1280, "height": 720})
    try:
        tab.goto(url, wait_until="commit")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            links = tab.locator("[data-testid=stSidebarNav] [data-testid=stSidebarNavLink]")
            names = [t.strip().lower() for t in links.locator(
                "[data-testid=stMarkdownContainer]").all_inner_texts()]
            shot = os.environ.get("NEWCOMER_SHOTS")
            if names:
                seen.append(names)
                if shot and len(seen) == 1:  # the first menu shown, as a person saw it
                    tab.screenshot(path=f"{shot}/first-menu.png")
            if "home" in names:
                break
            time.sleep(0.05)
        if shot:
            tab.wait_for_timeout(1000)
            tab.screenshot(path=f"{shot}/first-page.png")
        assert seen and "home" in seen[-1], seen
        # Every menu shown was the app's own (the file list starts with 'app', never shown now).
        assert all(names[0] == "home" and "app" not in names for names in seen), seen
    finally:
        tab.close()
        output = stop_server(proc)
    assert "Traceback" not in output, output[-3000:]

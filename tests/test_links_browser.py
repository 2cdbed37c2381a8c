"""Links in a real browser: an address with a run and a section in it, opened as a fresh
server's first request, shows that run and section; the address after choosing another run and
section, opened in a new tab, shows the same view; a page switch leaves Evaluate's parameters
behind. `streamlit run app.py` on 127.0.0.1, Debian's Chromium headless (conftest)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import CHROMIUM, finish_run, start_server, stop_server, write_cifar_batches

from cifar_core.runs.naming import display_names
from cifar_core.runs.store import RunStore

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium", allow_module_level=True)


@pytest.fixture
def served_runs(tmp_path):
    """Two finished runs on tiny data, served by a dashboard that has served no page yet:
    (its URL, the older run, the newer, the names the menus call runs by)."""
    data = write_cifar_batches(tmp_path / "data")
    runs = tmp_path / "runs"
    older, newer = finish_run(runs, data), finish_run(runs, data, seed=1)
    url, proc = start_server(data, runs)
    yield url, older, newer, display_names(RunStore(runs).list())
    output = stop_server(proc)
    assert "Traceback" not in output, output[-3000:]


def settled(page) -> None:
    """The page's script run is over and nothing on it is stale."""
    page.wait_for_function("document.querySelector('[data-test-script-state=notRunning]') && "
                           "!document.querySelector('[data-stale=true]')")


def shown_view(page) -> tuple[str, str]:
    """(the run chosen in Evaluate's menu, the open section's name)."""
    settled(page)
    chosen = page.locator("[data-testid=stMain]").get_by_role("combobox", name="Run").input_value()
    section = page.locator("[data-testid=stMain] [role=tab][aria-selected=true]").inner_text()
    return chosen, section.strip()


def test_an_address_reopens_its_run_and_section_and_a_copied_one_the_view_chosen(served_runs,
                                                                                 browser):
    url, older, newer, names = served_runs
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{url}/evaluate?run={older}&tab=confusion")  # the server's first request
        page.get_by_text("Click a square to see its pictures.").wait_for()
        chosen, section = shown_view(page)
        assert chosen.startswith(names[older] + " (") and section == "Mistaken for what"

        # Another section and another run, chosen in the page: the address follows.
        page.get_by_role("tab", name="Most confident mistakes").click()
        page.wait_for_url(re.compile(r"tab=mistakes"))
        page.locator("[data-testid=stMain]").get_by_role("combobox", name="Run").click()
        page.get_by_role("option", name=re.compile("^" + re.escape(names[newer]) + r" \(")
                         ).click()
        page.wait_for_url(re.compile(f"run={newer}"))
        page.get_by_text("Pictures the network was surest about").wait_for()
        copied = page.url
        assert "tab=mistakes" in copied

        other = browser.new_page(viewport={"width": 1200, "height": 900})
        other.set_default_timeout(60_000)
        try:
            other.goto(copied)
            other.get_by_text("Pictures the network was surest about").wait_for()
            chosen, section = shown_view(other)
            assert chosen.startswith(names[newer] + " (")
            assert section == "Most confident mistakes"
            assert "not here" not in other.locator("[data-testid=stMain]").inner_text()
        finally:
            other.close()

        # The menu's Runs page: Evaluate's run and section stay behind.
        page.locator("[data-testid=stSidebarNav]").get_by_text("Runs", exact=True).click()
        page.get_by_text("Runs to compare").wait_for()
        settled(page)
        assert "tab=" not in page.url and "run=" not in page.url, page.url
    finally:
        page.close()

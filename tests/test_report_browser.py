"""A run's report, downloaded from the Evaluate page in headless Chromium, then opened as a file
with the network cut off: every chart draws, no request fails and none leaves the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CHROMIUM, finish_run, start_server, stop_server, write_cifar_batches

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium", allow_module_level=True)


@pytest.fixture
def server_with_a_run(tmp_path):
    """The dashboard over a store holding one finished run of tiny data."""
    data_dir = write_cifar_batches(tmp_path / "data")
    finish_run(tmp_path / "runs", data_dir, epochs=2)
    url, proc = start_server(data_dir, tmp_path / "runs")
    yield url
    output = stop_server(proc)
    assert "Traceback" not in output, output[-3000:]


def test_a_downloaded_report_draws_every_chart_offline(server_with_a_run, browser, tmp_path):
    tab = browser.new_page(viewport={"width": 1200, "height": 1200})
    tab.set_default_timeout(60_000)
    tab.goto(server_with_a_run + "/evaluate")
    take_home = tab.locator("[data-testid=stExpander] summary").filter(has_text="Take it home")
    take_home.click()
    tab.get_by_role("button", name="Make a report of this run").click()
    download_button = tab.locator("[data-testid=stDownloadButton] button").filter(
        has_text="Download the report")
    download_button.wait_for()  # in the expander, still open after the page's rerun
    with tab.expect_download() as download:
        download_button.click()
    report = tmp_path / "report.html"
    download.value.save_as(report)
    tab.close()

    offline = browser.new_context()
    offline.set_offline(True)
    outside, failed, errors = [], [], []

    def only_the_file(route):
        if route.request.url.startswith(("file://", "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    offline.route("**/*", only_the_file)
    page = offline.new_page()
    page.on("requestfailed", lambda request: failed.append(request.url[:100]))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(report.resolve().as_uri())
    charts = page.locator(".vega-chart")
    assert charts.count() >= 4  # loss, accuracy per epoch, per class, confusion matrix
    page.wait_for_function("[...document.querySelectorAll('.vega-chart')]"
                           ".every(c => c.dataset.drawn)", timeout=30_000)
    drawn = charts.evaluate_all("cs => cs.map(c => [c.id, c.dataset.drawn, "
                                "c.querySelectorAll('svg .mark-rect, svg .mark-line, "
                                "svg .mark-symbol, svg .mark-text').length])")
    assert all(state == "yes" and marks > 0 for _, state, marks in drawn), drawn
    pictures = page.locator(".cifar-tiles img").evaluate_all(
        "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
    assert len(pictures) >= 24 and all(pictures)
    assert not outside and not failed and not errors, (outside, failed, errors)
    offline.close()

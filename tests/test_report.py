"""share/report.py and `report RUN|SWEEP --out FILE.html`: a run or a sweep as one HTML file
that opens offline: its charts' specs inline with the chart library once, its pictures as data:
URLs, nothing fetched from elsewhere, every text from the store escaped; and a sentence for
each report that cannot be made or written."""

from __future__ import annotations

import html
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from conftest import (
    OFFICIAL_CLASSES,
    app_at,
    finish_run,
    no_traceback,
    run_cli,
    texts,
    write_cifar_batches,
)

from cifar_core.explain.network_imports import import_network
from cifar_core.runs.pipeline import execute_run
from cifar_core.runs.store import RunStore
from cifar_core.share.report import (
    ReportError,
    cpu_name,
    report_for,
    run_report,
    sweep_report,
    write_report,
)
from cifar_core.sweeps.space import Axis, SearchSpace
from cifar_core.sweeps.store import SweepStore
from cifar_core.training.config import TrainConfig
from cifar_core.training.models import Net

HOSTILE = "<script>alert(1)</script>"
# A class name that would run in a page that rendered it, and one that would end a <script>.
CLASSES = (HOSTILE, "</script><b>x", *OFFICIAL_CLASSES[2:])
TINY = {"epochs": 2, "batch_size": 10, "log_every": 2, "seed": 0, "lr": 0.01}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tiny data set with hostile class names, a finished run, and a finished sweep of four
    runs (two learning rates by two momenta) named with a script."""
    tmp = tmp_path_factory.mktemp("report")
    data_dir = write_cifar_batches(tmp / "data", classes=CLASSES)
    runs_dir = tmp / "runs"
    run_id = finish_run(runs_dir, data_dir, epochs=2)
    store = RunStore(runs_dir)
    with store._connect() as con:
        con.execute("UPDATE runs SET message=? WHERE id=?", (HOSTILE, run_id))
    sweeps = SweepStore(store)
    space = SearchSpace(axes=(Axis("lr", values=(0.001, 0.05)),
                              Axis("momentum", values=(0.8, 0.9))))
    sweep = sweeps.create(HOSTILE, space, str(data_dir), origin="test")
    trial = 0
    for lr in (0.001, 0.05):
        for momentum in (0.8, 0.9):
            config = TrainConfig(**{**TINY, "epochs": 1, "lr": lr, "momentum": momentum})
            run = sweeps.add_run(sweep, config.to_dict(), trial)
            execute_run(store, run.id)
            trial += 1
    sweeps.finish(sweep.id, "completed", "")
    return {"data_dir": data_dir, "runs_dir": runs_dir, "store": store, "run_id": run_id,
            "sweep_id": sweep.id}


class Fetches(HTMLParser):
    """Every address an element of a page would make a browser fetch or follow."""

    def __init__(self):
        super().__init__()
        self.addresses: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action") and value:
                self.addresses.append(value)


def specs_of(page: str) -> dict:
    """The charts' Vega-Lite specs the page's script embeds, by element id."""
    found = re.search(r"const specs = (.*?);\n\s*const options", page, re.S)
    assert found, "no chart specs in the page"
    return json.loads(found.group(1))


def assert_offline_and_escaped(page: str, hostile: str = HOSTILE) -> None:
    parser = Fetches()
    parser.feed(page)
    assert all(a.startswith("data:") for a in parser.addresses), [
        a[:80] for a in parser.addresses if not a.startswith("data:")]
    assert not re.search(r"url\(\s*['\"]?https?:|@import|@font-face", page, re.I)
    # The chart library once, and only the page's own two scripts: a class name or a run's
    # note that ended one (or began one) would show up here.
    assert page.count("window.vegaEmbed=") == 1
    assert parser.scripts == 2
    assert len(re.findall(r"</script", page, re.I)) == 2
    assert hostile not in page
    assert html.escape(hostile) in page


def test_a_run_report_holds_its_settings_charts_and_pictures_and_fetches_nothing(made):
    store = made["store"]
    run = store.get(made["run_id"])
    kind, page = report_for(store, run.id, made["data_dir"])
    assert kind == "run"
    assert_offline_and_escaped(page)
    specs = specs_of(page)
    datasets = [spec.get("datasets", {}) for spec in specs.values()]
    rows = [row for found in datasets for table in found.values() for row in table]
    # The loss chart holds the run's loss reports and the test loss after each epoch; the
    # per-class chart every class, the confusion matrix every test picture (50), as counted.
    loss = [r for r in rows if r.get("series") == "training loss"]
    assert len(loss) == len(list(store.events(run.id, kind="stats")))
    test_loss = [r for r in rows if r.get("series") == "test loss"]
    assert len(test_loss) == len(store.events(run.id, kind="epoch")) > 0
    per_class = [r for r in rows if {"class", "correct", "total"} <= set(r)]
    assert [r["class"] for r in sorted(per_class, key=lambda r: CLASSES.index(r["class"]))] \
        == list(CLASSES)
    confusion = [r for r in rows if {"true", "predicted", "images"} <= set(r)]
    assert sum(r["images"] for r in confusion) == 50
    assert any(r.get("test_accuracy") is not None for r in rows), "the accuracy per epoch"
    assert len(specs) == page.count('class="vega-chart"')
    # 24 random test pictures and the network's surest mistakes, each a PNG inline.
    assert page.count('<img src="data:image/png;base64,') >= 24
    assert f"{run.accuracy:.1f} %" in page
    assert "CIFAR-10" in page and "Made on " in page and cpu_name() in page
    assert "Learning rate" in page and "0.01" in page  # its settings, by their labels


def test_a_sweep_report_holds_its_runs_their_answer_and_fetches_nothing(made):
    store = made["store"]
    kind, page = report_for(store, made["sweep_id"])
    assert kind == "sweep"
    assert_offline_and_escaped(page)
    specs = json.dumps(specs_of(page))
    for run in SweepStore(store).runs(made["sweep_id"]):
        assert run.id in page  # a row of the runs table each
    assert '"name": "brush"' in specs  # the parallel coordinates
    assert '"x_order"' in specs  # a heatmap of the two settings
    # What mattered: four finished runs are too few for shares, so each value's mean.
    assert "too few to say how much each setting mattered" in page and "points apart" in page
    assert "Best: trial" in page


def test_an_imported_network_is_reported_without_training_settings(data_dir, tmp_path):
    store = RunStore(tmp_path / "runs")
    file = io.BytesIO()
    torch.save(Net().state_dict(), file)  # what the tutorial's torch.save writes
    name = 'a <b>"net" & co.pth'  # (the import keeps what follows a '/' only)
    run = import_network(store, file.getvalue(), name=name)
    page = run_report(store, run, data_dir)
    assert "A network brought from elsewhere" in page
    assert "No loss reports" in page and "Learning rate" not in page
    assert_offline_and_escaped(page, name)
    assert len(specs_of(page)) == 2  # per class and the confusion matrix: no curves


def test_a_run_that_cannot_be_reported_gets_a_sentence(made, tmp_path):
    store = RunStore(tmp_path / "runs")
    data_dir = made["data_dir"]
    running = store.create(TrainConfig(**TINY).to_dict(), str(data_dir), origin="test",
                           status="running")
    with pytest.raises(ReportError, match="still training: make its report once it has "
                                          "finished"):
        run_report(store, running, data_dir)
    gone = store.get(finish_run(tmp_path / "runs", data_dir))
    Path(gone.checkpoint).unlink()
    with pytest.raises(ReportError, match="no saved network"):
        report_for(store, gone.id, data_dir)
    with pytest.raises(ReportError, match="There is no run or sweep '../x'"):
        report_for(store, "../x", data_dir)


def test_a_sweep_with_no_finished_run_gets_a_sentence(made, tmp_path):
    store = RunStore(tmp_path / "runs")
    sweeps = SweepStore(store)
    sweep = sweeps.create("empty", SearchSpace(axes=(Axis("lr", values=(0.01, 0.1)),)),
                          str(made["data_dir"]), origin="test")
    sweeps.add_run(sweep, TrainConfig(**TINY).to_dict(), 0)
    with pytest.raises(ReportError, match="has no finished run"):
        sweep_report(store, sweeps.get(sweep.id))


def test_a_report_is_written_whole_or_not_at_all(tmp_path):
    out = tmp_path / "report.html"
    assert write_report("<p>é</p>", out) == len("<p>é</p>".encode())
    assert out.read_text(encoding="utf-8") == "<p>é</p>"
    plain = tmp_path / "plain"
    plain.write_text("")  # a file as any program makes it here: readable by others per umask
    assert out.stat().st_mode == plain.stat().st_mode
    plain.unlink()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ReportError, match="Cannot write the report to .*a-file/r.html"):
        write_report("<p>x</p>", blocker / "r.html")
    with pytest.raises(ReportError, match="is a folder"):
        write_report("<p>x</p>", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "report.html"]


def test_the_report_command_writes_a_run_and_a_sweep_and_says_where(made, capsys, tmp_path):
    flags = ["--runs-dir", made["runs_dir"], "--data-dir", made["data_dir"]]
    out = tmp_path / "run.html"
    code, stdout, stderr = run_cli(capsys, "report", made["run_id"], "--out", out, *flags)
    assert code == 0, stderr
    assert out.is_file() and str(out) in stdout and ("KB" in stdout or "MB" in stdout)
    assert specs_of(out.read_text(encoding="utf-8"))
    code, stdout, stderr = run_cli(capsys, "report", made["sweep_id"], "--out",
                                   tmp_path / "sweep.html", *flags)
    assert code == 0, stderr
    assert "sweep" in stdout.lower()
    code, stdout, stderr = run_cli(capsys, "report", "nope", "--out", tmp_path / "n.html",
                                   *flags)
    assert code == 2 and stderr.startswith("error: There is no run or sweep 'nope'")
    assert not (tmp_path / "n.html").exists()
    code, _, stderr = run_cli(capsys, "report", made["run_id"], "--out",
                              out / "inside.html", *flags)
    assert code == 2 and "Cannot write the report" in stderr


# --- the pages' buttons ------------------------------------------------------------------------

def finished_sweep(runs_dir: Path, data_dir: Path, name: str, lrs=(0.001, 0.05),
                   train: bool = True):
    """An ended sweep over the learning rate, its runs trained here (or left queued)."""
    store = RunStore(runs_dir)
    sweeps = SweepStore(store)
    sweep = sweeps.create(name, SearchSpace(axes=(Axis("lr", values=lrs),)), str(data_dir),
                          origin="test")
    for trial, lr in enumerate(lrs):
        run = sweeps.add_run(sweep, TrainConfig(**{**TINY, "epochs": 1, "lr": lr}).to_dict(),
                             trial)
        if train:
            execute_run(store, run.id)
    sweeps.finish(sweep.id, "stopped" if not train else "completed", "")
    return sweeps.get(sweep.id)


def made_report(at, key: str) -> str:
    """The report the page made (asked for by its button), as the download button gives it."""
    labels = [b.label for b in at.get("download_button")]
    assert any(label.startswith("Download the report (") for label in labels), labels
    return at.session_state[f"report_{key}"][1].decode("utf-8")


def test_evaluate_makes_the_runs_report_only_when_asked(data_dir, runs_dir):
    run_id = finish_run(runs_dir, data_dir)
    at = app_at("pages/evaluate.py")
    assert not [b for b in at.get("download_button") if b.label.startswith("Download the rep")]
    at.button(key="report_make_eval").click().run()
    no_traceback(at)
    page = made_report(at, "eval")
    assert f"<h1>Run {run_id}</h1>" in page and specs_of(page)


def test_runs_says_why_a_running_run_has_no_report(data_dir, runs_dir):
    finish_run(runs_dir, data_dir)
    running = RunStore(runs_dir).create(TrainConfig(**TINY).to_dict(), str(data_dir),
                                        origin="test", status="running")
    at = app_at("pages/runs.py")
    at.selectbox(key="files_run").set_value(running.id).run()
    at.button(key="report_make_runs").click().run()
    no_traceback(at)
    assert any("still training" in w.value for w in at.warning)
    assert not [b for b in at.get("download_button") if b.label.startswith("Download the rep")]


def test_the_sweep_page_gives_an_ended_sweeps_report_or_says_why_not(data_dir, runs_dir):
    empty = finished_sweep(runs_dir, data_dir, "nothing finished", train=False)
    sweep = finished_sweep(runs_dir, data_dir, "lr")
    at = app_at("pages/sweep.py")
    at.selectbox(key="sw_chosen").set_value(empty.id).run()
    at.button(key=f"report_make_sw_{empty.id}").click().run()
    no_traceback(at)
    assert f"Sweep {empty.id} has no finished run with a test accuracy yet" in texts(at)
    at.selectbox(key="sw_chosen").set_value(sweep.id).run()
    at.button(key=f"report_make_sw_{sweep.id}").click().run()
    no_traceback(at)
    assert "<h1>Sweep lr</h1>" in made_report(at, f"sw_{sweep.id}")

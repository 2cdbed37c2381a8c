"""What a newcomer met on Home, Data, Train and Evaluate (issue 22): one number per fact, words
instead of jargon, and text that reads well. AppTest, on tiny generated data."""

from __future__ import annotations

import re

import pytest
from conftest import CLASSES, app_at, blocks_holding, finish_run, no_traceback, open_section, texts
from streamlit.testing.v1 import AppTest

from cifar_core import scheduler
from cifar_core.runs.store import RunStore
from cifar_core.training.config import TrainConfig
from cifar_core.training.events import EpochEvent, StatsEvent

NBSP = "\u00a0"


def all_texts(at: AppTest) -> str:
    """texts() plus the progress bars' and the expanders' words."""
    parts = [texts(at)]
    parts += [p.proto.text for p in at.get("progress")]
    parts += [e.label for e in at.expander]
    return "\n".join(parts)


def stopped_run(runs_dir, data_dir, stopped_at: int = 73_632, last_report: int = 70_000) -> str:
    """A run stopped by hand in epoch 2 of 2 (50,000 images an epoch): its last loss report at
    `last_report` images, the stop at `stopped_at`; 46.3 % after epoch 1, 48.8 % at the stop."""
    store = RunStore(runs_dir)
    config = TrainConfig(epochs=2, batch_size=4, log_every=500, seed=0)
    run = store.create(config.to_dict(), str(data_dir), origin="test", status="running")
    per_epoch, every = 50_000, 2_000
    for seen in range(every, last_report + 1, every):
        epoch = 1 + (seen - 1) // per_epoch
        store.add_event(run.id, StatsEvent(
            epoch=epoch, minibatch=(seen - (epoch - 1) * per_epoch) // 4, step=seen // 4,
            images_seen=seen, loss=2.3 - seen / 100_000, images_per_s=1_000.0,
            elapsed_s=seen / 1_000, fraction_done=seen / (2 * per_epoch), eta_s=1.0,
            images_per_epoch=per_epoch))
        if seen == per_epoch:
            store.add_event(run.id, EpochEvent(epoch=1, test_accuracy=46.3,
                                               images_seen=per_epoch, elapsed_s=50.0))
    store.finish(run.id, "stopped",
                 f"Stopped on request after {stopped_at:,} images (epoch 2, minibatch 5908).",
                 {"accuracy": 48.8, "per_class": dict.fromkeys(CLASSES, 48.8),
                  "images_seen": stopped_at, "epochs_done": 1, "images_per_s": 1_000.0,
                  "train_s": stopped_at / 1_000})
    return run.id


def chart_values(at: AppTest, field: str) -> list:
    """Every value of `field` in the data the page's charts send to the browser."""
    import pyarrow as pa

    values = []
    for chart in at.get("vega_lite_chart"):
        tables = [d.data.data for d in chart.proto.datasets] + [chart.proto.data.data]
        for table in tables:
            if table:
                frame = pa.ipc.open_stream(table).read_all().to_pandas()
                if field in frame:
                    values += frame[field].tolist()
    return values


# --- 3: one stopped run, one number ------------------------------------------------------------

def test_a_stopped_run_shows_one_count_of_images_and_says_which_accuracy_is_which(data_dir,
                                                                                 runs_dir):
    stopped_run(runs_dir, data_dir)
    at = app_at("pages/train.py")
    no_traceback(at)
    shown = all_texts(at)
    # The stop's count everywhere: the last loss report's (70,000) read as a second answer.
    assert "73,632 images" in shown
    assert "70,000 images" not in shown, shown
    # The tile shows the network the run kept, tested when it stopped, as the box above says...
    [tile] = [m for m in at.metric if "accuracy" in m.label.lower()]
    assert tile.value == "48.8 %"
    assert "stopped" in (tile.label + tile.proto.help).lower()
    # ... and the chart marks that test as the one at the stop, beside epoch 1's 46.3 %.
    assert 48.8 in chart_values(at, "test_accuracy")
    assert 46.3 in chart_values(at, "test_accuracy")
    assert any("stopped" in str(v).lower() for v in chart_values(at, "when"))


# --- 9: formatting -----------------------------------------------------------------------------

def test_a_finished_run_counts_its_loss_reports_without_so_far(data_dir, runs_dir):
    finish_run(runs_dir, data_dir)
    at = app_at("pages/train.py")
    no_traceback(at)
    shown = all_texts(at)
    assert re.search(r"\d+ loss reports?\b", shown)
    assert "so far" not in shown


def test_a_one_epoch_run_says_epoch_not_epochs_in_brackets(data_dir, runs_dir):
    run_id = finish_run(runs_dir, data_dir, epochs=1)
    message = RunStore(runs_dir).get(run_id).message
    assert "(s)" not in message and "1 epoch " in message


def test_a_percentage_keeps_its_number_on_the_same_line(data_dir, runs_dir):
    # "48.8 %." broke after the number, leaving "%." alone at the start of a line.
    finish_run(runs_dir, data_dir)
    at = app_at("pages/train.py")
    no_traceback(at)
    shown = "\n".join([texts(at)] + [m.proto.help for m in at.metric])
    assert re.search(rf"\d{NBSP}%", shown), shown
    assert not re.search(r"\d %", shown), re.findall(r".{30}\d %.{10}", shown)


def test_the_confusion_section_counts_images_in_words(data_dir, runs_dir):
    finish_run(runs_dir, data_dir)
    at = app_at("pages/evaluate.py")
    open_section(at, "Mistaken for what")
    at.selectbox(key="cell_true").set_value("cat").run()
    at.selectbox(key="cell_predicted").set_value("cat").run()
    no_traceback(at)
    shown = texts(at)
    assert "image(s)" not in shown
    assert re.search(r"\*\*\d+\*\* cat images? called cat", shown), shown


# --- 13: installing without a GPU --------------------------------------------------------------

def test_the_readme_offers_the_cpu_only_install_with_the_pinned_versions():
    # On a machine without a GPU, `pip install -r requirements.txt` pulls torch's CUDA libraries
    # (gigabytes); PyTorch's CPU wheel index avoids them. The command must pin what
    # requirements.txt pins, or pip would replace the CPU wheels with the CUDA ones after it.
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    pins = dict(re.findall(r"^(torch|torchvision)==(\S+)", (repo / "requirements.txt").read_text(),
                           re.MULTILINE))
    setup = (repo / "README.md").read_text().split("## Set up and run")[1].split("\n## ")[0]
    assert "pip install -r requirements.txt" in setup and "streamlit run app.py" in setup
    [cpu] = [line.strip() for line in setup.splitlines()
             if "download.pytorch.org/whl/cpu" in line]
    assert cpu.startswith("pip install ")
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu
    assert f"torch=={pins['torch']}" in cpu and f"torchvision=={pins['torchvision']}" in cpu
    # ... then the requirements, which find torch already there.
    assert "pip install -r requirements.txt" in setup[setup.index(cpu):]


# --- 8: words a newcomer needs, the rest behind "details" --------------------------------------

JARGON = ("make_grid", "torchvision", "airbench", "CIFAR_DATA_DIR", "--data-dir", "backward pass",
          "written-out step")


def visible_texts(at: AppTest) -> str:
    """What a page shows before any fold is opened: all_texts without the expanders' insides,
    plus the menus' choices."""
    hidden = set()
    for expander in at.expander:
        hidden |= {id(node) for node in _walk(expander)}
    parts = [node.value for node in _walk(at.main) if id(node) not in hidden
             and node.type in ("markdown", "caption", "warning", "info", "error", "success")
             and isinstance(getattr(node, "value", None), str)]
    parts += [e.label for e in at.expander]
    parts += [str(o) for box in at.selectbox for o in box.options]
    return "\n".join(parts)


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def details_texts(at: AppTest) -> str:
    return "\n".join(str(getattr(node, "value", "")) for expander in at.expander
                     if "details" in expander.label.lower() for node in _walk(expander))


@pytest.mark.parametrize("page", [None, "pages/data.py", "pages/train.py", "pages/evaluate.py"])
def test_pages_say_what_a_person_needs_without_jargon(data_dir, runs_dir, page):
    finish_run(runs_dir, data_dir)
    at = app_at(page)
    no_traceback(at)
    shown = visible_texts(at)
    assert not [word for word in JARGON if word in shown], shown


def test_the_step_and_cores_note_is_behind_details(data_dir, runs_dir):
    finish_run(runs_dir, data_dir)
    at = app_at("pages/train.py")
    assert "Trained with the" in details_texts(at)


@pytest.mark.parametrize("page", [None, "pages/data.py", "pages/train.py"])
def test_without_data_a_page_says_what_to_do_and_keeps_the_folder_layouts_behind_details(
        tmp_path, monkeypatch, runs_dir, page):
    monkeypatch.setenv("CIFAR_DATA_DIR", str(tmp_path / "empty"))
    at = app_at(page)
    no_traceback(at)
    shown = visible_texts(at)
    assert "No CIFAR-10 data" in shown and any("Download CIFAR-10" in b.label for b in at.button)
    assert "CIFAR_DATA_DIR" not in shown and "cifar-10-batches-py" not in shown
    # For someone who has a copy: where to put it, in the fold.
    assert "cifar-10-batches-py" in details_texts(at) and "CIFAR_DATA_DIR" in details_texts(at)


def test_the_data_notice_shows_once_a_session_and_always_on_the_data_page(data_dir, runs_dir):
    # The tiny data's checksums are not the official ones: a notice that repeated on Home,
    # Train, Sweep and Evaluate.
    at = app_at()
    assert "checksums" in texts(at)
    for page in ("pages/train.py", "pages/evaluate.py", "pages/sweep.py"):
        at.switch_page(page)
        at.run()
        no_traceback(at)
        assert "checksums" not in texts(at), page
    at.switch_page("pages/data.py")
    at.run()
    assert "checksums" in texts(at)


# --- 7: the live chart on the first screen -----------------------------------------------------

def live_run(runs_dir, data_dir) -> str:
    """A run training 'in this process' (its pid is the test's), one loss report in."""
    import os

    store = RunStore(runs_dir)
    config = TrainConfig(epochs=2, batch_size=10, log_every=2, seed=0).to_dict()
    run = store.create(config, str(data_dir), "dashboard", status="running", pid=os.getpid())
    for step in (2, 4, 6):
        store.add_event(run.id, StatsEvent(epoch=1, minibatch=step, step=step,
                                           images_seen=10 * step, loss=2.3 - step / 100,
                                           images_per_s=100.0, elapsed_s=0.1 * step,
                                           fraction_done=step / 40, eta_s=4.0,
                                           images_per_epoch=200))
    return run.id


def page_order(at: AppTest) -> list[str]:
    """The main area's elements top to bottom, as 'type:text'."""
    order = []
    for node in _walk(at.main):
        text = getattr(node, "label", None) or getattr(node, "value", None)
        order.append(f"{node.type}:{text if isinstance(text, str) else ''}")
    return order


def position(order: list[str], prefix: str) -> int:
    return next(i for i, entry in enumerate(order) if entry.startswith(prefix))


@pytest.mark.parametrize("started_here", [True, False])
def test_a_training_run_is_drawn_above_the_form_its_chart_above_its_figures(data_dir, runs_dir,
                                                                           started_here):
    # Right after Start the chart was under the whole form: the presenter had to scroll.
    finish_run(runs_dir, data_dir)  # an older run, which the page no longer follows
    at = app_at("pages/train.py")
    if started_here:
        at.number_input(key="cfg_epochs").set_value(500).run()
        next(b for b in at.button if b.label == "Start training").click().run()
        run_id = RunStore(runs_dir).list()[0].id
        import time

        deadline = time.monotonic() + 60  # until its first loss report is charted
        while not at.get("vega_lite_chart") and time.monotonic() < deadline:
            time.sleep(0.5)
            at.run()
    else:
        run_id = live_run(runs_dir, data_dir)
        at.run()
    no_traceback(at)
    order = page_order(at)
    run_heading = position(order, f"subheader:Run {run_id}")
    assert run_heading < position(order, "button:Start training"), order
    assert run_heading < position(order, "selectbox:Start from a preset"), order
    chart = position(order, "vega_lite_chart")
    assert run_heading < chart < position(order, "metric:"), order
    if started_here:
        next(b for b in at.button if b.label == "Stop").click().run()

        scheduler.wait(RunStore(runs_dir), run_id, timeout=60)


# --- 6: the first decode of the data -----------------------------------------------------------

def test_the_first_decode_says_it_happens_once_and_later_visits_do_not(data_dir, runs_dir):
    # It showed only "Loading CIFAR-10 ..." for 25-45 s. (The bar itself moves while it
    # decodes, which AppTest cannot see: tests/test_data.py checks what it is told.)
    from cifar_core.data.download import is_cached

    assert not is_cached(data_dir)
    at = app_at()
    no_traceback(at)
    said = all_texts(at)
    assert "decoded" in said and "once" in said, said
    assert is_cached(data_dir)
    at.run()
    assert "decoded" not in all_texts(at)


# --- 10: the chart's toolbar over the confusion matrix's caption ------------------------------

@pytest.mark.parametrize("section", ["Accuracy per class", "Mistaken for what"])
def test_nothing_is_written_where_a_charts_toolbar_shows(data_dir, runs_dir, section):
    # A chart's or table's toolbar (full screen, save, search) shows over the line just above
    # its top right corner: there the confusion matrix's caption ran across the whole page and
    # the toolbar covered its words; with nothing above it, the toolbar lay over Evaluate's tabs
    # and took the clicks meant for them. The line above is a short one, which ends before it.
    finish_run(runs_dir, data_dir)
    at = app_at("pages/evaluate.py")
    open_section(at, section)
    chain = blocks_holding(at._tree, lambda n: getattr(n, "type", "") in
                           ("vega_lite_chart", "arrow_data_frame"))
    assert chain, "the section draws a chart or a table"
    chart_parent, chart_index = chain[-1]
    assert chart_index == min(chart_parent.children), "it opens its column"
    row, column = next((block, index) for block, index in reversed(chain)
                       if block.children[index].type == "column")
    outer, row_index = chain[chain.index((row, column)) - 1]
    above = [outer.children[i] for i in outer.children if i < row_index]
    assert above, "something stands between the tabs and the chart"
    line = above[-1]
    assert line.type in ("markdown", "caption")
    assert len(line.value) <= 60, f"a short line ends before the toolbar: {line.value!r}"

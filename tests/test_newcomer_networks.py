"""Issue 22 (what a newcomer found), items 1 and 4, about imported networks: an import made before
the data existed is tested once the data is there, and Home never formats a missing accuracy
(item 1); imports carry no training settings, are shown as imports and stay out of the
comparisons of settings and out of "the latest run" (item 4)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import APP, TIMEOUT, finish_run, no_traceback, texts, write_cifar_batches
from streamlit.testing.v1 import AppTest

from cifar_core.explain.network_imports import (
    IMPORTED,
    evaluate_untested_imports,
    import_network,
    imported_sentence,
)
from cifar_core.runs.store import RunStore
from cifar_core.runs.views import (
    SETTINGS,
    is_import,
    latest_trained,
    run_setting_text,
    runs_table,
    settings_table,
    status_text,
    trained_runs,
)
from cifar_core.training.models import Net


def tutorial_bytes(seed: int = 5) -> bytes:
    torch.manual_seed(seed)
    out = io.BytesIO()
    torch.save(Net().state_dict(), out)
    return out.getvalue()


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def shown_everything(at: AppTest) -> str:
    body = texts(at)
    assert "Something went wrong" not in body, body
    no_traceback(at)
    return body


# --- item 1: an import made before the data existed --------------------------------------------

def test_home_tests_an_import_made_before_the_data_and_shows_its_result(
        tmp_path, monkeypatch, runs_dir):
    # Fresh clone, no data: the tutorial's cifar_net.pth is imported, untested.
    monkeypatch.setenv("CIFAR_DATA_DIR", str(tmp_path / "not-yet"))
    run = import_network(RunStore(runs_dir), tutorial_bytes(), "cifar_net.pth")
    assert run.accuracy is None
    # Then the data is put in place and Home is opened.
    monkeypatch.setenv("CIFAR_DATA_DIR", str(write_cifar_batches(tmp_path / "data")))
    body = shown_everything(open_page()).replace("\\", "")  # Markdown's escapes
    tested = RunStore(runs_dir).get(run.id)
    assert tested.accuracy is not None and tested.metrics["test_images"] == 50
    assert "not tested" not in tested.message and "tested on 50 test images" in tested.message
    assert "cifar_net.pth" in body and f"{tested.accuracy:.1f} %" in body
    # Imported, not trained here: Home does not call it a training run.
    assert "latest finished run" not in body


def test_an_untested_import_is_tested_once_and_kept_with_its_checkpoint(store_with_data):
    store, data, folder = store_with_data
    run = import_network(store, tutorial_bytes(), "cifar_net.pth")
    assert [r.id for r in evaluate_untested_imports(store, data, folder)] == [run.id]
    tested = store.get(run.id)
    assert tested.status == "completed" and tested.metrics["accuracy"] == tested.accuracy
    assert tested.data_dir == folder
    assert store.load_model(run.id).metrics["accuracy"] == tested.accuracy
    # Once tested, never again.
    assert evaluate_untested_imports(store, data, folder) == []


def test_an_import_of_other_classes_than_the_data_is_left_untested(store_with_data, tmp_path):
    from cifar_core.training.checkpoint import save_checkpoint
    store, data, folder = store_with_data
    path = save_checkpoint(tmp_path / "three.pth", Net(num_classes=3), {"model": "tutorial"},
                           ("cat", "dog", "frog"), {})
    run = import_network(store, path.read_bytes(), "three.pth")
    assert evaluate_untested_imports(store, data, folder) == []
    assert store.get(run.id).accuracy is None


def test_the_upload_without_data_says_it_is_tested_once_the_data_is_here(store_with_data):
    store, data, _ = store_with_data
    untested = import_network(store, tutorial_bytes(), "cifar_net.pth")
    sentence = imported_sentence(untested)
    assert f"Imported cifar_net.pth as run {untested.id}." in sentence
    assert "no test images yet" in sentence and "once the data is here" in sentence
    tested = import_network(store, tutorial_bytes(), "cifar_net.pth", data=data)
    assert f"It gets {tested.accuracy:.1f} % of the test images right." in \
        imported_sentence(tested)


def test_try_it_without_data_says_so_on_upload(tmp_path, monkeypatch, runs_dir):
    monkeypatch.setenv("CIFAR_DATA_DIR", str(tmp_path / "not-yet"))
    at = open_page("pages/try_it.py")
    uploader = next(u for u in at.get("file_uploader") if u.label.startswith("Network file"))
    uploader.set_value(("cifar_net.pth", tutorial_bytes(), "application/octet-stream")).run()
    shown_everything(at)
    said = " ".join(s.value for s in at.success)
    assert "Imported cifar_net.pth" in said and "once the data is here" in said, said


@pytest.fixture
def store_with_data(tmp_path, tiny_data, synthetic_dir):
    return RunStore(tmp_path / "runs"), tiny_data, str(synthetic_dir)


# --- item 4: imports carry no training settings ------------------------------------------------

@pytest.fixture
def trained_and_imported(data_dir, runs_dir):
    """Two runs trained here (lr 0.01 and 0.02), then a network imported after them."""
    first = finish_run(runs_dir, data_dir)
    second = finish_run(runs_dir, data_dir, lr=0.02)
    store = RunStore(runs_dir)
    from cifar_core.data.load import load_cifar10
    imported = import_network(store, tutorial_bytes(), "cifar_net.pth",
                              data=load_cifar10(data_dir, download=False),
                              data_dir=str(data_dir))
    return store, [first, second], imported


def test_an_import_is_shown_as_an_import_with_no_settings(trained_and_imported):
    store, trained, imported = trained_and_imported
    runs = store.list()
    assert is_import(imported) and not any(is_import(store.get(i)) for i in trained)
    assert status_text(imported) == "imported"
    table = runs_table(runs).set_index("run")
    row = table.loc[imported.id]
    assert row["status"] == "imported"
    assert all(row[name] is None or row[name] != row[name] for name in SETTINGS), row
    assert row["duration_s"] is None or row["duration_s"] != row["duration_s"]
    assert table.loc[trained[1], "lr"] == pytest.approx(0.02)
    assert {run_setting_text(imported, name) for name in SETTINGS} == {"-"}


def test_imports_stay_out_of_comparisons_of_settings_and_of_the_latest_run(
        trained_and_imported):
    store, trained, imported = trained_and_imported
    runs = store.list()
    assert runs[0].id == imported.id  # the newest
    assert [r.id for r in trained_runs(runs)] == trained[::-1]
    assert set(settings_table(runs)["run"]) == set(trained)
    assert latest_trained(runs).id == trained[1]
    assert latest_trained([imported]) is None


def test_runs_list_shows_an_import_without_settings(trained_and_imported, runs_dir):
    _, _, imported = trained_and_imported
    out = subprocess.run([sys.executable, "-m", "cifar_core", "runs", "list", "--runs-dir",
                          str(runs_dir)], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    line = next(line for line in out.splitlines() if line.startswith(imported.id))
    assert "imported" in line and "0.001" not in line and "tutorial" not in line, line


def test_train_after_a_restart_follows_the_latest_training_not_an_import(trained_and_imported):
    _, trained, imported = trained_and_imported
    at = open_page("pages/train.py")
    body = shown_everything(at)
    assert trained[1] in body and imported.id not in body, body


def test_home_names_the_latest_training_and_the_import_apart(trained_and_imported):
    store, trained, imported = trained_and_imported
    body = shown_everything(open_page())
    assert f"The latest finished run, **{trained[1]}**" in body
    assert imported.id not in body.split("latest finished run")[1].split("\n")[0]


def test_runs_page_shows_the_import_as_imported_and_leaves_it_out_of_the_scatter(
        trained_and_imported):
    import pyarrow as pa
    _, trained, imported = trained_and_imported
    at = open_page("pages/runs.py")
    shown_everything(at)
    table = next(d for d in at.dataframe if d.key == "runs_table").value.set_index("run")
    assert table.loc[imported.id, "status"] == "imported"
    assert table.loc[imported.id, "duration"] == "-"
    assert table.loc[imported.id, "lr"] is None or table.loc[imported.id, "lr"] != \
        table.loc[imported.id, "lr"]
    chart = at.get("vega_lite_chart")[-1]  # "Which settings pay off"
    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas()
              for d in chart.proto.datasets if d.data.data]
    plotted = {run for frame in frames if "run" in frame for run in frame["run"]}
    assert plotted == set(trained), plotted
    assert imported.origin == IMPORTED


def test_evaluate_keeps_the_result_of_an_untested_import_at_first_use(
        tmp_path, monkeypatch, runs_dir):
    monkeypatch.setenv("CIFAR_DATA_DIR", str(tmp_path / "not-yet"))
    run = import_network(RunStore(runs_dir), tutorial_bytes(), "cifar_net.pth")
    monkeypatch.setenv("CIFAR_DATA_DIR", str(write_cifar_batches(tmp_path / "data")))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/evaluate.py")  # straight there, Home never opened
    at.run()
    shown_everything(at)
    tested = RunStore(runs_dir).get(run.id)
    assert tested.accuracy is not None
    shown = next(m for m in at.metric if m.label == "Test accuracy")
    assert shown.value == f"{tested.accuracy:.1f} %"


def test_runs_page_does_not_call_an_untested_import_unfinished(tmp_path, monkeypatch, runs_dir):
    # An import made before the data existed has ended (its status is completed) but has no
    # test yet: "No finished run among these" said the wrong thing about it.
    monkeypatch.setenv("CIFAR_DATA_DIR", str(tmp_path / "not-yet"))
    run = import_network(RunStore(runs_dir), tutorial_bytes(), "cifar_net.pth")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/runs.py")  # straight there: Home would test it once the data is here
    at.session_state["compare_runs"] = [run.id]
    at.run()
    shown = shown_everything(at)
    assert "Test accuracy per class" in shown
    assert "No finished run" not in shown
    assert "tested on the test images" in shown

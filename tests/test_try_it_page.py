"""The Try it page through streamlit.testing.v1.AppTest: a finished run made by cifar_core on tiny
generated data, test images and uploaded pictures, bad uploads, and networks brought from
elsewhere (imported, refused, then used on Evaluate and deleted on Runs)."""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from conftest import APP, TIMEOUT, finish_run, jpeg, shown_tiles, texts
from PIL import Image
from streamlit.testing.v1 import AppTest

from cifar_core.data.load import load_cifar10
from cifar_core.explain.attribution import ATTRIBUTION_METHODS, answer_sentence, class_probabilities
from cifar_core.explain.network_imports import IMPORTED
from cifar_core.explain.photos import read_photo
from cifar_core.runs.naming import display_names
from cifar_core.runs.store import RunStore
from cifar_core.training.checkpoint import load_checkpoint
from cifar_core.training.models import Net

PAGE = "pages/try_it.py"
TITLES = [m.title for m in ATTRIBUTION_METHODS.values()]


@pytest.fixture
def run_id(data_dir, runs_dir) -> str:
    return finish_run(runs_dir, data_dir)


def try_it(page: str = PAGE) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page(page)
    at.run()
    no_traceback(at)
    return at


def no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    body = texts(at)
    assert "Traceback" not in body and "Something went wrong" not in body, body


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def uploader(at: AppTest, label: str):
    return next(u for u in at.get("file_uploader") if u.label.startswith(label))


def probability_chart(at: AppTest) -> dict[str, float]:
    """The bar chart's data: class -> percent."""
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1, "one probability chart"
    chart = charts[0]
    tables = [d.data.data for d in chart.proto.datasets] + [chart.proto.data.data]
    frame = pa.concat_tables([pa.ipc.open_stream(t).read_all() for t in tables if t]).to_pandas()
    return dict(zip(frame["class"], frame["percent"], strict=True))


def images(at: AppTest) -> list[tuple[str, str]]:
    """Every picture on the page as (media URL, caption); the URL is a hash of its bytes."""
    return [(img.url, img.caption) for element in at.get("image") for img in element.proto.imgs]


def caption_of(at: AppTest, start: str) -> str:
    return next(c for _, c in images(at) if c.startswith(start))


def png(size, colour=50) -> bytes:
    out = io.BytesIO()
    Image.new("L", size, colour).save(out, "PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height pixels: a decompression bomb's header."""
    import struct
    import zlib

    data = bytearray(png((16, 16)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def saved(obj) -> bytes:
    out = io.BytesIO()
    torch.save(obj, out)
    return out.getvalue()


# A test image ----------------------------------------------------------------------------------

def test_a_test_image_gets_the_bar_chart_and_the_sentence(data_dir, runs_dir, run_id):
    at = try_it()
    assert at.selectbox(key="try_run").value == run_id
    assert at.radio(key="try_source").value == "test"  # with data here, a test image to start
    shown = caption_of(at, "test image ")
    index = int(re.match(r"test image ([\d,]+) \(", shown).group(1).replace(",", ""))
    # The chart and the sentence say what the run's network answers for that very image.
    model = RunStore(runs_dir).load_model(run_id).model
    image = load_cifar10(data_dir, download=False).images_at("test", [index])[0]
    expected = class_probabilities(model, image)[0].numpy()
    percent = probability_chart(at)
    assert list(percent) == list(RunStore(runs_dir).load_model(run_id).classes)
    assert np.allclose(list(percent.values()), expected * 100, atol=1e-3)
    assert answer_sentence(expected, list(percent)) in texts(at)
    # A test image is what the network sees: shown once, large.
    assert shown.endswith(": what the network sees, 32 × 32 pixels")
    assert any(c.startswith("Where it looked to answer") for _, c in images(at))


def test_a_test_image_of_a_chosen_class_and_another_one(data_dir, runs_dir, run_id):
    at = try_it()
    at.selectbox(key="try_class").select("frog").run()
    no_traceback(at)
    first = caption_of(at, "test image ")
    assert " (frog): " in first
    seen = {first}
    for _ in range(3):  # a new random frog each time (the tiny data has five)
        at.button(key="try_another").click().run()
        seen.add(caption_of(at, "test image "))
    assert all(" (frog): " in c for c in seen) and len(seen) > 1


def test_each_attribution_method_has_its_description_and_its_own_map(data_dir, runs_dir,
                                                                     run_id):
    at = try_it()
    assert at.radio(key="try_method").options == TITLES
    maps = set()
    for method in ATTRIBUTION_METHODS.values():
        at.radio(key="try_method").set_value(method.name).run()
        no_traceback(at)
        assert method.description in texts(at)
        maps.add(next(url for url, c in images(at) if c.startswith("Where it looked")))
    assert len(maps) == len(ATTRIBUTION_METHODS)


def test_inside_the_network_shows_filters_feature_maps_and_layers(data_dir, runs_dir, run_id):
    at = try_it()
    inside = next(e for e in at.expander if e.label == "Inside the network")
    captions = [img.caption for element in inside.get("image") for img in element.proto.imgs]
    assert captions[1:] == ["conv1: 6 maps of 28 × 28 pixels", "conv2: 16 maps of 10 × 10 pixels"]
    layers = inside.dataframe[0].value
    assert list(layers["layer"])[:3] == ["input", "conv1", "pool"]
    assert "6 × 28 × 28" in set(layers["output"])
    assert layers["parameters"].sum() == sum(p.numel() for p in Net().parameters())
    assert "62,006 parameters in all." in texts(at)


# Uploaded pictures -----------------------------------------------------------------------------

def test_an_uploaded_photo_gets_its_answer_and_map(data_dir, runs_dir, run_id):
    at = try_it()
    at.radio(key="try_source").set_value("upload").run()
    photo = jpeg()
    uploader(at, "Pictures").set_value(("holiday.jpg", photo, "image/jpeg")).run()
    no_traceback(at)
    assert not errors(at)
    model = RunStore(runs_dir).load_model(run_id).model
    expected = class_probabilities(model, read_photo(photo).network_input)[0].numpy()
    assert np.allclose(list(probability_chart(at).values()), expected * 100, atol=1e-3)
    assert caption_of(at, "holiday.jpg") == "holiday.jpg, 256 × 256 pixels"
    assert "What the network sees: 32 × 32 pixels" in [c for _, c in images(at)]
    assert any(c.startswith("Where it looked to answer") for _, c in images(at))


def test_several_photos_get_a_grid_of_answers_and_a_csv(data_dir, runs_dir, run_id):
    at = try_it()
    at.radio(key="try_source").set_value("upload").run()
    files = [(f"photo{i}.jpg", jpeg(seed=i, size=(200 + 40 * i, 240)), "image/jpeg")
             for i in range(3)]
    uploader(at, "Pictures").set_value(files).run()
    no_traceback(at)
    grid = [c for _, c in shown_tiles(at) if re.match(r"photo\d\.jpg: \w+ \(\d+%\)$", c)]
    assert len(grid) == 3
    csv = next(d for d in at.get("download_button") if "CSV" in d.proto.label)
    assert csv.proto.label == "All probabilities (CSV)"
    # The closer look starts at the first picture and moves to the one chosen.
    assert caption_of(at, "photo0.jpg,") == "photo0.jpg, 200 × 240 pixels"
    at.selectbox(key="try_closer").set_value(2).run()
    no_traceback(at)
    assert caption_of(at, "photo2.jpg,") == "photo2.jpg, 280 × 240 pixels"
    assert len(at.get("vega_lite_chart")) == 1


BAD_PICTURES = [
    ("notes.png", b"Shopping list: milk, eggs\n", "notes.png is not a picture, although its "
     "name ends in .png"),
    ("empty.jpg", b"", "empty.jpg is empty (0 bytes)"),
    ("bomb.png", png_claiming(30_000, 30_000), "bomb.png is 900 megapixels"),
    ("dot.png", png((1, 1)), "dot.png is only 1 × 1 pixels"),
    ("strip.png", png((20_000, 200)), "strip.png is 20,000 × 200 pixels, one side 100 times"),
    ("cut.jpg", jpeg()[:3000], "cut.jpg is damaged or cut short"),
]


@pytest.mark.parametrize("name, content, message", BAD_PICTURES,
                         ids=[b[0] for b in BAD_PICTURES])
def test_a_bad_picture_gets_its_message_and_nothing_else_breaks(data_dir, runs_dir, run_id,
                                                                name, content, message):
    at = try_it()
    at.radio(key="try_source").set_value("upload").run()
    uploader(at, "Pictures").set_value([(name, content, "image/png"),
                                        ("good.jpg", jpeg(), "image/jpeg")]).run()
    no_traceback(at)
    assert len(errors(at)) == 1 and errors(at)[0].startswith(message), errors(at)
    # The good picture beside it is still answered.
    assert caption_of(at, "good.jpg") == "good.jpg, 256 × 256 pixels"
    assert len(probability_chart(at)) == 10
    # Alone, the bad one leaves the page as it was, waiting for a picture.
    uploader(at, "Pictures").set_value((name, content, "image/png")).run()
    no_traceback(at)
    assert errors(at)[0].startswith(message) and not at.get("vega_lite_chart")


def test_the_camera_is_asked_for_only_when_turned_on(data_dir, runs_dir, run_id):
    at = try_it()
    at.radio(key="try_source").set_value("camera").run()
    no_traceback(at)
    assert not at.camera_input, "no camera before the user turns it on"
    at.toggle(key="try_camera_on").set_value(True).run()
    at.camera_input[0].set_value(("shot.jpg", jpeg((640, 480)), "image/jpeg")).run()
    no_traceback(at)
    assert caption_of(at, "shot.jpg") == "shot.jpg, 640 × 480 pixels"
    assert len(probability_chart(at)) == 10


# Bring your own network ------------------------------------------------------------------------

def import_file(at: AppTest, name: str, content: bytes) -> AppTest:
    uploader(at, "Network file").set_value((name, content, "application/octet-stream")).run()
    no_traceback(at)
    return at


def test_an_imported_network_appears_as_a_run_here_on_evaluate_and_runs(data_dir, runs_dir,
                                                                       run_id):
    at = try_it()
    torch.manual_seed(5)
    net = Net()
    import_file(at, "cifar_net.pth", saved(net.state_dict()))
    store = RunStore(runs_dir)
    imported = next(r for r in store.list() if r.origin == IMPORTED)
    assert imported.status == "completed" and imported.accuracy is not None
    assert Path(imported.checkpoint).parent == store.run_dir(imported.id)
    assert torch.equal(load_checkpoint(imported.checkpoint).model.fc3.weight, net.fc3.weight)
    # Chosen at once, said so, and the uploader is empty again.
    assert at.selectbox(key="try_run").value == imported.id
    names = display_names(store.list())  # menus show names (issue 26), not ids
    assert any(o.startswith(names[run_id]) for o in at.selectbox(key="try_run").options)
    assert any(f"Imported cifar_net.pth as run {imported.id}" in s.value for s in at.success)
    assert uploader(at, "Network file").value is None
    assert len(probability_chart(at)) == 10
    # Evaluate tests it like a run.
    evaluate = try_it("pages/evaluate.py")
    assert any(o.startswith(names[imported.id]) for o in evaluate.selectbox(key="eval_run").options)
    evaluate.selectbox(key="eval_run").select(imported.id).run()
    no_traceback(evaluate)
    shown = next(m for m in evaluate.metric if m.label == "Test accuracy")
    assert shown.value == f"{imported.accuracy:.1f} %"
    assert len(shown_tiles(evaluate)) == 16  # its verdicts on a batch of test images
    # Runs deletes it with its folder.
    runs = try_it("pages/runs.py")
    runs.selectbox(key="files_run").select(imported.id).run()
    runs.button(key="delete_ask").click().run()
    runs.button(key="delete_yes").click().run()
    no_traceback(runs)
    assert [r.id for r in store.list()] == [run_id]
    assert not store.run_dir(imported.id).exists()


def test_with_no_run_yet_an_imported_network_can_be_tried(data_dir, runs_dir):
    at = try_it()
    assert "No network to try yet" in texts(at)
    assert next(e for e in at.expander if e.label.startswith("Bring your own")).proto.expanded
    import_file(at, "cifar_net.pth", saved(Net().state_dict()))
    assert at.selectbox(key="try_run").value == RunStore(runs_dir).list()[0].id
    assert len(probability_chart(at)) == 10


class RunsCommand:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def malicious_checkpoint(marker: Path, tmp_path: Path) -> bytes:
    """A cifar_net.pth whose pickle runs a command; shown to run under torch.load without
    weights_only in another process (the marker appears, and is removed again)."""
    content = saved({"state_dict": Net().state_dict(), "note": RunsCommand(marker)})
    proof = tmp_path / "proof.pth"
    proof.write_bytes(content)
    subprocess.run([sys.executable, "-c", "import sys, torch; "
                    "torch.load(sys.argv[1], weights_only=False)", str(proof)],
                   capture_output=True, timeout=120)
    assert marker.exists(), "the payload should run under torch.load(weights_only=False)"
    marker.unlink()
    return content


def test_bad_network_files_are_refused_each_with_its_sentence(data_dir, runs_dir, run_id,
                                                              tmp_path, monkeypatch):
    # The project's limit (.streamlit/config.toml), whichever folder this process first read
    # Streamlit's config from (a test that ran earlier may have been in another).
    import streamlit

    monkeypatch.setattr(streamlit, "get_option", lambda key, _get=streamlit.get_option:
                        20 if key == "server.maxUploadSize" else _get(key))
    marker = tmp_path / "payload-ran"
    small = saved(Net().state_dict())
    three = io.BytesIO()
    torch.save({"format": "cifar_core.checkpoint/1", "model": "tutorial",
                "state_dict": Net(num_classes=3).state_dict(), "config": {},
                "classes": ["cat", "dog", "frog"], "metrics": {}}, three)
    cases = [
        ("cifar_net.pth", malicious_checkpoint(marker, tmp_path),
         "cifar_net.pth holds code or objects that are not plain weights, so it was not opened"),
        ("five.pth", saved(Net(num_classes=5).state_dict()),
         "five.pth holds a network trained on 5 classes, and CIFAR-10 has 10"),
        ("three.pth", three.getvalue(),
         # Since issue 24 (Checkpoint.misfit): the class names, not the counts, are compared.
         "three.pth: This network was trained on CIFAR-10 (3 classes: cat, dog, frog), and "
         "these are CIFAR-10's pictures (10 classes"),
        ("other.pth", saved(torch.nn.Linear(3072, 10).state_dict()),
         "other.pth holds the weights of a network this dashboard does not know"),
        ("cut.pth", small[:len(small) // 2], "cut.pth is cut short or damaged"),
        ("photo.pth", jpeg(), "photo.pth is not a PyTorch file"),
        ("empty.pth", b"", "empty.pth is empty (0 bytes)"),
        ("huge.pth", bytes(20 * 2**20 + 1), "huge.pth is 20.0 MB; a network file may be at "
         "most 20.0 MB"),
    ]
    at = try_it()
    for name, content, message in cases:
        import_file(at, name, content)
        assert len(errors(at)) == 1 and errors(at)[0].startswith(message), (name, errors(at))
        assert "weights_only" not in errors(at)[0]
        # Nothing was kept, and the page goes on answering with the run's network.
        assert [r.id for r in RunStore(runs_dir).list()] == [run_id]
        assert at.selectbox(key="try_run").value == run_id
        assert len(probability_chart(at)) == 10
    assert not marker.exists(), "the payload ran"


def test_with_a_password_set_the_page_is_the_password_form_alone(data_dir, runs_dir,
                                                                 monkeypatch):
    monkeypatch.setenv("CIFAR_DASHBOARD_PASSWORD", "a long passphrase")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [b.label for b in at.button] == ["Open the dashboard"]
    assert not at.get("file_uploader") and not at.selectbox and not at.radio


def network_run(store: RunStore, data_dir: Path, accuracy: float,
                status: str = "completed") -> str:
    """A run that ended so (completed, stopped) with a saved (untrained) network and this test
    accuracy."""
    from cifar_core.data.dataset import OFFICIAL_CLASSES
    from cifar_core.training.checkpoint import save_checkpoint
    from cifar_core.training.config import TrainConfig

    config = TrainConfig(epochs=1, batch_size=10).to_dict()
    run = store.create(config, str(data_dir), "test", status="running", pid=os.getpid())
    metrics = {"accuracy": accuracy, "per_class": {c: accuracy for c in OFFICIAL_CLASSES}}
    path = save_checkpoint(store.run_dir(run.id) / "cifar_net.pth", Net(), config,
                           OFFICIAL_CLASSES, metrics)
    store.finish(run.id, status, "", metrics, str(path))
    return run.id


def test_try_it_and_evaluate_open_on_the_same_run_the_newest(data_dir, runs_dir):
    # Issue 22, item 11: Evaluate opened on the newest run, Try it on the best.
    store = RunStore(runs_dir)
    network_run(store, data_dir, accuracy=80.0)  # the best
    newest = network_run(store, data_dir, accuracy=40.0)
    assert try_it().selectbox(key="try_run").value == newest
    assert try_it("pages/evaluate.py").selectbox(key="eval_run").value == newest
    # The menu still lists the most accurate first.
    best = display_names(store.list())[store.list()[1].id]
    assert try_it().selectbox(key="try_run").options[0].startswith(best)


def test_a_run_stopped_after_the_newest_training_is_not_what_the_pages_open_on(
        data_dir, runs_dir):
    # A run stopped at once keeps its barely trained network (10 %): opening Try it on it, as
    # "the newest", showed a demo's audience a network that guesses. The newest run that
    # trained to its end comes first; a stopped one only where none did.
    store = RunStore(runs_dir)
    trained = network_run(store, data_dir, accuracy=60.0)
    network_run(store, data_dir, accuracy=10.0, status="stopped")
    assert try_it().selectbox(key="try_run").value == trained
    assert try_it("pages/evaluate.py").selectbox(key="eval_run").value == trained


def test_a_network_downloads_under_its_runs_name(data_dir, runs_dir, run_id):
    # Issue 22, item 11: every network downloaded as cifar_net.pth.
    at = try_it("pages/runs.py")
    labels = [b.label for b in at.get("download_button")]
    assert any(label.startswith("Network") and run_id in label for label in labels), labels

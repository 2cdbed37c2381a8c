"""explain.network_imports: a network brought from elsewhere, checked and kept as an imported
run, or refused with a sentence (and then nothing is kept, and no code in the file ever runs)."""

from __future__ import annotations

import io
import os
import pickle
import shlex
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from cifar_core import scheduler
from cifar_core.data.dataset import OFFICIAL_CLASSES
from cifar_core.errors import CheckpointError
from cifar_core.explain.network_imports import (
    IMPORTED,
    evaluate_untested_imports,
    import_network,
    network_label,
    networks_to_try,
    read_network,
)
from cifar_core.explain.uploads import display_name
from cifar_core.runs.store import RunStore
from cifar_core.training.checkpoint import load_checkpoint, save_checkpoint
from cifar_core.training.evaluation import evaluate
from cifar_core.training.models import Net, model_spec


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def seeded_net(seed: int = 0, **options) -> Net:
    torch.manual_seed(seed)
    return Net(**options).eval()


def saved_bytes(obj) -> bytes:
    out = io.BytesIO()
    torch.save(obj, out)
    return out.getvalue()


def tutorial_file(net: nn.Module | None = None) -> bytes:
    """What the tutorial's torch.save(net.state_dict(), PATH) writes."""
    return saved_bytes((net or seeded_net()).state_dict())


def assert_same_answers(a: nn.Module, b: nn.Module) -> None:
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))


# What is kept ----------------------------------------------------------------------------------

def test_the_tutorials_cifar_net_becomes_a_tested_completed_run(store, tiny_data, synthetic_dir):
    net = seeded_net()
    run = import_network(store, tutorial_file(net), "cifar_net.pth", data=tiny_data,
                         data_dir=str(synthetic_dir))

    assert run.origin == IMPORTED and run.status == "completed"
    assert run.config["model"] == "tutorial" and run.config["imported_from"] == "cifar_net.pth"
    assert run.data_dir == str(synthetic_dir)
    # Its checkpoint lies in its own folder, with the same weights, classes and test results.
    checkpoint = Path(run.checkpoint)
    assert checkpoint.parent == store.run_dir(run.id) and checkpoint.name == "cifar_net.pth"
    kept = store.load_model(run.id)
    assert_same_answers(kept.model, net)
    assert kept.classes == OFFICIAL_CLASSES and kept.metrics == run.metrics
    expected = evaluate(net, tiny_data).metrics()
    assert run.accuracy == pytest.approx(expected["accuracy"])
    assert run.metrics["confusion"] == expected["confusion"]
    assert run.metrics["test_images"] == len(tiny_data.test_labels)
    assert "cifar_net.pth" in run.message and "tested on 50 test images" in run.message
    # Listed like any finished run, and left alone by the job runner.
    assert [r.id for r in networks_to_try(store.list())] == [run.id]
    scheduler.tick(store)
    assert store.get(run.id).status == "completed"


def test_a_checkpoint_of_this_tool_keeps_its_model_settings_and_classes(store, tiny_data,
                                                                       tmp_path):
    torch.manual_seed(1)
    wide = model_spec("tutorial-wide").build(10).eval()
    config = {"model": "tutorial-wide", "epochs": 7, "lr": 0.01}
    path = save_checkpoint(tmp_path / "elsewhere.pth", wide, config, OFFICIAL_CLASSES,
                           {"accuracy": 99.9})

    run = import_network(store, path.read_bytes(), "wide.pth", data=tiny_data)

    assert run.config["model"] == "tutorial-wide" and run.config["epochs"] == 7
    assert run.settings["model"] == "tutorial-wide"
    # Its own 99.9 % was measured elsewhere: the run has this data's result.
    assert run.accuracy == pytest.approx(evaluate(wide, tiny_data).accuracy)
    assert_same_answers(store.load_model(run.id).model, wide)


def test_without_test_images_it_is_kept_untested(store):
    run = import_network(store, tutorial_file(), "cifar_net.pth")
    assert run.status == "completed" and run.metrics is None and run.accuracy is None
    assert "not tested" in run.message
    assert networks_to_try(store.list())[0].id == run.id
    assert "not tested" in network_label(run)


def test_an_uploaded_file_object_is_read_with_its_name(store):
    class Upload(io.BytesIO):  # what Streamlit's UploadedFile offers
        name = "my/folder/cifar_net.pth"

        @property
        def size(self) -> int:
            return len(self.getvalue())

    run = import_network(store, Upload(tutorial_file()))
    assert run.config["imported_from"] == "cifar_net.pth"


def test_an_imported_run_is_deleted_with_its_folder(store):
    run = import_network(store, tutorial_file(), "cifar_net.pth")
    folder = store.run_dir(run.id)
    store.delete(run.id)
    assert not folder.exists() and store.list() == []


def test_networks_to_try_most_accurate_first_untested_last(store, tiny_data, synthetic_dir):
    low = import_network(store, tutorial_file(seeded_net(0)), "a.pth")  # untested
    time.sleep(0.01)
    tested = [import_network(store, tutorial_file(seeded_net(s)), f"n{s}.pth", data=tiny_data)
              for s in (1, 2, 3)]
    ordered = networks_to_try(store.list())
    assert ordered[-1].id == low.id
    accuracies = [r.accuracy for r in ordered[:-1]]
    assert accuracies == sorted(accuracies, reverse=True)
    assert {r.id for r in ordered} == {low.id, *(r.id for r in tested)}
    label = network_label(ordered[0])
    assert label.startswith("n") and "(imported, tutorial, " in label and "%" in label


def test_display_name_is_the_last_part_without_control_characters():
    assert display_name("C:\\Users\\me\\cifar_net.pth") == "cifar_net.pth"
    assert display_name("../../x\x1b[31m.pth") == "x[31m.pth"
    assert display_name("") == "This file"
    assert len(display_name("a" * 500 + ".pth")) == 80


# What is refused -------------------------------------------------------------------------------

def refused(store: RunStore, content: bytes, name: str = "cifar_net.pth", **options) -> str:
    """The sentence import_network refuses `content` with; checks that nothing was kept."""
    before = set(store.root.iterdir()) if store.root.exists() else set()
    with pytest.raises(CheckpointError) as caught:
        import_network(store, content, name, **options)
    message = str(caught.value)
    assert name in message, message
    assert "/tmp" not in message and "cifar-import-" not in message, message
    assert "weights_only" not in message and "\x1b" not in message, message
    assert store.list() == []
    assert set(store.root.iterdir()) - before <= {store.root / "runs.sqlite-wal",
                                                   store.root / "runs.sqlite-shm"}
    return message


def test_an_empty_file_is_refused(store):
    assert "empty (0 bytes)" in refused(store, b"")


def test_a_file_over_the_upload_limit_is_refused_before_it_is_read(store):
    message = refused(store, tutorial_file(), max_bytes=100_000)
    assert "at most 98 KB" in message

    class Huge:  # an upload that says its size: refused without reading it
        name, size = "cifar_net.pth", 10**12

        def getvalue(self):
            raise AssertionError("read")

    with pytest.raises(CheckpointError, match="931.3 GB"):
        import_network(store, Huge())


@pytest.mark.parametrize("content, expected", [
    (b"just some text\n", "is not a PyTorch file"),
    (b"\xff\xd8\xff\xe0" + bytes(200), "is not a PyTorch file"),  # a JPEG renamed
    (os.urandom(4096), "is not a PyTorch file"),
])
def test_foreign_files_are_refused(store, content, expected):
    assert expected in refused(store, content)


def test_a_zip_of_something_else_is_refused(store):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert "zip archive of something else" in refused(store, out.getvalue())


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.99])
def test_a_truncated_checkpoint_is_refused(store, cut):
    content = tutorial_file()
    assert "cut short or damaged" in refused(store, content[:int(len(content) * cut)])


def test_a_zip_bomb_is_refused_before_torch_reads_it(store):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"a": 1}))
        archive.writestr("archive/data/0", bytes(50 * 2**20))  # 50 MB of zeros, a few KB packed
    assert len(out.getvalue()) < 2**20
    assert "would unpack to 50.0 MB" in refused(store, out.getvalue())


def test_weights_of_a_different_network_are_refused(store):
    other = nn.Sequential(nn.Flatten(), nn.Linear(3072, 10))
    message = refused(store, saved_bytes(other.state_dict()), "other.pth")
    assert "a network this dashboard does not know" in message
    assert "weights named 1.weight, 1.bias, which 'tutorial' has not" in message
    wider = Net().state_dict()
    wider["conv1.weight"] = torch.zeros(8, 3, 5, 5)
    message = refused(store, saved_bytes(wider), "wider.pth")
    assert "its layer conv1.weight is 8 × 3 × 5 × 5 where 'tutorial' has 6 × 3 × 5 × 5" in message


def test_the_tutorials_net_for_another_class_count_is_refused_saying_so(store):
    message = refused(store, tutorial_file(Net(num_classes=5)), "five.pth")
    assert "holds a network trained on 5 classes, and CIFAR-10 has 10" in message


def test_a_network_for_other_classes_than_the_datas_is_refused(store, tmp_path, tiny_data):
    path = save_checkpoint(tmp_path / "three.pth", Net(num_classes=3), {"model": "tutorial"},
                           ("cat", "dog", "frog"), {})
    message = refused(store, path.read_bytes(), "three.pth", data=tiny_data)
    # Issue 24: said with both data sets' class names, and what to choose.
    assert message.startswith("three.pth: This network was trained on CIFAR-10 (3 classes: "
                              "cat, dog, frog)")
    assert "CIFAR-10's pictures (10 classes: airplane" in message
    assert store.list() == []
    # Without data to test it on, it keeps its own three classes.
    run = import_network(store, path.read_bytes(), "three.pth")
    assert load_checkpoint(run.checkpoint).classes == ("cat", "dog", "frog")


class RunsCommand:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def proves_it_runs(content: bytes, marker: Path, loader: str) -> None:
    """Load `content` the unsafe way in another process: the payload runs (the marker appears),
    so the file is a real attack; then the marker is removed again."""
    path = marker.with_suffix(".pth")
    path.write_bytes(content)
    code = {"torch": f"import torch; torch.load({str(path)!r}, weights_only=False)",
            "pickle": f"import pickle; pickle.load(open({str(path)!r}, 'rb'))"}[loader]
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert marker.exists(), "the payload should run when loaded without weights_only"
    marker.unlink()
    path.unlink()


def test_a_malicious_torch_checkpoint_is_refused_and_its_code_never_runs(store, tmp_path):
    marker = tmp_path / "payload-ran"
    content = saved_bytes({"state_dict": Net().state_dict(), "extra": RunsCommand(marker)})
    proves_it_runs(content, marker, "torch")
    message = refused(store, content)
    assert "holds code or objects that are not plain weights" in message
    assert not marker.exists(), "the payload ran"


def test_a_malicious_plain_pickle_named_cifar_net_is_refused(store, tmp_path):
    marker = tmp_path / "payload-ran"
    content = pickle.dumps(RunsCommand(marker), protocol=2)
    proves_it_runs(content, marker, "pickle")
    assert "not plain weights" in refused(store, content)
    assert not marker.exists(), "the payload ran"


def test_read_network_gives_the_rebuilt_network_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    net = seeded_net()
    checkpoint = read_network(tutorial_file(net), "cifar_net.pth")
    assert checkpoint.model_name == "tutorial" and not checkpoint.model.training
    assert_same_answers(checkpoint.model, net)
    with pytest.raises(CheckpointError):
        read_network(b"junk", "junk.pth")
    assert list(tmp_path.iterdir()) == []


def test_refusals_and_the_import_message_say_what_a_person_needs_first(store, tiny_data):
    """Issue 22 item 8: no "state_dict" and no layer shapes up front; the technical detail comes
    after, as its own sentence ("In detail: ...")."""
    wider = Net().state_dict()
    wider["fc1.weight"] = torch.zeros(120, 3072)
    message = refused(store, saved_bytes(wider), "mine.pth")
    plain, detail = message.split(" In detail: ")
    assert plain.startswith("mine.pth holds the weights of a network this dashboard does not "
                            "know, so it cannot be used here.")
    assert "×" not in plain and "fc1" not in plain and "state_dict" not in plain
    assert "its layer fc1.weight is 120 × 3,072 where 'tutorial' has 120 × 400" in detail
    run = import_network(store, tutorial_file(), "cifar_net.pth", data=tiny_data)
    assert "state_dict" not in run.message and "plain weights" in run.message


# The data set an import fits (issue 24) ---------------------------------------------------------

SHAPES = ("circle", "square", "star")


def grey_shapes_data(classes=SHAPES, n: int = 6):
    """Tiny 1 × 16 × 16 pictures of a made-up data set 'shapes', all in memory."""
    from cifar_core.data.dataset import ImageData

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8, generator=generator)
    labels = torch.arange(n) % len(classes)
    return ImageData(train_images=images, train_labels=labels, test_images=images,
                     test_labels=labels, classes=classes, source="in memory",
                     dataset="shapes", title="Shapes")


@pytest.fixture
def shapes_registered(tmp_path):
    """'shapes' registered as a data set (titled 'Shapes') for the test's length."""
    from cifar_core.data.catalog import folder_dataset
    from cifar_core.data.registry import register, unregister

    register(folder_dataset("shapes", tmp_path / "shapes-folder", "Shapes", (1, 16, 16)))
    yield
    unregister("shapes")


def grey_shapes_file(tmp_path) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    net = model_spec("tutorial").build(3, None, (1, 16, 16)).eval()
    return net, save_checkpoint(tmp_path / "shapes.pth", net, {"model": "tutorial"}, SHAPES, {},
                                dataset="shapes", shape=(1, 16, 16))


def test_an_import_is_recorded_with_the_data_set_it_fits(store, tmp_path, shapes_registered):
    net, path = grey_shapes_file(tmp_path)
    run = import_network(store, path.read_bytes(), "shapes.pth")
    assert run.dataset == "shapes"
    assert "for Shapes (3 classes: circle, square, star)" in run.message
    kept = store.load_model(run.id)
    assert (kept.dataset, kept.shape, kept.classes) == ("shapes", (1, 16, 16), SHAPES)
    # Tested later on the data it fits, and its file still says what it fits.
    tested = evaluate_untested_imports(store, grey_shapes_data(), "/somewhere")
    assert [r.id for r in tested] == [run.id] and store.get(run.id).accuracy is not None
    assert store.load_model(run.id).dataset == "shapes"


def test_an_import_tested_on_data_keeps_that_data_set(store, tmp_path):
    net, path = grey_shapes_file(tmp_path)
    run = import_network(store, path.read_bytes(), "shapes.pth", data=grey_shapes_data())
    assert run.dataset == "shapes" and run.accuracy is not None
    assert "for shapes (3 classes: circle, square, star)" in run.message  # not registered here


def test_an_untested_import_of_other_class_names_is_not_tested_on_this_data(store, tiny_data,
                                                                            tmp_path):
    """Ten classes each: the old check compared counts, and tested it on the wrong pictures."""
    torch.manual_seed(0)
    other = tuple(f"kind {i}" for i in range(10))
    path = save_checkpoint(tmp_path / "other.pth", Net(), {"model": "tutorial"}, other, {})
    run = import_network(store, path.read_bytes(), "other.pth")
    assert evaluate_untested_imports(store, tiny_data, "/data") == []
    assert store.get(run.id).metrics is None

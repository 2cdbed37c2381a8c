"""share.network: a trained network exported as a zip (ONNX or TorchScript, a model card, a
predict.py), checked against PyTorch right after the export; the `export` command; the export
buttons of the Runs page; and every bad input refused with a sentence, nothing half-written."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import PALETTE, app_at, finish_run, jpeg, no_traceback, run_cli, texts
from PIL import Image

from cifar_core.data.dataset import OFFICIAL_CLASSES, normalize
from cifar_core.errors import CifarError
from cifar_core.explain.photos import read_photo
from cifar_core.runs.store import RunStore
from cifar_core.share import network, predict_template
from cifar_core.share.network import export_network
from cifar_core.training.augment import tta_logits
from cifar_core.training.checkpoint import save_checkpoint
from cifar_core.training.evaluation import predict_probabilities
from cifar_core.training.models import MODELS, Net

SMALL_WIDTH = 4  # the fast network at its narrowest: the export is the same at any width


def saved_network(folder: Path, model_name: str = "tutorial", tta: str = "none",
                  shape=(3, 32, 32), dataset: str = "cifar10", seed: int = 0,
                  classes=OFFICIAL_CLASSES, metrics: dict | None = None) -> Path:
    """A checkpoint of a freshly built (random, seeded) registered network."""
    torch.manual_seed(seed)
    spec = MODELS[model_name]
    model = spec.build(len(classes), SMALL_WIDTH if spec.widths else None, shape).eval()
    config = {"model": model_name, "tta": tta, "lr": 0.05, "epochs": 1, "batch_size": 10,
              "width": SMALL_WIDTH if spec.widths else None}
    return save_checkpoint(folder / f"{model_name}.pth", model, config, tuple(classes),
                           metrics if metrics is not None else
                           {"accuracy": 42.0, "test_images": 50}, dataset=dataset, shape=shape)


def zip_files(path: Path) -> dict[str, bytes]:
    """The zip's files by their name inside its one folder."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        folders = {name.split("/", 1)[0] for name in names}
        assert len(folders) == 1, names  # everything in one folder: an unzip makes no mess
        return {name.split("/", 1)[1]: archive.read(name) for name in names}


def unzipped(path: Path, where: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        archive.extractall(where)
    (folder,) = where.iterdir()
    return folder


def pictures(count: int = 12, shape=(3, 32, 32), seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (count, *shape), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def onnx_probabilities(model_file: Path, images: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: normalize(images).numpy()})[0]


# Every format, every registered model ---------------------------------------------------------

@pytest.mark.parametrize("model_name", list(MODELS))
def test_an_onnx_export_answers_as_the_dashboard_does_for_every_model(
        model_name, tmp_path, synthetic_dir):
    # The fast network with its test-time mirroring, the tutorial's with mirroring and shifts:
    # the exported file answers as the dashboard does, views averaged. (ResNet-18, without:
    # each view costs it seconds here.)
    tta = {"fast": "flip", "tutorial": "flip+translate"}.get(model_name, "none")
    checkpoint = saved_network(tmp_path, model_name, tta=tta)
    done = export_network(None, str(checkpoint), "onnx", tmp_path / "out.zip",
                          data_dir=synthetic_dir)

    files = zip_files(done.path)
    assert set(files) == {"network.onnx", "model_card.json", "model_card.md", "predict.py",
                          "README.md"}
    model_file = tmp_path / "network.onnx"
    model_file.write_bytes(files["network.onnx"])
    images = pictures()
    expected = predict_probabilities(network.load_for_export(checkpoint).model, images,
                                     tta=tta)
    got = onnx_probabilities(model_file, images)
    assert np.abs(got - expected.numpy()).max() < 1e-4
    # The check ran on the data set's 50 test pictures, and says so.
    assert done.check.pictures == 50 and done.check.agreement == 1.0
    assert done.check.largest_difference < 1e-4
    assert "50 test pictures" in done.check.in_words()


@pytest.mark.parametrize("model_name", list(MODELS))
def test_a_torchscript_export_answers_as_the_dashboard_does_for_every_model(
        model_name, tmp_path, synthetic_dir):
    tta = "none" if model_name == "resnet18" else "flip"
    checkpoint = saved_network(tmp_path, model_name, tta=tta)
    done = export_network(None, str(checkpoint), "torchscript", tmp_path / "out.zip",
                          data_dir=synthetic_dir)
    files = zip_files(done.path)
    scripted = torch.jit.load(io.BytesIO(files["network.pt"]))
    images = pictures()
    expected = predict_probabilities(network.load_for_export(checkpoint).model, images,
                                     tta=tta)
    with torch.no_grad():
        got = scripted(normalize(images))
    assert (got - expected).abs().max() < 1e-4
    assert done.check.pictures == 50 and done.check.agreement == 1.0
    assert b"torch" in files["README.md"]  # its predict.py needs torch, and says so


def test_test_time_augmentation_is_in_the_exported_graph(tmp_path):
    # A network whose answer for a picture and its mirror image differ: with mirroring on,
    # the file must average the two, as the dashboard does, not answer for the picture alone.
    checkpoint = saved_network(tmp_path, "tutorial", tta="flip", seed=3)
    done = export_network(None, str(checkpoint), "onnx", tmp_path / "out.zip")
    model_file = tmp_path / "network.onnx"
    model_file.write_bytes(zip_files(done.path)["network.onnx"])
    model = network.load_for_export(checkpoint).model
    images = pictures(8)
    with torch.no_grad():
        plain = torch.softmax(model(normalize(images)), 1).numpy()
        mirrored = torch.softmax(tta_logits(model, normalize(images), "flip"), 1).numpy()
    assert np.abs(plain - mirrored).max() > 1e-3  # the views differ for this network
    got = onnx_probabilities(model_file, images)
    assert np.abs(got - mirrored).max() < 1e-5
    card = json.loads(zip_files(done.path)["model_card.json"])
    assert card["test_time_augmentation"] == "flip"


def test_without_the_data_the_check_uses_generated_pictures(tmp_path):
    checkpoint = saved_network(tmp_path, "tutorial")
    done = export_network(None, str(checkpoint), "onnx", tmp_path / "out.zip",
                          data_dir=tmp_path / "no-data-here")
    assert done.check.pictures == network.GENERATED_PICTURES
    assert "generated pictures" in done.check.in_words()
    assert done.check.agreement == 1.0


def test_the_model_card_says_what_the_checkpoint_records(tmp_path, synthetic_dir):
    classes = ("plane", "car", "bird")
    checkpoint = saved_network(tmp_path, "fast", tta="flip", shape=(1, 28, 28),
                               classes=classes, dataset="cifar10",
                               metrics={"accuracy": 87.5, "test_images": 1000})
    done = export_network(None, str(checkpoint), "onnx", tmp_path / "out.zip")
    files = zip_files(done.path)
    card = json.loads(files["model_card.json"])
    assert card["classes"] == list(classes)
    assert card["input"]["shape"] == [None, 1, 28, 28]
    assert card["input"]["normalization"] == {"mean": [0.5], "std": [0.5]}
    assert card["accuracy"] == 87.5 and card["test_images"] == 1000
    assert card["dataset"] == "cifar10" and card["model"] == "fast"
    assert card["settings"]["lr"] == 0.05 and card["settings"]["width"] == SMALL_WIDTH
    assert card["exported"][:4].isdigit()
    text = files["model_card.md"].decode()
    for words in ("CIFAR-10", "plane, car, bird", "28 × 28 grey", "87.5 %", "0.5", "flip"):
        assert words in text, words
    readme = files["README.md"].decode().strip().splitlines()
    assert len(readme) == 2 and "onnxruntime numpy pillow" in readme[0]


# The check refuses a file that disagrees -----------------------------------------------------

def test_a_file_that_disagrees_with_pytorch_is_refused_and_nothing_is_left(
        tmp_path, monkeypatch):
    checkpoint = saved_network(tmp_path, "tutorial")
    real_write = network.FORMATS["onnx"].write

    def write_another_network(module, example, path):  # an exporter that got it wrong
        other = network.Answering(Net(10).eval(), "none")
        real_write(other, example, path)

    monkeypatch.setitem(network.FORMATS, "onnx", network.FORMATS["onnx"].__class__(
        **{**network.FORMATS["onnx"].__dict__, "write": write_another_network}))
    out = tmp_path / "out" / "net.zip"
    out.parent.mkdir()
    with pytest.raises(CifarError, match="does not answer as this app does"):
        export_network(None, str(checkpoint), "onnx", out)
    assert list(out.parent.iterdir()) == []  # no zip, no temporary file


# predict.py ------------------------------------------------------------------------------------

def png_with_transparency() -> bytes:
    pixels = np.zeros((90, 60, 4), np.uint8)
    pixels[..., 0] = 200
    pixels[..., 3] = np.linspace(0, 255, 60, dtype=np.uint8)[None, :]
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, "PNG")
    return out.getvalue()


def jpeg_turned() -> bytes:
    """A portrait photo stored lying on its side, as phones store them (EXIF orientation 6)."""
    picture = Image.open(io.BytesIO(jpeg((300, 200), seed=4)))
    exif = picture.getexif()
    exif[0x0112] = 6
    out = io.BytesIO()
    picture.save(out, "JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


@pytest.mark.parametrize("picture,shape", [
    (jpeg((1200, 800), seed=2), (3, 32, 32)),  # a large JPEG: decoded at a reduced size
    (png_with_transparency(), (3, 32, 32)),
    (jpeg_turned(), (3, 32, 32)),
    (jpeg((400, 300), seed=5), (1, 28, 28)),
])
def test_predict_py_prepares_a_picture_as_the_dashboard_does(picture, shape, tmp_path):
    path = tmp_path / "picture"
    path.write_bytes(picture)
    normalization = {"mean": [0.5] * shape[0], "std": [0.5] * shape[0]}
    prepared = predict_template.prepare(path, shape, normalization)
    expected = normalize(read_photo(picture, "picture", shape=shape).network_input[None])
    assert prepared.dtype == np.float32 and prepared.shape == (1, *shape)
    assert np.array_equal(prepared, expected.numpy())


def trained_colour_network(folder: Path) -> Path:
    """The tutorial's network taught the palette's colours (conftest): it names them right."""
    torch.manual_seed(0)
    labels = torch.arange(10).repeat(5)
    colours = torch.tensor(PALETTE, dtype=torch.float32)[labels][:, :, None, None]
    images = (colours + 20 * torch.randn(len(labels), 3, 32, 32)).clamp(0, 255).to(torch.uint8)
    model = Net(10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(normalize(images)), labels).backward()
        optimizer.step()
    return save_checkpoint(folder / "colours.pth", model.eval(), {"model": "tutorial"},
                           OFFICIAL_CLASSES, {"accuracy": 100.0, "test_images": 200})


# Imports beyond onnxruntime, numpy and Pillow fail inside predict.py's process.
NO_TORCH = """
import runpy, sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here")
sys.meta_path.insert(0, NoTorch())
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:  # (predict.py ends with sys.exit)
    assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
"""


def test_the_zips_predict_py_names_the_class_without_torch(tmp_path):
    checkpoint = trained_colour_network(tmp_path)
    done = export_network(None, str(checkpoint), "onnx", tmp_path / "out.zip")
    folder = unzipped(done.path, tmp_path / "unzipped")
    bird = 2  # its colour, as a large photo the network sees only shrunk
    pixels = np.clip(PALETTE[bird] + np.random.default_rng(0).normal(0, 20, (240, 320, 3)),
                     0, 255).astype(np.uint8)
    picture = tmp_path / "my photo.jpg"
    Image.fromarray(pixels).save(picture, quality=92)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    answer = subprocess.run([sys.executable, "-c", NO_TORCH, str(folder / "predict.py"),
                             str(picture)], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env=env)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith("my photo.jpg: bird ("), answer.stdout
    # The dashboard's own answer for that picture is the same class.
    photo = read_photo(picture.read_bytes(), "p")
    assert int(predict_probabilities(network.load_for_export(checkpoint).model,
                                     photo.network_input[None]).argmax()) == bird


def test_predict_py_says_in_a_sentence_when_a_picture_cannot_be_read(tmp_path):
    checkpoint = saved_network(tmp_path, "tutorial")
    done = export_network(None, str(checkpoint), "onnx", tmp_path / "out.zip")
    folder = unzipped(done.path, tmp_path / "unzipped")
    (tmp_path / "notes.txt").write_text("not a picture")
    answer = subprocess.run([sys.executable, str(folder / "predict.py"),
                             str(tmp_path / "notes.txt")], capture_output=True, text=True,
                            timeout=120)
    assert answer.returncode != 0
    assert "notes.txt is not a picture" in answer.stderr
    assert "Traceback" not in answer.stderr


# Bad input: a sentence each, nothing half-written --------------------------------------------

@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def test_a_run_without_a_network_is_refused(store, tmp_path):
    run = store.create({"model": "tutorial"}, "", origin="test", status="running")
    store.finish(run.id, "failed", "the data folder was empty")
    with pytest.raises(CifarError, match=f"Run {run.id} has no saved network"):
        export_network(store, run.id, "onnx", tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


def test_an_unknown_run_id_or_missing_file_is_refused(store, tmp_path):
    with pytest.raises(CifarError, match="There is no run 'nope-123' and no file"):
        export_network(store, "nope-123", "onnx", tmp_path / "out.zip")


def test_a_file_that_is_not_a_network_is_refused(tmp_path):
    notes = tmp_path / "notes.pth"
    notes.write_text("hello")
    with pytest.raises(CifarError, match="is not a PyTorch file"):
        export_network(None, str(notes), "onnx", tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


def test_a_network_of_an_unknown_data_set_is_refused(tmp_path):
    checkpoint = saved_network(tmp_path, "tutorial", dataset="flowers-gone")
    with pytest.raises(CifarError, match="'flowers-gone', a data set this app does not know"):
        export_network(None, str(checkpoint), "onnx", tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


def test_an_imported_network_of_an_unknown_data_set_is_refused(store, tmp_path):
    from cifar_core.explain.network_imports import import_network

    brought = saved_network(tmp_path, "tutorial", dataset="flowers-gone")
    run = import_network(store, brought.read_bytes(), "flowers.pth")  # kept untested
    with pytest.raises(CifarError, match="a data set this app does not know"):
        export_network(store, run.id, "onnx", tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


def test_an_unknown_format_is_refused(tmp_path):
    checkpoint = saved_network(tmp_path, "tutorial")
    with pytest.raises(CifarError, match="onnx or torchscript"):
        export_network(None, str(checkpoint), "tflite", tmp_path / "out.zip")


def _as_a_user_without_root() -> list[str] | None:
    """A command prefix for which chmod matters (as root: setpriv without the override)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return None if setpriv is None else [
        setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]


def test_an_export_into_a_read_only_folder_is_refused_in_a_sentence(tmp_path):
    prefix = _as_a_user_without_root()
    if prefix is None:
        pytest.skip("running as root without setpriv: chmod cannot make a folder read-only")
    checkpoint = saved_network(tmp_path, "tutorial")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        done = subprocess.run([*prefix, sys.executable, "-m", "cifar_core", "export",
                               str(checkpoint), "--out", str(locked / "net.zip")],
                              capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[1])
    finally:
        locked.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: The zip cannot be written into {locked}")
    assert "Traceback" not in done.stderr
    assert list(locked.iterdir()) == []


# The command -----------------------------------------------------------------------------------

def test_the_export_command_writes_the_zip_and_says_how_it_was_checked(
        capsys, runs_dir, data_dir, monkeypatch, tmp_path):
    run_id = finish_run(runs_dir, data_dir)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "export", run_id, "--format", "onnx")
    assert code == 0, err
    written = tmp_path / f"{run_id}-onnx.zip"
    assert written.is_file() and str(written.name) in out
    assert "50 test pictures" in out and "same class" in out
    card = json.loads(zip_files(written)["model_card.json"])
    assert card["source"] == f"run {run_id}"

    code, out, err = run_cli(capsys, "export", run_id, "--format", "torchscript", "--json",
                             "--out", tmp_path / "ts.zip")
    assert code == 0, err
    line = json.loads(out)
    assert line["path"] == str(tmp_path / "ts.zip") and line["format"] == "torchscript"
    assert line["check"]["agreement"] == 1.0

    code, out, err = run_cli(capsys, "export", "no-such-run", "--runs-dir", runs_dir)
    assert code == 2 and err.startswith("error: There is no run 'no-such-run'")


# The page ---------------------------------------------------------------------------------------

def test_the_runs_page_makes_the_zip_when_asked_and_says_how_it_was_checked(
        runs_dir, data_dir):
    run_id = finish_run(runs_dir, data_dir)
    at = app_at("pages/runs.py")
    assert not [b for b in at.get("download_button") if "ONNX" in str(b.proto.label)]
    make = next(b for b in at.button if b.label == "Make the ONNX zip")
    make.click().run()
    no_traceback(at)
    shown = texts(at)
    assert "50 test pictures" in shown and "same class" in shown
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("ONNX" in label and run_id in label for label in labels), labels


def test_a_failed_export_on_the_page_is_a_sentence_and_no_download(
        runs_dir, data_dir, monkeypatch):
    from pages.shared import export_ui

    finish_run(runs_dir, data_dir)
    refusal = "The exported ONNX file does not answer as this app does: try the other format."

    def refuse(run, fmt, out):
        raise CifarError(refusal)

    monkeypatch.setattr(export_ui, "export_run", refuse)
    at = app_at("pages/runs.py")
    next(b for b in at.button if b.label == "Make the ONNX zip").click().run()
    no_traceback(at)
    assert refusal in [e.value for e in at.error]
    assert not [b for b in at.get("download_button") if "ONNX" in str(b.proto.label)]


def test_the_evaluate_page_offers_both_formats_for_the_chosen_run(runs_dir, data_dir):
    finish_run(runs_dir, data_dir)
    at = app_at("pages/evaluate.py")
    labels = [b.label for b in at.button]
    assert "Make the ONNX zip" in labels and "Make the TorchScript zip" in labels
    next(b for b in at.button if b.label == "Make the TorchScript zip").click().run()
    no_traceback(at)
    assert any("TorchScript" in str(b.proto.label) for b in at.get("download_button"))

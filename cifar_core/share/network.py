"""A trained network exported for use elsewhere: ONNX or TorchScript, in a small zip.

The zip holds one folder: the network file, a model card (model_card.json for programs,
model_card.md for people: data set, class names, input shape, normalisation, accuracy,
settings, dates, all read from the checkpoint), the predict.py of predict_template.py (names
what a picture shows with onnxruntime, numpy and Pillow only; TorchScript's needs torch) and a
two-line README. The exported graph takes normalised pictures and answers every class's
probability, with the test-time augmentation the run was tested with inside it (its views
averaged), so the file answers as the dashboard does. Right after the export the file is run
on test pictures beside PyTorch; a file that answers otherwise is refused, and the zip is
written to a temporary file moved into place, so nothing half-written is ever left.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cifar_core.data.dataset import default_data_dir, normalize
from cifar_core.data.load import load_data
from cifar_core.data.registry import DATASETS, dataset_spec
from cifar_core.errors import CheckpointError, CifarError, DataError, RunError
from cifar_core.runs.names import markdown_text
from cifar_core.runs.store import Run, RunStore
from cifar_core.training.augment import tta_logits
from cifar_core.training.checkpoint import Checkpoint, load_checkpoint
from cifar_core.training.evaluation import predict_probabilities
from cifar_core.training.models import MODELS

# The check: this many of the data set's test pictures, spread over the set (all of them where
# it has fewer); without the data, this many generated ones. A wrong layer or view shows on
# every picture; more pictures only cost time (500 took the fast network's export and check
# past the 10 s target on a 2-core CPU, bench/RESULTS.md, issue 27).
CHECK_PICTURES = 200
GENERATED_PICTURES = 100
# A file whose probabilities differ from PyTorch's by more than this, or that names another
# class for more than this share of the pictures, is refused. Float32 rounding differs by
# about 1e-6; a wrong layer, weight or view by far more.
MAX_DIFFERENCE = 1e-3
MIN_AGREEMENT = 0.999
INPUT_NAME, OUTPUT_NAME = "pixels", "probabilities"
TEMPLATE = Path(__file__).with_name("predict_template.py")


class Answering(nn.Module):
    """A network as the dashboard asks it: every class's probability for normalised pictures,
    the test-time augmentation's views averaged (training.augment.tta_logits)."""

    def __init__(self, model: nn.Module, tta: str, unsure_below: float | None = None):
        super().__init__()
        self.model, self.tta, self.unsure_below = model, tta, unsure_below

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.softmax(tta_logits(self.model, pixels, self.tta, self.unsure_below), dim=1)


def _write_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    # The TorchScript-based exporter, not torch.export's (dynamo=True): both answer as PyTorch
    # does for every registered network, and this one takes about 1 s for the fast network on
    # a 2-core CPU where the other takes 8 s, plus 3 s to import onnxscript (bench/RESULTS.md,
    # issue 27), against a target of 10 s for export and check together.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation notice, constant-folding notes
        torch.onnx.export(module, (example,), str(path), dynamo=False,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "pictures"},
                                        OUTPUT_NAME: {0: "pictures"}})


def _load_onnx(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {INPUT_NAME: batch})[0]


def _write_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notice
        # (no trace check: the export's own check runs the saved file on real pictures)
        traced = torch.jit.trace(module, example, check_trace=False)
    traced.save(str(path))


def _load_torchscript(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        model = torch.jit.load(str(path), map_location="cpu").eval()

    def answer(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch)).numpy()
    return answer


@dataclass(frozen=True)
class ExportFormat:
    """One format a network can be exported in."""

    name: str  # the --format value
    title: str  # for people
    file: str  # the network's file name in the zip
    needs: str  # what predict.py needs installed (pip names)
    write: Callable[[nn.Module, torch.Tensor, Path], None]
    load: Callable[[Path], Callable[[np.ndarray], np.ndarray]]


FORMATS: dict[str, ExportFormat] = {}


def register(spec: ExportFormat) -> ExportFormat:
    FORMATS[spec.name] = spec
    return spec


register(ExportFormat("onnx", "ONNX", "network.onnx", "onnxruntime numpy pillow",
                      _write_onnx, _load_onnx))
register(ExportFormat("torchscript", "TorchScript", "network.pt", "torch numpy pillow",
                      _write_torchscript, _load_torchscript))


@dataclass(frozen=True)
class ExportCheck:
    """How the exported file answered beside PyTorch."""

    pictures: int
    what: str  # e.g. 'test pictures of CIFAR-10', 'generated pictures'
    agreement: float  # the share of pictures both name the same class for, 0..1
    largest_difference: float  # of any class's probability, 0..1

    def in_words(self) -> str:
        same = round(self.agreement * self.pictures)
        return (f"Checked on {self.pictures} {self.what}: the exported file names the same "
                f"class as this app for {same} of them, and its confidence differs from this "
                f"app's by {percent(self.largest_difference)}.")


def percent(share: float) -> str:
    """How far apart two probabilities are, in plain digits: 'at most 0.0031 %', 'less than
    0.0001 %'."""
    if share < 1e-6:
        return "less than 0.0001 %"
    return f"at most {100 * share:.4f} %" if share < 0.01 else f"at most {100 * share:.1f} %"


@dataclass(frozen=True)
class Export:
    """A zip written: where, in which format, and its check."""

    path: Path
    format: str
    check: ExportCheck

    def to_dict(self) -> dict:
        return {"path": str(self.path), "format": self.format, "check": asdict(self.check)}


def network_path(store: RunStore | None, value: str) -> tuple[Path, Run | None]:
    """The network file `value` names, and its run: a run id of `store`, else a .pth path;
    CifarError saying what to give where it names neither, or a run without a network."""
    if store is not None:
        try:
            run = store.get(value)
        except RunError:
            run = None
        if run is not None:
            return store.checkpoint_path(run.id), run
    path = Path(value).expanduser()
    if not path.is_file():
        raise RunError(f"There is no run '{value}' and no file {path} to export: give a "
                       "finished run's id (python -m cifar_core runs list) or a .pth file.")
    return path, None


def load_for_export(path: Path) -> Checkpoint:
    """The network in `path`; CheckpointError where it cannot be exported: unreadable, or
    trained on a data set this app does not know (its pictures could not be described)."""
    checkpoint = load_checkpoint(path)
    if checkpoint.dataset not in DATASETS:
        try:
            dataset_spec(checkpoint.dataset)  # a folder data set recorded in the data folder
        except DataError:
            raise CheckpointError(
                f"{path.name} was trained on '{checkpoint.dataset}', a data set this app does "
                "not know (a folder data set since removed, or one from another computer), so "
                "its model card could not say what pictures it takes: add that data set again "
                "(python -m cifar_core datasets), then export it.") from None
    return checkpoint


def export_network(store: RunStore | None, value: str, fmt: str, out: Path | None = None,
                   data_dir: Path | str | None = None) -> Export:
    """Export the network `value` names (a run id of `store`, or a .pth file) in format `fmt`
    as a zip at `out` (default: <run or file>-<format>.zip here; a folder: that name in it).
    The check's test pictures come from `data_dir` (default: the run's, else the data
    folder). CifarError in one sentence for anything that stops it; then nothing is left."""
    path, run = network_path(store, value)
    source = f"run {run.id}" if run is not None else path.name
    stem = run.id if run is not None else path.stem
    if data_dir is None:
        data_dir = run.data_dir if run is not None and run.data_dir else default_data_dir()
    return write_export(path, fmt, out, stem=stem, source=source,
                        trained=run.finished if run is not None else None, data_dir=data_dir)


def export_run(run: Run, fmt: str, out: Path) -> Export:
    """Export `run`'s network (the Runs and Evaluate pages); as export_network."""
    if not run.checkpoint:
        raise RunError(f"Run {run.id} has no saved network ({run.status}"
                       + (f": {run.message}" if run.message else "") + ").")
    return write_export(Path(run.checkpoint), fmt, out, stem=run.id, source=f"run {run.id}",
                        trained=run.finished,
                        data_dir=run.data_dir or default_data_dir())


def zip_name(stem: str, fmt: str) -> str:
    """e.g. 20261206-101500-a1b2-onnx.zip."""
    return f"{stem}-{fmt}.zip"


def write_export(path: Path, fmt: str, out: Path | None, stem: str, source: str,
                 trained: float | None, data_dir: Path | str) -> Export:
    """The export of the network file `path` (see export_network)."""
    if fmt not in FORMATS:
        raise CifarError(f"There is no export format '{fmt}': choose {' or '.join(FORMATS)}.")
    spec = FORMATS[fmt]
    out = Path(out) if out is not None else Path(zip_name(stem, fmt))
    if out.is_dir():
        out = out / zip_name(stem, fmt)
    checkpoint = load_for_export(path)
    partial = _start_file(out)
    try:
        with tempfile.TemporaryDirectory(prefix="cifar-export-") as work:
            network_file = Path(work) / spec.file
            options = checkpoint.prediction_options()
            module = Answering(checkpoint.model, options["tta"],
                               options.get("tta_unsure_below")).eval()
            example = torch.zeros(2, *checkpoint.shape)
            try:
                spec.write(module, example, network_file)
            except Exception as exc:  # the exporter's own failure, whatever its type
                raise CifarError(f"The network could not be exported as {spec.title} "
                                 f"({type(exc).__name__}): try the other format.") from None
            images, what = check_pictures(checkpoint, data_dir)
            check = check_file(spec, network_file, checkpoint, images, what)
            card = model_card(checkpoint, spec, source, trained, check)
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
                folder = out.stem
                # Stored, not compressed: weights hardly compress, and deflating ResNet-18's
                # 45 MB took seconds.
                archive.write(network_file, f"{folder}/{spec.file}", zipfile.ZIP_STORED)
                archive.writestr(f"{folder}/model_card.json", json.dumps(card, indent=2,
                                                                         default=str))
                archive.writestr(f"{folder}/model_card.md", model_card_text(card))
                archive.writestr(f"{folder}/predict.py", TEMPLATE.read_text(encoding="utf-8"))
                archive.writestr(f"{folder}/README.md", readme_text(spec))
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CifarError(f"The zip could not be written to {out}: "
                         f"{exc.strerror or exc}.") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Export(path=out, format=fmt, check=check)


def _start_file(out: Path) -> Path:
    """A new temporary file beside `out`, which the finished zip replaces `out` from;
    CifarError saying what to do where the folder cannot take it."""
    folder = out.parent
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise CifarError(f"The zip cannot be written into {folder}: that folder {what}. "
                         "Choose a folder that exists.")
    partial = folder / f".{out.name}.partial{os.getpid()}"
    try:
        partial.open("xb").close()
    except FileExistsError:
        partial.unlink()
        partial.open("xb").close()
    except OSError as exc:
        raise CifarError(f"The zip cannot be written into {folder}: "
                         f"{(exc.strerror or str(exc)).lower()}. Choose a folder you can write "
                         "to.") from None
    return partial


def check_pictures(checkpoint: Checkpoint, data_dir: Path | str) -> tuple[torch.Tensor, str]:
    """uint8 pictures to check an export on, and what they are in words: CHECK_PICTURES of the
    data set's test pictures where the data is there and fits the network, else
    GENERATED_PICTURES generated ones (the same each time)."""
    try:
        data = load_data(checkpoint.dataset, data_dir, download=False)
    except (CifarError, OSError):
        data = None
    if data is not None and checkpoint.fits(data) and len(data.test_images):
        count = len(data.test_images)
        chosen = torch.linspace(0, count - 1, min(count, CHECK_PICTURES)).round().long()
        return data.test_images[chosen.unique()], f"test pictures of {data.title}"
    return generated_pictures(checkpoint.shape), "generated pictures"


def generated_pictures(shape: tuple[int, int, int],
                       count: int = GENERATED_PICTURES) -> torch.Tensor:
    """`count` pictures of `shape`: half noise, half smooth colour blends (the same each
    time)."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (count // 2, *shape), dtype=torch.uint8, generator=generator)
    corners = torch.rand(count - count // 2, shape[0], 2, 2, generator=generator) * 255
    blends = torch.nn.functional.interpolate(corners, size=shape[1:], mode="bilinear",
                                             align_corners=True)
    return torch.cat([noise, blends.round().to(torch.uint8)])


def check_file(spec: ExportFormat, network_file: Path, checkpoint: Checkpoint,
               images: torch.Tensor, what: str) -> ExportCheck:
    """The exported file's answers for `images` beside PyTorch's (as the dashboard computes
    them, in 32-bit floats); CifarError where they differ (MAX_DIFFERENCE, MIN_AGREEMENT)."""
    options = checkpoint.prediction_options()
    expected = predict_probabilities(checkpoint.model, images, tta=options["tta"],
                                     tta_unsure_below=options.get("tta_unsure_below")).numpy()
    answer = spec.load(network_file)
    got = np.concatenate([answer(normalize(images[i:i + CHECK_PICTURES]).numpy())
                          for i in range(0, len(images), CHECK_PICTURES)])
    check = answers_compared(got, expected, what)
    if check.largest_difference > MAX_DIFFERENCE or check.agreement < MIN_AGREEMENT:
        other = round((1 - check.agreement) * check.pictures)
        raise CifarError(
            f"The exported {spec.title} file does not answer as this app does (on "
            f"{check.pictures} {what} its confidence differs by "
            f"{percent(check.largest_difference)} and it names another class for {other} of "
            "them), so it was not handed over: try the other format.")
    return check


def answers_compared(got: np.ndarray, expected: np.ndarray, what: str) -> ExportCheck:
    """Two sets of probabilities (pictures, classes) compared."""
    if got.shape != expected.shape:
        return ExportCheck(len(expected), what, 0.0, 1.0)
    return ExportCheck(pictures=len(expected), what=what,
                       agreement=float((got.argmax(1) == expected.argmax(1)).mean()),
                       largest_difference=float(np.abs(got - expected).max(initial=0.0)))


def _date(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def model_card(checkpoint: Checkpoint, spec: ExportFormat, source: str,
               trained: float | None, check: ExportCheck) -> dict:
    """What the exported network is, as model_card.json says it (all from the checkpoint)."""
    model = MODELS.get(checkpoint.model_name)
    options = checkpoint.prediction_options()
    channels, height, width = checkpoint.shape
    return {
        "format": spec.name, "file": spec.file, "source": source,
        "model": checkpoint.model_name, "model_title": model.title if model else "",
        "width": getattr(checkpoint.model, "width", None),
        "dataset": checkpoint.dataset, "dataset_title": checkpoint.title,
        "classes": list(checkpoint.classes),
        "input": {"name": INPUT_NAME, "shape": [None, channels, height, width],
                  "type": "float32", "colour": "grey" if channels == 1 else "RGB",
                  "normalization": checkpoint.normalization,
                  "preparation": "the picture's centre square resized to "
                                 f"{width} x {height} (Lanczos), pixels p in 0..255 given as "
                                 "(p / 255 - mean) / std per channel"},
        "output": {"name": OUTPUT_NAME, "shape": [None, len(checkpoint.classes)],
                   "meaning": "each class's probability, in the order of 'classes'"},
        "test_time_augmentation": options["tta"],
        # None: every picture; else only those whose top probability is below it
        "test_time_augmentation_unsure_below": options.get("tta_unsure_below"),
        "trained_precision": options["precision"],
        "accuracy": checkpoint.metrics.get("accuracy"),
        "test_images": checkpoint.metrics.get("test_images"),
        "settings": dict(checkpoint.config),
        "trained": _date(trained),
        "exported": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "check": asdict(check),
    }


_TTA_WORDS = {"none": "none: the picture as it is",
              "flip": "flip: the answers for the picture and its mirror image, averaged",
              "flip+translate": "flip+translate: the picture and its mirror image, each also "
                                "moved a pixel each way, their answers averaged"}


def _unsure_words(unsure_below: float | None) -> str:
    """The model card's words for selective test-time augmentation ('' where it is off)."""
    if unsure_below is None:
        return ""
    return (f"; only for the pictures whose top probability is below {unsure_below:g} "
            "(the others keep their first answer)")


def model_card_text(card: dict) -> str:
    """model_card.md: the card for people."""
    channels, height, width = card["input"]["shape"][1:]
    norm, tta = card["input"]["normalization"], card["test_time_augmentation"]
    accuracy = (f"{card['accuracy']:.1f} % of {card['test_images']} test pictures"
                if isinstance(card.get("accuracy"), (int, float)) else "not tested")
    lines = [
        f"# {markdown_text(card['model_title'] or card['model'])}, trained on "
        f"{markdown_text(card['dataset_title'])}",
        "",
        f"- From: {markdown_text(card['source'])}"
        + (f", trained {card['trained']}" if card["trained"] else ""),
        f"- Exported: {card['exported']}, as {FORMATS[card['format']].title} "
        f"({card['file']})",
        f"- Data set: {markdown_text(card['dataset_title'])}, {len(card['classes'])} classes: "
        f"{markdown_text(', '.join(card['classes']))}",
        f"- Input: {card['input']['name']}, float32, shape (pictures, {channels}, {height}, "
        f"{width}): {height} × {width} {'grey' if channels == 1 else 'colour'} pictures, "
        f"the centre square of a picture resized; each pixel p (0 to 255) given as "
        f"(p / 255 - mean) / std with mean {norm['mean']} and std {norm['std']}",
        f"- Output: {card['output']['name']}, each class's probability in the order above",
        f"- Test-time augmentation inside the file: {_TTA_WORDS.get(tta, tta)}"
        + _unsure_words(card.get("test_time_augmentation_unsure_below")),
        f"- Accuracy when it was trained: {accuracy}",
        f"- Check at export: {ExportCheck(**card['check']).in_words()}",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {markdown_text(k)} | {markdown_text(json.dumps(v, default=str))} |"
          for k, v in card["settings"].items()),
        "",
        "To use it: see README.md and predict.py.",
        "",
    ]
    return "\n".join(lines)


def readme_text(spec: ExportFormat) -> str:
    """The zip's two-line README."""
    return (f"pip install {spec.needs}\n"
            f"python predict.py your-picture.jpg   # names what it shows ({spec.title})\n")

"""Networks trained elsewhere: a `.pth` file someone brings (the tutorial's own `cifar_net.pth`,
a plain state_dict, or a checkpoint saved by this tool or its CLI) checked and kept as an
imported run, which every page then uses like a trained one.

The file is only ever read by checkpoint.load_checkpoint (`weights_only=True`: no code in it
runs), its weights must fit a network of the model registry, and the network is tested on the
test images when the data is there. A file that cannot be used raises CheckpointError with a
sentence naming the file as its owner calls it, never a temporary path or torch's own text.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

from cifar_core.data.dataset import ImageData
from cifar_core.errors import CheckpointError, CifarError, RunError
from cifar_core.explain.uploads import read_upload, size_in_words
from cifar_core.runs.store import Run, RunStore
from cifar_core.runs.views import (
    IMPORTED,
    is_import,
    named_label,
    run_label,
    runs_with_network,
)
from cifar_core.training.checkpoint import (
    DEFAULT_NAME,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from cifar_core.training.evaluation import evaluate

# The largest network file taken (the dashboard passes its own upload limit instead). The
# tutorial's cifar_net.pth is about 250 KB, the registry's largest network a few MB.
MAX_BYTES = 20 * 2**20
# A zip-format .pth whose parts unpack to more than this many times its size is refused before
# torch reads it: torch.save stores its parts uncompressed, so only a crafted file (a "zip
# bomb", which would fill the memory) comes near it.
MAX_UNPACK_RATIO = 4


def import_network(store: RunStore, file: bytes | bytearray | memoryview | BinaryIO,
                   name: str | None = None, *, data: ImageData | None = None,
                   data_dir: str = "", max_bytes: int = MAX_BYTES) -> Run:
    """Keep the network in `file` (its bytes, or a binary file such as Streamlit's
    UploadedFile) as a completed run of origin 'imported': its weights saved in the run's
    folder as this tool's checkpoint, with its test results on `data` (read from `data_dir`)
    when given, untested otherwise. `name` (default: the file's own name) is how messages
    call it. CheckpointError with a sentence if the file cannot be used; then no run is
    made."""
    content, name = read_upload(file, name, max_bytes,
                                lambda name, size: _too_large(name, size, max_bytes))
    checkpoint = read_network(content, name, max_bytes)
    misfit = None if data is None else checkpoint.misfit(data)
    if misfit:
        raise CheckpointError(f"{name}: {misfit}")
    # Results the file brings were measured elsewhere, perhaps on other data: only a test here
    # is kept.
    metrics = None if data is None else _tested(checkpoint, data)
    config = {**checkpoint.config, "model": checkpoint.model_name, "imported_from": name}
    message = _import_message(name, checkpoint, metrics)
    # Made running by this live process, so the job runner neither starts nor reaps it.
    run = store.create(config, data_dir if data is not None else "", origin=IMPORTED,
                       status="running", pid=os.getpid(), dataset=checkpoint.dataset)
    try:
        store.record_classes(run.id, checkpoint.classes)
        path = save_checkpoint(store.run_dir(run.id) / DEFAULT_NAME, checkpoint.model, config,
                               checkpoint.classes, metrics or {}, dataset=checkpoint.dataset,
                               shape=checkpoint.shape)
        store.finish(run.id, "completed", message, metrics, str(path))
        return store.get(run.id)
    except (OSError, RuntimeError, CifarError) as exc:  # torch.save: a full disk is RuntimeError
        _forget(store, run.id)
        why = getattr(exc, "strerror", None) or str(exc)
        raise CheckpointError(f"{name} could be read, but it could not be kept in the runs "
                              f"folder {store.root}: {why}") from None


def imported_sentence(run: Run) -> str:
    """What the dashboard says once a network is imported: its run, and its test result or
    that it is tested once the data is here."""
    said = f"Imported {run.config.get('imported_from', 'the network')} as run {run.id}."
    if run.accuracy is not None:
        return said + f" It gets {run.accuracy:.1f} % of the test images right."
    return said + (" There are no test images yet, so it is not tested: that happens by itself "
                   "once the data is here (see the Data page).")


def evaluate_untested_imports(store: RunStore, data: ImageData, data_dir: str) -> list[Run]:
    """Test the imported networks kept untested (imported before the data was there) on
    `data`, read from `data_dir`, and keep their results, once; returns those tested. An
    import that does not fit the data (other class names or pictures: Checkpoint.misfit), or
    whose file is gone, stays untested."""
    tested = []
    for run in store.list("completed"):
        if not is_import(run) or run.metrics is not None or not run.checkpoint:
            continue
        try:
            checkpoint = store.load_model(run.id)
        except CifarError:
            continue
        if not checkpoint.fits(data):
            continue
        metrics = _tested(checkpoint, data)
        record_test(store, run, checkpoint, metrics, data_dir)
        tested.append(store.get(run.id))
    return tested


def record_test(store: RunStore, run: Run, checkpoint: Checkpoint, metrics: dict,
                data_dir: str) -> None:
    """Keep an untested import's test results (evaluate's metrics on the data in
    `data_dir`) with its run and in its network file."""
    name = run.config.get("imported_from", DEFAULT_NAME)
    metrics = {**metrics, "classes": list(metrics.get("classes") or checkpoint.classes)}
    with contextlib.suppress(OSError, RuntimeError):  # the run keeps them even so
        save_checkpoint(run.checkpoint, checkpoint.model, run.config, checkpoint.classes,
                        metrics, dataset=checkpoint.dataset, shape=checkpoint.shape)
    store.record_results(run.id, _import_message(name, checkpoint, metrics), metrics, data_dir)


def _tested(checkpoint: Checkpoint, data: ImageData) -> dict:
    return {**evaluate(checkpoint.model, data, **checkpoint.prediction_options()).metrics(),
            "classes": list(data.classes)}


def _import_message(name: str, checkpoint: Checkpoint, metrics: dict | None) -> str:
    """What the import is, and the data set it fits (plain weights: taken as CIFAR-10's)."""
    how = "a network saved by this app" if _is_ours(checkpoint) else "plain weights"
    return (f"Imported from {name}, {how}: a '{checkpoint.model_name}' network for "
            f"{checkpoint.title} ({len(checkpoint.classes)} classes: "
            f"{_listed(checkpoint.classes)})" +
            (f", tested on {metrics['test_images']:,} test images." if metrics
             else "; not tested yet (there were no test images)."))


def read_network(content: bytes, name: str, max_bytes: int = MAX_BYTES) -> Checkpoint:
    """The network in these bytes of a `.pth` file, rebuilt from the model registry (loaded
    with weights_only=True); CheckpointError with a sentence naming `name` if it cannot be
    used: empty, too large, not a PyTorch file, damaged, holding code, or weights of another
    network or class count."""
    _check_size(len(content), name, max_bytes)
    _check_unpacked_size(content, name)
    with tempfile.TemporaryDirectory(prefix="cifar-import-") as folder:
        path = Path(folder) / DEFAULT_NAME
        path.write_bytes(content)
        try:
            return load_checkpoint(path)
        except CheckpointError as exc:
            # The checkpoint module names the file by its path: here, a temporary one.
            raise CheckpointError(str(exc).replace(str(path), name)) from None


def networks_to_try(runs: list[Run]) -> list[Run]:
    """The runs with a network to try (finished with a saved network, or imported), the most
    accurate first; those without a test result after them, newest first."""
    with_network = runs_with_network(runs)
    return sorted(with_network, key=lambda r: (r.accuracy is None, -(r.accuracy or 0.0),
                                               -r.created))


def network_label(run: Run, name: str | None = None) -> str:
    """A short name for menus: the run's `name` (naming.display_names: an imported network's
    is its file name) with its status and accuracy; without one, views.run_label."""
    if name is None:
        return run_label(run)
    if is_import(run):
        accuracy = f", {run.accuracy:.1f} %" if run.accuracy is not None else ", not tested"
        return f"{name} (imported, {run.config.get('model', '?')}{accuracy})"
    return named_label(run, {run.id: name})


def _check_size(size: int, name: str, max_bytes: int) -> None:
    if size == 0:
        raise CheckpointError(f"{name} is empty (0 bytes): the upload may have failed. Choose "
                              "the file again, or another cifar_net.pth.")
    if size > max_bytes:
        raise _too_large(name, size, max_bytes)


def _too_large(name: str, size: int, max_bytes: int) -> CheckpointError:
    return CheckpointError(
        f"{name} is {size_in_words(size)}; a network file may be at most "
        f"{size_in_words(max_bytes)} (the tutorial's cifar_net.pth is about 250 KB). Is it the "
        "right file?")


def _check_unpacked_size(content: bytes, name: str) -> None:
    if not content.startswith(b"PK\x03\x04"):
        return
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            unpacked = sum(max(0, info.file_size) for info in archive.infolist())
    except Exception:  # not a readable zip: load_checkpoint says what it is
        return
    if unpacked > MAX_UNPACK_RATIO * len(content) + 2**20:
        raise CheckpointError(
            f"{name} would unpack to {size_in_words(unpacked)} from {size_in_words(len(content))}, "
            "which no file saved by torch.save does: it was not opened. Use a cifar_net.pth "
            "saved by this app or by the tutorial.")


def _is_ours(checkpoint: Checkpoint) -> bool:
    return bool(checkpoint.config) or bool(checkpoint.metrics)


def _forget(store: RunStore, run_id: str) -> None:
    """Remove a half-made imported run (it is marked failed if even that is impossible)."""
    try:
        store.finish(run_id, "failed", "Importing its network failed.")
        store.delete(run_id)
    except (RunError, OSError):
        pass


def _listed(classes) -> str:
    shown = ", ".join(classes[:5])
    return shown + (", …" if len(classes) > 5 else "")

"""Issue 27's export targets, measured on the real CIFAR-10 test set.

1. ONNX agrees with PyTorch (as the dashboard computes, test-time augmentation included) on
   all 10,000 test pictures, top-1 identical on >= 99.9 %, for every registered model: the
   fast network is a real one (--fast, a cifar_net.pth trained on CIFAR-10); the others are
   random-weight networks (seeded), whose nearly even probabilities make ties, and so top-1
   disagreements, likelier than a trained network's.
2. Export + check <= 10 s for the fast network: the `export` command as a user runs it (a
   fresh process: Python, torch and the data's cache read included), median of --repeats;
   and the export alone in this process, with the TorchScript-based exporter this app uses
   and with torch.export's (dynamo=True), which it does not (why: the times).

    python bench/bench_export.py --data-dir /tmp/cifar/batches \
        --fast /work/bench_runs2/cpu5min-seed0.pth
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cifar_core.data.dataset import normalize  # noqa: E402
from cifar_core.data.load import load_data  # noqa: E402
from cifar_core.share import network  # noqa: E402
from cifar_core.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from cifar_core.training.evaluation import predict_probabilities  # noqa: E402
from cifar_core.training.models import MODELS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def random_network(folder: Path, name: str, classes) -> Path:
    """A seeded random-weight network of the registered model `name`, at its CPU width."""
    torch.manual_seed(0)
    spec = MODELS[name]
    model = spec.build(len(classes), spec.cpu_width).eval()
    return save_checkpoint(folder / f"{name}.pth", model, {"model": name, "tta": "none"},
                           tuple(classes), {})


def agreement(path: Path, images: torch.Tensor, folder: Path) -> dict:
    """ONNX against PyTorch on every picture: top-1 agreement, largest probability difference."""
    checkpoint = load_checkpoint(path)
    tta = checkpoint.prediction_options()["tta"]
    onnx_file = folder / f"{path.stem}.onnx"
    network.FORMATS["onnx"].write(network.Answering(checkpoint.model, tta).eval(),
                                  torch.zeros(2, *checkpoint.shape), onnx_file)
    answer = network.FORMATS["onnx"].load(onnx_file)
    started = time.perf_counter()
    expected = predict_probabilities(checkpoint.model, images, tta=tta).numpy()
    got = np.concatenate([answer(normalize(images[i:i + 500]).numpy())
                          for i in range(0, len(images), 500)])
    same = got.argmax(1) == expected.argmax(1)
    return {"model": checkpoint.model_name, "tta": tta, "pictures": len(images),
            "top1_identical_percent": 100 * float(same.mean()),
            "disagreements": int((~same).sum()),
            "largest_difference": float(np.abs(got - expected).max()),
            "seconds": time.perf_counter() - started}


def command_seconds(path: Path, data_dir: Path, repeats: int, folder: Path) -> list[float]:
    """Wall time of `python -m cifar_core export FILE --format onnx`, each a fresh process."""
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cifar_core", "export", str(path), "--format",
                        "onnx", "--out", str(folder / f"cli{i}.zip"), "--data-dir",
                        str(data_dir)], check=True, cwd=REPO, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def exporter_seconds(path: Path, folder: Path, repeats: int) -> dict:
    """The fast network's export alone (no check), with each of torch's two ONNX exporters."""
    checkpoint = load_checkpoint(path)
    module = network.Answering(checkpoint.model, checkpoint.prediction_options()["tta"]).eval()
    example = torch.zeros(2, *checkpoint.shape)
    legacy = []
    for _ in range(repeats):
        started = time.perf_counter()
        network.FORMATS["onnx"].write(module, example, folder / "legacy.onnx")
        legacy.append(time.perf_counter() - started)
    started = time.perf_counter()
    import onnxscript  # noqa: F401  (what dynamo=True needs; its import counted once)
    imported = time.perf_counter() - started
    dynamo = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.onnx.export(module, (example,), str(folder / "dynamo.onnx"), dynamo=True,
                          dynamic_shapes={"pixels": {0: torch.export.Dim("pictures")}},
                          input_names=["pixels"], output_names=["probabilities"])
        dynamo.append(time.perf_counter() - started)
    return {"torchscript_based_s": legacy, "dynamo_s": dynamo, "onnxscript_import_s": imported}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--fast", type=Path, required=True, help="a real fast network (.pth)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], help="models to leave out")
    args = parser.parse_args()
    data = load_data("cifar10", args.data_dir, download=False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{len(data.test_images)} test pictures", flush=True)
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        times = command_seconds(args.fast, args.data_dir, args.repeats, folder)
        print(f"export command (fresh process, export + check on {network.CHECK_PICTURES} "
              f"test pictures), fast network: median {statistics.median(times):.2f} s of "
              f"{', '.join(f'{t:.2f}' for t in times)}", flush=True)
        started = time.perf_counter()
        done = network.export_network(None, str(args.fast), "onnx", folder / "in.zip",
                                      data_dir=args.data_dir)
        print(f"export + check in a warm process: {time.perf_counter() - started:.2f} s; "
              f"{done.check.in_words()}", flush=True)
        print("exporters, fast network, export alone:",
              exporter_seconds(args.fast, folder, args.repeats), flush=True)
        for name in MODELS:
            if name in args.skip:
                continue
            path = args.fast if name == "fast" else random_network(folder, name, data.classes)
            result = agreement(path, data.test_images, folder)
            result["weights"] = "real (--fast)" if name == "fast" else "random, seeded"
            print(result, flush=True)


if __name__ == "__main__":
    main()

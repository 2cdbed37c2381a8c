"""Where a fast-network epoch's time goes on this CPU (issue 13): the data path against the step,
bf16 against fp32, and the step's top operations (torch.profiler).

    python bench/bench_fast_profile.py [DATA_DIR]

Results: bench/RESULTS.md ("The fast network on a 2-core CPU").
"""
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from cifar_core.data.load import load_cifar10  # noqa: E402
from cifar_core.training.config import TrainConfig, preset_values  # noqa: E402
from cifar_core.training.evaluation import predict  # noqa: E402
from cifar_core.training.loop import build_model  # noqa: E402
from cifar_core.training.speed import open_step  # noqa: E402
from cifar_core.training.speed.minibatches import Minibatches  # noqa: E402


def main() -> None:
    data = load_cifar10(sys.argv[1] if len(sys.argv) > 1 else
                        os.environ.get("CIFAR_DATA_DIR") or "/tmp/cifar/batches")
    cpu = torch.device("cpu")
    base = {**preset_values("cpu-5min"), "seed": 0}
    # The data path alone: one epoch of minibatches, without and with augmentation.
    for augment in ("none", "flip+translate"):
        batches = Minibatches(data, torch.arange(len(data.train_labels)), 512, cpu, augment)
        generator = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        for _ in batches.epoch(generator):
            pass
        seconds = time.perf_counter() - start
        print(f"data path, augment {augment}: {seconds:.2f} s per epoch")
    x, y = torch.randn(512, 3, 32, 32), torch.randint(0, 10, (512,))
    for precision in ("bf16", "fp32"):
        config = TrainConfig.from_dict({**base, "precision": precision})
        model = build_model(config)
        with open_step(model, config, cpu, 1000) as step:
            for _ in range(2):
                step(x, y)
            start = time.perf_counter()
            for _ in range(6):
                step(x, y).item()
            seconds = (time.perf_counter() - start) / 6
        images = data.test_images[:2000]
        start = time.perf_counter()
        predict(model, images, cpu, tta="flip", precision=precision)
        test_s = time.perf_counter() - start
        print(f"step {precision}: {512 / seconds:,.0f} images/s; test with flip TTA: "
              f"{len(images) / test_s:,.0f} images/s")
    config = TrainConfig.from_dict(base)
    model = build_model(config)
    with open_step(model, config, cpu, 1000) as step:
        for _ in range(2):
            step(x, y)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(4):
                step(x, y).item()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))


if __name__ == "__main__":
    main()

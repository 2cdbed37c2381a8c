"""Where cifar_core's batch-4 training step spends its time, and which runtime knobs speed it up.

    python bench/profile_knobs.py [--data-dir D] [--steps 2000] [--repeats 5] [--quick]

Three parts, each printed as Markdown and written as JSON to bench/out/:
1. knob grid: cifar_core's inner loop (same data path: slices of one shuffled, normalised
   tensor; same zero_grad/forward/loss/backward/step) for every combination of
   torch.set_num_threads 1 | 2, SGD foreach=True | foreach=False | fused=True, and running loss
   kept as a tensor (cifar_core: one .item() per 50 steps) | loss.item() every step (the
   tutorial). All configurations in one process, interleaved (the order rotates each round),
   median of --repeats rounds of --steps steps;
2. runtime settings through the real cifar_core.train.train, each run in a fresh process: as
   shipped (runtime_settings: for CPU batches <= 16, oneDNN off and 2 threads) vs
   runtime_settings replaced by fixed threads with oneDNN (mkldnn) on or off, at batch 4, 32
   and 128;
3. profiles of cifar_core.train.train at batch 4 for --steps steps: torch.profiler's operator
   table and cProfile's Python functions.
Nothing in cifar_core is changed: part 2 replaces runtime_settings only inside its own child.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import io
import itertools
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn, optim

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
DEFAULT_DATA_DIR = Path(os.environ.get("CIFAR_DATA_DIR") or "/tmp/cifar/batches")
# Run as a script, Python puts bench/ on the path, not the repository root that holds cifar_core.
sys.path.insert(0, str(ROOT))
from cifar_core.model import Net  # noqa: E402
from cifar_core.train import DIVERGENCE_CHECK_EVERY  # noqa: E402

# cifar_core ships, for CPU batches <= 16: 2 threads, oneDNN off, fused SGD, loss as a tensor.
SHIPPED = ("2", "fused", "tensor", "False")


@dataclass(frozen=True)
class Knobs:
    """One combination of the runtime settings under test."""

    threads: int  # torch.set_num_threads
    optimizer: str  # foreach | for-loop | fused
    loss: str  # tensor | item
    onednn: bool = True  # torch.backends.mkldnn (oneDNN) convolutions

    @property
    def label(self) -> str:
        return (f"threads={self.threads} sgd={self.optimizer} loss={self.loss} "
                f"onednn={'on' if self.onednn else 'off'}")

    @property
    def shipped(self) -> bool:
        return (str(self.threads), self.optimizer, self.loss, str(self.onednn)) == SHIPPED


def make_optimizer(model: nn.Module, kind: str) -> optim.Optimizer:
    """SGD(lr=0.001, momentum=0.9) with the chosen implementation."""
    flags = {"foreach": {"foreach": True}, "for-loop": {"foreach": False},
             "fused": {"fused": True}}[kind]
    return optim.SGD(model.parameters(), lr=0.001, momentum=0.9, **flags)


def training_tensors(data_dir: Path | None, images: int, device: torch.device,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`images` shuffled, normalised training images and labels on the device, as
    cifar_core.train lays them out (random pixels with --synthetic: speed does not care)."""
    generator = torch.Generator().manual_seed(seed)
    if data_dir is None:
        inputs = torch.rand(images, 3, 32, 32, generator=generator).mul_(2).sub_(1)
        labels = torch.randint(10, (images,), generator=generator)
    else:
        from cifar_core.data import load_cifar10
        from cifar_core.dataset import normalize

        data = load_cifar10(data_dir)
        order = torch.randperm(len(data.train_labels), generator=generator)[:images]
        inputs, labels = normalize(data.train_images[order]), data.train_labels[order]
    return inputs.to(device), labels.to(device)


def timed_steps(knobs: Knobs, inputs: torch.Tensor, labels: torch.Tensor, steps: int,
                batch_size: int, device: torch.device) -> float:
    """images/s of `steps` training steps of cifar_core's loop with these knobs."""
    torch.set_num_threads(knobs.threads)
    torch.backends.mkldnn.enabled = knobs.onednn
    torch.manual_seed(0)
    model = Net().to(device).train()
    criterion = nn.CrossEntropyLoss()
    optimizer = make_optimizer(model, knobs.optimizer)
    running_loss = torch.zeros((), device=device) if knobs.loss == "tensor" else 0.0
    per_epoch = len(labels) // batch_size
    _sync(device)
    start = time.perf_counter()
    for step in range(steps):
        i = step % per_epoch
        x = inputs[i * batch_size:(i + 1) * batch_size]
        y = labels[i * batch_size:(i + 1) * batch_size]
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        if knobs.loss == "tensor":
            running_loss += loss.detach()
            if (step + 1) % DIVERGENCE_CHECK_EVERY == 0:  # cifar_core's NaN check syncs here
                running_loss.item()
        else:
            running_loss += loss.item()
    _sync(device)
    return steps * batch_size / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def knob_grid(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Part 1: every combination, interleaved, --repeats rounds."""
    threads = args.grid_threads or sorted({1, min(2, os.cpu_count() or 1), *args.threads})
    grid = [Knobs(t, o, lo, dnn) for t, o, lo, dnn in
            itertools.product(threads, ("foreach", "for-loop", "fused"), ("tensor", "item"),
                              (True, False))]
    inputs, labels = training_tensors(None if args.synthetic else args.data_dir,
                                      args.steps * args.batch_size, device)
    for knobs in grid:  # warm-up: first-call costs (allocator, kernels) out of the timings
        timed_steps(knobs, inputs, labels, min(100, args.steps), args.batch_size, device)
    samples: dict[Knobs, list[float]] = {k: [] for k in grid}
    for round_ in range(args.repeats):
        shift = round_ * len(grid) // max(args.repeats, 1)
        for knobs in grid[shift:] + grid[:shift]:
            samples[knobs].append(timed_steps(knobs, inputs, labels, args.steps,
                                              args.batch_size, device))
        print(f"knob grid: round {round_ + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    torch.set_num_threads(args.default_threads)
    return [{**asdict(k), "label": k.label, "shipped": k.shipped,
             "median": statistics.median(v), "min": min(v), "max": max(v), "samples": v}
            for k, v in samples.items()]


# --- part 2: the real train() in fresh processes -----------------------------------------------

def real_train_worker(task: dict) -> dict:
    """Child: cifar_core.train.train with runtime_settings as shipped or fixed (threads, oneDNN)."""
    from cifar_core.data import load_cifar10

    # The module, not the package attribute: cifar_core/__init__ re-exports the train function
    # under the same name, so `import cifar_core.train as m` would give the function.
    train_module = importlib.import_module("cifar_core.train")

    if task["threads"] is not None:
        @contextlib.contextmanager
        def fixed_settings(_batch_size: int, _device: torch.device):
            torch.set_num_threads(task["threads"])
            torch.backends.mkldnn.enabled = task.get("onednn", True)
            yield

        train_module.runtime_settings = fixed_settings
    data = load_cifar10(task["data_dir"])
    config = train_module.TrainConfig(epochs=1, batch_size=task["batch_size"], seed=0,
                                      train_size=task["images"], device=task["device"],
                                      log_every=1_000_000)
    model = train_module.build_model(config)
    for event in train_module.train(config, data, model):
        if event.kind == "done":  # read the threads now: train() restores them when it ends
            done, threads = event, torch.get_num_threads()
    return {"images_per_s": done.images_per_s, "threads": threads}


# (name, threads or None for runtime_settings as shipped, oneDNN on, extra environment)
THREAD_SETTINGS = (
    ("shipped", None, True, {}),
    ("1 thread(s), oneDNN", 1, True, {}),
    ("2 thread(s), oneDNN", 2, True, {}),
    ("1 thread(s), no oneDNN", 1, False, {}),
    ("2 thread(s), no oneDNN", 2, False, {}),
)


def real_train_threads(args: argparse.Namespace) -> list[dict]:
    """Part 2: the THREAD_SETTINGS, interleaved, each run a fresh interpreter; with
    --busy-cores N, N processes spinning on the CPU compete with every run (a controlled
    stand-in for a shared machine)."""
    from bench_train import LoadMeter

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.busy_cores)]
    rows = []
    try:
        for round_ in range(args.real_repeats):
            for batch in args.thread_batches:
                for name, threads, onednn, env in THREAD_SETTINGS:
                    task = {"threads": threads, "onednn": onednn, "batch_size": batch,
                            "data_dir": str(args.data_dir), "images": args.steps * 4,
                            "device": str(args.device)}
                    meter = LoadMeter()
                    out = subprocess.run([sys.executable, str(Path(__file__).resolve()),
                                          "--worker", json.dumps(task)], cwd=ROOT, check=True,
                                         capture_output=True, text=True,
                                         env={**os.environ, **env})
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    rows.append({"round": round_ + 1, "batch_size": batch, "setting": name,
                                 "other_cores": meter.other_cores(), **result})
            print(f"real train(): round {round_ + 1}/{args.real_repeats} done",
                  file=sys.stderr, flush=True)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    return rows


# --- part 3: profiles ---------------------------------------------------------------------------

def profile_train(args: argparse.Namespace) -> dict:
    """Part 3: torch.profiler and cProfile over the minibatches of cifar_core.train.train
    (the end-of-epoch test pass is left out: profiling stops at the last minibatch's report)."""
    from cifar_core.data import load_cifar10
    from cifar_core.train import TrainConfig, build_model, train

    data = load_cifar10(args.data_dir)
    config = TrainConfig(epochs=1, batch_size=4, seed=0, train_size=args.steps * 4,
                         device=str(args.device), log_every=1_000_000)
    out = {}
    for tool in ("torch.profiler", "cProfile"):
        model = build_model(config)
        profiler = (torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                    if tool == "torch.profiler" else cProfile.Profile())
        if tool == "torch.profiler":
            profiler.start()
        else:
            profiler.enable()
        start = time.perf_counter()
        for event in train(config, data, model):
            if event.kind == "stats" and event.fraction_done >= 1.0:
                break
        seconds = time.perf_counter() - start
        if tool == "torch.profiler":
            profiler.stop()
            table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
        else:
            profiler.disable()
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(25)
            table = stream.getvalue()
        out[tool] = {"seconds_profiled": seconds, "table": table}
    torch.set_num_threads(args.default_threads)
    return out


# --- report -------------------------------------------------------------------------------------

def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"## profile_knobs.py {'(QUICK) ' if report['quick'] else ''}- {report['started']}",
             "", f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, device "
                 f"{m['device']}; load average {report['loadavg_start']} at the start, "
                 f"{report['loadavg_end']} at the end.", ""]
    grid = report.get("grid")
    if grid:
        shipped = next(r["median"] for r in grid if r["shipped"])
        lines += [f"### Knob grid: batch {report['batch_size']}, {report['steps']} steps, "
                  f"median of {report['repeats']} interleaved rounds (images/s)", "",
                  "| threads | SGD | running loss | median | min | max | vs shipped |",
                  "|---:|---|---|---:|---:|---:|---:|"]
        for r in sorted(grid, key=lambda r: -r["median"]):
            mark = " (shipped)" if r["shipped"] else ""
            lines.append(f"| {r['threads']} | {r['optimizer']} | {r['loss']}{mark} | "
                         f"{r['median']:,.0f} | {r['min']:,.0f} | {r['max']:,.0f} | "
                         f"{r['median'] / shipped:.3f} |")
        lines.append("")
        for name, values in (("threads", {r["threads"] for r in grid}),
                             ("optimizer", {r["optimizer"] for r in grid}),
                             ("loss", {r["loss"] for r in grid})):
            cells = ", ".join(
                f"{v}: {statistics.median(r['median'] for r in grid if r[name] == v):,.0f}"
                for v in sorted(values, key=str))
            lines.append(f"- median over the other knobs, by {name}: {cells}")
        lines.append("")
    real = report.get("real_train")
    if real:
        busy = (f", {report['busy_cores']} busy-loop process(es) competing"
                if report.get("busy_cores") else "")
        lines += ["### Threads through the real cifar_core.train.train (fresh process each, "
                  f"{report['steps'] * 4:,} images, {report['real_repeats']} interleaved "
                  f"rounds{busy}, images/s; others = cores other processes kept busy)", "",
                  "| batch | setting | threads | median | all runs (round order) | others |",
                  "|---:|---|---:|---:|---|---|"]
        for batch in sorted({r["batch_size"] for r in real}):
            for setting, _threads, _onednn, _env in THREAD_SETTINGS:
                rows = [r for r in real if r["batch_size"] == batch and r["setting"] == setting]
                if rows:
                    values = [r["images_per_s"] for r in rows]
                    others = [r.get("other_cores", 0.0) for r in rows]
                    lines.append(f"| {batch} | {setting} | {rows[0]['threads']} | "
                                 f"{statistics.median(values):,.0f} | "
                                 f"{', '.join(f'{v:,.0f}' for v in values)} | "
                                 f"{', '.join(f'{o:.2f}' for o in others)} |")
        lines.append("")
    prof = report.get("profile")
    if prof:
        for tool, p in prof.items():
            lines += [f"### {tool}: cifar_core.train.train, batch 4, {report['steps']} steps "
                      f"({p['seconds_profiled']:.1f} s with the profiler on)", "", "```",
                      p["table"].strip(), "```", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Profile cifar_core's batch-4 loop and time "
                                                 "runtime knobs.")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--steps", type=int, default=2000, help="minibatches per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--real-repeats", type=int, default=3,
                        help="interleaved rounds of the real-train() thread comparison")
    parser.add_argument("--busy-cores", type=int, default=0,
                        help="busy-loop processes competing during the real-train() runs")
    parser.add_argument("--batch-size", type=int, default=4, help="for the knob grid")
    parser.add_argument("--threads", type=int, nargs="*", default=[],
                        help="thread counts to try besides 1 and 2")
    parser.add_argument("--grid-threads", type=int, nargs="+", default=None,
                        help="only these thread counts in the knob grid (e.g. 1)")
    parser.add_argument("--thread-batches", type=int, nargs="+", default=[4, 32, 128],
                        help="batch sizes for the real-train() thread comparison")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--synthetic", action="store_true",
                        help="random pixels instead of CIFAR-10 for the knob grid")
    parser.add_argument("--parts", nargs="+", default=["grid", "real", "profile"],
                        choices=["grid", "real", "profile"])
    parser.add_argument("--quick", action="store_true", help="200 steps, 1 round: a smoke test")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.real_repeats = 200, 1, 1
    args.device = torch.device(args.device)
    args.default_threads = torch.get_num_threads()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(real_train_worker(json.loads(args.worker))))
        return 0
    from bench_train import _loadavg, machine_info

    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": args.quick,
              "machine": machine_info(str(args.device)), "loadavg_start": _loadavg(),
              "steps": args.steps, "repeats": args.repeats, "real_repeats": args.real_repeats,
              "batch_size": args.batch_size, "busy_cores": args.busy_cores}
    if "grid" in args.parts:
        report["grid"] = knob_grid(args, args.device)
    if "real" in args.parts:
        report["real_train"] = real_train_threads(args)
    if "profile" in args.parts:
        report["profile"] = profile_train(args)
    report["loadavg_end"] = _loadavg()
    report["markdown"] = markdown(report)
    from bench_train import write_report

    write_report(report, "profile_knobs", args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

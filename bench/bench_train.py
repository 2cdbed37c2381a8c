"""How much faster cifar_core is than the PyTorch CIFAR-10 tutorial it re-implements.

    python bench/bench_train.py [--data-dir D] [--seeds 0 1] [--epochs 2] [--quick]

Four benchmarks in one run, every measurement in a fresh Python process (so a thread setting
or the memory of one cannot leak into the next), tutorial and cifar_core interleaved:
(a) training at the tutorial's settings: bench/tutorial_loop.py vs cifar_core.training.loop.train;
(b) evaluating the 10,000 test images: the tutorial's test loop vs training.evaluation.evaluate;
(c) batch scaling: cifar_core's images/s at batch 4, 32, 128, 512;
(d) job runner overhead: JobRunner.start + wait vs the bare `python -m cifar_core train --json`.
It prints the machine and a Markdown report, and writes both as JSON to bench/out/.
See bench/RESULTS.md for what each figure means and the figures measured so far.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
DEFAULT_DATA_DIR = Path(os.environ.get("CIFAR_DATA_DIR") or "/tmp/cifar/batches")
BATCH_SIZES = (4, 32, 128, 512)
# Run as a script, Python puts bench/ on the path, not the repository root that holds cifar_core.
sys.path.insert(0, str(ROOT))


# --- settings ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """Sizes of every benchmark; --quick shrinks them so the whole script runs in about a
    minute (a smoke test of the real code paths, not a measurement)."""

    seeds: tuple[int, ...]
    epochs: int  # (a): the tutorial's 2
    train_size: int | None  # (a): None = all 50,000 images, as the tutorial
    test_size: int | None  # (a) tutorial's final test and (b): None = all 10,000 images
    eval_repeats: int  # (b): per side
    batch_sizes: tuple[int, ...]  # (c)
    scaling_size: int | None  # (c): images per measurement (1 epoch); None = 50,000
    job_size: int  # (d): training images (1 epoch) per run
    job_repeats: int  # (d): per side

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        if args.quick:
            return cls(seeds=tuple(args.seeds[:1]), epochs=1, train_size=2000, test_size=2000,
                       eval_repeats=1, batch_sizes=tuple(args.batch_sizes), scaling_size=2000,
                       job_size=2000, job_repeats=1)
        return cls(seeds=tuple(args.seeds), epochs=args.epochs, train_size=args.train_size,
                   test_size=None, eval_repeats=args.eval_repeats,
                   batch_sizes=tuple(args.batch_sizes), scaling_size=args.scaling_size,
                   job_size=args.job_size, job_repeats=args.job_repeats)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Tutorial loop vs cifar_core, interleaved.")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder holding cifar-10-batches-py/ (default: $CIFAR_DATA_DIR "
                             "or /tmp/cifar/batches)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=None,
                        help="(a) training images, class-balanced (default: all 50,000)")
    parser.add_argument("--eval-repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--scaling-size", type=int, default=None,
                        help="(c) images per batch-size measurement (default: all 50,000)")
    parser.add_argument("--job-size", type=int, default=20_000)
    parser.add_argument("--job-repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu",
                        help="cifar_core's device (the tutorial loop always runs on the CPU)")
    parser.add_argument("--parts", nargs="+", default=["train", "eval", "scaling", "jobs"],
                        choices=["train", "eval", "scaling", "jobs"])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, one seed, one repeat: checks the script in ~1 minute")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--before", type=Path, default=None,
                        help="a checkout of the code before a change (e.g. `git worktree add "
                             "/tmp/before <commit>`): (a) also trains with its cifar_core, "
                             "interleaved, and reports the ratio now / before")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one measurement, in a child
    return parser.parse_args(argv)


# --- the machine and its load -----------------------------------------------------------------

def machine_info(device: str) -> dict:
    """CPU model, cores, versions: printed with every result."""
    import torch
    import torchvision

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": model, "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "python": platform.python_version(),
            "torch_default_threads": torch.get_num_threads(), "device": device, "gpu": gpu,
            "platform": platform.platform()}


def _busy_cpu_s() -> float:
    """CPU seconds all processes on this machine have used since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class LoadMeter:
    """How many cores other processes kept busy while a measurement ran (ours excluded), so a
    figure taken on a shared machine says how shared it was."""

    def __init__(self):
        self.wall, self.busy, self.own = time.monotonic(), _busy_cpu_s(), _own_cpu_s()

    def other_cores(self) -> float:
        wall = max(time.monotonic() - self.wall, 1e-9)
        others = (_busy_cpu_s() - self.busy) - (_own_cpu_s() - self.own)
        return max(0.0, others / wall)


# --- one measurement, in a child process --------------------------------------------------------

def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ours_train(task: dict) -> dict:
    """cifar_core.training.loop.train, as the CLI and the job runner call it."""
    import torch

    from cifar_core.data.load import load_cifar10
    from cifar_core.training.config import TrainConfig
    from cifar_core.training.loop import build_model, train

    start = time.perf_counter()
    data = load_cifar10(task["data_dir"])
    load_s = time.perf_counter() - start
    config = TrainConfig(epochs=task["epochs"], batch_size=task["batch_size"],
                         seed=task["seed"], train_size=task["train_size"],
                         device=task["device"], log_every=task.get("log_every", 2000))
    model = build_model(config, len(data.classes))
    accuracy, done = None, None
    start = time.perf_counter()
    for event in train(config, data, model):
        if event.kind == "stats" and task.get("verbose", True):
            _log(f"[{event.epoch}, {event.minibatch:5d}] loss: {event.loss:.3f}")
        elif event.kind == "epoch":
            accuracy = event.test_accuracy
        elif event.kind == "done":  # read the threads now: train() restores them at its end
            done, threads = event, torch.get_num_threads()
    wall_s = time.perf_counter() - start
    if task.get("save_model"):
        torch.save(model.state_dict(), task["save_model"])
    return {"images": done.images_seen, "images_per_s": done.images_per_s,
            "train_s": done.train_s, "wall_s": wall_s, "load_s": load_s,
            "end_to_end_s": load_s + wall_s, "accuracy": accuracy,
            "threads": threads, "status": done.status}


def _tutorial_train(task: dict) -> dict:
    """bench/tutorial_loop.py: the tutorial's training and test sections."""
    import torch
    import tutorial_loop

    start = time.perf_counter()
    trainset = tutorial_loop.load_trainset(task["data_dir"])
    testset = tutorial_loop.load_testset(task["data_dir"])
    load_s = time.perf_counter() - start
    training = tutorial_loop.train_tutorial(trainset, task["epochs"], task["seed"],
                                            task["train_size"], log=_log)
    test = tutorial_loop.test_tutorial(training.net, _first(testset, task.get("test_size")))
    if task.get("save_model"):
        torch.save(training.net.state_dict(), task["save_model"])
    return {"images": training.images, "images_per_s": training.images_per_s,
            "train_s": training.train_s, "wall_s": training.train_s + test.test_s,
            "load_s": load_s, "end_to_end_s": load_s + training.train_s + test.test_s,
            "accuracy": test.accuracy, "test_s": test.test_s, "threads": training.threads}


def _spread(size: int | None, total: int) -> slice:
    """`size` evenly spaced positions out of `total` (all for None): --quick tests fewer images.
    Evenly spaced, not the first ones: the offline test batch is sorted by class."""
    if size is None or size >= total:
        return slice(None)
    return slice(0, total // size * size, total // size)


def _first(dataset, size: int | None):
    """The test images _spread picks, as a dataset for the tutorial's DataLoader."""
    from torch.utils.data import Subset

    picked = _spread(size, len(dataset))
    return dataset if picked == slice(None) else Subset(dataset,
                                                        range(len(dataset))[picked])


def _trained_net(task: dict):
    import torch

    from cifar_core.training.models import Net

    torch.manual_seed(0)
    net = Net()
    if task.get("model") and Path(task["model"]).is_file():
        net.load_state_dict(torch.load(task["model"], weights_only=True))
    return net


def _tutorial_eval(task: dict) -> dict:
    import torch
    import tutorial_loop

    testset = _first(tutorial_loop.load_testset(task["data_dir"]), task.get("test_size"))
    test = tutorial_loop.test_tutorial(_trained_net(task), testset)
    return {"eval_s": test.test_s, "accuracy": test.accuracy, "images": test.images,
            "threads": torch.get_num_threads()}


def _ours_eval(task: dict) -> dict:
    import torch

    from cifar_core.data.load import load_cifar10
    from cifar_core.training.devices import resolve_device
    from cifar_core.training.evaluation import evaluate

    data = load_cifar10(task["data_dir"])
    if task.get("test_size"):
        picked = _spread(task["test_size"], len(data.test_labels))
        data = replace(data, test_images=data.test_images[picked],
                       test_labels=data.test_labels[picked])
    net, device = _trained_net(task), resolve_device(task["device"])
    net.to(device)
    start = time.perf_counter()
    result = evaluate(net, data, device)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    evaluate(net, data, device)
    second_s = time.perf_counter() - start
    return {"eval_s": first_s, "second_call_s": second_s, "accuracy": result.accuracy,
            "images": len(result.labels), "threads": torch.get_num_threads()}


WORKERS = {"ours_train": _ours_train, "tutorial_train": _tutorial_train,
           "tutorial_eval": _tutorial_eval, "ours_eval": _ours_eval}


def worker_main(task_json: str) -> int:
    """Child side: run one measurement and write its figures to task['result']."""
    sys.path.insert(0, str(ROOT / "bench"))
    task = json.loads(task_json)
    result = WORKERS[task["kind"]](task)
    Path(task["result"]).write_text(json.dumps(result))
    return 0


def measure(task: dict, tmp: Path, root: Path = ROOT) -> dict:
    """Parent side: run one task in a fresh interpreter, with the cifar_core (and this script)
    of the checkout `root`; its output goes to our stderr."""
    result = tmp / f"result-{time.monotonic_ns()}.json"
    meter = LoadMeter()
    subprocess.run([sys.executable, str(root / "bench" / "bench_train.py"), "--worker",
                    json.dumps({**task, "result": str(result)})],
                   cwd=root, stdout=sys.stderr, check=True)
    return {**json.loads(result.read_text()), "other_cores": meter.other_cores()}


# --- the four benchmarks ------------------------------------------------------------------------

def bench_training(plan: Plan, args: argparse.Namespace, tmp: Path) -> list[dict]:
    """(a) tutorial seed0, ours seed0, tutorial seed1, ours seed1, ... (with --before, the
    earlier cifar_core beside ours, in alternating order)"""
    rows = []
    for i, seed in enumerate(plan.seeds):
        # With --before, the two cifar_cores take turns at running right after the tutorial
        # (the machine right after 100 s of a 2-thread loop is not the same machine).
        ours = ("cifar_core", "before") if i % 2 == 0 else ("before", "cifar_core")
        loops = ("tutorial", *ours) if args.before else ("tutorial", "cifar_core")
        for loop in loops:
            _log(f"== (a) training: {loop}, seed {seed}")
            task = {"kind": "tutorial_train" if loop == "tutorial" else "ours_train",
                    "data_dir": str(args.data_dir), "epochs": plan.epochs, "seed": seed,
                    "train_size": plan.train_size, "test_size": plan.test_size,
                    "batch_size": 4, "device": args.device}
            if seed == plan.seeds[0] and loop == "tutorial":
                task["save_model"] = str(tmp / "tutorial_net.pth")
            root = args.before.resolve() if loop == "before" else ROOT
            rows.append({"loop": loop, "seed": seed, **measure(task, tmp, root)})
    return rows


def bench_eval(plan: Plan, args: argparse.Namespace, tmp: Path) -> list[dict]:
    """(b) the same trained weights (the tutorial's, seed 0) through both test paths."""
    rows = []
    task = {"data_dir": str(args.data_dir), "model": str(tmp / "tutorial_net.pth"),
            "device": args.device, "test_size": plan.test_size}
    for repeat in range(plan.eval_repeats):
        for loop, kind in (("tutorial", "tutorial_eval"), ("cifar_core", "ours_eval")):
            _log(f"== (b) evaluation: {loop}, repeat {repeat + 1}")
            rows.append({"loop": loop, "repeat": repeat + 1,
                         **measure({**task, "kind": kind}, tmp)})
    return rows


def bench_scaling(plan: Plan, args: argparse.Namespace, tmp: Path) -> list[dict]:
    """(c) cifar_core's throughput at growing batch sizes (1 epoch, same lr: only speed counts)."""
    rows = []
    for seed in plan.seeds:
        for batch in plan.batch_sizes:
            _log(f"== (c) batch scaling: batch {batch}, seed {seed}")
            task = {"kind": "ours_train", "data_dir": str(args.data_dir), "epochs": 1,
                    "seed": seed, "train_size": plan.scaling_size, "batch_size": batch,
                    "device": args.device, "log_every": 1_000_000, "verbose": False}
            rows.append({"batch_size": batch, "seed": seed, **measure(task, tmp)})
    return rows


def _run_cli(plan: Plan, args: argparse.Namespace, seed: int, tmp: Path) -> dict:
    cmd = [sys.executable, "-m", "cifar_core", "train", "--json",
           "--data-dir", str(args.data_dir), "--runs-dir", str(tmp / "runs-cli"),
           "--epochs", "1", "--train-size", str(plan.job_size), "--seed", str(seed),
           "--device", args.device, "--out", str(tmp / "cli_net.pth")]
    # The environment the job runner gives its runs (its share of the cores), so that both
    # paths train the same way and the difference is the runner's overhead.
    from cifar_core.runs.jobs import job_environment

    meter = LoadMeter()
    start = time.perf_counter()
    summary, result_s = None, None
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                          env=job_environment(1)) as proc:
        for line in proc.stdout:
            if line.startswith("{") and json.loads(line).get("kind") == "summary":
                summary, result_s = json.loads(line), time.perf_counter() - start
    wall_s = time.perf_counter() - start
    if proc.returncode != 0 or summary is None:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit status {proc.returncode})")
    return {"images_per_s": summary["images_per_s"], "train_s": summary["train_s"],
            "result_s": result_s, "wall_s": wall_s, "accuracy": summary["accuracy"],
            "status": summary["status"], "other_cores": meter.other_cores()}


def _run_job(plan: Plan, args: argparse.Namespace, seed: int, tmp: Path) -> dict:
    from cifar_core import scheduler
    from cifar_core.runs.jobs import JobRunner
    from cifar_core.runs.store import RunStore
    from cifar_core.training.config import TrainConfig

    runner = JobRunner(RunStore(tmp / "runs-jobs"))
    config = TrainConfig(epochs=1, train_size=plan.job_size, seed=seed, device=args.device)
    meter = LoadMeter()
    start = time.perf_counter()
    run = runner.start(config, data_dir=args.data_dir, origin="bench")
    run = scheduler.wait(runner.store, run.id, timeout=3600)
    result_s = time.perf_counter() - start
    # wait() returns once the run is recorded as finished; the job's interpreter is still
    # shutting down then. Reap it: for the exit time, and so that its CPU time counts as ours
    # (os.times children), not as another process's load.
    with contextlib.suppress(ChildProcessError, TypeError):
        os.waitpid(run.pid, 0)
    wall_s = time.perf_counter() - start
    metrics = run.metrics or {}
    return {"images_per_s": metrics.get("images_per_s"), "train_s": metrics.get("train_s"),
            "result_s": result_s, "wall_s": wall_s, "accuracy": metrics.get("accuracy"),
            "status": run.status, "other_cores": meter.other_cores()}


def bench_jobs(plan: Plan, args: argparse.Namespace, tmp: Path) -> list[dict]:
    """(d) the same short run through the bare CLI and through JobRunner, interleaved."""
    rows = []
    for repeat in range(plan.job_repeats):
        for path, run in (("cli", _run_cli), ("job_runner", _run_job)):
            _log(f"== (d) job overhead: {path}, repeat {repeat + 1}")
            rows.append({"path": path, "repeat": repeat + 1,
                         **run(plan, args, plan.seeds[0], tmp)})
    return rows


# --- the report ---------------------------------------------------------------------------------

def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def summarise(results: dict) -> dict:
    """The headline ratios."""
    out: dict = {}
    train = results.get("train") or []
    if train:
        by = {(r["loop"], r["seed"]): r for r in train}
        ratios = [by[("cifar_core", s)]["images_per_s"] / by[("tutorial", s)]["images_per_s"]
                  for s in sorted({r["seed"] for r in train})
                  if ("cifar_core", s) in by and ("tutorial", s) in by]
        e2e = [by[("tutorial", s)]["end_to_end_s"] / by[("cifar_core", s)]["end_to_end_s"]
               for s in sorted({r["seed"] for r in train})
               if ("cifar_core", s) in by and ("tutorial", s) in by]
        out["train_images_per_s_ratio"] = _median(ratios)
        out["train_end_to_end_speedup"] = _median(e2e)
        before = [by[("before", s)]["images_per_s"] / by[("tutorial", s)]["images_per_s"]
                  for s in sorted({r["seed"] for r in train})
                  if ("before", s) in by and ("tutorial", s) in by]
        now_vs_before = [by[("cifar_core", s)]["images_per_s"] / by[("before", s)]["images_per_s"]
                         for s in sorted({r["seed"] for r in train})
                         if ("before", s) in by and ("cifar_core", s) in by]
        out["before_images_per_s_ratio"] = _median(before)
        out["now_vs_before"] = _median(now_vs_before)
    evals = results.get("eval") or []
    if evals:
        tut = _median(r["eval_s"] for r in evals if r["loop"] == "tutorial")
        ours = _median(r["eval_s"] for r in evals if r["loop"] == "cifar_core")
        out["eval_tutorial_s"], out["eval_ours_s"] = tut, ours
        out["eval_speedup"] = tut / ours if tut and ours else None
    scaling = results.get("scaling") or []
    if scaling:
        out["scaling_images_per_s"] = {
            b: _median(r["images_per_s"] for r in scaling if r["batch_size"] == b)
            for b in sorted({r["batch_size"] for r in scaling})}
    jobs = results.get("jobs") or []
    if jobs:
        cli = [r for r in jobs if r["path"] == "cli"]
        job = [r for r in jobs if r["path"] == "job_runner"]
        ratios = [j["images_per_s"] / c["images_per_s"] for c, j in zip(cli, job, strict=False)
                  if c["images_per_s"] and j["images_per_s"]]
        out["jobs_images_per_s_ratio"] = _median(ratios)
        out["jobs_cli_wall_s"] = _median(r["wall_s"] for r in cli)
        out["jobs_runner_wall_s"] = _median(r["wall_s"] for r in job)
        out["jobs_cli_result_s"] = _median(r.get("result_s") for r in cli)
        out["jobs_runner_result_s"] = _median(r.get("result_s") for r in job)
    return out


def markdown(report: dict) -> str:
    """The whole report as Markdown."""
    m, plan, res, s = report["machine"], report["plan"], report["results"], report["summary"]
    quick = "(QUICK: a smoke test, not a measurement) " if plan["quick"] else ""
    lines = [f"## bench_train.py {quick}- {report['started']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), "
             f"torch {m['torch']}, torchvision {m['torchvision']}, Python {m['python']}; "
             f"cifar_core device: {m['device']}"
             + (f" ({m['gpu']})" if m["gpu"] and m["device"] != "cpu" else "")
             + f"; tutorial: cpu, torch default threads = {m['torch_default_threads']}.",
             f"Load: 1-min load average {report['loadavg_start']} at the start, "
             f"{report['loadavg_end']} at the end; other processes kept "
             f"{report['other_cores']:.2f} cores busy on average during the run "
             "(column 'others' = the same, per measurement).", ""]
    if res.get("train"):
        size = "50,000" if plan["train_size"] is None else f"{plan['train_size']:,}"
        lines += [f"### (a) Training at the tutorial's settings (batch 4, SGD 0.001/0.9, "
                  f"{plan['epochs']} epoch(s), {size} images)", "",
                  "| seed | loop | images/s | train s | end-to-end s | test acc % | threads "
                  "| others |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        if plan["test_size"] is not None:
            lines[-2:-2] = [f"(The tutorial's test accuracy here is over {plan['test_size']:,} "
                            "evenly spaced test images; cifar_core's over all 10,000.)", ""]
        for r in res["train"]:
            lines.append(f"| {r['seed']} | {r['loop']} | {_fmt(r['images_per_s'])} | "
                         f"{r['train_s']:.1f} | {r['end_to_end_s']:.1f} | "
                         f"{_fmt(r['accuracy'], '.2f')} | {r['threads']} | "
                         f"{r['other_cores']:.2f} |")
        lines += ["", f"Median images/s ratio, cifar_core / tutorial: "
                      f"**{_fmt(s['train_images_per_s_ratio'], '.2f')}x**; end-to-end "
                      f"(load + train + test) speed-up: "
                      f"{_fmt(s['train_end_to_end_speedup'], '.2f')}x.", ""]
        if s.get("now_vs_before") is not None:
            lines += [f"'before' is the cifar_core of {report['argv_before']}: its median ratio "
                      f"to the tutorial {_fmt(s['before_images_per_s_ratio'], '.2f')}x; "
                      f"now / before, median per seed: "
                      f"**{_fmt(s['now_vs_before'], '.3f')}x**.", ""]
    if res.get("eval"):
        tests = ("10,000" if plan["test_size"] is None
                 else f"{plan['test_size']:,} evenly spaced")
        lines += [f"### (b) Evaluating {tests} test images (same weights, fresh process each)",
                  "", "| repeat | loop | seconds | 2nd call s | accuracy % | threads | others |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for r in res["eval"]:
            lines.append(f"| {r['repeat']} | {r['loop']} | {r['eval_s']:.3f} | "
                         f"{_fmt(r.get('second_call_s'), '.3f')} | {r['accuracy']:.2f} | "
                         f"{r['threads']} | {r['other_cores']:.2f} |")
        lines += ["", f"Median seconds: tutorial {s['eval_tutorial_s']:.3f}, cifar_core "
                      f"{s['eval_ours_s']:.3f} (first call in the process): "
                      f"**{_fmt(s['eval_speedup'], '.1f')}x** faster.", ""]
    if res.get("scaling"):
        size = "50,000" if plan["scaling_size"] is None else f"{plan['scaling_size']:,}"
        seeds = sorted({r["seed"] for r in res["scaling"]})
        base = s["scaling_images_per_s"].get(min(s["scaling_images_per_s"]))
        lines += [f"### (c) cifar_core batch scaling (1 epoch of {size} images, images/s)", "",
                  "| batch | " + " | ".join(f"seed {x}" for x in seeds)
                  + " | median | vs smallest | threads | others |",
                  "|---:|" + "---:|" * (len(seeds) + 4)]
        for batch, median in s["scaling_images_per_s"].items():
            rows = {r["seed"]: r for r in res["scaling"] if r["batch_size"] == batch}
            cells = " | ".join(_fmt(rows[x]["images_per_s"]) if x in rows else "-"
                               for x in seeds)
            threads = ",".join(sorted({str(r["threads"]) for r in rows.values()}))
            others = max(r["other_cores"] for r in rows.values())
            lines.append(f"| {batch} | {cells} | {_fmt(median)} | "
                         f"{median / base:.1f}x | {threads} | {others:.2f} |")
        lines.append("")
    if res.get("jobs"):
        lines += [f"### (d) Job runner overhead ({plan['job_size']:,} images, 1 epoch, "
                  "tutorial settings)", "",
                  "| repeat | path | images/s | train s | result s | exit s | acc % | others |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in res["jobs"]:
            lines.append(f"| {r['repeat']} | {r['path']} | {_fmt(r['images_per_s'])} | "
                         f"{_fmt(r['train_s'], '.1f')} | {_fmt(r.get('result_s'), '.2f')} | "
                         f"{r['wall_s']:.2f} | "
                         f"{_fmt(r['accuracy'], '.2f')} | {r['other_cores']:.2f} |")
        lines += ["", f"Median images/s ratio, JobRunner / CLI: "
                      f"**{_fmt(s['jobs_images_per_s_ratio'], '.3f')}**. Median seconds from "
                      f"launch to the result (CLI: its summary line; JobRunner: wait() "
                      f"returns): CLI {_fmt(s['jobs_cli_result_s'], '.2f')}, JobRunner "
                      f"{_fmt(s['jobs_runner_result_s'], '.2f')}; to the process's exit: CLI "
                      f"{s['jobs_cli_wall_s']:.2f}, JobRunner {s['jobs_runner_wall_s']:.2f}.",
                  ""]
    return "\n".join(lines)


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if not (args.data_dir / "cifar-10-batches-py").is_dir():
        print(f"error: no cifar-10-batches-py/ in {args.data_dir}. Make it with: python3 "
              f"/work/shared/tools/cifar_jpg_to_batches.py {args.data_dir}", file=sys.stderr)
        return 2
    plan = Plan.from_args(args)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    report = {"started": started, "argv": sys.argv[1:], "machine": machine_info(args.device),
              "plan": {**plan.__dict__, "quick": args.quick}, "loadavg_start": _loadavg(),
              "argv_before": str(args.before) if args.before else None,
              "results": {}}
    meter = LoadMeter()
    benches = {"train": bench_training, "eval": bench_eval, "scaling": bench_scaling,
               "jobs": bench_jobs}
    with tempfile.TemporaryDirectory(prefix="cifar-bench-") as tmp:
        for part in ("train", "eval", "scaling", "jobs"):
            if part in args.parts:
                report["results"][part] = benches[part](plan, args, Path(tmp))
    report.update(loadavg_end=_loadavg(), other_cores=meter.other_cores(),
                  finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    report["summary"] = summarise(report["results"])
    report["markdown"] = markdown(report)
    write_report(report, "bench_train", args.quick, args.out)
    return 0


def write_report(report: dict, name: str, quick: bool, out: Path | None = None) -> Path:
    """Print the report's Markdown and keep all of it as JSON in bench/out/ (gitignored)."""
    out = out or OUT_DIR / (f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
                            f"{'-quick' if quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(report["markdown"])
    print(f"\n(JSON: {out})")
    return out


if __name__ == "__main__":
    sys.exit(main())

"""The pinned weights of tests/test_speed.py for this machine kind, made by the code from before
training.speed existed (commit 598490c), so that the test can say the reshaping changed no result.

    git worktree add /tmp/pin598 598490c
    python bench/pin_weights.py /tmp/pin598

Prints the entry to paste into PINNED in tests/test_speed.py: the machine kind as the test's
_machine() names it, and a sha256 (first 24 hex digits) of the weights for each case. Each case is
the test's run: TrainConfig(seed=7, log_every=25, batch_size=4 or 7), otherwise the tutorial's
defaults, on in_memory_data(train_n=400, test_n=50) (the checkout's own tests/conftest.py, which
builds the same images as today's). Each runs in a fresh Python on the checkout's cifar_core:

- "one process": CIFAR_CORE_THREADS=1, so 598490c trains each minibatch in one process with the
  written-out backward pass (cifar_core.step.NetStep), as today's WrittenOutStep does;
- "two processes": CIFAR_CORE_THREADS unset, so 598490c splits each minibatch in two halves
  (cifar_core.halves.HalvesStep, the second half in a helper process), as today's
  SplitBatchTraining does. It needs Linux and two cores or more; elsewhere it is left out.

Float rounding differs between CPUs and kernels, hence one entry per machine kind.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

BATCH_SIZES = (4, 7)
CASES = ("one process", "two processes")


def machine_kind() -> str:
    """What float rounding depends on: torch's version, its CPU kernels, the CPU's maker (the
    key of tests/test_speed.py's PINNED, which reads it from here)."""
    import torch

    vendor = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    return f"{torch.__version__} {torch.backends.cpu.get_cpu_capability()} {vendor}"


def weights_digest(case: str, batch_size: int) -> str:
    """In the child: the test's run on the old code (already first on sys.path)."""
    import cifar_core.halves
    from cifar_core.train import TrainConfig, build_model, train, uses_halves
    from conftest import in_memory_data  # the checkout's tests/conftest.py

    config = TrainConfig(seed=7, log_every=25, batch_size=batch_size)
    # The case must take the path it is named after, or its digest pins the wrong code.
    if uses_halves(config) != (case == "two processes"):
        raise SystemExit(f"{case}, batch {batch_size}: the old code would not take that path "
                         f"here (CIFAR_CORE_THREADS={os.environ.get('CIFAR_CORE_THREADS')!r})")
    started = []  # whether the helper process ran (the same digest if not, by halves' design)
    start = cifar_core.halves.HalvesStep.start

    def recorded_start(self, inputs, labels):
        started.append(start(self, inputs, labels))
        return started[-1]

    cifar_core.halves.HalvesStep.start = recorded_start
    data = in_memory_data(train_n=400, test_n=50)
    model = build_model(config, len(data.classes))
    events = list(train(config, data, model))
    if case == "two processes":
        print(f"{case}, batch {batch_size}: helper process started: {started}", file=sys.stderr)
    if events[-1].status != "completed":
        raise SystemExit(f"{case}, batch {batch_size}: the run ended {events[-1].status}")
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def run_case(checkout: Path, case: str, batch_size: int) -> str:
    """One case in a fresh Python whose cifar_core and conftest are the checkout's."""
    env = {k: v for k, v in os.environ.items() if k not in ("CIFAR_CORE_THREADS", "PYTHONPATH")}
    if case == "one process":
        env["CIFAR_CORE_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(checkout), str(checkout / "tests")])
    done = subprocess.run(
        [sys.executable, __file__, "--child", case, str(batch_size)], cwd=checkout, env=env,
        capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{case}, batch {batch_size} failed:\n{done.stdout}{done.stderr}")
    sys.stderr.write(done.stderr)
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", nargs="?", type=Path,
                        help="a checkout of commit 598490c (git worktree add /tmp/pin598 598490c)")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        # The checkout comes first: this file's own folder must not shadow its modules.
        sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
        print(weights_digest(args.child[0], int(args.child[1])))
        return
    if args.checkout is None or not (args.checkout / "cifar_core" / "halves.py").is_file():
        parser.error("give a checkout of 598490c: git worktree add /tmp/pin598 598490c")
    checkout = args.checkout.resolve()
    two_cores = sys.platform.startswith("linux") and (os.cpu_count() or 1) >= 2
    pins = {}
    for case in CASES:
        if case == "two processes" and not two_cores:
            print("(two processes left out: the old code needs Linux and two cores or more)",
                  file=sys.stderr)
            continue
        for batch_size in BATCH_SIZES:
            pins[(case, batch_size)] = run_case(checkout, case, batch_size)
    print(f"    {json.dumps(machine_kind())}: {{")
    for (case, batch_size), digest in pins.items():
        print(f'        ("{case}", {batch_size}): "{digest}",')
    print("    },")


if __name__ == "__main__":
    main()

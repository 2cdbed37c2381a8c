"""How a training process uses the CPU: threads, oneDNN and the C allocator.

Each setting here was measured (bench/RESULTS.md) and changes only speed, never a result: the
tutorial's 4-image batches are so small that PyTorch's defaults spend more time organising
the work than doing it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

# CPU batches up to this size take the small-batch settings below.
SMALL_CPU_BATCH = 16

# The most threads a training process may use; the job runner sets it when runs share the cores.
THREADS_ENV = "CIFAR_CORE_THREADS"


def thread_limit() -> int | None:
    """CIFAR_CORE_THREADS as a number, or None where it is unset or not a whole number."""
    value = os.environ.get(THREADS_ENV, "").strip()
    return max(1, int(value)) if value.isdigit() else None


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def keep_freed_memory() -> bool:
    """Let this process's C allocator keep freed memory for the next step (glibc only).

    By default glibc maps every block over its adaptive threshold afresh and hands free memory
    at the heap's top back to the system, so tensors of a few hundred KB and up (conv1's im2col
    copy is 940 KB at batch 4; most tensors at batch 512) page-fault on every training step.
    Here blocks up to 32 MB come from the heap and up to 1 GB of it stays mapped once freed:
    1.1-1.2x faster at batch 4 and steadier at large batches (bench/RESULTS.md). Both limits or
    neither: setting either alone turns off glibc's adaptive thresholds, which made batch-4
    training 1.4-2x slower. Process-wide, once; False where there is no glibc mallopt."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # The mmap limit first: where it is refused (32-bit), the trim limit is left alone too.
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                          1 << 30))


def small_batch_threads() -> int:
    """Threads for the tutorial's tiny batches before ThreadGovernor has looked at the machine:
    at most two, leaving a core for everything else, and within CIFAR_CORE_THREADS."""
    wanted = max(1, min(2, (os.cpu_count() or 1) - 1))
    return min(wanted, thread_limit() or wanted)


@contextmanager
def runtime_settings(batch_size: int, device: torch.device) -> Iterator[None]:
    """Runtime settings measured fastest on a CPU, restored on exit. For the tutorial's tiny
    batches: PyTorch's own convolution, as oneDNN's cost more to set up than a 4-image
    convolution takes, and small_batch_threads() (ThreadGovernor may add one while the
    machine is otherwise idle). Larger batches keep torch's defaults, within
    CIFAR_CORE_THREADS (the job runner sets it for runs side by side). Also, for good:
    keep_freed_memory()."""
    if device.type != "cpu":
        yield
        return
    keep_freed_memory()
    threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    small = batch_size <= SMALL_CPU_BATCH
    torch.set_num_threads(small_batch_threads() if small else min(threads,
                                                                   thread_limit() or threads))
    if small:
        torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = onednn


def _machine_busy_s(stat_path: str) -> float | None:
    """CPU seconds that all cores have spent busy since boot (/proc/stat), or None."""
    try:
        with open(stat_path) as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    except (OSError, ValueError, IndexError):
        return None
    return busy / os.sysconf("SC_CLK_TCK")


# Cores that other processes may use in a window that still counts as quiet: /proc/stat counts
# in ticks of 10 ms, so an idle machine reads 0.00-0.06 cores here over 0.25 s windows.
IDLE_MARGIN = 0.2

# The longest ThreadGovernor waits before it tries two threads again.
MAX_WAIT_S = 8.0

# Two threads give way when they train slower than this fraction of one thread's speed.
SLOWER = 0.95


class ThreadGovernor:
    """Two threads where they train faster than one, measured as the run goes.

    On an idle machine with two cores, two threads train the tutorial's 4-image batches
    5-15 % faster than one. But the two wait for each other at every op, so whenever one of
    them is held up the other stalls too: with another process keeping a core busy they were
    3x slower than one thread, and on this project's VM some stretches of many seconds ran
    at two threads 30 % slower than one with nothing else running that the VM could see
    (bench/RESULTS.md). So `update(steps)`, called every few dozen steps, looks back over the
    last `window_s`: how many steps were done (the speed at the current thread count), and
    how much CPU the other processes used (/proc/stat minus this process's own time). It goes
    to one thread at once when other processes used more than IDLE_MARGIN of a core, and
    after two windows in a row in which two threads trained slower than one thread did
    before it took two; it tries two again only after `wait_s` of one thread with the other
    processes quiet. Each time two threads had to give way the wait doubles (up to 8 s), so
    a process that wakes up every second or two (a browser redrawing a chart) keeps the run
    at one thread instead of catching it at two.

    Only for a step that computes the same weights bit for bit on one and on two threads
    (train.same_weights_on_one_and_two_threads checks it), so that a seed gives the same run
    whatever the thread count did.
    """

    def __init__(self, low: int, high: int, window_s: float = 0.25, wait_s: float = 1.0,
                 stat_path: str = "/proc/stat", clock: Callable[[], float] = time.perf_counter,
                 own_cpu_s: Callable[[], float] = time.process_time,
                 cores: int | None = None):
        self.low, self.high, self.window_s, self.wait_s = low, high, window_s, wait_s
        self.stat_path, self.clock, self.own_cpu_s = stat_path, clock, own_cpu_s
        self.cores = cores or os.cpu_count() or 1
        self.threads = low
        # Steps and seconds at one thread, in quiet windows, since it last took one thread:
        # their ratio is the speed that two threads must keep up with.
        self.low_steps, self.low_s, self.low_speed = 0, 0.0, 0.0
        self.slow_windows = 0  # windows in a row at two threads slower than that
        self.last = self._sample(0)
        self.try_at = self.clock() + wait_s  # when two threads may be tried next

    def _sample(self, steps: int) -> tuple[float, float, float, int] | None:
        busy = _machine_busy_s(self.stat_path)
        return None if busy is None else (self.clock(), busy, self.own_cpu_s(), steps)

    def update(self, steps: int) -> int:
        """Set and return the thread count for the next while, given the steps done so far
        (cheap between windows)."""
        if self.last is None or self.clock() - self.last[0] < self.window_s:
            return self.threads
        now = self._sample(steps)
        if now is None:
            return self.threads
        wall, busy, own, done = (b - a for a, b in zip(self.last, now, strict=True))
        self.last = now
        others = max(0.0, busy - own) / max(wall, 1e-9)  # cores that other processes used
        quiet = self.cores - others >= self.high - IDLE_MARGIN
        if self.threads == self.high:
            # One slow window can be a hiccup; two in a row are not.
            slower = done / max(wall, 1e-9) < SLOWER * self.low_speed
            self.slow_windows = self.slow_windows + 1 if slower else 0
            if quiet and self.slow_windows < 2:
                return self.threads
            self.wait_s = min(2 * self.wait_s, MAX_WAIT_S)  # caught at two: wait longer
            self.try_at = now[0] + self.wait_s
            self.low_steps, self.low_s = 0, 0.0
            self.set(self.low)
        else:
            if not quiet:
                self.try_at = max(self.try_at, now[0] + self.wait_s)
                return self.threads
            self.low_steps, self.low_s = self.low_steps + done, self.low_s + wall
            if now[0] >= self.try_at:
                self.low_speed = self.low_steps / max(self.low_s, 1e-9)
                self.slow_windows = 0
                self.set(self.high)
        return self.threads

    @contextmanager
    def paused(self, steps: int) -> Iterator[None]:
        """One thread for a while that is not training (the test after an epoch), then the
        count from before, and a fresh window: that while is not a training speed."""
        threads = self.threads
        self.set(self.low)
        try:
            yield
        finally:
            self.set(threads)
            self.last = self._sample(steps)

    def set(self, threads: int) -> None:
        if threads != self.threads:
            torch.set_num_threads(threads)
            self.threads = threads

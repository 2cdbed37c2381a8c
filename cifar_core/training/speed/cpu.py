"""How a training process uses the CPU: threads, oneDNN and the C allocator.

Each setting here was measured (bench/RESULTS.md) and changes only speed, never a result: the
tutorial's 4-image batches are so small that PyTorch's defaults spend more time organising
the work than doing it. Every process-wide setting is made on entering a context manager and
put back on leaving it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

# CPU batches up to this size take the small-batch settings below.
SMALL_CPU_BATCH = 16

# The most threads a training process may use; the job runner sets it when runs share the cores.
THREADS_ENV = "CIFAR_CORE_THREADS"


def thread_limit(cap: int | None = None) -> int | None:
    """The most threads a training may use: `cap` where given (a caller's own, e.g. the
    dashboard measuring a speed in its threaded server, which must not touch os.environ), else
    CIFAR_CORE_THREADS as a number, or None where it is unset or not a whole number."""
    if cap is not None:
        return max(1, cap)
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
    faster at batch 4 and steadier at large batches. Both limits or neither: setting either
    alone turns off glibc's adaptive thresholds, which made batch-4 training much slower than
    setting none (bench/RESULTS.md, Session 3, "The C allocator"). Process-wide and for good
    (an allocator's thresholds cannot be handed back meaningfully once memory was kept), once;
    False where there is no glibc mallopt."""
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
    """Threads for the tutorial's tiny batches: at most two, leaving a core for everything
    else, and within CIFAR_CORE_THREADS."""
    wanted = max(1, min(2, (os.cpu_count() or 1) - 1))
    return min(wanted, thread_limit() or wanted)


def onednn_convolutions(batch_size: int) -> bool:
    """Whether convolutions of `batch_size` images go through oneDNN: not for the tutorial's
    tiny training batches (oneDNN's set-up costs more than a 4-image convolution takes), yes
    for anything larger, and for evaluation (channels-last batches of 200: much faster than
    PyTorch's own convolution, bench/RESULTS.md, "What else was tried", Evaluation). The one
    place this is decided."""
    return batch_size > SMALL_CPU_BATCH


@contextmanager
def settings(threads: int, onednn: bool) -> Iterator[None]:
    """This process's PyTorch threads and oneDNN switch while inside, put back on leaving."""
    saved = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = onednn
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.backends.mkldnn.enabled = saved[1]


def training_threads(batch_size: int, cap: int | None = None) -> int:
    """Threads for training CPU batches of `batch_size`: small_batch_threads() for tiny ones,
    else torch's default, within `cap` or else CIFAR_CORE_THREADS."""
    if batch_size <= SMALL_CPU_BATCH:
        threads = small_batch_threads()
        return threads if cap is None else min(threads, max(1, cap))
    threads = torch.get_num_threads()
    return min(threads, thread_limit(cap) or threads)


@contextmanager
def inference_settings(device: torch.device | str = "cpu",
                       threads: int | None = None) -> Iterator[None]:
    """Settings for evaluating on a CPU: oneDNN on (predict's channels-last convolutions), and
    `threads` (default: the current count) within CIFAR_CORE_THREADS. Also inside a training,
    whose own settings (oneDNN off for tiny batches) would otherwise make its test after each
    epoch slower (bench/RESULTS.md)."""
    if torch.device(device).type != "cpu":
        yield
        return
    threads = threads or torch.get_num_threads()
    with settings(min(threads, thread_limit() or threads), onednn=True):
        yield

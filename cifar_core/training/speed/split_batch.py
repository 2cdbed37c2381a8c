"""The split-batch step: each minibatch in two halves, the second computed by a helper process
on another core.

At the tutorial's batch of 4 a training step is a chain of ~50 small ops, each too small to
share between two threads (PyTorch's threads wait for each other at every op: a second thread
made training only a little faster, bench/RESULTS.md, Session 5, "Why halves"). Two processes
share the work at a coarser grain instead: each does the forward and backward pass of half the
minibatch on one core, in parallel; the helper's gradient lands in shared memory, and the main
process adds it to its own in the SGD step. That is faster than one process at every batch
from 2 to 32 images, and the more so the larger the batch (bench/RESULTS.md, Session 5, "Why
halves").

The arithmetic is the same whether the helper computes the second half or the main process
does (`use_second_process(False)`: both halves one after the other, on one core): the same
code on the same inputs in a forked copy of the same process, checked bit for bit when the
helper starts. So switching between the two as the machine gets busy or quiet
(cifar_core.training.speed.governor) never changes a result: a seed gives the same run whatever else
the machine was doing. One core alone computes the halves slower than it computes a whole
minibatch (bench/RESULTS.md, Session 5, "Under load"), so the switch is for while another
process needs the second core.

Linux only (fork, /proc); a helper that dies or stops answering is replaced by the main
process computing both halves, with the same result.
"""

from __future__ import annotations

import math
import mmap
import multiprocessing
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable

import torch

from cifar_core.data.dataset import CIFAR_SHAPE
from cifar_core.training.models import Net
from cifar_core.training.speed.written_out import NetStep

# How long one process spins waiting for the other before it sleeps: longer than a step's
# usual wait (tens of microseconds), short enough to cost nothing while the other is idle.
SPIN_S = 0.001

# How long the main process waits for the helper's half before it takes the helper for
# stuck, stops it and computes both halves itself from then on.
SECOND_PROCESS_TIMEOUT_S = 10.0


def second_process_possible() -> bool:
    """Whether this machine can run the helper: Linux (fork; a core count the governor can
    read) and at least two cores."""
    return sys.platform.startswith("linux") and (os.cpu_count() or 1) >= 2 \
        and "fork" in multiprocessing.get_all_start_methods()


def _shared(size: int, dtype: torch.dtype) -> torch.Tensor:
    """A zeroed 1-d tensor in anonymous shared memory, which a forked process shares (not a
    copy-on-write copy). The tensor keeps the mapping alive."""
    memory = mmap.mmap(-1, max(1, size * torch.empty((), dtype=dtype).element_size()))
    return torch.frombuffer(memory, dtype=dtype, count=size)


def _wait(sem, alive: Callable[[], bool], timeout_s: float | None = None) -> bool:
    """Acquire `sem`: spin for SPIN_S, then sleep on it, checking `alive()` every half second.
    False where `alive()` says no or timeout_s passed first."""
    deadline = time.perf_counter() + SPIN_S
    while time.perf_counter() < deadline:
        if sem.acquire(False):
            return True
    give_up = None if timeout_s is None else time.perf_counter() + timeout_s
    while not sem.acquire(timeout=0.5):
        if not alive() or (give_up is not None and time.perf_counter() > give_up):
            return False
    return True


class SplitBatchStep:
    """NetStep's step for minibatches of `batch_size` images or fewer, in two halves: the first
    ceil(n/2) images in this process, the rest in a helper process while
    `use_second_process(True)` (the default once `start()` succeeded), or here as well. Same
    interface as NetStep. Both processes must compute on one PyTorch thread (the halves'
    arithmetic must not depend on the helper: at 2 images, one and two threads round
    differently): training.speed.open_step sets that on entering, the helper for itself."""

    def __init__(self, model: Net, lr: float, momentum: float, batch_size: int,
                 image_shape: tuple[int, ...] = CIFAR_SHAPE):
        size = sum(p.numel() for p in model.parameters())
        self.net = NetStep(model, lr, momentum, flat=_shared(size, torch.float32))
        # What the helper reads (the weights above, its images and labels) and writes (its
        # gradient), all in memory shared with it.
        self.other = _shared(size, torch.float32)
        self.other_views = self.net.views_of(self.other)
        self.image_shape = tuple(image_shape)
        half = batch_size // 2
        self.inputs = _shared(half * math.prod(self.image_shape), torch.float32)
        self.labels = _shared(half, torch.int64)
        context = multiprocessing.get_context("fork")
        self.go, self.done = context.Semaphore(0), context.Semaphore(0)
        # count of images, images in the whole minibatch, quit; the helper's loss sum.
        self.orders, self.loss = context.RawArray("q", 3), context.RawArray("d", 1)
        self.helper: multiprocessing.process.BaseProcess | None = None
        self.helping = False
        self._context = context

    # -- the helper ---------------------------------------------------------------------

    def start(self, inputs: torch.Tensor, labels: torch.Tensor) -> bool:
        """Fork the helper and check, on a minibatch (`inputs`, `labels`, at least 2 images),
        that it computes a half's gradient exactly as this process does. True where it runs;
        where not (no fork, no answer, another result), this step computes both halves."""
        parent = os.getpid()
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns of fork() in a process with threads: the helper only runs
                # PyTorch ops on one thread, and one that never answers is stopped
                # (SECOND_PROCESS_TIMEOUT_S).
                warnings.simplefilter("ignore", DeprecationWarning)
                helper = self._context.Process(target=self._serve, args=(parent,), daemon=True,
                                               name="cifar_core split-batch second process")
                helper.start()
        except (OSError, RuntimeError, ValueError):
            return False
        self.helper = helper
        n = len(labels)
        h = (n + 1) // 2
        staged = self._stage(inputs[h:], labels[h:])
        self._order(n - h, n)
        answered = self._answer()
        theirs = self.other.clone()
        self.net.gradients(*staged, n, self.other_views)
        if not (answered and torch.equal(theirs, self.other)):
            self.close()
            return False
        self.helping = True
        return True

    def _serve(self, parent: int) -> None:
        """The helper's loop: compute the half it is told to, until told to quit or the main
        process is gone."""
        # Ctrl-C reaches the whole process group: the main process stops the run, and then
        # this helper, which must not print a KeyboardInterrupt of its own.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        torch.set_num_threads(1)
        while _wait(self.go, lambda: os.getppid() == parent):
            count, n_total, quit_ = self.orders
            if quit_:
                return
            x = self.inputs[:count * math.prod(self.image_shape)].view(count, *self.image_shape)
            self.loss[0] = self.net.gradients(x, self.labels[:count], n_total,
                                              self.other_views).item()
            self.done.release()

    def _order(self, count: int, n_total: int) -> None:
        """Tell the helper to compute the staged half (`count` of `n_total` images)."""
        self.orders[0], self.orders[1] = count, n_total
        self.go.release()

    def _answer(self) -> bool:
        """Wait for the helper's half; False where it did not answer (it is then stopped)."""
        if self.helper is not None and _wait(self.done, self.helper.is_alive,
                                            SECOND_PROCESS_TIMEOUT_S):
            return True
        self.close()
        return False

    def use_second_process(self, on: bool) -> None:
        """Compute the second halves in the helper (where it runs) or here."""
        self.helping = on and self.helper is not None

    def second_process_cpu_s(self) -> float:
        """CPU seconds the helper has used (0 where there is none or it cannot be read)."""
        if self.helper is None or self.helper.pid is None:
            return 0.0
        try:
            with open(f"/proc/{self.helper.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0

    def close(self) -> None:
        """Stop the helper (idempotent); steps go on, computing both halves here."""
        helper, self.helper, self.helping = self.helper, None, False
        if helper is None:
            return
        self.orders[2] = 1
        self.go.release()
        helper.join(1.0)
        if helper.is_alive():
            helper.kill()
            helper.join(1.0)

    # -- the step -----------------------------------------------------------------------

    def _stage(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor,
                                                                    torch.Tensor]:
        """Copy the second half into the shared buffers (both ways of computing it read it
        from there: same data, same addresses)."""
        count = len(labels)
        staged_x = self.inputs[:count * math.prod(self.image_shape)].view(count,
                                                                        *self.image_shape)
        staged_x.copy_(x)
        staged_labels = self.labels[:count]
        staged_labels.copy_(labels)
        return staged_x, staged_labels

    def step(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        net, n = self.net, len(labels)
        h = (n + 1) // 2
        if n == h:  # a single image
            loss = net.gradients(x, labels, n, net.grad_views)
            net.update(net.grad)
            return loss.div_(n)
        staged = self._stage(x[h:], labels[h:])
        if self.helping:
            self._order(n - h, n)
            loss = net.gradients(x[:h], labels[:h], n, net.grad_views)
            if self._answer():
                loss.add_(self.loss[0])
            else:  # the helper is gone: its half here
                loss.add_(net.gradients(*staged, n, self.other_views))
        else:
            loss = net.gradients(x[:h], labels[:h], n, net.grad_views)
            loss.add_(net.gradients(*staged, n, self.other_views))
        net.update(net.grad, self.other)
        return loss.div_(n)

"""The core governor: a second core for training while it trains faster than one.

Used by the split-batch step (cifar_core.training.speed.split_batch), whose two ways of computing a
minibatch give the same weights bit for bit, so switching between them as the machine gets
busy or quiet never changes a result.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


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
# in ticks of 10 ms, so over a 0.25 s window an idle machine still reads a little CPU for other
# processes (its daemons, and a tick's rounding), well under this margin (bench/RESULTS.md,
# "Figures once quoted in code comments").
IDLE_MARGIN = 0.2

# The longest CoreGovernor waits before it tries the second core again.
MAX_WAIT_S = 8.0

# The second core gives way when training on two is slower than this fraction of one's speed
# for two windows in a row, or slower than MUCH_SLOWER of it for one (another process holds a
# core: no need to wait for a second window to know).
SLOWER = 0.95
MUCH_SLOWER = 0.6


class CoreGovernor:
    """A second core for training where it trains faster than one, measured as the run goes.

    The two ways of training that it switches between (`apply(1)`, `apply(2)`: in
    training.speed.split_batch, both halves of a minibatch in this process, or one in a helper
    process on the other core) must compute the same weights bit for bit, so that a seed gives
    the same run whatever the switching did. Two cores are faster only while the other core is
    free: the two halves wait for each other at every step, so when another process holds one of
    them up the other stalls too (with a busy loop on the other core, far slower than both
    halves on one core: bench/RESULTS.md, Session 5, "Under load"). So `update(steps)`, called
    every few dozen steps, looks back over the last `window_s`: how many steps were done (the
    speed on the current count), and how much CPU the other processes used (/proc/stat minus
    `own_cpu_s()`, the CPU time of this process and its helper). It goes to one core at once
    when other processes used more than `margin` of a core, or when two cores trained much
    slower than one did before it took two, and after two windows in a row in which they
    trained a little slower; it tries two again only after `wait_s` on one with the other
    processes quiet. Each time two had to give way the wait doubles (up to MAX_WAIT_S), so a
    process that wakes up every second or two is not caught at every wake-up.

    `start_high`: begin on two cores (the speed on one is then unknown until the governor has
    had to use one, and the speed check waits for it).
    """

    def __init__(self, apply: Callable[[int], None], low: int = 1, high: int = 2,
                 window_s: float = 0.25, wait_s: float = 1.0, margin: float = IDLE_MARGIN,
                 start_high: bool = False, stat_path: str = "/proc/stat",
                 clock: Callable[[], float] = time.perf_counter,
                 own_cpu_s: Callable[[], float] = time.process_time,
                 cores: int | None = None):
        self.apply, self.low, self.high = apply, low, high
        self.window_s, self.wait_s, self.margin = window_s, wait_s, margin
        self.stat_path, self.clock, self.own_cpu_s = stat_path, clock, own_cpu_s
        self.cores = cores or os.cpu_count() or 1
        self.count = high if start_high else low
        # Steps and seconds on one core, in quiet windows, since it last took one: their ratio
        # is the speed that two must keep up with (0: not measured yet).
        self.low_steps, self.low_s, self.low_speed = 0, 0.0, 0.0
        self.slow_windows = 0  # windows in a row on two cores slower than that
        self.last = self._sample(0)
        self.try_at = self.clock() + wait_s  # when two may be tried next

    def _sample(self, steps: int) -> tuple[float, float, float, int] | None:
        busy = _machine_busy_s(self.stat_path)
        return None if busy is None else (self.clock(), busy, self.own_cpu_s(), steps)

    def update(self, steps: int) -> int:
        """Set and return the count for the next while, given the steps done so far (cheap
        between windows)."""
        if self.last is None or self.clock() - self.last[0] < self.window_s:
            return self.count
        now = self._sample(steps)
        if now is None:
            return self.count
        wall, busy, own, done = (b - a for a, b in zip(self.last, now, strict=True))
        self.last = now
        others = max(0.0, busy - own) / max(wall, 1e-9)  # cores that other processes used
        quiet = self.cores - others >= self.high - self.margin
        if self.count == self.high:
            # One slow window can be a hiccup; two in a row are not.
            speed = done / max(wall, 1e-9)
            self.slow_windows = self.slow_windows + 1 if speed < SLOWER * self.low_speed else 0
            if quiet and self.slow_windows < 2 and speed >= MUCH_SLOWER * self.low_speed:
                return self.count
            self.wait_s = min(2 * self.wait_s, MAX_WAIT_S)  # caught on two: wait longer
            self.try_at = now[0] + self.wait_s
            self.low_steps, self.low_s = 0, 0.0
            self.set(self.low)
        else:
            if not quiet:
                self.try_at = max(self.try_at, now[0] + self.wait_s)
                return self.count
            self.low_steps, self.low_s = self.low_steps + done, self.low_s + wall
            if now[0] >= self.try_at:
                self.low_speed = self.low_steps / max(self.low_s, 1e-9)
                self.slow_windows = 0
                self.set(self.high)
        return self.count

    @contextmanager
    def paused(self, steps: int) -> Iterator[None]:
        """One core for a while that is not training (the test after an epoch), then the
        count from before, and a fresh window: that while is not a training speed."""
        count = self.count
        self.set(self.low)
        try:
            yield
        finally:
            self.set(count)
            self.last = self._sample(steps)

    def set(self, count: int) -> None:
        if count != self.count:
            self.apply(count)
            self.count = count

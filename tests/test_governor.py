"""cifar_core.training.speed.governor: the second core for training while it trains faster."""

from __future__ import annotations

import os

from cifar_core.training.speed.governor import CoreGovernor


class FakeMachine:
    """A /proc/stat file, a wall clock, this process's CPU clock, its training steps and the
    cores it trains on (which the governor sets), all moved by hand."""

    def __init__(self, path):
        self.path, self.wall, self.own, self.steps = path, 0.0, 0.0, 0
        self.busy_ticks = self.idle_ticks = 0
        self.cores_used = 1
        self.write()

    def write(self):
        self.path.write_text(f"cpu  {self.busy_ticks} 0 0 {self.idle_ticks} 0 0 0 0 0 0\n"
                             "cpu0 0 0 0 0 0 0 0 0 0 0\n")

    def run(self, seconds: float, steps_per_s: float, others: float = 0.0, cores: int = 2):
        """`seconds` pass, training at `steps_per_s` on `cores_used` cores; other processes
        use `others` cores."""
        ticks = os.sysconf("SC_CLK_TCK")
        ours = self.cores_used
        self.wall += seconds
        self.own += ours * seconds
        self.steps += round(steps_per_s * seconds)
        self.busy_ticks += round((ours + others) * seconds * ticks)
        self.idle_ticks += round(max(0, cores - ours - others) * seconds * ticks)
        self.write()

    def use(self, cores: int):
        self.cores_used = cores

    def governor(self, **settings):
        governor = CoreGovernor(self.use, 1, 2, window_s=0.25, wait_s=1.0,
                                stat_path=str(self.path), clock=lambda: self.wall,
                                own_cpu_s=lambda: self.own, cores=2, **settings)
        self.cores_used = governor.count
        return governor


def windows(machine, governor, count, speed, others=0.0):
    """`count` windows of 0.25 s at `speed` steps/s (a function of the cores used)."""
    seen = []
    for _ in range(count):
        machine.run(0.25, speed(machine.cores_used), others)
        seen.append(governor.update(machine.steps))
    return seen


def test_two_cores_where_they_are_faster_after_a_quiet_second(tmp_path):
    machine = FakeMachine(tmp_path / "stat")
    governor = machine.governor()
    faster = {1: 400, 2: 440}.get
    assert windows(machine, governor, 3, faster) == [1, 1, 1]
    machine.run(0.1, 400)
    assert governor.update(machine.steps) == 1  # within a window: nothing read or changed
    machine.run(0.15, 400)
    assert governor.update(machine.steps) == 2 and machine.cores_used == 2
    assert windows(machine, governor, 8, faster) == [2] * 8


def test_back_to_one_core_when_two_are_slower_and_the_next_try_waits_twice_as_long(tmp_path):
    machine = FakeMachine(tmp_path / "stat")
    governor = machine.governor()
    slower = {1: 400, 2: 280}.get  # nothing else runs, yet two cores lose
    # Two slow windows in a row (one could be a hiccup), then one core.
    assert windows(machine, governor, 6, slower) == [1, 1, 1, 2, 2, 1]
    assert machine.cores_used == 1
    # The next try after 2 s (8 windows), then 4 s (16).
    assert windows(machine, governor, 10, slower) == [1] * 7 + [2, 2, 1]
    assert windows(machine, governor, 18, slower) == [1] * 15 + [2, 2, 1]


def test_one_slow_window_on_two_cores_is_a_hiccup(tmp_path):
    machine = FakeMachine(tmp_path / "stat")
    governor = machine.governor()
    assert windows(machine, governor, 4, {1: 400, 2: 440}.get)[-1] == 2
    assert windows(machine, governor, 1, {1: 400, 2: 300}.get) == [2]
    assert windows(machine, governor, 5, {1: 400, 2: 440}.get) == [2] * 5


def test_another_process_sends_it_back_to_one_core_at_once(tmp_path):
    machine = FakeMachine(tmp_path / "stat")
    governor = machine.governor()
    faster = {1: 400, 2: 440}.get
    assert windows(machine, governor, 4, faster)[-1] == 2
    assert windows(machine, governor, 1, faster, others=0.4) == [1]  # a browser wakes up
    # While it runs: one core; once it is quiet: two again after the doubled wait (2 s).
    assert windows(machine, governor, 6, faster, others=0.6) == [1] * 6
    assert windows(machine, governor, 9, faster) == [1] * 7 + [2, 2]


def test_a_busy_machine_keeps_one_core_and_no_stat_file_changes_nothing(tmp_path):
    machine = FakeMachine(tmp_path / "stat")
    governor = machine.governor()
    assert windows(machine, governor, 20, {1: 400, 2: 440}.get, others=0.5) == [1] * 20
    missing = CoreGovernor(machine.use, 1, 2, stat_path=str(tmp_path / "missing"))
    assert missing.last is None and missing.update(100) == 1


def test_paused_is_one_core_then_as_before(tmp_path):
    machine = FakeMachine(tmp_path / "stat")
    governor = machine.governor()
    windows(machine, governor, 4, {1: 400, 2: 440}.get)
    assert machine.cores_used == 2
    with governor.paused(machine.steps):
        assert machine.cores_used == 1
        machine.run(2.0, 0)  # a test of the network: no training steps
    assert machine.cores_used == 2
    # The pause is not taken for a slow window on two cores.
    assert windows(machine, governor, 2, {1: 400, 2: 440}.get) == [2, 2]


def test_starting_on_two_cores_with_a_wider_margin(tmp_path):
    """The halves' way (train.start_helper): two cores from the first step; a process using
    less than `margin` of a core leaves them, more sends the run to one core; the speed on one
    core is measured there and two must beat it from then on."""
    machine = FakeMachine(tmp_path / "stat")
    governor = machine.governor(start_high=True, margin=0.5)
    assert machine.cores_used == 2
    speed = {1: 250, 2: 400}.get
    assert windows(machine, governor, 4, speed) == [2] * 4
    # No speed on one core measured yet: a slow stretch on two cannot be compared.
    assert windows(machine, governor, 3, {1: 250, 2: 100}.get) == [2] * 3
    assert windows(machine, governor, 3, speed, others=0.4) == [2] * 3
    assert windows(machine, governor, 1, speed, others=0.7) == [1]
    assert windows(machine, governor, 8, speed) == [1] * 7 + [2]  # after the doubled wait
    # Now two cores must keep up with the 250 steps/s measured on one.
    assert windows(machine, governor, 2, {1: 250, 2: 200}.get) == [2, 1]


def test_two_cores_much_slower_than_one_give_way_at_once(tmp_path):
    machine = FakeMachine(tmp_path / "stat")
    governor = machine.governor()
    assert windows(machine, governor, 4, {1: 400, 2: 440}.get)[-1] == 2  # 400 measured on one
    # A process the governor cannot see takes a core: a little slower waits for a second
    # window, much slower (under 0.6 of one core's speed) does not.
    assert windows(machine, governor, 1, {1: 400, 2: 230}.get) == [1]

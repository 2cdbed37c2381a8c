"""The runs picked to compare follow their ids through tables whose rows move."""

from cifar_core.runs.picked import ticked_rows, ticks_applied


def test_the_ticked_rows_are_where_the_picked_runs_are_now():
    assert ticked_rows(["c", "b", "a"], ["a", "x"]) == [2]
    assert ticked_rows(["b", "a"], ["a", "b"]) == [0, 1]
    assert ticked_rows([], ["a"]) == []


def test_new_ticks_are_read_against_the_runs_the_table_showed():
    # Row 1 of the table that showed c, b, a is b, whatever the store holds now.
    assert ticks_applied([], ["c", "b", "a"], [1]) == ["b"]
    # Ticking another row adds its run after those picked; unticking takes one out.
    assert ticks_applied(["b"], ["c", "b", "a"], [1, 2]) == ["b", "a"]
    assert ticks_applied(["b", "a"], ["c", "b", "a"], [2]) == ["a"]


def test_runs_of_other_tables_stay_picked_and_stale_rows_count_for_none():
    # A sweep's table showed s1, s2: the runs outside it (x) are left as they were.
    assert ticks_applied(["x", "s1"], ["s1", "s2"], [1]) == ["x", "s2"]
    # A selection from a longer table (a run deleted since) names no run past the end.
    assert ticks_applied(["x"], ["a", "b"], [5, -1]) == ["x"]

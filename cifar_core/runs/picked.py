"""The runs a person picked to compare, kept as run ids, and the ticked rows of a table that
shows some of them.

A table's selection comes back as row positions in the table the browser showed; a run deleted
or added since moves every row under it. So the pick is kept as ids, a table's ticks are made
from it on every drawing, and a table's new ticks are read against the ids it showed.
"""

from __future__ import annotations


def ticked_rows(shown: list[str], picked: list[str]) -> list[int]:
    """The positions of the picked runs among the runs a table shows, in table order."""
    wanted = set(picked)
    return [row for row, run_id in enumerate(shown) if run_id in wanted]


def ticks_applied(picked: list[str], shown: list[str], rows: list[int]) -> list[str]:
    """The pick after a table that showed `shown` came back with `rows` ticked: its ticked
    runs are in (the newly ticked after those picked before), its unticked ones out, runs of
    other tables kept. Positions past the table's end (a stale selection) count for none."""
    ticked = {shown[row] for row in rows if 0 <= row < len(shown)}
    in_table = set(shown)
    kept = [run_id for run_id in picked if run_id not in in_table or run_id in ticked]
    return kept + [run_id for run_id in shown if run_id in ticked and run_id not in kept]

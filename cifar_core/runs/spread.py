"""Which of a run's loss reports a chart draws: the first, the most recent and every stride-th
of the rest, the stride a power of two (see curves.py for why). Its own module because the run
store picks the same reports in SQL (RunStore.spread_events) and curves.py reads the store: each
imports it from here, and neither imports the other both ways."""

from __future__ import annotations


def spread_positions(count: int, limit: int, recent: int = 0) -> list[int]:
    """Positions (0-based, ascending) of the reports a chart of `count` reports draws, at most
    `limit`: all of them when they fit; otherwise the first, the last, the `recent` most recent
    and an even spread of the rest (every stride-th, the stride the smallest power of two that
    fits). ValueError if `limit` leaves no room for a spread beside the recent ones."""
    if count < 0 or recent < 0 or limit < recent + 2:
        raise ValueError(f"a spread of at most {limit} points needs room for the first and the "
                         f"last beside the {recent} most recent")
    if count <= limit:
        return list(range(count))
    older = count - recent  # the reports before the most recent ones
    room = limit - recent - 1  # for the spread of the older ones; one place stays for the last
    stride = 1
    while -(-older // stride) > room:
        stride *= 2
    positions = list(range(0, older, stride))
    if recent == 0 and positions[-1] != count - 1:
        positions.append(count - 1)
    return positions + list(range(older, count))

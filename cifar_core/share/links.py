"""Addresses that reopen a view: a page's choices (the run, the sweep, the tab, the data set,
the class filter ...) as the query parameters of its address, and those parameters, read back
from an address someone opened, checked into the page's choices.

An address comes from anyone (a link in a chat, a bookmark, a hand-edited URL): each value is
checked before it is looked up (an id against the store's id pattern, so `../../etc/passwd`
never reaches a folder), and whatever is refused becomes one plain sentence for the page, the
value in it cut short. The sentences are text, not Markdown: a page shows them through
runs.names.markdown_text, so nothing from an address is ever drawn as Markdown or HTML.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import NamedTuple

# The ids RunStore.create and SweepStore.create make (e.g. 20261206-101500-a1b2).
RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}")
SWEEP_ID = re.compile(r"sweep-\d{8}-\d{6}-[0-9a-f]{4}")
# Longer than any value a page writes (the runs compared, a class filter of long names); an
# address holding more is not one of ours.
MAX_VALUE = 2000
MAX_COMPARED = 20  # runs compared from one address
SHOWN = 40  # characters of a refused value repeated in its sentence

# Evaluate's sections (st.tabs, key "eval_section") by the short name the address gives them.
EVALUATE_TABS = {
    "pictures": "Truth and prediction",
    "per-class": "Accuracy per class",
    "confusion": "Mistaken for what",
    "learning": "How it learned",
    "mistakes": "Most confident mistakes",
}
SPLITS = ("train", "test")

Address = Mapping[str, Sequence[str]]  # each key with every value the address gives it

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class Choice(NamedTuple):
    """What an address chose for one part of a page (None: nothing, or refused), and the
    sentence saying what was refused (None: nothing was)."""
    value: object
    notice: str | None


NOTHING = Choice(None, None)


def shown(value: str) -> str:
    """A value from an address as its sentence repeats it: one line, cut short, quoted."""
    text = " ".join(_CONTROL.sub(" ", value).split())
    return f"'{text if len(text) <= SHOWN else text[:SHOWN - 1] + '…'}'"


def single_value(address: Address, key: str) -> tuple[str | None, str | None]:
    """The key's one value in the address (None when absent), or the sentence refusing it
    (given twice, or far too long)."""
    values = list(address.get(key) or ())
    if not values:
        return None, None
    if len(values) > 1:
        return None, (f"The address gives '{key}' {len(values)} times, not once (twice or more "
                      "is not an address this dashboard makes): it was left out.")
    value = str(values[0])
    if len(value) > MAX_VALUE:
        return None, (f"The address's '{key}' is {len(value):,} characters long, longer than "
                      "any this dashboard makes: it was left out.")
    return value, None


def checked_run(address: Address, offered: Collection[str], existing: Collection[str],
                key: str = "run", instead: str = "the newest run") -> Choice:
    """The run the address names, if the page offers it (`offered`: the runs with a network
    it can show); otherwise a sentence that says whether it is no run id, a run that is not
    here (deleted, or from another machine), or one the page cannot show."""
    value, refused = single_value(address, key)
    if value is None:
        return Choice(None, refused)
    if not RUN_ID.fullmatch(value):
        return Choice(None, f"The address's run {shown(value)} is not the name of a run: "
                            f"showing {instead} instead.")
    if value in offered:
        return Choice(value, None)
    if value not in existing:
        return Choice(None, f"The address names run {value}, which is not here (deleted, or "
                            f"from another machine): showing {instead} instead.")
    return Choice(None, f"The address names run {value}, which has no saved network to look "
                        f"at (it did not finish, or its network was deleted): showing {instead} "
                        "instead.")


def checked_runs(address: Address, existing: Collection[str], key: str = "compare") -> Choice:
    """The runs the address names (comma-separated), those that are here, as a tuple; a
    sentence naming those left out."""
    value, refused = single_value(address, key)
    if value is None:
        return Choice(None, refused)
    names = [name for name in value.split(",") if name]
    if len(names) > MAX_COMPARED:
        return Choice(None, f"The address names {len(names):,} runs to compare, more than "
                            f"{MAX_COMPARED}: it was left out.")
    malformed = [name for name in names if not RUN_ID.fullmatch(name)]
    named = [name for name in names if RUN_ID.fullmatch(name)]
    here = tuple(dict.fromkeys(name for name in named if name in existing))
    gone = [name for name in named if name not in existing]
    notices = []
    if gone:
        notices.append(f"The address names {_runs(gone)}, not here (deleted, or from another "
                       "machine): left out of the comparison.")
    if malformed:
        notices.append(f"The address's {', '.join(shown(n) for n in malformed[:3])} "
                       f"{'is' if len(malformed) == 1 else 'are'} not the name of a run: left "
                       "out of the comparison.")
    return Choice(here, " ".join(notices) or None)


def _runs(ids: list[str]) -> str:
    return f"run {ids[0]}" if len(ids) == 1 else "runs " + ", ".join(ids)


def checked_sweep(address: Address, existing: Collection[str], key: str = "sweep",
                  instead: str = "the newest sweep") -> Choice:
    """The sweep the address names if it is here; otherwise a sentence."""
    value, refused = single_value(address, key)
    if value is None:
        return Choice(None, refused)
    if not SWEEP_ID.fullmatch(value):
        return Choice(None, f"The address's sweep {shown(value)} is not the name of a sweep: "
                            f"showing {instead} instead.")
    if value not in existing:
        return Choice(None, f"The address names sweep {value}, which is not here (deleted, or "
                            f"from another machine): showing {instead} instead.")
    return Choice(value, None)


def checked_tab(address: Address, tabs: Mapping[str, str], key: str = "tab") -> Choice:
    """The label of the tab the address names by its short name (a key of `tabs`)."""
    value, refused = single_value(address, key)
    if value is None:
        return Choice(None, refused)
    if value not in tabs:
        return Choice(None, f"The address names the section {shown(value)}, which this page "
                            "does not have: showing the first one.")
    return Choice(tabs[value], None)


def checked_dataset(address: Address, names: Collection[str], key: str = "dataset") -> Choice:
    """The data set the address names if it is registered here."""
    value, refused = single_value(address, key)
    if value is None:
        return Choice(None, refused)
    if value not in names:
        return Choice(None, f"The address names the data set {shown(value)}, which is not "
                            "here: showing the one chosen before.")
    return Choice(value, None)


def checked_option(address: Address, key: str, options: Collection[str]) -> Choice:
    """One of a few fixed options (e.g. the split: train or test)."""
    value, refused = single_value(address, key)
    if value is None:
        return Choice(None, refused)
    if value not in options:
        return Choice(None, f"The address's '{key}' {shown(value)} is not one of "
                            f"{', '.join(options)}: it was left out.")
    return Choice(value, None)


def checked_classes(address: Address, classes: Sequence[str], key: str = "classes") -> Choice:
    """The classes the address names (comma-separated; a class whose name holds a comma is
    still found), those of this data set, as a tuple; a sentence naming the others."""
    value, refused = single_value(address, key)
    if value is None:
        return Choice(None, refused)
    found, unknown = split_names(value, classes)
    notice = None
    if unknown:
        notice = (f"This data set has no class {', '.join(shown(n) for n in unknown[:3])}"
                  f"{' and more' if len(unknown) > 3 else ''}: left out of the class filter.")
    return Choice(tuple(dict.fromkeys(found)), notice)


def split_names(text: str, known: Sequence[str]) -> tuple[list[str], list[str]]:
    """Comma-separated names split into those of `known` (the longest that fits first, so a
    known name may hold a comma) and the pieces that are none."""
    longest_first = sorted(known, key=len, reverse=True)
    found, unknown, rest = [], [], text
    while rest:
        name = next((k for k in longest_first if rest == k or rest.startswith(k + ",")), None)
        if name is None:
            piece, _, rest = rest.partition(",")
            if piece:
                unknown.append(piece)
            continue
        found.append(name)
        rest = rest[len(name) + 1:]
    return found, unknown


def checked_number(address: Address, key: str, low: int, high: int, step: int = 1) -> Choice:
    """A whole number from low to high (low plus a multiple of `step`)."""
    value, refused = single_value(address, key)
    if value is None:
        return Choice(None, refused)
    if (not re.fullmatch(r"\d{1,12}", value) or not low <= int(value) <= high
            or (int(value) - low) % step):
        steps = f" in steps of {step}" if step != 1 else ""
        return Choice(None, f"The address's '{key}' {shown(value)} is not a whole number from "
                            f"{low:,} to {high:,}{steps}: it was left out.")
    return Choice(int(value), None)


def view_address(**values: object) -> dict[str, str]:
    """A view's query parameters: each value as text (a tab by its short name, a list
    comma-separated), those that are None or empty left out."""
    labels = {label: short for short, label in EVALUATE_TABS.items()}
    params = {}
    for key, value in values.items():
        if value is None or value == () or value == []:
            continue
        if key == "tab":
            value = labels.get(str(value), value)
        if isinstance(value, Iterable) and not isinstance(value, str):
            value = ",".join(map(str, value))
        params[key] = str(value)
    return params

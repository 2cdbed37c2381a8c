"""What a person writes about a run: its name, a note and tags, checked and kept tidy before the
run store keeps them (RunStore.set_name, set_note, set_tags, tag). Each refusal is a RunError
that says what to write instead."""

from __future__ import annotations

import re
from collections.abc import Iterable

from cifar_core.errors import RunError
from cifar_core.runs.names import sweep_name

NOTE_LENGTH = 2000  # a few paragraphs: what was tried and what came of it
TAG_LENGTH = 24
MAX_TAGS = 20
# A tag is one plain word (letters, digits and - _ . inside), so that it can be typed after
# `runs tag`, filtered on, and shown anywhere without escaping.
_TAG = re.compile(r"[^\W_](?:[\w.-]*[^\W_])?")
_NOTE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]+")  # all but tabs and new lines


def clean_name(text: str | None) -> str | None:
    """A run's name as kept: one line, no spaces around, cut as a sweep's name is
    (names.sweep_name); None for an empty one (the run then shows its made-up name)."""
    name = sweep_name(text or "")
    if not name:
        return None
    if not any(c.isalnum() for c in name):
        raise RunError(f"A run's name needs at least one letter or digit (got {name!r}), "
                       "e.g. 'fast lr 0.02'.")
    return name


def clean_note(text: str | None) -> str:
    """A run's note as kept: its lines, without control characters or spaces around it;
    RunError for one over NOTE_LENGTH characters."""
    note = _NOTE_CONTROL.sub(" ", str(text or "").replace("\r\n", "\n")).strip()
    if len(note) > NOTE_LENGTH:
        raise RunError(f"A note is at most {NOTE_LENGTH:,} characters (this one has "
                       f"{len(note):,}): shorten it, or keep the longer text in a file of "
                       "your own.")
    return note


def clean_tag(text: str) -> str:
    """One tag as kept, in lower case; RunError for one that is not a short plain word."""
    tag = str(text).strip().lower()
    if len(tag) > TAG_LENGTH:
        raise RunError(f"A tag is at most {TAG_LENGTH} characters (got {len(tag)}: "
                       f"{tag[:TAG_LENGTH]}...): use a shorter word.")
    if not _TAG.fullmatch(tag):
        raise RunError(f"The tag {tag!r} is not a plain word: use letters and digits, with "
                       "- _ or . inside, and no spaces (e.g. baseline, lr-search).")
    return tag


def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags as kept: each cleaned (clean_tag), each once, in alphabetical order; RunError for
    more than MAX_TAGS."""
    kept = tuple(sorted({clean_tag(t) for t in tags}))
    if len(kept) > MAX_TAGS:
        raise RunError(f"A run takes at most {MAX_TAGS} tags (got {len(kept)}): keep the ones "
                       "you will filter on.")
    return kept

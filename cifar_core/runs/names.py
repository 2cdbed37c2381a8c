"""Names that people type (a sweep's) or bring (an imported file's), as the dashboard keeps and
shows them: one line, at most NAME_LENGTH characters, and, where a page writes them into
Markdown, as plain text: a name like `![t](http://host/x.png)` is shown as those characters,
never as a picture fetched from elsewhere by everyone who opens the page."""

from __future__ import annotations

import re

NAME_LENGTH = 80  # also how long an upload's file name is shown (explain/uploads)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# CommonMark lets a backslash escape any ASCII punctuation; these are the ones Markdown (and
# Streamlit's additions: :icons:, :colour[text], $maths$) gives a meaning inside a line. (The
# ones that count only at a line's start, # + - and a number's dot, are left: a name is always
# shown after other words, and ids like sweep-20261206-101500-a1b2 stay as they are.)
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>!|~$:&])")


def sweep_name(text: str) -> str:
    """A sweep's name as it is kept: control characters (new lines too) as spaces, no spaces
    around it, cut to NAME_LENGTH characters."""
    return short_name(" ".join(_CONTROL.sub(" ", str(text or "")).split()))


def short_name(name: str) -> str:
    """A name as shown: at most NAME_LENGTH characters, the cut marked with an ellipsis (names
    kept before they were cut at creation are cut here)."""
    name = str(name)
    return name if len(name) <= NAME_LENGTH else name[:NAME_LENGTH - 1] + "…"


def markdown_text(text: str) -> str:
    """`text` escaped so that st.markdown, st.caption and the alerts show it as it is."""
    return _MARKDOWN.sub(r"\\\1", _CONTROL.sub(" ", str(text)))

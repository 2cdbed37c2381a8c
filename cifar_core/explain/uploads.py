"""A file someone brings, read into its bytes and the name that messages call it by.

The one reader of uploads: photos (explain.photos) and network files (explain.network_imports)
both come through it, each with its own size limit and its own error, so that neither reads a
file of any size into memory before it is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import BinaryIO

from cifar_core.runs.names import NAME_LENGTH  # a file name is shown at most this long


def read_upload(file: bytes | bytearray | memoryview | BinaryIO, name: str | None,
                max_bytes: int, too_large: Callable[[str, int], Exception]) -> tuple[bytes, str]:
    """The bytes of `file` (its bytes, or a binary file such as Streamlit's UploadedFile) and
    the name messages call it by (`name`, else the file's own, through display_name). A file
    over `max_bytes` raises `too_large(name, size)`: before it is read where it says its size
    (an upload does), else once max_bytes + 1 bytes have been read (then `size` is that)."""
    name = display_name(name or getattr(file, "name", None))
    size = getattr(file, "size", None)
    if isinstance(size, int) and size > max_bytes:
        raise too_large(name, size)
    if hasattr(file, "getvalue"):
        content = bytes(file.getvalue())
    elif hasattr(file, "read"):
        content = bytes(file.read(max_bytes + 1))
    else:
        content = bytes(file)
    if len(content) > max_bytes:
        raise too_large(name, len(content))
    return content, name


def display_name(name: str | None) -> str:
    """A file name as messages show it: its last part only, without control characters, at
    most NAME_LENGTH characters ('This file' when it has none)."""
    base = re.sub(r"[\x00-\x1f\x7f]", "", str(name or "")).replace("\\", "/").rsplit("/", 1)[-1]
    base = base.strip() or "This file"
    return base if len(base) <= NAME_LENGTH else base[:NAME_LENGTH - 1] + "…"


def size_in_words(size: int) -> str:
    """A file's size as people read it: 250 KB, 20.0 MB, 931.3 GB."""
    if size >= 2**30:
        return f"{size / 2**30:,.1f} GB"
    return f"{size / 2**20:,.1f} MB" if size >= 2**20 else f"{size / 2**10:,.0f} KB"

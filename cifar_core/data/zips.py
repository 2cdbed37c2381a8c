"""A zip of class folders someone uploads, read as hostile until read.

Nothing is extracted by its own name: each entry that may be a picture is read into memory (at
most a picture file's cap, whatever its header says) and handed on with the name of the folder
it sits in, which then names its class. A zip with too many entries, or whose entries add up to
a zip bomb, is refused before any entry is read; entries that lead out of the folder (`../`,
absolute, a drive), links and loose files are skipped with a sentence each.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cifar_core.errors import DataError

MAX_ZIP_BYTES = 200 * 2**20  # a zip file as uploaded
MAX_ZIP_ENTRIES = 5000  # entries in a zip (folders included)
MAX_UNZIPPED_BYTES = 1 * 2**30  # the entries' declared sizes summed, and what is read of them
# Entries that zip tools add beside the pictures: passed over without a word.
_TOOL_FOLDERS = {"__MACOSX"}


@dataclass(frozen=True)
class ZipPicture:
    """An entry that may be a picture: the folder it sits in, its name, its bytes."""

    folder: str  # the last folder of its path: the class it is a picture of
    name: str  # its whole path in the zip, as messages show it
    data: bytes


def zip_pictures(file, max_file_bytes: int) -> Iterator[ZipPicture | str]:
    """The entries of the zip `file` (bytes, a path, a binary file or an UploadedFile) that
    may be pictures, and for each entry skipped a sentence saying why. DataError in one
    sentence, before any entry is read, for a file that is not a zip, a damaged one, one over
    MAX_ZIP_BYTES, over MAX_ZIP_ENTRIES entries or over MAX_UNZIPPED_BYTES unzipped; and as
    soon as what was read passes MAX_UNZIPPED_BYTES."""
    raw = file if isinstance(file, (str, Path)) else getattr(file, "name", None) or "This file"
    name = _shown(str(raw).replace("\\", "/").rsplit("/", 1)[-1])
    archive = _open_zip(_seekable(file, name), name)
    return _entries(archive, name, max_file_bytes)


def _seekable(file, name: str) -> BinaryIO:
    if isinstance(file, (str, Path)):
        path = Path(file)
        try:
            size = path.stat().st_size
            _check_zip_size(name, size)
            return io.BytesIO(path.read_bytes())
        except OSError as exc:
            raise DataError(f"{name} cannot be read ({exc.strerror or exc}): check the file "
                            "and try again.") from None
    if isinstance(file, (bytes, bytearray, memoryview)):
        _check_zip_size(name, len(file))
        return io.BytesIO(bytes(file))
    if hasattr(file, "getvalue"):  # an upload: its size is known before it is read
        size = getattr(file, "size", None)
        if isinstance(size, int):
            _check_zip_size(name, size)
        data = bytes(file.getvalue())
        _check_zip_size(name, len(data))
        return io.BytesIO(data)
    data = file.read(MAX_ZIP_BYTES + 1)
    _check_zip_size(name, len(data))
    return io.BytesIO(data)


def _check_zip_size(name: str, size: int) -> None:
    if size > MAX_ZIP_BYTES:
        raise DataError(f"{name} is {_megabytes(size)}, over the {_megabytes(MAX_ZIP_BYTES)}"
                        " a zip may have: split it into smaller zips.")


def _open_zip(data: BinaryIO, name: str) -> zipfile.ZipFile:
    head = data.read(4)
    data.seek(0)
    if not head.startswith(b"PK"):
        raise DataError(f"{name} is not a zip file: make a .zip of your class folders (one "
                        "folder per class, its pictures inside).")
    # The entry count is read from the zip's last record before the whole directory is
    # parsed, so that a zip of a million entries costs nothing to refuse.
    try:
        end = zipfile._EndRecData(data)  # (the standard library's own reader of that record)
    except (OSError, ValueError, AttributeError):
        end = None
    if end is not None and end[zipfile._ECD_ENTRIES_TOTAL] > MAX_ZIP_ENTRIES:
        raise _too_many(name, end[zipfile._ECD_ENTRIES_TOTAL])
    try:
        archive = zipfile.ZipFile(data)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise DataError(f"{name} is damaged (its list of files cannot be read): make the zip "
                        "again and upload it once more.") from None
    entries = archive.infolist()
    if len(entries) > MAX_ZIP_ENTRIES:
        raise _too_many(name, len(entries))
    declared = sum(info.file_size for info in entries)
    if declared > MAX_UNZIPPED_BYTES:
        raise _too_big_unzipped(name, declared)
    return archive


def _too_many(name: str, count: int) -> DataError:
    return DataError(f"{name} holds {count:,} entries, over the {MAX_ZIP_ENTRIES:,} a zip may "
                     "have: split it into smaller zips.")


def _too_big_unzipped(name: str, size: int) -> DataError:
    return DataError(f"{name} would unzip to over {_megabytes(size)}, more than the "
                     f"{_megabytes(MAX_UNZIPPED_BYTES)} a zip may hold: split it into "
                     "smaller zips of pictures.")


def _megabytes(size: int) -> str:
    return f"{size / 2**20:,.1f} MB"


def _shown(entry: str) -> str:
    """An entry's path as messages show it: no control characters, at most 80 characters."""
    shown = re.sub(r"[\x00-\x1f\x7f]", "", entry) or "An entry"
    return shown if len(shown) <= 80 else shown[:79] + "…"


def _parts(entry: str) -> list[str]:
    return re.split(r"[\\/]", entry)


def _leads_out(parts: list[str]) -> bool:
    return (parts[0] == "" or re.fullmatch(r"[A-Za-z]:", parts[0]) is not None
            or any(part == ".." for part in parts))


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _entries(archive: zipfile.ZipFile, name: str,
             max_file_bytes: int) -> Iterator[ZipPicture | str]:
    read = 0
    with archive:
        for info in archive.infolist():
            entry = _shown(info.filename)
            parts = _parts(info.filename)
            if info.is_dir() or (parts and not parts[-1]):
                continue  # a folder: its pictures are entries of their own
            if _TOOL_FOLDERS & set(parts) or parts[-1].startswith("."):
                continue
            if _leads_out(parts):
                yield f"{entry} leads out of the zip's folder: skipped."
                continue
            if _is_link(info):
                yield f"{entry} is a link, not a picture: skipped."
                continue
            if len(parts) < 2:
                yield (f"{entry} is not in a class folder: skipped (put each class's pictures "
                       "in a folder named after the class).")
                continue
            if info.file_size > max_file_bytes:
                yield (f"{entry} is {_megabytes(info.file_size)}, over the "
                       f"{_megabytes(max_file_bytes)} a picture may have: skipped.")
                continue
            try:
                with archive.open(info) as member:
                    data = member.read(max_file_bytes + 1)  # whatever its header says
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError):
                yield f"{entry} is damaged in the zip: skipped."
                continue
            except (NotImplementedError, RuntimeError):  # another compression; a password
                yield f"{entry} is encrypted or packed in a way this program cannot read: skipped."
                continue
            read += len(data)
            if read > MAX_UNZIPPED_BYTES:
                raise _too_big_unzipped(name, read)
            if len(data) > max_file_bytes:
                yield (f"{entry} is over the {_megabytes(max_file_bytes)} a picture may "
                       "have: skipped.")
                continue
            yield ZipPicture(parts[-2], "/".join(parts), data)

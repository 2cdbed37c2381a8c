"""All-or-nothing changes of a folder (a set of your own pictures): new files are written
into a hidden staging folder inside it and moved into place at the end; on any failure every
move is undone and what was staged removed, so that the folder is never left half-changed and
nothing is written outside it. A lock file in the folder serialises changes from several tabs
and processes."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
from pathlib import Path

from cifar_core.errors import DataError

STAGING_PREFIX = ".staging-"
LOCK_FILE = ".lock"


class FolderChange:
    """One all-or-nothing change of `folder`: new files are written into a hidden staging
    folder inside it and moved into place at the end; on any failure every move is
    undone and what was staged is removed. OSError becomes DataError in one sentence (a full
    disk says so)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.staging = folder / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
        self.moves: list[tuple[Path, Path]] = []
        self.made: list[Path] = []
        self.staged_bytes = 0

    def __enter__(self) -> FolderChange:
        self.staging.mkdir()
        return self

    def stage(self, data: bytes, name: str) -> Path:
        path = self.staging / name
        path.write_bytes(data)
        self.staged_bytes += len(data)
        return path

    def make_folder(self, path: Path) -> None:
        if not path.is_dir():
            path.mkdir(parents=False)
            self.made.append(path)

    def move(self, source: Path, target: Path) -> None:
        if target.exists():
            raise FileExistsError(errno.EEXIST, "already there", str(target))
        os.rename(source, target)
        self.moves.append((source, target))

    def __exit__(self, kind, error, _trace) -> bool:
        if error is not None:
            for source, target in reversed(self.moves):
                with contextlib.suppress(OSError):
                    os.rename(target, source)
            for path in reversed(self.made):
                with contextlib.suppress(OSError):
                    path.rmdir()
        shutil.rmtree(self.staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise disk_error(error, self.folder) from None
        return False


def disk_error(error: OSError, folder: Path) -> DataError:
    """The sentence for a change of `folder` that failed on `error` (a full disk says so)."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DataError(f"The disk is full, so nothing was changed in {folder}: free some "
                         "space and try again.")
    return DataError(f"{folder} could not be changed ({error.strerror or error}), so nothing "
                     "was: check that the runs folder can be written and try again.")


@contextlib.contextmanager
def locked(folder: Path, missing: str):
    """`folder` held against changes by other tabs and processes; DataError(`missing`) if it
    is not there."""
    try:
        handle = open(folder / LOCK_FILE, "a")  # noqa: SIM115 (held for the whole block)
    except FileNotFoundError:
        raise DataError(missing) from None
    except OSError as exc:
        raise disk_error(exc, folder) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield folder

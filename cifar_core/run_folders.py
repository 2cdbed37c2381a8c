"""Where a run's files live: one folder per run, directly inside the runs folder.

Ids and checkpoint paths come from the run store, a file anyone can edit; nothing read from it
may lead a file operation (a delete, a checkpoint load or download, a log) anywhere else. So
every path built from stored data is resolved (links followed) and checked here.
"""

from __future__ import annotations

from pathlib import Path

from cifar_core.errors import RunError


def is_plain_name(name: str) -> bool:
    """A single folder name: no separators, not '.' or '..', nothing the filesystem rejects."""
    return (bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")
            and Path(name).name == name)


class RunFolders:
    """The run folders under one runs folder."""

    def __init__(self, root: Path):
        self.root = root
        self.real_root = root.resolve()

    def folder(self, run_id: str) -> Path:
        """root/run_id; RunError for an id that would lead anywhere but directly inside root
        (e.g. '../x' from an edited store, or a folder that is a link to elsewhere)."""
        name = str(run_id)
        if not is_plain_name(name) or (self.root / name).resolve().parent != self.real_root:
            raise RunError(f"Refused: the run id {name!r} does not name a folder inside the runs "
                           f"folder {self.real_root} (the run store may have been edited). "
                           "Nothing was read, written or deleted.")
        return self.root / name

    def checkpoint(self, run_id: str, stored: str) -> str | None:
        """The stored checkpoint path if it names a file directly in the run's folder, else
        None. (A relative path stored under another working folder is found in the run's.)"""
        folder = self.folder(run_id).resolve()
        path = Path(stored)
        if (Path.cwd() / path).resolve().parent == folder:
            return stored
        if not path.is_absolute() and path.parent.name == run_id and is_plain_name(path.name):
            return str(folder / path.name)
        return None

    def refused_checkpoint(self, run_id: str, stored: str) -> RunError:
        return RunError(f"Refused: run {run_id}'s checkpoint path {stored} lies outside its "
                        f"folder {self.folder(run_id).resolve()} (the run store may have been "
                        "edited). Nothing was read.")

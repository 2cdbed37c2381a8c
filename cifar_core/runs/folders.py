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
        """The run's checkpoint file named by a stored path, found by its name in the run's
        folder as it is now, else None (then nothing is read). The path is stored relative to
        the runs folder ('<run id>/cifar_net.pth'); an older version stored it absolute, or
        relative to its working folder: found by name too, so a moved or renamed runs folder
        keeps its networks. A path naming any other folder is refused."""
        folder = self.folder(run_id)
        real = folder.resolve()
        path = Path(stored)
        if not is_plain_name(path.name):
            return None
        if path.parent.name != run_id and (Path.cwd() / path).resolve().parent != real:
            return None
        found = folder / path.name
        if found.resolve().parent != real:  # a link out of the folder
            return None
        return str(found)

    def stored_checkpoint(self, run_id: str, path: str) -> str:
        """What the store keeps for a checkpoint path: relative to the runs folder if it lies
        in the run's folder (so the folder can move), else as given (refused when read)."""
        if Path(path).resolve().parent == self.folder(run_id).resolve():
            return f"{run_id}/{Path(path).name}"
        return path

    def refused_checkpoint(self, run_id: str, stored: str) -> RunError:
        return RunError(f"Refused: run {run_id}'s checkpoint path {stored} lies outside its "
                        f"folder {self.folder(run_id).resolve()} (the run store may have been "
                        "edited). Nothing was read.")

"""The mistakes a user can make, one exception type each, each with a message they can act on.

The CLI prints `str(error)` and exits non-zero; the dashboard shows it with `st.error`.
"""


class CifarError(Exception):
    """Base class: something the user can fix, described in plain words."""


class DataError(CifarError):
    """A data set could not be found, downloaded or decoded."""


class DataNotFoundError(DataError):
    """No data in the data folder and no way to download it."""


class CorruptDataError(DataError):
    """A data file is missing, truncated or not of its data set."""


class ImageFolderError(DataError):
    """An image-folder data set is empty, inconsistent or unreadable."""


class ConfigError(CifarError):
    """A training setting is out of range. `field` names the setting."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class DeviceError(CifarError):
    """The requested device (cuda, mps, ...) does not exist on this machine."""


class CheckpointError(CifarError):
    """A checkpoint file is missing, corrupt, foreign or does not fit the network."""


class ImageError(CifarError):
    """An uploaded picture cannot be used. `reason` says which kind of problem it is ('empty',
    'not_image', 'unsupported', 'too_large', 'too_small', 'too_thin' or 'damaged'), so that a
    caller can tell them apart without reading the message."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class RunError(CifarError):
    """A request about a run cannot be done (unknown id, wrong state, ...)."""


class StoreError(RunError):
    """The run store cannot be read or written: a damaged file, a read-only folder, a full disk.
    `reason` says which ('damaged', 'read_only', 'full', 'busy' or 'other'), so that the store
    can mend what it can (a damaged file is moved aside) and say what to do about the rest."""

    def __init__(self, message: str, reason: str = "other", detail: str = ""):
        super().__init__(message)
        self.reason, self.detail = reason, detail  # detail: what SQLite or the OS said

"""Reading the pickled files of CIFAR-10's python version without running anything they hold.

A pickle names functions for the reader to call, and `pickle.load` calls whatever it names
(`os.system` included): a file in a data folder must not be able to run code. The official files
(Python 2's cPickle, protocol 2) hold a dict of strings, numbers, lists and one numpy array, and
that array is rebuilt with exactly three names: numpy.core.multiarray._reconstruct, numpy.ndarray
and numpy.dtype. This reader resolves those (also as numpy 2 writes them, numpy._core...), and the
two that copies written by Python 3 add (_codecs.encode: how protocol 2 stores bytes; numpy's
_frombuffer: how protocol 5 stores an array); it refuses any other name before anything runs.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from cifar_core.errors import CorruptDataError

try:  # numpy >= 1.26 has numpy._core, the names numpy 2 writes
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover (older numpy)
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """_codecs.encode as protocol 2 uses it to store bytes (latin-1 text), and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is only used with latin-1 text")
    return text.encode("latin1")


def _plain_dtype(*args) -> np.dtype:
    """numpy.dtype, for numbers only: an array of Python objects is not pixels or labels."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError("an array of Python objects")
    return dtype


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # the official files
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


def _printable(text: str, limit: int = 80) -> str:
    """A name taken from the file, safe to print: no control characters, not too long."""
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


class _CifarUnpickler(pickle.Unpickler):
    """pickle.Unpickler that can build plain data and numpy arrays of numbers, nothing else."""

    def __init__(self, raw: bytes, file: str, title: str = "CIFAR-10"):
        # latin1: the official files' Python 2 strings, the arrays' bytes among them.
        super().__init__(io.BytesIO(raw), encoding="latin1")
        self.file = file
        self.title = title

    def find_class(self, module: str, name: str):
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise CorruptDataError(
                f"The {self.title} file {self.file} asks to run "
                f"'{_printable(f'{module}.{name}')}' while it is read, which the real "
                f"{self.title} files never do, so it was refused and nothing in it ran. Delete "
                f"it (or its whole folder) and download {self.title} again, or copy a good one "
                "in its place."
            )
        return allowed


def load_cifar_pickle(raw: bytes, file: str, title: str = "CIFAR-10") -> object:
    """What the pickled bytes `raw` of a CIFAR-10 (or CIFAR-100: `title`) python-version file
    hold (dicts, lists, strings, bytes, numbers, numpy arrays of numbers). `file` names it in
    messages (e.g. "'data_batch_1' in data/cifar-10-batches-py"): CorruptDataError naming it if
    it asks for anything else; a damaged file raises what pickle raises (UnpicklingError,
    EOFError, ...)."""
    return _CifarUnpickler(raw, file, title).load()

"""cifar_core.data.safe_pickle: CIFAR-10's pickled files read without running anything they name."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from cifar_core.data.safe_pickle import load_cifar_pickle
from cifar_core.errors import CorruptDataError


def batch(n: int = 3) -> dict:
    return {"batch_label": "training batch 1 of 5", "labels": list(range(n)),
            "data": np.arange(n * 3072, dtype=np.uint8).reshape(n, 3072),
            "filenames": [f"image_{i}.png" for i in range(n)]}


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_batch_written_by_python_3_loads_whatever_the_protocol(protocol):
    # 2: how tests/conftest.py writes (bytes through _codecs.encode); 4: pickle.dump's default,
    # as ../shared/tools writes; 5: the array through numpy's _frombuffer.
    entry = load_cifar_pickle(pickle.dumps(batch(), protocol=protocol), "'data_batch_1'")
    assert entry["labels"] == [0, 1, 2] and entry["batch_label"] == "training batch 1 of 5"
    assert entry["data"].dtype == np.uint8
    assert np.array_equal(entry["data"], batch()["data"])


@pytest.mark.parametrize("payload, named", [
    ((os.system, ("true",)), "posix.system"),
    ((eval, ("1",)), "__builtin__.eval"),  # protocol 2 writes Python 2 names
    ((np.load, ("x.npy",)), "numpy.load"),
])
def test_anything_else_that_is_named_is_refused_before_it_runs(payload, named):
    class Payload:
        def __reduce__(self):
            return payload

    raw = pickle.dumps({"labels": [1], "extra": Payload()}, protocol=2)
    with pytest.raises(CorruptDataError) as err:
        load_cifar_pickle(raw, "'data_batch_1' in /data")
    assert "'data_batch_1' in /data" in str(err.value) and named in str(err.value)


def test_a_name_is_printed_without_control_characters():
    raw = b"\x80\x02cos\nsys\x1b[31mtem\n)R."
    with pytest.raises(CorruptDataError) as err:
        load_cifar_pickle(raw, "'batches.meta'")
    assert "\x1b" not in str(err.value) and "os.sys?[31mtem" in str(err.value)


def test_codecs_only_makes_latin1_bytes_and_arrays_hold_only_numbers():
    rot13 = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(pickle.UnpicklingError):
        load_cifar_pickle(rot13, "'data_batch_1'")
    objects = pickle.dumps(np.array([1, "a"], dtype=object), protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        load_cifar_pickle(objects, "'data_batch_1'")


def test_a_damaged_file_raises_what_pickle_raises():
    with pytest.raises((pickle.UnpicklingError, EOFError)):
        load_cifar_pickle(pickle.dumps(batch(), protocol=2)[:100], "'data_batch_1'")

"""The restricted unpickler: plain data and numeric numpy values load, anything that names a
global runs nothing, and no small pickle makes it allocate much."""

import builtins
import os
import pickle
import tracemalloc

import numpy as np
import pytest

from schemas import Reject
from sources.safe_pickle import safe_loads

PLAIN = {"refs": [1, -2.5, None, True, "naïve", b"\x00\xff", b"", (1, "a"), {"nested": [set(), {3}]}],
         "frozen": frozenset({"x"}), "buffer": bytearray(b"ab"), "z": 1 + 2j}


class TouchOnLoad:
    """Unpickling this opens (creates) a file: the classic code-execution pickle."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


class Plain:
    pass


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_containers_and_scalars_round_trip(protocol):
    assert safe_loads(pickle.dumps(PLAIN, protocol=protocol)) == PLAIN


def test_python2_byte_strings_read_as_utf8_text():
    # protocol 2 SHORT_BINSTRING, as a Python 2 `str` holding UTF-8 bytes is written
    encoded = "café".encode()
    data = b"\x80\x02]q\x00U" + bytes([len(encoded)]) + encoded + b"q\x01a."
    assert safe_loads(data) == ["café"]


def test_code_running_pickle_is_refused_and_runs_nothing(tmp_path):
    data = pickle.dumps([{"ok": 1}, TouchOnLoad(tmp_path / "pwned")])
    with pytest.raises(Reject) as err:
        safe_loads(data, locator="x.pickle")
    assert (err.value.reason, err.value.locator) == ("unsafe_pickle", "x.pickle")
    assert err.value.message == "refusing global io.open: only plain containers, scalars and numeric numpy arrays are allowed"
    assert not (tmp_path / "pwned").exists()
    # the same bytes through the standard unpickler do run code: the test above can fail
    pickle.loads(data)[1].close()
    assert (tmp_path / "pwned").exists()


def test_bytes_rebuilt_only_through_latin1():
    data = pickle.dumps(b"\x00\xff", protocol=2).replace(b"latin1", b"rot_13")
    with pytest.raises(Reject) as err:
        safe_loads(data)
    assert (err.value.reason, err.value.message) == (
        "unsafe_pickle", "refusing _codecs.encode with encoding 'rot_13': only latin1 rebuilds bytes")


def test_class_instances_are_refused():
    with pytest.raises(Reject) as err:
        safe_loads(pickle.dumps(Plain()))
    assert err.value.reason == "unsafe_pickle"
    assert "refusing global tests.sources.test_safe_pickle.Plain" in err.value.message


def test_persistent_ids_are_refused():
    data = b"\x80\x02]q\x00(U\x03pidq\x01Qe."  # a list holding a BINPERSID reference
    with pytest.raises(Reject) as err:
        safe_loads(data)
    assert err.value.reason == "unsafe_pickle"


@pytest.mark.parametrize("data", [b"", b"not a pickle", pickle.dumps([1, 2, 3])[:-3]])
def test_garbage_is_a_bad_pickle(data):
    with pytest.raises(Reject) as err:
        safe_loads(data, locator="f.p")
    assert (err.value.reason, err.value.locator) == ("bad_pickle", "f.p")


class Reduce:
    """Pickles as `func(*args)`, whatever func is: how a hostile pickle is written."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_scalars_and_numeric_arrays_load_as_numpy_made_them(protocol):
    fortran = np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3))
    value = {"n": np.int64(3), "f": np.arange(4, dtype=np.float32) / 2, "b": np.array([True, False, True]),
             "fortran": fortran, "in_tuple": (np.float64(0.5),), "dtype": np.dtype(">f8")}
    loaded = safe_loads(pickle.dumps(value, protocol=protocol))
    assert (type(loaded["n"]), loaded["n"]) == (np.int64, 3)
    assert (type(loaded["f"]), loaded["f"].dtype, loaded["f"].tolist()) == (np.ndarray, np.float32, [0.0, 0.5, 1.0, 1.5])
    assert (loaded["b"].dtype, loaded["b"].tolist()) == (np.bool_, [True, False, True])
    assert (loaded["fortran"].dtype.str, loaded["fortran"].tolist(), loaded["fortran"].flags.f_contiguous) == (
        ">i4", [[0, 1, 2], [3, 4, 5]], True)
    assert loaded["in_tuple"] == (np.float64(0.5),)
    assert (type(loaded["dtype"]), loaded["dtype"].str) == (np.dtypes.Float64DType, ">f8")


def test_numpy_1_module_names_load_too():
    data = pickle.dumps([np.arange(3, dtype=np.uint8), np.int64(7)], protocol=2)
    assert b"numpy._core.multiarray" in data  # numpy 2 wrote it; numpy 1 writes numpy.core
    array, scalar = safe_loads(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert (array.tolist(), array.dtype, scalar) == ([0, 1, 2], np.uint8, 7)


@pytest.mark.parametrize("value, refused", [
    (np.array([1, "a"], dtype=object), "refusing numpy dtype 'O8'"),
    (np.zeros(2, dtype=[("a", "<i4")]), "refusing numpy dtype 'V4'"),
    (np.array(["ab"]), "refusing numpy dtype 'U2'"),
    (np.ma.array([1, 2]), "refusing global numpy.ma.core._mareconstruct"),
    (Reduce(os.system, "true"), "refusing global posix.system"),
    (Reduce(builtins.eval, "1"), "refusing global builtins.eval"),
    (Reduce(np.load, "x.npy"), "refusing global numpy.load"),
    (Reduce(bytearray, 8_000_000_000), "refusing bytearray(int, None)"),
])
def test_unsafe_numpy_and_callables_are_refused(value, refused):
    data = pickle.dumps(value, protocol=4)
    with pytest.raises(Reject) as err:
        safe_loads(data)
    assert err.value.reason == "unsafe_pickle"
    assert err.value.message.startswith(refused)


def test_setting_the_state_of_an_allowed_global_is_refused():
    # `bytearray` then BUILD {}: would set attributes on the stand-in that every later load uses
    with pytest.raises(Reject) as err:
        safe_loads(b"\x80\x02c__builtin__\nbytearray\n}b.")
    assert (err.value.reason, err.value.message) == ("unsafe_pickle", "refusing to set the state of __builtin__.bytearray")


def peak_of_refusal(data, **kwargs):
    """(reason, message, peak traced bytes) of loading `data`, which must be refused."""
    tracemalloc.start()
    try:
        with pytest.raises(Reject) as err:
            safe_loads(data, **kwargs)
        return err.value.reason, err.value.message, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("data, reason, message", [
    # 41 bytes asking for bytearray(8e9)
    (pickle.dumps(Reduce(bytearray, 8_000_000_000), protocol=2), "unsafe_pickle",
     "refusing bytearray(int, None): only bytes or latin1 text rebuild a bytearray"),
    # BINBYTES8 / BYTEARRAY8 / BINUNICODE8 declaring 8e9 bytes: the C unpickler allocates them before reading
    *[(b"\x80\x04" + op + (8_000_000_000).to_bytes(8, "little") + b"x.", "bad_pickle",
       "not a readable pickle: UnpicklingError: an opcode before byte 11 declares 8000000000 bytes but 2 remain")
      for op in (b"\x8e", b"\x96", b"\x8d")],
    # LONG_BINPUT 10**7: the C unpickler grows (and zeroes) its memo table to twice that index
    (b"\x80\x02]r" + (10**7).to_bytes(4, "little") + b".", "unsafe_pickle",
     "memo index 10000000 at byte 3 is beyond the 3 opcodes read so far"),
])
def test_allocation_bombs_are_refused_before_allocating(data, reason, message):
    assert len(data) <= 41
    refused_reason, refused_message, peak = peak_of_refusal(data)
    assert (refused_reason, refused_message) == (reason, message)
    assert peak < 1 << 20


def test_opcode_budget_bounds_the_objects_built():
    data = b"\x80\x04" + b"\x8f" * 2000 + b"."  # 2000 EMPTY_SETs: 1 byte each, ~200 bytes of memory each
    reason, message, peak = peak_of_refusal(data, max_ops=1000)
    assert (reason, message) == ("pickle_too_large", "2002 opcodes, more than the limit of 1000")
    assert peak < 64 << 10
    assert len(safe_loads(pickle.dumps([set()] * 10), max_ops=30)) == 10

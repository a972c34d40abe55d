"""The restricted unpickler: plain data loads, anything that names a global runs nothing."""

import builtins
import pickle

import pytest

from schemas import Reject
from sources.safe_pickle import safe_loads

PLAIN = {"refs": [1, -2.5, None, True, "naïve", b"\x00\xff", (1, "a"), {"nested": [set(), {3}]}],
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
    assert err.value.message == "refusing global io.open: only plain containers and scalars are allowed"
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

"""Loading untrusted pickles (RefCOCO `refs(unc).p`, DAM `.pickle` members) without running code
or letting a small file claim a large amount of memory.

A pickle can name any importable callable and call it while loading, so the standard `pickle`
module executes code from the file. `safe_loads` uses an unpickler that refuses every global
except a short allow-list, each entry replaced by a stand-in that checks its arguments:

* dicts, lists, tuples, strings, bytes, numbers, booleans and None need no global at all;
* sets, frozensets and complex numbers; bytearrays only from bytes or latin1 text (never
  `bytearray(8_000_000_000)`); protocol 0-2 `bytes` through a latin1-only `_codecs.encode`;
* numpy scalars and arrays of a plain numeric dtype (bool, int, uint, float, complex), as numpy
  1 (`numpy.core...`) and numpy 2 (`numpy._core...`) pickle them: the dtype is rebuilt from its
  name and byte order only, and an array from a byte buffer whose length must match its shape,
  so an object dtype (which would unpickle arbitrary Python objects into the array), a
  structured dtype or a forged shape is refused.

Before unpickling, one pass over the opcodes (`_scan`) refuses what would make the C unpickler
allocate more than the data holds: a length prefix (bytes, strings, big ints) longer than the
rest of the data (it allocates the declared size before reading), a memo index far past the
memo (it grows its memo table to that index), and more than `max_ops` opcodes (a 1-byte opcode
can create a 200-byte object). Memory therefore stays within a small factor of `max_ops`.

Refusals are `unsafe_pickle` / `pickle_too_large` rejects and corrupt data `bad_pickle`, so an
adapter counts the record instead of crashing.

Example:
    >>> refs = safe_loads(Path("refcoco/refs(unc).p").read_bytes(), locator="refcoco/refs(unc).p")
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
from typing import Any

import numpy as np

from schemas import Reject

MAX_OPS = 20_000_000  # default opcode budget: a RefCOCO refs file needs about 5 million
_ALLOWED_KINDS = "biufc"  # numpy dtype kinds of plain numbers: bool, int, uint, float, complex


class _Refused(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list."""


class _TooLarge(pickle.UnpicklingError):
    """The pickle has more opcodes than the caller's budget."""


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Stands in for `_codecs.encode`, which protocols 0-2 use to rebuild `bytes` values."""
    if encoding not in ("latin1", "latin-1"):
        raise _Refused(f"refusing _codecs.encode with encoding {encoding!r}: only latin1 rebuilds bytes")
    return text.encode("latin1")


def _empty_bytes() -> bytes:
    """Stands in for `bytes`, which protocols 0-2 call with no argument for `b""` (never `bytes(n)`)."""
    return b""


def _bytearray(source: Any = b"", encoding: str | None = None) -> bytearray:
    """Stands in for `bytearray`: only the `(bytes,)` and `(latin1 text, 'latin-1')` forms pickle writes."""
    if isinstance(source, (bytes, bytearray)) and encoding is None:
        return bytearray(source)
    if isinstance(source, str) and encoding in ("latin1", "latin-1"):
        return bytearray(source, "latin1")
    raise _Refused(f"refusing bytearray({type(source).__name__}, {encoding!r}): only bytes or latin1 text rebuild a bytearray")


class _DType:
    """A numpy dtype being unpickled: `numpy.dtype(name, align, copy)`, then BUILD with its state.

    Only the byte order is taken from the state; a state that declares fields, a subarray or
    flags (what a structured or object dtype carries) is refused.
    """

    def __init__(self, name: Any, align: bool = False, copy: bool = False):
        dtype = np.dtype(name) if isinstance(name, str) else None
        if dtype is None or dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise _Refused(f"refusing numpy dtype {name!r}: only plain numeric dtypes ({_ALLOWED_KINDS}) are allowed")
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[1] in ("<", ">", "|", "=")
                and state[2:8] == (None, None, None, -1, -1, 0) and state[8:] in ((), (None,))):
            raise _Refused(f"refusing numpy dtype state {str(state)[:120]}: only a plain numeric dtype's state is allowed")
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


def _dtype_of(value: Any) -> np.dtype:
    if not isinstance(value, _DType):
        raise _Refused(f"refusing {type(value).__name__} as a numpy dtype: only numpy.dtype(...) is allowed")
    return value.dtype


def _array(buffer: Any, dtype: np.dtype, shape: Any, order: str) -> np.ndarray:
    """A copy of `buffer` as an array of `shape`; the buffer must hold exactly that many items."""
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape) and order in ("C", "F")):
        raise ValueError(f"numpy array shape {str(shape)[:80]} / order {order!r} is not a tuple of sizes / C or F")
    if not isinstance(buffer, (bytes, bytearray)) or len(buffer) != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"numpy array {shape} of {dtype} needs {math.prod(shape) * dtype.itemsize} bytes of data")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy(order="K")


def _scalar(dtype: Any, data: Any) -> np.generic:
    """Stands in for `numpy...multiarray.scalar(dtype, bytes)`."""
    return _array(data, _dtype_of(dtype), (), "C")[()]


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """Stands in for `numpy...numeric._frombuffer`, which protocol 5 uses for contiguous arrays."""
    return _array(buffer, _dtype_of(dtype), shape, order)


class _ArrayState:
    """An array being unpickled: `_reconstruct(ndarray, (0,), b'b')`, then BUILD with
    `(1, shape, dtype, is_fortran, raw bytes)`. Replaced by the real array after loading."""

    def __init__(self, subtype: Any, shape: Any, typecode: Any):
        if subtype is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
            raise _Refused("refusing numpy _reconstruct other than (ndarray, (0,), b'b'): only plain arrays are allowed")
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and isinstance(state[3], bool)):
            raise ValueError(f"numpy array state {str(state)[:80]} is not (1, shape, dtype, is_fortran, data)")
        _, shape, dtype, fortran, data = state
        self.array = _array(data, _dtype_of(dtype), shape, "F" if fortran else "C")


class _Global:
    """What `find_class` hands the pickle for an allowed global: calling it calls the stand-in.
    BUILD on it is refused: it would set attributes on objects every later load shares."""

    __slots__ = ("name", "make")

    def __init__(self, name: str, make: Any):
        self.name, self.make = name, make

    def __call__(self, *args: Any) -> Any:
        if self.make is None:
            raise _Refused(f"refusing a call of {self.name}")
        return self.make(*args)

    def __setstate__(self, state: Any) -> None:
        raise _Refused(f"refusing to set the state of {self.name}")


_NDARRAY = _Global("numpy.ndarray", None)  # only `_reconstruct`'s first argument
_STAND_INS: dict[tuple[str, str], Any] = {
    **{(module, name): make for module in ("builtins", "__builtin__")  # Python 2 says __builtin__
       for name, make in (("set", set), ("frozenset", frozenset), ("complex", complex),
                          ("bytearray", _bytearray), ("bytes", _empty_bytes))},
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy", "dtype"): _DType,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _ArrayState for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},
}
_GLOBALS = {key: _Global(".".join(key), make) for key, make in _STAND_INS.items()} | {("numpy", "ndarray"): _NDARRAY}


class _RestrictedUnpickler(pickle.Unpickler):
    numpy = False  # whether the pickle asked for a numpy stand-in whose results `_unwrap` replaces

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _GLOBALS:
            raise _Refused(f"refusing global {module}.{name}: only plain containers, scalars and numeric numpy arrays are allowed")
        self.numpy = self.numpy or name in ("_reconstruct", "dtype")
        return _GLOBALS[module, name]

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("refusing a persistent id: only plain containers and scalars are allowed")


# What follows each opcode, by its byte: a fixed number of bytes (>= 0), or one of the kinds
# below (negative, so the common fixed-size case costs one comparison in `_scan`'s loop).
_UNKNOWN, _LINE, _TWO_LINES, _PREFIX1, _PREFIX4, _PREFIX4U, _PREFIX8, _PUT, _LONG_BINPUT, _STOP = range(-1, -11, -1)
_KINDS = {pickletools.UP_TO_NEWLINE: _LINE, pickletools.TAKEN_FROM_ARGUMENT1: _PREFIX1,
          pickletools.TAKEN_FROM_ARGUMENT4: _PREFIX4, pickletools.TAKEN_FROM_ARGUMENT4U: _PREFIX4U,
          pickletools.TAKEN_FROM_ARGUMENT8U: _PREFIX8}
_TABLE = [_UNKNOWN] * 256
for _op in pickletools.opcodes:
    _TABLE[ord(_op.code)] = (0 if _op.arg is None else _TWO_LINES if _op.arg.name == "stringnl_noescape_pair"
                             else _KINDS.get(_op.arg.n, _op.arg.n))
_TABLE[ord("p")], _TABLE[ord("r")], _TABLE[ord(".")] = _PUT, _LONG_BINPUT, _STOP
_PREFIXES = {_PREFIX1: (1, False), _PREFIX4: (4, True), _PREFIX4U: (4, False), _PREFIX8: (8, False)}


def _scan(data: bytes, max_ops: int | None) -> None:
    """Walk the opcodes without building anything; raise before the unpickler could allocate
    more than `data` justifies: a length prefix past the end of the data, a memo index beyond
    the opcodes read so far (each memo entry takes one opcode, so a real index never is; BINPUT's
    1-byte index is harmless), or more than `max_ops` opcodes."""
    pos, end, ops, table = 0, len(data), 0, _TABLE
    while pos < end:
        kind = table[data[pos]]
        pos += 1
        ops += 1
        if kind >= 0:
            pos += kind
        elif kind == _STOP:
            break
        elif kind in _PREFIXES:
            width, signed = _PREFIXES[kind]
            size = int.from_bytes(data[pos : pos + width], "little", signed=signed)
            pos += width
            if size < 0 or size > end - pos:
                raise pickle.UnpicklingError(f"an opcode before byte {pos} declares {size} bytes but {end - pos} remain")
            pos += size
        elif kind == _LONG_BINPUT or kind == _PUT:
            after = pos + 4 if kind == _LONG_BINPUT else data.find(b"\n", pos) + 1
            index = int.from_bytes(data[pos:after], "little") if kind == _LONG_BINPUT else int(data[pos:after])
            if index > ops:
                raise _Refused(f"memo index {index} at byte {pos - 1} is beyond the {ops} opcodes read so far")
            pos = after
        elif kind == _UNKNOWN:
            raise pickle.UnpicklingError(f"unknown opcode {data[pos - 1]:#04x} at byte {pos - 1}")
        else:
            for _ in range(1 if kind == _LINE else 2):
                pos = data.find(b"\n", pos) + 1
                if pos == 0:
                    raise pickle.UnpicklingError("a text argument has no end of line")
    if max_ops is not None and ops > max_ops:
        raise _TooLarge(f"{ops} opcodes, more than the limit of {max_ops}")


def _unwrap(value: Any, seen: dict[int, Any]) -> Any:
    """`value` with every numpy stand-in in its lists, dict values and tuples replaced by the
    dtype or array it built."""
    if isinstance(value, _DType):
        return value.dtype
    if isinstance(value, _ArrayState):
        if value.array is None:
            raise ValueError("a numpy array was never given its data")
        return value.array
    if not isinstance(value, (list, dict, tuple)):
        return value
    if id(value) in seen:  # shared or cyclic: `seen` keeps the original alive, so its id stays unique
        return seen[id(value)][1]
    seen[id(value)] = (value, value)
    if isinstance(value, list):
        value[:] = [_unwrap(v, seen) for v in value]
    elif isinstance(value, dict):
        for k, v in value.items():
            value[k] = _unwrap(v, seen)
    else:
        seen[id(value)] = (value, tuple(_unwrap(v, seen) for v in value))
    return seen[id(value)][1]


def safe_loads(data: bytes, locator: str = "", max_ops: int | None = MAX_OPS) -> Any:
    """Unpickle `data` allowing only plain containers, scalars and numeric numpy values.

    Python 2 byte strings are read as UTF-8 text. Raises `Reject` with reason `unsafe_pickle`
    when the data names a global outside the allow-list (that is how a pickle runs code) or
    misuses an allowed one, `pickle_too_large` beyond `max_ops` opcodes (None: no budget), and
    `bad_pickle` when it is not a readable pickle at all.
    """
    try:
        _scan(data, max_ops)
        unpickler = _RestrictedUnpickler(io.BytesIO(data), encoding="utf-8")
        value = unpickler.load()
        return _unwrap(value, {}) if unpickler.numpy else value
    except _Refused as err:
        raise Reject("unsafe_pickle", str(err), locator) from None
    except _TooLarge as err:
        raise Reject("pickle_too_large", str(err), locator) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            UnicodeDecodeError, MemoryError, RecursionError) as err:
        raise Reject("bad_pickle", f"not a readable pickle: {type(err).__name__}: {err}", locator) from None

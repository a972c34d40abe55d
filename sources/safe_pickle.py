"""Loading untrusted pickles (RefCOCO `refs(unc).p`, DAM `.pickle` members) without running code.

A pickle can name any importable callable and call it while loading, so the standard `pickle`
module executes code from the file. `safe_loads` uses an unpickler that refuses every global
except a few plain container types: dicts, lists, tuples, strings, bytes, numbers, booleans and
None load as usual (they need no global at all), sets, bytearrays and complex numbers through
the allow-list, and protocol 0-2 `bytes` through a latin1-only stand-in for `_codecs.encode`.
Anything else is refused before it is called, and both refusal and corruption surface as a
`schemas.Reject`, so an adapter counts the record instead of crashing.

Example:
    >>> refs = safe_loads(Path("refcoco/refs(unc).p").read_bytes(), locator="refcoco/refs(unc).p")
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from schemas import Reject

# (module, name) pairs a pickle may reference; Python 2 pickles say __builtin__ for builtins.
_ALLOWED = {
    (module, name)
    for module in ("builtins", "__builtin__")
    for name in ("set", "frozenset", "bytearray", "complex")
}


class _Refused(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list."""


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Stands in for `_codecs.encode`, which protocols 0-2 use to rebuild `bytes` values."""
    if encoding not in ("latin1", "latin-1"):
        raise _Refused(f"refusing _codecs.encode with encoding {encoding!r}: only latin1 rebuilds bytes")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        if (module, name) not in _ALLOWED:
            raise _Refused(f"refusing global {module}.{name}: only plain containers and scalars are allowed")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("refusing a persistent id: only plain containers and scalars are allowed")


def safe_loads(data: bytes, locator: str = "") -> Any:
    """Unpickle `data` allowing only plain containers and scalars.

    Python 2 byte strings are read as UTF-8 text. Raises `Reject` with reason `unsafe_pickle`
    when the data names a global (that is how a pickle runs code), or `bad_pickle` when it is
    not a readable pickle at all.
    """
    unpickler = _RestrictedUnpickler(io.BytesIO(data), encoding="utf-8")
    try:
        return unpickler.load()
    except _Refused as err:
        raise Reject("unsafe_pickle", str(err), locator) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, UnicodeDecodeError, MemoryError) as err:
        raise Reject("bad_pickle", f"not a readable pickle: {type(err).__name__}: {err}", locator) from None

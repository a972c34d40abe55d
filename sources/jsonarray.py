"""Byte-range access to big top-level JSON arrays (VG, Osprey and MDVP ship one list per file).

`spans(path)` makes one streaming pass over the file and groups consecutive array elements
into spans of about `target_bytes`, recording each span's byte offsets; `read_span(path, span)`
later seeks straight to one span and parses only it. An adapter's `units()` calls `spans` once
and a worker's `convert()` calls `read_span` for its unit, so the total cost is two reads of the
file, whatever the number of units.

Why not ijson for the pass: it reports no byte positions, so a unit could only reach its
elements by re-parsing everything before them, and K units would cost K passes (quadratic in
the file size). Instead the pass feeds a latin-1 window of the bytes to the C JSON decoder
(`raw_decode`): latin-1 maps byte i to character i, so element ends are exact byte offsets, and
JSON's structure is ASCII, so only the values of non-ASCII strings come out garbled; the pass
uses elements for offsets and ids only. Memory holds one window (8 MiB, more only for a bigger
element) and one element, however large the file. The pass also checks that the bytes are UTF-8.

`members(path, streamed)` walks a top-level object the same way, giving the elements of the arrays
under the `streamed` keys one by one with their byte spans (COCO-style files: `sources.cocoindex`).

`load_json(path)` reads a whole small file (MeViS meta, HC-STVG) with the same errors.
Every file-level problem (empty, truncated, invalid JSON or UTF-8, not an array, nested too
deeply) is a `JsonFileError` whose message is one line naming the file and the byte offset:

    region_descriptions.json: truncated JSON at byte 1234 (expected ',' or ']')

    >>> units = spans(Path("region_descriptions.json"))       # [{"start", "end", "first", "count", "notes"}]
    >>> records = read_span(Path("region_descriptions.json"), units[3])
    >>> meta = load_json(Path("meta_expressions.json"))
"""

from __future__ import annotations

import codecs
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

WINDOW = 8 << 20
TARGET_BYTES = 4 << 20  # ~1-2 s of work per unit for the adapters here
_SPACE = re.compile(r"[ \t\r\n]*")
_BOM = "\xef\xbb\xbf"  # UTF-8 byte order mark, as latin-1 characters
# Where a "nested too deeply" error points. The C decoder itself stops at Python's recursion
# limit (about 1000 levels) with RecursionError; the error then names the first bracket deeper
# than this, the depth a later recursive consumer of the value can still afford.
MAX_DEPTH = 512
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)  # a string, or a bracket


class NotAnObject(ValueError):
    """`members`: the file's top-level value is not an object (`JsonFileError` for a broken one)."""


STREAMED = object()  # `members`: the value of an array that came element by element


class JsonFileError(ValueError):
    """A JSON file that cannot be read as a whole; the message is one line naming file and byte."""


def _error(path: Path, what: str, byte: int, detail: str) -> JsonFileError:
    return JsonFileError(f"{path}: {what} at byte {byte} ({detail})")


def _syntax_error(path: Path, err: json.JSONDecodeError, text: str, byte_of: Callable[[int], int]) -> JsonFileError:
    """A decoder error: truncated when the text ends inside the value, else invalid JSON."""
    unterminated = err.msg.startswith("Unterminated string")
    if unterminated or err.pos >= len(text.rstrip(" \t\r\n")):  # JSON whitespace only: \xa0 is UTF-8 data here
        detail = f"unterminated string from byte {byte_of(err.pos)}" if unterminated else err.msg
        return _error(path, "truncated JSON", byte_of(len(text)), detail)
    return _error(path, "invalid JSON", byte_of(err.pos), err.msg)


def _too_deep(path: Path, text: str, start: int, byte_of: Callable[[int], int]) -> JsonFileError:
    """The error for a RecursionError of the decoder on the value at `start` (the error path only)."""
    depth, at = 0, start
    for token in _TOKEN.finditer(text, start):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(token.group(), 0)
        if depth > MAX_DEPTH:
            at = token.start()
            break
    return _error(path, "JSON nested too deeply", byte_of(at), f"more than {MAX_DEPTH} levels")


class _Window:
    """A latin-1 view of part of a file: character i of `text` is byte `base + i`."""

    def __init__(self, f: BinaryIO, path: Path):
        self.f, self.path, self.text, self.base, self.eof = f, path, "", 0, False
        self.utf8, self.read = codecs.getincrementaldecoder("utf-8")(), 0

    def refill(self, pos: int) -> int:
        """Drop the text before `pos`, read more (at least as much as held); return `pos` in the new window."""
        self.base += pos
        chunk = self.f.read(max(WINDOW, len(self.text) - pos))
        self.eof = not chunk
        self._check_utf8(chunk)
        self.text = self.text[pos:] + chunk.decode("latin-1")
        return 0

    def _check_utf8(self, chunk: bytes) -> None:
        held = len(self.utf8.getstate()[0])  # bytes of a character split by the previous read
        try:
            self.utf8.decode(chunk, final=self.eof)
        except UnicodeDecodeError as err:
            raise _error(self.path, "invalid UTF-8", self.read - held + err.start, err.reason) from None
        self.read += len(chunk)

    def next_char(self, pos: int) -> tuple[int, str]:
        """Position and character of the next non-space character ('' at the end of the file)."""
        while True:
            pos = _SPACE.match(self.text, pos).end()
            if pos < len(self.text) or self.eof:
                return pos, self.text[pos : pos + 1]
            pos = self.refill(pos)


def _open(window: _Window, path: Path, what: str) -> tuple[int, str]:
    """Position and character of the file's first value (after a BOM); an empty file is an error."""
    pos, char = window.next_char(window.refill(0))
    if window.text.startswith(_BOM):
        pos, char = window.next_char(len(_BOM))
    if not char:
        raise _error(path, "empty file", window.base + pos, f"expected {what}")
    return pos, char


def _close(window: _Window, path: Path, pos: int, closing: str) -> None:
    """After the top-level value: nothing but whitespace may follow."""
    pos, char = window.next_char(pos)
    if char:
        raise _error(path, "invalid JSON", window.base + pos, f"found {char!r} after the {closing}")


def _array(decoder: json.JSONDecoder, window: _Window, pos: int, path: Path, tag: tuple = ()) -> Iterator[tuple]:
    """`(*tag, index, start, end, value)` of each element of the array whose `[` is at `pos`;
    returns the window position just after its `]`."""
    pos, char = window.next_char(pos + 1)
    index, expected = 0, "a value or ']'"
    while char != "]":
        if not char:
            raise _error(path, "truncated JSON", window.base + pos, f"expected {expected}")
        start = window.base + pos
        value, end = _decode(decoder, window, pos, path)
        yield (*tag, index, start, end, value)
        index += 1
        pos, char = _after_item(window, path, end - window.base, "]")
        expected = "a value"  # the loop goes on only past a ','
    return pos + 1


def _after_item(window: _Window, path: Path, pos: int, close: str) -> tuple[int, str]:
    """Past an array element or object member: position and character of the next item after a
    ',' (a trailing ',' before `close` is refused), or of `close`; anything else is an error."""
    pos, char = window.next_char(pos)
    if char == ",":
        pos, char = window.next_char(pos + 1)
        if char == close:
            raise _error(path, "invalid JSON", window.base + pos, f"trailing ',' before '{close}'")
    elif not char:
        raise _error(path, "truncated JSON", window.base + pos, f"expected ',' or '{close}'")
    elif char != close:
        raise _error(path, "invalid JSON", window.base + pos, f"expected ',' or '{close}', found {char!r}")
    return pos, char


def elements(path: Path) -> Iterator[tuple[int, int, int, Any]]:
    """`(index, start, end, value)` of each element of the top-level array in `path`.

    `start`/`end` are byte offsets; strings in `value` are decoded as latin-1 (ids and numbers
    are exact). Raises JsonFileError naming the file and byte offset if the file is not a
    complete JSON array of UTF-8 text.
    """
    with open(path, "rb") as f:
        window = _Window(f, path)
        pos, char = _open(window, path, "a JSON array")
        if char != "[":
            raise _error(path, "not a JSON array", window.base + pos, f"found {char!r}, expected a list of records")
        pos = yield from _array(json.JSONDecoder(), window, pos, path)
        _close(window, path, pos, "array's closing ']'")


def members(path: Path, streamed: frozenset[str] | set[str]) -> Iterator[tuple[str, int | None, int, int, Any]]:
    """The members of the top-level object in `path`, in file order, without holding it whole.

    A member whose key is in `streamed` and whose value is an array comes element by element,
    `(key, index, start, end, element)`, then closed by `(key, None, start, end, STREAMED)`
    (the array's span); any other member comes whole, `(key, None, start, end, value)`. Offsets are bytes; strings (keys included) are decoded as latin-1, as in `elements`.
    Raises NotAnObject when the top-level value is not an object, else JsonFileError naming the
    file and byte offset if the file is not a complete JSON object of UTF-8 text, or lists a key
    twice (json would silently keep the last value).
    """
    decoder = json.JSONDecoder()
    with open(path, "rb") as f:
        window = _Window(f, path)
        pos, char = _open(window, path, "a JSON object")
        if char != "{":
            raise NotAnObject(f"{path}: not a JSON object at byte {window.base + pos} (found {char!r})")
        pos, char = window.next_char(pos + 1)
        seen: set[str] = set()
        while char != "}":
            if char != '"':
                raise _error(path, "truncated JSON" if not char else "invalid JSON", window.base + pos, "expected a key")
            key_at = window.base + pos
            key, end = _decode(decoder, window, pos, path)
            if key in seen:
                raise _error(path, "invalid JSON", key_at, f"key {key!r} is listed twice at the top level")
            seen.add(key)
            pos, char = window.next_char(end - window.base)
            if char != ":":
                raise _error(path, "truncated JSON" if not char else "invalid JSON", window.base + pos, "expected ':'")
            pos, char = window.next_char(pos + 1)
            if key in streamed and char == "[":
                start = window.base + pos
                pos = yield from _array(decoder, window, pos, path, (key,))
                yield key, None, start, window.base + pos, STREAMED
            else:
                if not char:
                    raise _error(path, "truncated JSON", window.base + pos, "expected a value")
                start = window.base + pos
                value, end = _decode(decoder, window, pos, path)
                yield key, None, start, end, value
                pos = end - window.base
            pos, char = _after_item(window, path, pos, "}")
        _close(window, path, pos + 1, "object's closing '}'")


def _decode(decoder: json.JSONDecoder, window: _Window, pos: int, path: Path) -> tuple[Any, int]:
    """Decode the value at `pos`, refilling until it is complete; return it with its absolute end."""
    while True:
        try:
            value, end = decoder.raw_decode(window.text, pos)
            # A number that ends exactly at the window's end may continue in the next read.
            if end < len(window.text) or window.eof:
                return value, window.base + end
        except json.JSONDecodeError as err:
            if window.eof:
                raise _syntax_error(path, err, window.text, lambda p: window.base + p) from None
        except RecursionError:
            raise _too_deep(path, window.text, pos, lambda p: window.base + p) from None
        except ValueError as err:  # not a syntax error: an integer of more than 4300 digits
            raise _error(path, "invalid JSON", window.base + pos, f"in the value starting here: {str(err)[:80]}") from None
        pos = window.refill(pos)


def spans(path: Path, target_bytes: int = TARGET_BYTES, note: Callable[[Any], Any] | None = None) -> list[dict]:
    """Consecutive elements grouped into spans of about `target_bytes` (JSON-able dicts).

    Each span is `{"start", "end", "first", "count", "notes"}`: byte range, index of its first
    element, element count, and `note(element)` for each element when `note` is given (e.g. the
    image ids a unit must look up).
    """
    out: list[dict] = []
    current: dict | None = None
    for index, start, end, value in elements(path):
        if current is None:
            current = {"start": start, "end": end, "first": index, "count": 0, "notes": []}
        current["end"] = end
        current["count"] += 1
        if note is not None:
            current["notes"].append(note(value))
        if current["end"] - current["start"] >= target_bytes:
            out.append(current)
            current = None
    if current is not None:
        out.append(current)
    return out


def read_span(path: Path, span: dict) -> list[Any]:
    """The elements of one span, parsed as UTF-8 JSON from its byte range only."""
    with open(path, "rb") as f:
        f.seek(span["start"])
        data = f.read(span["end"] - span["start"])
    changed = "the file changed after its units were planned: plan again"
    try:
        values = json.loads(b"[" + data + b"]")
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError: the pass checked both
        raise JsonFileError(f"{path}: bytes {span['start']}-{span['end']} are not the planned JSON elements "
                            f"({type(err).__name__}); {changed}") from None
    if len(values) != span["count"]:
        raise JsonFileError(f"{path}: bytes {span['start']}-{span['end']} hold {len(values)} elements, "
                            f"planned {span['count']}; {changed}")
    return values


def _counting(repeated_keys: Counter) -> Callable[[list[tuple[str, Any]]], dict]:
    """An object hook that counts each key an object repeats (json keeps only the last value)."""
    def build(pairs: list[tuple[str, Any]]) -> dict:
        value = dict(pairs)
        if len(value) < len(pairs):
            repeated_keys.update(k for k, n in Counter(k for k, _ in pairs).items() for _ in range(n - 1))
        return value

    return build


def load_json(path: Path, repeated_keys: Counter | None = None) -> Any:
    """A whole JSON file (for small files an adapter indexes at once: COCO-style, MeViS meta).

    Raises JsonFileError (one line, file and byte offset) for an empty or truncated file, invalid
    JSON or UTF-8, or nesting too deep for the decoder. With `repeated_keys`, every key an object
    lists again is counted there (the parsed object keeps the last value, as json does), so a
    caller can reject records a release lists twice instead of losing one silently.
    """
    data = Path(path).read_bytes()
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as err:
        raise _error(path, "invalid UTF-8", skip + err.start, err.reason) from None

    def byte_of(pos: int) -> int:
        return skip + len(text[:pos].encode("utf-8"))

    if not text.strip(" \t\r\n"):
        raise _error(path, "empty file", len(data), "expected a JSON value")
    try:
        return json.loads(text, object_pairs_hook=None if repeated_keys is None else _counting(repeated_keys))
    except json.JSONDecodeError as err:
        raise _syntax_error(path, err, text, byte_of) from None
    except RecursionError:
        raise _too_deep(path, text, 0, byte_of) from None
    except ValueError as err:  # not a syntax error: an integer of more than 4300 digits
        digits = re.search(r"[0-9]{4301,}", text)
        raise _error(path, "invalid JSON", byte_of(digits.start() if digits else 0), str(err)[:80]) from None

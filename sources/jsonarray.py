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
element) and one element, however large the file.

    >>> units = spans(Path("region_descriptions.json"))       # [{"start", "end", "first", "count", "notes"}]
    >>> records = read_span(Path("region_descriptions.json"), units[3])
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

WINDOW = 8 << 20
TARGET_BYTES = 4 << 20  # ~1-2 s of work per unit for the adapters here
_SPACE = re.compile(r"[ \t\r\n]*")
_BOM = "\xef\xbb\xbf"  # UTF-8 byte order mark, as latin-1 characters


class _Window:
    """A latin-1 view of part of a file: character i of `text` is byte `base + i`."""

    def __init__(self, f: BinaryIO):
        self.f, self.text, self.base, self.eof = f, "", 0, False

    def refill(self, pos: int) -> int:
        """Drop the text before `pos`, read more (at least as much as held); return `pos` in the new window."""
        self.base += pos
        chunk = self.f.read(max(WINDOW, len(self.text) - pos))
        self.eof = not chunk
        self.text = self.text[pos:] + chunk.decode("latin-1")
        return 0

    def next_char(self, pos: int) -> tuple[int, str]:
        """Position and character of the next non-space character ('' at the end of the file)."""
        while True:
            pos = _SPACE.match(self.text, pos).end()
            if pos < len(self.text) or self.eof:
                return pos, self.text[pos : pos + 1]
            pos = self.refill(pos)


def elements(path: Path) -> Iterator[tuple[int, int, int, Any]]:
    """`(index, start, end, value)` of each element of the top-level array in `path`.

    `start`/`end` are byte offsets; strings in `value` are decoded as latin-1 (ids and numbers
    are exact). Raises ValueError naming the file and byte offset if the file is not a JSON array.
    """
    decoder = json.JSONDecoder()
    with open(path, "rb") as f:
        window = _Window(f)
        pos, char = window.next_char(window.refill(0))
        if window.text.startswith(_BOM):
            pos, char = window.next_char(len(_BOM))
        if char != "[":
            raise ValueError(f"{path}: expected a JSON array (a list of records), found {char!r} at byte {window.base + pos}")
        pos, char = window.next_char(pos + 1)
        index = 0
        while char != "]":
            start = window.base + pos
            value, end = _decode(decoder, window, pos, path)
            yield index, start, end, value
            index += 1
            pos, char = window.next_char(end - window.base)
            if char == ",":
                pos, char = window.next_char(pos + 1)
                if char == "]":
                    raise ValueError(f"{path}: trailing ',' before ']' at byte {window.base + pos}")
            elif char != "]":
                raise ValueError(f"{path}: expected ',' or ']' at byte {window.base + pos}, found {char!r}")


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
                raise ValueError(f"{path}: invalid JSON at byte {window.base + err.pos}: {err.msg}") from None
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
    try:
        values = json.loads(b"[" + data + b"]")
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: bytes {span['start']}-{span['end']} are not the planned JSON elements "
                         f"({err.msg}); the file changed after its units were planned: plan again") from None
    if len(values) != span["count"]:
        raise ValueError(f"{path}: bytes {span['start']}-{span['end']} hold {len(values)} elements, "
                         f"planned {span['count']}; the file changed after its units were planned: plan again")
    return values

"""The canonical region placeholder grammar: `<obj0>`, `<obj1>`, ... in conversation text.

Adapters convert native dialects (`<regionN>`, `<region>`, `<Mark N>`, `<mask><pos>`) into this
form; renderers in `tokenization/` convert it into model tokens. This module is the only place
that knows the syntax.

Example:
    >>> split("Is <obj0> left of <obj1>?")
    ['Is ', 0, ' left of ', 1, '?']
"""

from __future__ import annotations

import re
from collections.abc import Callable

OBJ_RE = re.compile(r"<obj(0|[1-9][0-9]*)>")

# Tokens of other dialects (and model-side tokens) that must never survive into canonical text.
FOREIGN_RE = re.compile(
    r"<image>|<video>|<region\s*\d*>|<REGION>|<mask>|<pos>|<Mark\s*\d+>|<object\s*\d+>|<obj(?!(0|[1-9][0-9]*)>)[^>]*>",
    re.IGNORECASE,
)


def obj(index: int) -> str:
    """The placeholder of region `index`."""
    return f"<obj{index}>"


def referenced(text: str) -> list[int]:
    """Region indices in order of appearance (repeats kept)."""
    return [int(m.group(1)) for m in OBJ_RE.finditer(text)]


def split(text: str) -> list[str | int]:
    """Text pieces and region indices, in order; empty pieces are left out."""
    parts: list[str | int] = []
    pos = 0
    for m in OBJ_RE.finditer(text):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        parts.append(int(m.group(1)))
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return parts


def render(text: str, token_for: Callable[[int], str]) -> str:
    """Replace every `<obj{i}>` with `token_for(i)`."""
    return OBJ_RE.sub(lambda m: token_for(int(m.group(1))), text)


def foreign_tokens(text: str) -> list[str]:
    """Dialect tokens left in text that should have been converted (e.g. `<region1>`)."""
    return [m.group(0) for m in FOREIGN_RE.finditer(text)]

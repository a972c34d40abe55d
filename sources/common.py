"""Helpers shared by the adapters: image checks, text normalisation, native turn conversion.

Everything here turns bad input into a `Reject` with a named reason, never a silent skip.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from schemas import Reject, Turn
from sources.base import resolve_inside

_MEDIA_TAG = re.compile(r"<image>|<video>", re.IGNORECASE)
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def normalize_text(text: str) -> str:
    """NFC unicode, whitespace runs collapsed to one space (newlines kept), ends stripped."""
    text = unicodedata.normalize("NFC", text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()


def image_size(root: Path, relative: str, locator: str) -> tuple[int, int]:
    """(width, height) of an image inside `root`, reading only its header.

    Rejects: path_escapes_root, image_missing, image_empty (zero bytes), image_unreadable.
    """
    path = resolve_inside(root, relative, locator)
    if not path.is_file():
        raise Reject("image_missing", f"no image file at {relative}", locator)
    if path.stat().st_size == 0:
        raise Reject("image_empty", f"{relative} has zero bytes", locator)
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as err:
        raise Reject("image_unreadable", f"{relative}: {err}", locator) from None


def native_turns(
    conversations: Sequence[dict], convert: Callable[[str], str], locator: str
) -> list[Turn]:
    """`[{"from": "human"|"gpt"|"system", "value": str}]` -> canonical turns.

    `<image>`/`<video>` tags are dropped wherever they stand; `convert` maps the source's
    region dialect to `<obj{i}>` (raising Reject for what it cannot map).
    """
    turns = []
    for i, turn in enumerate(conversations):
        role = _ROLES.get(str(turn.get("from", "")).lower())
        if role is None or not isinstance(turn.get("value"), str):
            raise Reject("bad_turn", f"turn {i} has from={turn.get('from')!r} / no string value", locator)
        turns.append(Turn(role=role, text=normalize_text(convert(_MEDIA_TAG.sub("", turn["value"])))))
    return turns

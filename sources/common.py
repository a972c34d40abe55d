"""Helpers shared by the adapters: image checks, text normalisation, native turn conversion, masks.

Everything here turns bad input into a `Reject` with a named reason, never a silent skip.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from schemas import Reject, Turn, masks
from sources.base import resolve_inside

FRAME_FOLDER_FPS = 3.0  # what PixelRefer's loader assumes for any frame folder (pixelrefer_official.md 2a)
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


def segmentation_rle(segmentation: Any, height: int, width: int, locator: str) -> masks.RLEDict:
    """Any COCO segmentation (polygons, RLE, uncompressed RLE) -> compressed RLE of (height, width).

    Rejects: invalid_polygon (no ring of >= 6 coordinates), mask_size_mismatch, bad_mask.
    """
    if isinstance(segmentation, list) and not masks.valid_rings(segmentation):
        raise Reject("invalid_polygon", "no polygon ring with >= 6 coordinates (pycocotools would read 4 as a box)", locator)
    if isinstance(segmentation, dict) and list(segmentation.get("size", [])) != [height, width]:
        raise Reject("mask_size_mismatch", f"RLE size {segmentation.get('size')} vs image {[height, width]}", locator)
    try:
        return masks.to_rle(segmentation, height, width)
    except masks.MaskError as err:
        raise Reject("bad_mask", str(err), locator) from None


def outcome(build: Callable[..., Any], *args: Any) -> Any:
    """`build(*args)`, or the Reject it raised: a record's outcome either way."""
    try:
        return build(*args)
    except Reject as reject:
        return reject


def mask_region(frames: Iterable[tuple[int, Any]], height: int, width: int, where: str) -> dict:
    """A mask region from `(frame, native mask)` pairs sorted by frame.

    A null, `[]` or all-zero mask means "absent on that frame" and is left out; an object
    absent everywhere is an `object_without_masks` reject.
    """
    kept = []
    for frame, segmentation in frames:
        if segmentation is None or segmentation == []:
            continue
        rle = segmentation_rle(segmentation, height, width, f"{where} frame {frame}")
        if masks.area(rle):
            kept.append(dict(frame=frame, mask=rle, box=masks.bbox(rle)))
    if not kept:
        raise Reject("object_without_masks", "the object has no mask on any frame", where)
    return dict(prompt="mask", mask_origin="annotation", frames=kept)

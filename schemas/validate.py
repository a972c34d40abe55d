"""The one validation function every writer calls, and the typed reject it raises.

A reject carries a machine-readable `reason` (one of `REASONS` for validation; adapters add
their own reason codes for native-format problems), a human `message`, and a `locator` naming
the record. Rejects are data: stages write them to `rejects/<source>.jsonl` and count them.

Example:
    >>> try:
    ...     validate(record)
    ... except Reject as r:
    ...     print(r.reason, r.message)
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from schemas import masks, placeholders
from schemas.sample import Sample

# Validation reason codes and what each means (shown by `pixelrefer validate`).
REASONS: dict[str, str] = {
    "schema_error": "a field is missing, mistyped or malformed (pydantic says which)",
    "invalid_text": "a string holds a lone surrogate, which UTF-8 (JSON, Arrow) cannot encode",
    "placeholder_out_of_range": "the text names <objN> but the sample has no region N",
    "region_unreferenced": "a region is never named in the conversation",
    "no_regions": "a region task with no regions",
    "no_media": "a sample without media that is not a region-free general_qa (text-only) sample",
    "foreign_token": "a native or model token (<region1>, <image>, <Mark 1>, ...) survived conversion",
    "frame_out_of_range": "a region frame index is outside the media's frames",
    "mask_size_mismatch": "an RLE's size differs from the media's height x width",
    "bad_mask": "an RLE that does not decode",
    "missing_prompt": "a frame lacks the mask, box or point its region's prompt kind requires",
    "empty_mask": "a mask-prompt region has an empty mask on a frame",
    "degenerate_box": "a box with zero or negative area or outside the frame",
    "point_out_of_frame": "a point outside the frame",
    "role_order": "turns are not [system] user, assistant, user, assistant, ... ending on assistant",
    "empty_turn": "a user or assistant turn with no text",
}


class Reject(Exception):
    """A record that cannot become a valid sample, with the reason why."""

    def __init__(self, reason: str, message: str, locator: str = ""):
        super().__init__(f"{reason}: {message}" + (f" (at {locator})" if locator else ""))
        self.reason = reason
        self.message = message
        self.locator = locator

    def to_dict(self) -> dict[str, str]:
        """The rejects-file row: {reason, locator, detail}."""
        return {"reason": self.reason, "locator": self.locator, "detail": self.message}


def validate(sample: Sample | dict[str, Any], locator: str = "") -> Sample:
    """Return the sample if it satisfies every rule of DESIGN.md section 3, else raise `Reject`."""
    if not isinstance(sample, Sample):
        try:
            sample = Sample.model_validate(sample)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise Reject("schema_error", f"{where}: {first['msg']}", locator) from None
    locator = locator or sample.id
    _check_writable(sample, locator)
    if sample.media is None and (sample.task != "general_qa" or sample.regions):
        raise Reject("no_media", f"task {sample.task} with {len(sample.regions)} region(s) needs media; "
                     "only a region-free general_qa sample may be text-only", locator)
    _check_conversation(sample, locator)
    if sample.media is not None:  # a text-only sample has no regions (checked above)
        _check_regions(sample, locator)
    return sample


def _check_writable(sample: Sample, locator: str) -> None:
    """The sample must serialise to UTF-8 JSON, as every writer (JSONL, Arrow) needs.

    pydantic's JSON check misses dict keys (it writes them with replacement characters), so
    `meta`, the one free-form dict, is walked as well.
    """
    try:
        sample.model_dump_json()
    except PydanticSerializationError as err:
        where = _lone_surrogate(sample.model_dump())
        if where is None:
            raise Reject("schema_error", f"not JSON-serialisable: {err}", locator) from None
    else:
        where = _lone_surrogate({"meta": sample.meta})
    if where:
        raise Reject("invalid_text", where, locator)


def _lone_surrogate(value: Any) -> str | None:
    """Where the first string UTF-8 cannot encode sits, e.g. 'conversation.1.text: ...' (dict keys too)."""
    stack = [("", value)]
    while stack:  # a loop, not recursion: meta may nest deeply
        where, v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as err:
                return f"{where.lstrip('.')}: lone surrogate {v[err.start]!r} at character {err.start}"
        elif isinstance(v, dict):
            stack.extend((f"{where}.{k}", item) for k, item in reversed(v.items()))
            # keys are checked before the values under them, so a path never holds a bad key
            stack.extend((f"{where} (key)", k) for k in reversed(v) if isinstance(k, str))
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{where}.{i}", item) for i, item in reversed(list(enumerate(v))))
    return None


def _check_conversation(sample: Sample, locator: str) -> None:
    turns = sample.conversation
    start = 1 if turns[0].role == "system" else 0
    roles = [t.role for t in turns[start:]]
    expected = ["user", "assistant"] * (len(roles) // 2)
    if not roles or roles != expected:
        raise Reject("role_order", f"roles {[t.role for t in turns]}", locator)
    for i, turn in enumerate(turns):
        if turn.role != "system" and not turn.text.strip():
            raise Reject("empty_turn", f"turn {i} ({turn.role}) is empty", locator)
        foreign = placeholders.foreign_tokens(turn.text)
        if foreign:
            raise Reject("foreign_token", f"turn {i} holds {foreign[0]!r}", locator)
    used = {i for t in turns for i in placeholders.referenced(t.text)}
    n = len(sample.regions)
    out = sorted(i for i in used if i >= n)
    if out:
        raise Reject("placeholder_out_of_range", f"<obj{out[0]}> named but only {n} regions", locator)
    unused = sorted(set(range(n)) - used)
    if unused:
        raise Reject("region_unreferenced", f"region {unused[0]} is never named", locator)
    if n == 0 and sample.task != "general_qa":
        raise Reject("no_regions", f"task {sample.task} needs at least one region", locator)


def _check_regions(sample: Sample, locator: str) -> None:
    media = sample.media
    h, w = media.height, media.width
    count = media.frame_count
    for ri, region in enumerate(sample.regions):
        for rf in region.frames:
            where = f"region {ri} frame {rf.frame}"
            if count is not None and rf.frame >= count:
                raise Reject("frame_out_of_range", f"{where}: media has {count} frames", locator)
            if getattr(rf, region.prompt) is None:
                raise Reject("missing_prompt", f"{where}: prompt is {region.prompt} but no {region.prompt}", locator)
            if rf.mask is not None:
                _check_mask(rf.mask.model_dump(), h, w, region.prompt == "mask", where, locator)
            if rf.box is not None:
                x0, y0, x1, y1 = rf.box
                if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
                    raise Reject("degenerate_box", f"{where}: box {list(rf.box)} in a {w}x{h} frame", locator)
            if rf.point is not None:
                x, y = rf.point
                if not (0 <= x <= w and 0 <= y <= h):
                    raise Reject("point_out_of_frame", f"{where}: point {list(rf.point)} in a {w}x{h} frame", locator)


def _check_mask(rle: dict, h: int, w: int, must_be_nonempty: bool, where: str, locator: str) -> None:
    if list(rle["size"]) != [h, w]:
        raise Reject("mask_size_mismatch", f"{where}: RLE size {list(rle['size'])} vs media {[h, w]}", locator)
    try:
        masks.check_counts(rle)
    except masks.MaskError as err:
        raise Reject("bad_mask", f"{where}: {err}", locator) from None
    if must_be_nonempty and masks.area(rle) == 0:
        raise Reject("empty_mask", f"{where}: the mask is empty", locator)

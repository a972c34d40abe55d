"""The unified sample: media + regions + conversation (DESIGN.md section 3).

Every source adapter converts its native records into `Sample`; every later stage (mix, videoqa,
shard, train) reads `Sample`. Structural rules (types, id charset, sorted frames) are enforced by
the models themselves; cross-field rules (placeholders vs regions, masks vs media size, turn
order) live in `schemas.validate`, which every writer calls.

Example:
    >>> s = Sample.model_validate_json(line)   # one JSONL line
    >>> validate(s)                             # raises schemas.Reject with a reason code
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1

Task = Literal[
    "recognition",
    "phrase_caption",
    "detailed_caption",
    "region_qa",
    "video_caption",
    "video_qa",
    "multiple_choice",
    "general_qa",
]
TASKS: tuple[str, ...] = Task.__args__  # type: ignore[attr-defined]

ID_RE = re.compile(r"^[A-Za-z0-9_/:-]+$")
_NATIVE_UNSAFE = re.compile(r"[^A-Za-z0-9_:-]")


def make_id(source: str, subset: str, native_id: str | int) -> str:
    """Build the stable sample id `"{source}/{subset}/{native_id}"`.

    Characters outside `[A-Za-z0-9_:-]` in the native id (dots in Panda-70M clip names, say)
    become `_`; when that happens a short digest of the original is appended so that two native
    ids that differ only in such characters never collide.
    """
    native = str(native_id)
    safe = _NATIVE_UNSAFE.sub("_", native)
    if safe != native:
        safe += "-" + hashlib.sha1(native.encode()).hexdigest()[:8]
    return f"{source}/{subset}/{safe}"


def key_for(sample_id: str) -> str:
    """WebDataset-safe key of an id: `/` becomes `~` (ids never hold `~` or `.`), so it is 1:1."""
    return sample_id.replace("/", "~")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=False)


class RLE(_Model):
    """Compressed COCO run-length encoding (column-major, as pycocotools writes it)."""

    size: tuple[int, int] = Field(description="[height, width] of the mask in pixels.")
    counts: str = Field(description="pycocotools' compressed counts string.")


class Media(_Model):
    """The picture or video a sample is about."""

    kind: Literal["image", "video"]
    path: str = Field(
        description="Relative to the source's media root: an image file, a video file or a frame folder."
    )
    frames: list[str] = Field(
        default_factory=list,
        description="Ordered frame paths relative to the media root (frame-folder videos only).",
    )
    num_frames: int | None = Field(
        default=None,
        ge=1,
        description="Decoded frame count of a video file, when known (frame folders use len(frames)).",
    )
    fps: float | None = Field(default=None, gt=0, description="Frame rate of `frames` or of the file.")
    timestamps: list[float] = Field(
        default_factory=list, description="Seconds of each entry of `frames`, when known."
    )
    width: int = Field(gt=0, description="Width of the frames the masks refer to.")
    height: int = Field(gt=0, description="Height of the frames the masks refer to.")

    @property
    def frame_count(self) -> int | None:
        """Number of addressable frames: 1 for an image, else frames or num_frames (None if unknown)."""
        if self.kind == "image":
            return 1
        return len(self.frames) or self.num_frames

    @model_validator(mode="after")
    def _check_frames(self) -> Media:
        if self.kind == "image" and (self.frames or self.timestamps or self.num_frames):
            raise ValueError("an image has no frames, timestamps or num_frames")
        if self.timestamps and len(self.timestamps) != len(self.frames):
            raise ValueError(
                f"{len(self.timestamps)} timestamps for {len(self.frames)} frames; they must align"
            )
        return self


class RegionFrame(_Model):
    """A region on one frame: its mask, box and/or point (what the prompt kind says is present)."""

    frame: int = Field(ge=0, description="Index into media.frames (0 for images).")
    mask: RLE | None = Field(default=None, description="Compressed RLE of the frame's size, or null.")
    box: tuple[float, float, float, float] | None = Field(
        default=None, description="[x0, y0, x1, y1] in absolute pixels, clipped to the frame."
    )
    point: tuple[float, float] | None = Field(default=None, description="[x, y] in absolute pixels.")


class Region(_Model):
    """One referred object; region i is written `<obj{i}>` in the conversation."""

    label: str | None = Field(default=None, description="Normalised category or phrase.")
    prompt: Literal["mask", "box", "point"] = Field(
        description="What the annotation really is; a box or point is never faked as a mask."
    )
    mask_origin: str | None = Field(
        default=None, description="Where masks came from: 'annotation', 'sam2', ...; null without masks."
    )
    frames: list[RegionFrame] = Field(min_length=1, description="Sorted by frame, one entry per frame.")

    @field_validator("frames")
    @classmethod
    def _sorted_unique(cls, frames: list[RegionFrame]) -> list[RegionFrame]:
        idx = [f.frame for f in frames]
        if any(a >= b for a, b in zip(idx, idx[1:])):
            raise ValueError(f"region frames must be strictly increasing, got {idx}")
        return frames


class Turn(_Model):
    role: Literal["system", "user", "assistant"]
    text: str = Field(description="Canonical text: regions appear as <obj0>, <obj1>, ...")


class Provenance(_Model):
    """Where a sample came from, precisely enough to find the native record again."""

    file: str = Field(description="Source file relative to the source root.")
    locator: str = Field(description="Position inside the file: index, line, tar member, ...")
    adapter: str = Field(description="Adapter (or engine) name.")
    adapter_version: str = Field(description="Adapter version; bump it when outputs change.")


class Sample(_Model):
    """One training example."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(description='"{source}/{subset}/{native_id}", characters [A-Za-z0-9_/:-].')
    key: str = Field(default="", description="WebDataset-safe form of id (derived; no dots or slashes).")
    source: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="Registry name of the adapter.")
    subset: str = Field(pattern=r"^[A-Za-z0-9_:-]+$", description="Part of the source, e.g. 'train'.")
    split: str
    license: str
    task: Task
    media: Media | None = Field(
        default=None,
        description="The picture or video; null only for a text-only general_qa sample (schemas.validate).",
    )
    regions: list[Region] = Field(default_factory=list)
    conversation: list[Turn] = Field(min_length=1)
    meta: dict[str, Any] = Field(default_factory=dict, description="JSON-serialisable source extras.")
    provenance: Provenance

    @model_validator(mode="after")
    def _check_ids(self) -> Sample:
        if not ID_RE.match(self.id):
            raise ValueError(f"id {self.id!r} has characters outside [A-Za-z0-9_/:-]")
        prefix = f"{self.source}/{self.subset}/"
        if not self.id.startswith(prefix) or len(self.id) == len(prefix):
            raise ValueError(f"id {self.id!r} must be '{prefix}<native_id>'")
        expected = key_for(self.id)
        if not self.key:
            self.key = expected
        elif self.key != expected:
            raise ValueError(f"key {self.key!r} does not match id (expected {expected!r})")
        return self

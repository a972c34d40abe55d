"""Read SAOT WebDataset shards (written by `pixelrefer shard`) back into typed samples.

This is the one shard reader of the project. The format (member names, the KEY.json header,
encodings, version) is `tokenization.shardformat`, shared with the writer; docs/shards.md
documents it for other readers (plain webdataset, Megatron-Energon). Shards of an older format
are refused with "rebuild the shards".

Views, crops and Lite views are JPEGs, decoded when the sample is read; an enlarged crop is
stored at its native `crop_hw` and `ObjectCrop.saot_crop` resizes it (the trainer does so on the
model's device).

Example:
    >>> for s in iter_shards(["OUT/shards/r/stage1/000000000.tar"]):
    ...     s.key, s.sample.conversation, [o.token_count for o in s.objects], s.objects[0].crop.shape
    >>> ds = dataset(urls).shuffle(100)   # a wds.WebDataset pipeline yielding ShardSample
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from schemas import Sample
from tokenization import shardformat
from tokenization.saot_torch import saot_crop


@dataclass(frozen=True)
class ObjectCrop:
    """SAOT inputs of one region on one frame (the model's object-token input)."""

    region: int  # index into sample.regions (<obj{region}>)
    frame: int  # index into sample.media.frames (0 for images)
    box: tuple[int, int, int, int]  # (y0, x0, y1, x1) padded crop box, inclusive, released order
    frame_hw: tuple[int, int]
    area: int  # mask pixels
    scale: float  # SAOT scale s
    crop_hw: tuple[int, int]  # pixels cropped from the frame
    resize_hw: tuple[int, int]  # crop size after resize (multiples of 14)
    grid_hw: tuple[int, int]  # token grid = resize_hw / 14
    token_count: int  # tokenization.saot.token_count of this grid: the <REGION> count
    crop: torch.Tensor  # uint8 (3, h, w): resize_hw, or crop_hw for an enlarged crop (see `saot_crop`)
    grid: torch.Tensor  # float32 (*grid_hw): bilinear grid mask
    pos: torch.Tensor  # float32 (*grid_hw, 2): relative position grid (saot.position_grid)
    local: torch.Tensor | None  # Lite: uint8 (3, 224, 224), else None

    def saot_crop(self) -> torch.Tensor:
        """The crop at `resize_hw`, as SAOT feeds it to the vision tower. Enlarged crops are stored at
        their native size (far fewer bytes) and resized here with the writer's own INTER_LINEAR."""
        return saot_crop(self.crop, self.resize_hw)


@dataclass(frozen=True)
class ShardFrame:
    """A stored frame: the global image, or one sampled/annotated video frame at full resolution."""

    frame: int  # index into sample.media.frames (0 for images)
    timestamp: float | None  # seconds (videos)
    sampled: bool  # part of the fps-1 / max-180 global sequence
    annotated: bool  # some region has a mask on it
    data: Any  # the stored member: original encoded bytes (a tensor if a webdataset decoder ran, or decoded from a clip)
    view: torch.Tensor | None  # uint8 (3, S, S) stored global view (images, S = view_size), else None
    lite_global: torch.Tensor | None  # Lite: uint8 (3, 336, 336), else None

    @property
    def image(self) -> torch.Tensor:
        """The full-resolution frame, uint8 (3, H, W), decoded on access."""
        return shardformat.image(self.data)


@dataclass(frozen=True)
class ShardSample:
    """One sample read back from a shard: the unified Sample plus its precomputed SAOT inputs."""

    key: str
    sample: Sample
    mode: str  # SAOT mode: 'official' or 'paper'
    lite: bool
    n: int  # max object tokens per region frame
    view_size: int  # side of the stored global views (0: none stored)
    frames: list[ShardFrame]  # sorted by frame index
    objects: list[ObjectCrop]  # region-major, then frame order

    def objects_of(self, region: int) -> list[ObjectCrop]:
        return [o for o in self.objects if o.region == region]


def _tensor(array: np.ndarray, start: int, stop: int, shape: tuple[int, ...]) -> torch.Tensor:
    """A copied slice of a flat member array as a tensor of `shape`."""
    return torch.from_numpy(np.array(array[start:stop]).reshape(shape))


def to_shard_sample(raw: dict[str, Any]) -> ShardSample:
    """A webdataset sample dict (members by extension; decoded or raw bytes) -> ShardSample."""
    meta = shardformat.Header.decode(raw["json"], f"{raw.get('__url__')}: sample {raw.get('__key__')}")
    cells = max((o.cells[1] for o in meta.objects), default=0)
    grid = shardformat.floats(raw[shardformat.GRID], cells) if cells else None
    pos = shardformat.floats(raw[shardformat.POS], 2 * cells).reshape(cells, 2) if cells else None

    def pixels(member: str | None) -> torch.Tensor | None:
        return None if member is None else shardformat.image(raw[member])

    data = {f.frame: raw[f.member] for f in meta.frames}
    for clip in {f.member for f in meta.frames if shardformat.is_clip(f.member)}:  # a video file: decoded once, here
        media = meta.sample["media"]
        rgb, _ = shardformat.clip_frames(raw[clip], list(data), (media["width"], media["height"]))
        data = {f: torch.from_numpy(a).permute(2, 0, 1) for f, a in rgb.items()}  # channels-last, as decoded
    frames = [ShardFrame(f.frame, f.timestamp, f.sampled, f.annotated, data[f.frame], pixels(f.view), pixels(f.lite_global))
              for f in meta.frames]
    objects = [ObjectCrop(o.region, o.frame, o.box, o.frame_hw, o.area, o.scale, o.crop_hw, o.resize_hw, o.grid_hw,
                          o.token_count, pixels(o.crop), _tensor(grid, *o.cells, o.grid_hw), _tensor(pos, *o.cells, (*o.grid_hw, 2)),
                          pixels(o.lite_local))
               for o in meta.objects]
    saot = meta.saot
    return ShardSample(raw["__key__"], Sample.model_validate(meta.sample), saot["mode"], saot["lite"], saot["n"],
                       meta.view_size, frames, objects)


def dataset(urls: str | list[str], **webdataset_kwargs: Any) -> wds.WebDataset:
    """A plain `wds.WebDataset` pipeline that yields ShardSample (shard order kept unless told)."""
    webdataset_kwargs.setdefault("shardshuffle", False)
    return wds.WebDataset(urls, **webdataset_kwargs).map(to_shard_sample)


def iter_shards(urls: Iterable[str | Path]) -> Iterator[ShardSample]:
    """Every sample of the given shard files, in order (our own tar reader, `shardformat.read_tar`)."""
    for url in urls:
        yield from map(to_shard_sample, shardformat.read_tar(url))

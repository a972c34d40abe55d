"""Read SAOT WebDataset shards (written by `pixelrefer shard`) back into typed samples.

This is the one shard reader of the project; docs/shards.md documents the member layout for
other readers (plain webdataset, Megatron-Energon). Members of one sample `KEY`:

    KEY.json              {"format", "sample", "saot", "frames", "objects"} (see ShardSample)
    KEY.image.<ext>       the global image, original bytes            (images)
    KEY.frame_NNNNNN.<ext> sampled/annotated video frames, original bytes (videos; NNNNNN = frame index)
    KEY.crop_NNN.png      object crop NNN, resized to multiples of 14  (one per region frame)
    KEY.grid.npy          float32 (cells,): every object's grid mask, flattened, concatenated
    KEY.pos.npy           float32 (cells, 2): every object's position grid, same order
    KEY.global_NNNNNN.png Lite: frame NNNNNN squashed to 336x336       (--lite only)
    KEY.local_NNN.png     Lite: crop NNN at 224x224                    (--lite only)

Object i owns cells `objects[i]["cells"] = [start, stop)` of grid/pos, reshaped to `grid_hw`.

Example:
    >>> for s in iter_shards(["OUT/shards/r/stage1/000000.tar"]):
    ...     s.key, s.sample.conversation, [o.token_count for o in s.objects], s.objects[0].crop.shape
    >>> ds = dataset(urls).shuffle(100)   # a wds.WebDataset pipeline yielding ShardSample
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torchvision.io import ImageReadMode, decode_image

from schemas import Sample

FORMAT = "pixelrefer-shard/1"


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
    crop: torch.Tensor  # uint8 (3, *resize_hw)
    grid: torch.Tensor  # float32 (*grid_hw): bilinear grid mask
    pos: torch.Tensor  # float32 (*grid_hw, 2): relative position grid (saot.position_grid)
    local: torch.Tensor | None  # Lite: uint8 (3, 224, 224), else None


@dataclass(frozen=True)
class ShardFrame:
    """A stored frame: the global image, or one sampled/annotated video frame at full resolution."""

    frame: int  # index into sample.media.frames (0 for images)
    timestamp: float | None  # seconds (videos)
    sampled: bool  # part of the fps-1 / max-180 global sequence
    annotated: bool  # some region has a mask on it
    image: torch.Tensor  # uint8 (3, H, W)
    lite_global: torch.Tensor | None  # Lite: uint8 (3, 336, 336), else None


@dataclass(frozen=True)
class ShardSample:
    """One sample read back from a shard: the unified Sample plus its precomputed SAOT inputs."""

    key: str
    sample: Sample
    mode: str  # SAOT mode: 'official' or 'paper'
    lite: bool
    n: int  # max object tokens per region frame
    frames: list[ShardFrame]  # sorted by frame index
    objects: list[ObjectCrop]  # region-major, then frame order

    def objects_of(self, region: int) -> list[ObjectCrop]:
        return [o for o in self.objects if o.region == region]


def _image(value: Any) -> torch.Tensor:
    """A decoded member (torchrgb8 tensor) or raw bytes -> uint8 (3, H, W)."""
    if isinstance(value, torch.Tensor):
        return value
    return decode_image(torch.frombuffer(bytearray(value), dtype=torch.uint8), mode=ImageReadMode.RGB)


def _array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    return np.load(io.BytesIO(value), allow_pickle=False)


def _json(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    return json.loads(value)


def to_shard_sample(raw: dict[str, Any]) -> ShardSample:
    """A webdataset sample dict (members by extension; decoded or raw bytes) -> ShardSample."""
    meta = _json(raw["json"])
    if meta.get("format") != FORMAT:
        raise ValueError(f"{raw.get('__url__')}: sample {raw.get('__key__')} has format {meta.get('format')!r}, expected {FORMAT!r}")
    grid = _array(raw["grid.npy"]) if meta["objects"] else np.zeros(0, np.float32)
    pos = _array(raw["pos.npy"]) if meta["objects"] else np.zeros((0, 2), np.float32)
    frames = [
        ShardFrame(
            frame=f["frame"], timestamp=f["timestamp"], sampled=f["sampled"], annotated=f["annotated"],
            image=_image(raw[f["member"]]),
            lite_global=None if f["lite_global"] is None else _image(raw[f["lite_global"]]),
        )
        for f in meta["frames"]
    ]
    objects = []
    for o in meta["objects"]:
        gh, gw = o["grid_hw"]
        start, stop = o["cells"]
        objects.append(ObjectCrop(
            region=o["region"], frame=o["frame"], box=tuple(o["box"]), frame_hw=tuple(o["frame_hw"]),
            area=o["area"], scale=o["scale"], crop_hw=tuple(o["crop_hw"]), resize_hw=tuple(o["resize_hw"]),
            grid_hw=(gh, gw), token_count=o["token_count"], crop=_image(raw[o["crop"]]),
            grid=torch.from_numpy(np.array(grid[start:stop]).reshape(gh, gw)),
            pos=torch.from_numpy(np.array(pos[start:stop]).reshape(gh, gw, 2)),
            local=None if o["lite_local"] is None else _image(raw[o["lite_local"]]),
        ))
    saot = meta["saot"]
    return ShardSample(raw["__key__"], Sample.model_validate(meta["sample"]), saot["mode"], saot["lite"], saot["n"], frames, objects)


def dataset(urls: str | list[str], **webdataset_kwargs: Any) -> wds.WebDataset:
    """A plain `wds.WebDataset` pipeline that yields ShardSample (shard order kept unless told)."""
    webdataset_kwargs.setdefault("shardshuffle", False)
    return wds.WebDataset(urls, **webdataset_kwargs).decode("torchrgb8").map(to_shard_sample)


def iter_shards(urls: Iterable[str]) -> Iterator[ShardSample]:
    """Every sample of the given shard files, in order."""
    yield from dataset([str(u) for u in urls])

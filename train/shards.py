"""Read SAOT WebDataset shards (written by `pixelrefer shard`) back into typed samples.

This is the one shard reader of the project; docs/shards.md documents the member layout for
other readers (plain webdataset, Megatron-Energon). Members of one sample `KEY`:

    KEY.json               {"format", "sample", "saot", "view_size", "frames", "objects"} (see ShardSample)
    KEY.image.<ext>        the global image, original bytes                    (images)
    KEY.frame_NNNNNN.<ext> sampled/annotated video frames, original bytes      (videos; NNNNNN = frame index)
    KEY.view.npy           uint8 (3, S, S): the image's global view, S = view_size (images; absent if 0)
    KEY.crops.npy          uint8 (pixels,): every object's crop, (3, *stored_hw) flattened, concatenated
    KEY.grid.npy           float32 (cells,): every object's grid mask, flattened, concatenated
    KEY.pos.npy            float32 (cells, 2): every object's position grid, same order
    KEY.lite_global.npy    Lite: uint8 (A, 3, 336, 336), the annotated frames squashed   (--lite only)
    KEY.lite_local.npy     Lite: uint8 (L, 3, 224, 224), the objects' local views       (--lite only)

A text-only sample (`sample.media` null) is `KEY.json` alone, with empty `frames` and `objects`;
a sample without regions has no crops/grid/pos members.
Object i owns `objects[i]["pixels"] = [start, stop)` of crops and `["cells"]` of grid/pos.
Pixels are stored raw (uint8, no image codec) so that reading them costs a copy, not a decode.
A crop is stored at `resize_hw`, except an enlarged one (SAOT scale >= 1 and fewer native
pixels), stored at its native `crop_hw`: `saot_crop` resizes it (the trainer does so on the GPU).

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
import torch.nn.functional as F
import webdataset as wds
from PIL import Image
from torchvision.io import ImageReadMode, decode_image

from schemas import Sample
from tokenization.saot_torch import saot_crop

FORMAT = "pixelrefer-shard/2"


def global_view(data: bytes, size: int) -> torch.Tensor:
    """Encoded image bytes -> its uint8 (3, size, size) global view (squashed, antialiased bilinear).

    The shard writer stores this for images and the trainer computes the same from the original
    bytes when no stored view fits, so both give identical pixels. JPEGs are DCT-scaled while
    decoding (PIL draft: the smallest 1/2, 1/4 or 1/8 scale still >= size).
    """
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (size, size))
        frame = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    # uint8 antialiased bilinear: torch's integer fast path, no full-resolution float copy
    return F.interpolate(frame[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


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
        their native size (far fewer bytes) and resized here exactly as the shard writer would."""
        return saot_crop(self.crop, self.resize_hw)


@dataclass(frozen=True)
class ShardFrame:
    """A stored frame: the global image, or one sampled/annotated video frame at full resolution."""

    frame: int  # index into sample.media.frames (0 for images)
    timestamp: float | None  # seconds (videos)
    sampled: bool  # part of the fps-1 / max-180 global sequence
    annotated: bool  # some region has a mask on it
    data: Any  # the stored member: original encoded bytes (or a tensor, if a webdataset decoder ran)
    view: torch.Tensor | None  # uint8 (3, S, S) stored global view (images, S = view_size), else None
    lite_global: torch.Tensor | None  # Lite: uint8 (3, 336, 336), else None

    @property
    def image(self) -> torch.Tensor:
        """The full-resolution frame, uint8 (3, H, W), decoded on access."""
        return _image(self.data)


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


def _tensor(array: np.ndarray, start: int, stop: int, shape: tuple[int, ...]) -> torch.Tensor:
    """A copied slice of a flat member array as a tensor of `shape`."""
    return torch.from_numpy(np.array(array[start:stop]).reshape(shape))


def _stack(raw: dict[str, Any], member: str) -> np.ndarray | None:
    return _array(raw[member]) if member in raw else None


def to_shard_sample(raw: dict[str, Any]) -> ShardSample:
    """A webdataset sample dict (members by extension; decoded or raw bytes) -> ShardSample."""
    meta = _json(raw["json"])
    if meta.get("format") != FORMAT:
        raise ValueError(f"{raw.get('__url__')}: sample {raw.get('__key__')} has format {meta.get('format')!r}, "
                         f"expected {FORMAT!r}: rebuild the shards with this version's `pixelrefer shard`")
    has_objects = bool(meta["objects"])
    crops = _array(raw["crops.npy"]) if has_objects else None
    grid = _array(raw["grid.npy"]) if has_objects else None
    pos = _array(raw["pos.npy"]) if has_objects else None
    lite_global, lite_local = _stack(raw, "lite_global.npy"), _stack(raw, "lite_local.npy")
    frames = [
        ShardFrame(
            frame=f["frame"], timestamp=f["timestamp"], sampled=f["sampled"], annotated=f["annotated"],
            data=raw[f["member"]],
            view=None if f["view"] is None else torch.from_numpy(np.array(_array(raw[f["view"]]))),
            lite_global=None if f["lite_global"] is None else torch.from_numpy(np.array(lite_global[f["lite_global"]])),
        )
        for f in meta["frames"]
    ]
    objects = []
    for o in meta["objects"]:
        gh, gw = o["grid_hw"]
        objects.append(ObjectCrop(
            region=o["region"], frame=o["frame"], box=tuple(o["box"]), frame_hw=tuple(o["frame_hw"]),
            area=o["area"], scale=o["scale"], crop_hw=tuple(o["crop_hw"]), resize_hw=tuple(o["resize_hw"]),
            grid_hw=(gh, gw), token_count=o["token_count"],
            crop=_tensor(crops, *o["pixels"], (3, *o["stored_hw"])),
            grid=_tensor(grid, *o["cells"], (gh, gw)),
            pos=_tensor(pos, *o["cells"], (gh, gw, 2)),
            local=None if o["lite_local"] is None else torch.from_numpy(np.array(lite_local[o["lite_local"]])),
        ))
    saot = meta["saot"]
    return ShardSample(raw["__key__"], Sample.model_validate(meta["sample"]), saot["mode"], saot["lite"], saot["n"],
                       meta["view_size"], frames, objects)


def dataset(urls: str | list[str], **webdataset_kwargs: Any) -> wds.WebDataset:
    """A plain `wds.WebDataset` pipeline that yields ShardSample (shard order kept unless told)."""
    webdataset_kwargs.setdefault("shardshuffle", False)
    return wds.WebDataset(urls, **webdataset_kwargs).map(to_shard_sample)


def iter_shards(urls: Iterable[str]) -> Iterator[ShardSample]:
    """Every sample of the given shard files, in order."""
    yield from dataset([str(u) for u in urls])

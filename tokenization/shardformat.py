"""The SAOT shard format (`pixelrefer-shard/3`): member names, the per-sample header, encode/decode.

The one definition shared by the writer (`pipelines.shard`) and the reader (`train.shards`). It
lives in `tokenization/` because both already import that package and it needs only numpy,
torch, torchvision and PIL: the trainer must not import `pipelines/` (Ray, PyAV, pyarrow).

Members of one sample `KEY` (docs/shards.md has the full layout):

    KEY.json                   Header: {"format", "sample", "saot", "view_size", "frames", "objects"}
    KEY.image.<jpg|jpeg|png>   the global image, original bytes
    KEY.frame_NNNNNN.<ext>     a frame of a frame folder: original bytes
    KEY.clip.<ext>             a video file: original bytes (its frames are decoded when read)
    KEY.view.jpg               an image's global view, SxS, JPEG at VIEW_QUALITY
    KEY.crop_NNNN.jpg          object NNNN's crop, JPEG at CROP_QUALITY (native size when SAOT enlarges it)
    KEY.grid.npy, KEY.pos.npy  float32 grid masks (cells,) and position grids (cells, 2), all objects
    KEY.lite_global_NNNN.jpg   Lite: annotated frame NNNN (in frame order) squashed to 336x336
    KEY.lite_local_NNNN.jpg    Lite: stored local view NNNN, 224x224

Why JPEG views and crops (format 2 stored raw pixels): a sample was ~10x its source image; JPEG
at quality 90 brings it within 2x, and a small JPEG decodes in about a millisecond. Why the
source clip: PNG frames were ~40x a clip and JPEG frames ~7x (intra-only coding against H.264's
inter-frame coding, tests/benchmarks/bench_loader.py --video); the clip itself is 1x, decoded at
read time as the official loader decodes its videos.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.io import ImageReadMode, decode_image, encode_jpeg

FORMAT = "pixelrefer-shard/3"
VIEW_QUALITY = 90  # JPEG quality of global views (images' view.jpg, Lite's lite_global)
CROP_QUALITY = 90  # JPEG quality of object crops and Lite's local views
PNG_LEVEL = 1  # zlib level of images re-encoded losslessly (16-bit, CMYK, palette, alpha): fast, and fixed
VIEW = "view.jpg"
GRID = "grid.npy"
POS = "pos.npy"


def frame_member(frame: int | None, ext: str) -> str:
    """The member suffix of a stored frame: `image.<ext>` for an image (frame None), else `frame_NNNNNN.<ext>`."""
    return f"image.{ext}" if frame is None else f"frame_{frame:06d}.{ext}"


def clip_member(ext: str) -> str:
    return f"clip.{ext}"


def is_clip(member: str) -> bool:
    return member.startswith("clip.")


def crop_member(index: int) -> str:
    return f"crop_{index:04d}.jpg"


def lite_global_member(index: int) -> str:
    return f"lite_global_{index:04d}.jpg"


def lite_local_member(index: int) -> str:
    return f"lite_local_{index:04d}.jpg"


@dataclass(frozen=True)
class FrameEntry:
    """One stored frame; `member`, `view` and `lite_global` are member suffixes (None: not stored)."""

    frame: int  # index into sample.media.frames (0 for images)
    timestamp: float | None  # seconds (videos), None for images
    sampled: bool  # in the 1 fps / max 180 global sequence
    annotated: bool  # some region has a mask on it
    member: str
    view: str | None
    lite_global: str | None


@dataclass(frozen=True)
class ObjectEntry:
    """One (region, annotated frame): SAOT geometry, token count and where its pixels are."""

    region: int
    frame: int
    box: tuple[int, int, int, int]  # (y0, x0, y1, x1) padded crop box, inclusive, released order
    frame_hw: tuple[int, int]
    area: int
    scale: float
    crop_hw: tuple[int, int]
    resize_hw: tuple[int, int]
    grid_hw: tuple[int, int]
    token_count: int
    crop: str  # member suffix of the crop: resize_hw, or crop_hw for an enlarged crop
    cells: tuple[int, int]  # [start, stop) into grid.npy / pos.npy
    lite_local: str | None  # member suffix of the Lite local view


@dataclass(frozen=True)
class Header:
    """KEY.json. `sample` is the unified Sample as JSON; `saot` is SaotConfig as a dict."""

    sample: dict
    saot: dict
    view_size: int  # S of view.jpg (0: none stored)
    frames: list[FrameEntry]
    objects: list[ObjectEntry]

    def encode(self) -> bytes:
        value = {"format": FORMAT, **asdict(self)}
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, value: bytes | str | dict, where: str) -> Header:
        """Parse KEY.json (bytes, or a dict if a webdataset decoder ran); refuses other formats."""
        meta = value if isinstance(value, dict) else json.loads(value)
        if meta.get("format") != FORMAT:
            raise ValueError(f"{where} has format {meta.get('format')!r}, expected {FORMAT!r}: "
                             "rebuild the shards with this version's `pixelrefer shard`")
        return cls(meta["sample"], meta["saot"], meta["view_size"], [FrameEntry(**f) for f in meta["frames"]],
                   [ObjectEntry(**{**o, **{k: tuple(o[k]) for k in _PAIRS}}) for o in meta["objects"]])


_PAIRS = ("box", "frame_hw", "crop_hw", "resize_hw", "grid_hw", "cells")  # JSON lists that are tuples in ObjectEntry


def jpeg(image: torch.Tensor, quality: int) -> bytes:
    """uint8 (3, H, W) -> JPEG bytes (libjpeg-turbo through torchvision: same bytes for the same library)."""
    return encode_jpeg(image.cpu().contiguous(), quality=quality).numpy().tobytes()


def png(image: torch.Tensor) -> bytes:
    """uint8 (3, H, W) -> lossless PNG at PNG_LEVEL."""
    buf = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def image(value: Any) -> torch.Tensor:
    """A stored image member (encoded bytes, or a tensor if a webdataset decoder ran) -> uint8 (3, H, W)."""
    if isinstance(value, torch.Tensor):
        return value
    return decode_image(torch.frombuffer(bytearray(value), dtype=torch.uint8), mode=ImageReadMode.RGB)


def fit(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An (H, W, 3) frame at `size` (W, H): as is when it fits, else resized (PIL bicubic)."""
    return rgb if rgb.shape[1::-1] == size else np.asarray(Image.fromarray(rgb).resize(size))


def clip_frames(data: bytes, wanted: Iterable[int], size: tuple[int, int]) -> tuple[dict[int, np.ndarray], int]:
    """The `wanted` frames of a video file's bytes as RGB (H, W, 3) arrays at `size` (W, H), decoded
    with PyAV in decode order, and how many frames were decoded (all of them if one is missing).
    The writer and the reader both decode clips here, so both see the same pixels."""
    import av  # only readers of video samples need PyAV

    wanted, frames, index = set(wanted), {}, -1
    with av.open(io.BytesIO(data)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames[index] = fit(frame.to_ndarray(format="rgb24"), size)
            if len(frames) == len(wanted):
                break
    return frames, index + 1


def read_tar(path: str | Path) -> Iterator[dict[str, Any]]:
    """The samples of one shard file, as webdataset groups them: {"__key__", "__url__", suffix: bytes}.

    The trainer's reader: the tar's 512-byte headers parsed directly (tarfile's Python header
    parsing and webdataset's grouping cost ~0.5 ms a sample, a quarter of the loader's time).
    It reads what `pipelines.shard` writes: GNU tars of regular files, long names as `L` records;
    anything else (a damaged or foreign tar) is refused naming the file and the byte offset.
    Plain `webdataset` reads the same files (docs/shards.md).
    """
    sample: dict[str, Any] = {}
    long_name = None
    with open(path, "rb") as f:
        while (header := f.read(512)) != _ZERO_BLOCK:
            offset = f.tell() - len(header)
            if len(header) < 512:
                raise ValueError(f"{path}: truncated at byte {offset}: the tar ends without its end-of-archive block")
            kind, size, name = _member_header(header, path, offset)
            name, long_name = long_name or name, None
            data = f.read(size)
            f.seek(-size % 512, io.SEEK_CUR)
            if len(data) < size:
                raise ValueError(f"{path}: truncated: member {name!r} at byte {offset} needs {size} bytes, {len(data)} left")
            if kind == b"L":
                long_name = data.rstrip(b"\0").decode("utf-8")
                continue
            key, _, suffix = name.partition(".")
            if sample and key != sample["__key__"]:
                yield sample
                sample = {}
            if suffix in sample:
                raise ValueError(f"{path}: member {name!r} at byte {offset} repeats a member of sample {key!r}")
            sample.update({"__key__": key, "__url__": str(path), suffix: data})
    if sample:
        yield sample


_ZERO_BLOCK = bytes(512)


def _member_header(header: bytes, path: str | Path, offset: int) -> tuple[bytes, int, str]:
    """(type flag, size, name) of one tar header block, checked: checksum, a regular file or a GNU long name."""
    try:
        checksum, size = int(header[148:156].strip(b"\0 "), 8), int(header[124:136].strip(b"\0 "), 8)
    except ValueError:
        checksum = size = -1
    kind = header[156:157]
    if checksum != sum(header[:148]) + 256 + sum(header[156:]) or size < 0 or kind not in (b"0", b"\0", b"L"):
        raise ValueError(f"{path}: not a pixelrefer shard tar at byte {offset} (bad header or member type {kind!r}): "
                         "rebuild it with `pixelrefer shard`")
    return kind, size, header[:100].rstrip(b"\0").decode("utf-8")


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def floats(value: Any, count: int) -> np.ndarray:
    """The `count` float32 values of a stored grid.npy / pos.npy member (bytes, or an array if a
    webdataset decoder ran), flat. A version 1.0 .npy file is a 10-byte prefix, a header of the
    length the prefix gives, then the C-order data: no header parse (np.load's literal_eval costs
    60 us a member), only its dtype and the total length checked."""
    if isinstance(value, np.ndarray):
        return value.reshape(-1)
    header = 10 + int.from_bytes(value[8:10], "little")
    if value[:8] != b"\x93NUMPY\x01\x00" or b"'descr': '<f4'" not in value[:header] or len(value) != header + 4 * count:
        raise ValueError(f"not an .npy member of {count} little-endian float32 values")
    return np.frombuffer(value, dtype="<f4", count=count, offset=header)


def global_view(data: bytes, size: int) -> torch.Tensor:
    """Encoded image bytes -> its uint8 (3, size, size) global view (squashed, antialiased bilinear).

    The writer stores this (as view.jpg) and the trainer computes it from the original bytes when
    no stored view fits. JPEGs are DCT-scaled while decoding (PIL draft: the smallest 1/2, 1/4 or
    1/8 scale still >= size).
    """
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (size, size))
        frame = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    # uint8 antialiased bilinear: torch's integer fast path, no full-resolution float copy
    return F.interpolate(frame[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]

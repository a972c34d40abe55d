"""Batched SAOT pixels in torch: many (frame, mask) pairs -> crops, grid masks, token counts.

Runs on CUDA when present, else CPU (`default_device()`). Geometry comes from `tokenization.saot`
(computed from the RLE's area and box, without scanning the decoded mask), so crop boxes, sizes
and token counts are exactly the scalar ones; a job carries only its mask's crop window
(`schemas.masks.decode_window`). Pixels are resized as the released code resizes them, with
OpenCV's INTER_LINEAR and (Lite) INTER_AREA: on CPU by `cv2.resize` itself, so the bytes are the
released loader's; on CUDA by separable tap tables applied with `F.embedding_bag` (INTER_LINEAR
with OpenCV's 11-bit integer weights; INTER_AREA as an exact box filter when shrinking and its
2-tap rule when any axis grows, accumulated in float32 as OpenCV does), work grouped into buckets
of identical (crop size, output size, filter), each bucket one batched resize. Lite's 224x224
local view is resized once per frame where the released loader caches it so (`local_owners`).
Results are logical (3, h, w) tensors whose memory may be channels-last (as decoded frames are);
callers that need contiguous pixels (JPEG encoding) make them so.

Tolerance of the CUDA tap tables against OpenCV 5 `cv2.resize` on uint8 RGB, measured on
random-noise images (the worst case) by tests/tokenization/test_saot.py, which runs them on CPU
tensors: max |diff| <= 1 grey level for INTER_LINEAR and INTER_AREA (the rounding differs from
OpenCV's in the last bit). CPU bytes are OpenCV's exactly.

Example:
    >>> frames = [decode_rgb(jpeg_bytes)]
    >>> g = saot.mask_geometry(mask)
    >>> jobs = [CropJob(frame=0, crop_mask=mask[g.crop_slice], geom=g)]
    >>> out = tokenize_batch(frames, jobs, SaotConfig())
    >>> out[0].crop.shape, out[0].token_count
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_image, decode_jpeg

from tokenization import saot
from tokenization.saot import Geometry, SaotConfig

PIXEL_TOLERANCE = 1  # max |CUDA tap tables - cv2.resize| in grey levels, INTER_LINEAR and INTER_AREA


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def decode_rgb(data: bytes, device: torch.device | str = "cpu") -> torch.Tensor:
    """Encoded image bytes -> uint8 (3, H, W) on `device` (JPEGs decode with nvjpeg on CUDA)."""
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    device = torch.device(device)
    if device.type == "cuda" and data[:2] == b"\xff\xd8":
        return decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
    return decode_image(raw, mode=ImageReadMode.RGB).to(device)


@dataclass(frozen=True)
class CropJob:
    """One region frame: index into the frames list, its mask inside the crop box (the
    `geom.crop_slice` window: `masks.decode_window` decodes just that), its geometry."""

    frame: int
    crop_mask: np.ndarray
    geom: Geometry


@dataclass(frozen=True)
class CropOut:
    """SAOT inputs of one region frame (tensors on CPU)."""

    crop: torch.Tensor  # uint8 (3, rh, rw): the padded crop resized to multiples of 14
    grid: torch.Tensor  # float32 (gh, gw): bilinear grid mask
    token_count: int
    local: torch.Tensor | None  # uint8 (3, 224, 224): Lite local view, else None


# The INTER_AREA and fixed-point INTER_LINEAR resizes are separable: per axis, output pixel d is
# sum_k w[d, k] * x[idx[d, k]] over a few source taps. A tap table depends only on (source
# length, output length), so it is built once and cached (as CPU tensors: never modify them).
Taps = tuple[torch.Tensor, torch.Tensor]  # idx int64 (size, K), w float64 (size, K)


def _taps(idx: np.ndarray, w: np.ndarray) -> Taps:
    return torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(w.astype(np.float64))


@lru_cache(maxsize=4096)
def _area_taps(n: int, size: int) -> Taps:
    """INTER_AREA shrinking one axis: the exact box filter over [d*r, (d+1)*r), r = n / size.

    Output d averages the source pixels its box covers, each weighted by the covered fraction
    over r: at most ceil(r) + 1 taps (unused taps get weight 0 and a valid index).
    """
    r = n / size
    start = np.arange(size, dtype=np.float64)[:, None] * r
    idx = np.floor(start) + np.arange(math.ceil(r) + 1)
    overlap = np.minimum(start + r, idx + 1) - np.maximum(start, idx)
    return _taps(np.minimum(idx, n - 1), np.clip(overlap, 0, None) / r)


@lru_cache(maxsize=4096)
def _area_enlarge_taps(n: int, size: int) -> Taps:
    """INTER_AREA when any axis grows: 2-tap weights that keep source pixels whole where they fit.

    Output pixel d reads source s = floor(d * n / size) and s + 1 with weight
    f = frac((d + 1) - (s + 1) * size / n) (0 when that is <= 0), as OpenCV defines area enlarging.
    """
    d = np.arange(size, dtype=np.float64)
    s = np.floor(d * (1 / (size / n)))  # OpenCV multiplies by 1 / (size / n); keep its rounding
    f = ((d + 1) - (s + 1) * (size / n)).astype(np.float32).astype(np.float64)  # OpenCV rounds f to float32 first
    f = np.where(f <= 0, 0, f - np.floor(f))
    s = np.minimum(s, n - 1)
    f = np.where(s >= n - 1, 0, f)
    return _taps(np.stack([s, np.minimum(s + 1, n - 1)], 1), np.stack([1 - f, f], 1))


COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS: bilinear weights in 1/2048 steps


@lru_cache(maxsize=4096)
def _linear_taps(n: int, size: int) -> Taps:
    """INTER_LINEAR taps of one axis: sources s0, s1 with integer weights 2048 - w1 and w1."""
    f = (np.arange(size) + 0.5) * (n / size) - 0.5
    s0 = np.floor(f)
    frac = f - s0
    frac[s0 < 0] = 0
    frac[s0 >= n - 1] = 0
    s0 = np.clip(s0, 0, n - 1)
    w1 = np.round(frac * (1 << COEF_BITS))
    return _taps(np.stack([s0, np.minimum(s0 + 1, n - 1)], 1), np.stack([(1 << COEF_BITS) - w1, w1], 1))


def _rows(x: torch.Tensor, taps: Taps) -> torch.Tensor:
    """Resize dim 1 of a contiguous float (B, n, m) tensor: row d of each item is
    sum_k w[d, k] * row idx[d, k].

    The B items' rows stacked are one (B*n, m) table, and `F.embedding_bag` gathers and sums its
    rows with per-row weights in one fused kernel (2x faster on CPU than a gather and a
    multiply-add per tap, and no copy of the table).
    """
    b, n, m = x.shape
    idx, w = (t.to(x.device) for t in taps)
    bags = (idx + torch.arange(b, device=x.device)[:, None, None] * n).flatten(0, 1)
    out = F.embedding_bag(bags, x.view(-1, m), per_sample_weights=w.to(x.dtype).repeat(b, 1), mode="sum")
    return out.view(b, -1, m)


def _separable(x: torch.Tensor, rows: Taps, cols: Taps, dtype: torch.dtype) -> torch.Tensor:
    """uint8 (B, C, h, w) -> `dtype` (B, C, *size), channels-last in memory, with no transpose.

    In (B, h, w, C) memory (channels-last, as decoded frames are: the conversion to `dtype` is a
    straight copy) a pixel row is one contiguous table row and a pixel a short one: the vertical
    pass gathers pixel rows, the horizontal pass gathers pixels (transposing 3-channel images
    instead cost more than both passes). The horizontal pass costs per output pixel, so it runs
    while the image has fewer rows: first when the vertical pass enlarges, else second.
    """
    b, c, h, w = x.shape
    H, W = rows[0].shape[0], cols[0].shape[0]
    y = x.permute(0, 2, 3, 1).to(dtype, memory_format=torch.contiguous_format)
    if H > h:
        y = _rows(_rows(y.view(b * h, w, c), cols).view(b, h, W * c), rows)
    else:
        y = _rows(_rows(y.view(b, h, w * c), rows).view(b * H, w, c), cols)
    return y.view(b, H, W, c).permute(0, 3, 1, 2)


def linear_fixed_point(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """INTER_LINEAR with 11-bit integer weights (the CUDA path; exact on any device)."""
    h, w = batch.shape[2:]
    # float64 holds the integer sums exactly (< 255 * 2048^2 < 2^53), so the arithmetic is integer
    y = _separable(batch, _linear_taps(h, size[0]), _linear_taps(w, size[1]), torch.float64).long()
    return ((y + (1 << (2 * COEF_BITS - 1))) >> (2 * COEF_BITS)).clamp_(0, 255).to(torch.uint8, memory_format=torch.channels_last)


def area_resize(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """INTER_AREA from tap tables, accumulated in float32 as OpenCV does (the CUDA path)."""
    h, w = batch.shape[2:]
    taps = _area_taps if size[0] <= h and size[1] <= w else _area_enlarge_taps
    y = _separable(batch, taps(h, size[0]), taps(w, size[1]), torch.float32)
    return y.round_().clamp_(0, 255).to(torch.uint8, memory_format=torch.channels_last)


def _tap_resize(batch: torch.Tensor, size: tuple[int, int], area: bool) -> torch.Tensor:
    """The CUDA path: a uint8 (B, 3, h, w) batch through the tap tables."""
    return area_resize(batch, size) if area else linear_fixed_point(batch, size)


def _opencv(image: torch.Tensor, size: tuple[int, int], area: bool) -> torch.Tensor:
    """A CPU uint8 (3, h, w) image through `cv2.resize` itself: the released code's own pixels,
    several times faster on CPU than the tap tables for INTER_LINEAR and enlarging, about as fast
    for area shrinking. Channels-last in and out (decoded frames are), so the numpy views cost no copy."""
    flag = cv2.INTER_AREA if area else cv2.INTER_LINEAR
    return torch.from_numpy(cv2.resize(image.permute(1, 2, 0).numpy(), size[::-1], interpolation=flag)).permute(2, 0, 1)


def resize_rgb(image: torch.Tensor, size: tuple[int, int], area: bool = False) -> torch.Tensor:
    """One uint8 (3, h, w) image resized with OpenCV's INTER_LINEAR (or INTER_AREA): on CPU by
    OpenCV, exactly; on CUDA by the tap tables, within PIXEL_TOLERANCE. The result may be
    channels-last in memory (making it contiguous would double the time on CPU)."""
    return _opencv(image, size, area) if image.device.type == "cpu" else _tap_resize(image[None], size, area)[0]


def saot_crop(crop: torch.Tensor, resize_hw: tuple[int, int]) -> torch.Tensor:
    """A stored uint8 (3, h, w) crop brought to `resize_hw` (INTER_LINEAR, on the crop's device).

    Shards keep enlarged crops at their native size (see pipelines.shard.native_crop); this is the
    resize the writer would have done, so CPU bytes are identical to a crop stored resized."""
    return crop if tuple(crop.shape[1:]) == tuple(resize_hw) else resize_rgb(crop, tuple(resize_hw))


def _bucketed(items: Sequence[tuple[torch.Tensor, tuple[int, int], bool]]) -> list[torch.Tensor]:
    """Resize (image, size, area) items: on CUDA one batched resize per identical (shape, size,
    area); on CPU one at a time, by OpenCV."""
    if not items or items[0][0].device.type == "cpu":
        return [resize_rgb(img, size, area) for img, size, area in items]
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for i, (img, size, area) in enumerate(items):
        buckets[(tuple(img.shape), size, area)].append(i)
    out: list[torch.Tensor] = [torch.empty(0)] * len(items)
    for (_, size, area), idx in buckets.items():
        resized = _tap_resize(torch.stack([items[i][0] for i in idx]), size, area).cpu()
        for i, r in zip(idx, resized):
            out[i] = r
    return out


def local_owners(jobs: Sequence[CropJob], cfg: SaotConfig) -> list[int]:
    """For each job, the job whose Lite 224x224 local view it uses.

    The released Lite loader caches the local view per frame (`img_resize_cache` in
    `pixelreferlite/mm_utils.py`, keyed by frame index), so in official mode every object of a
    frame gets the view of that frame's first object; paper mode gives each object its own.
    """
    if cfg.mode != "official":
        return list(range(len(jobs)))
    first: dict[int, int] = {}
    return [first.setdefault(job.frame, i) for i, job in enumerate(jobs)]


def tokenize_batch(frames: Sequence[torch.Tensor], jobs: Sequence[CropJob], cfg: SaotConfig,
                   local_of: Sequence[int] | None = None) -> list[CropOut]:
    """Crops, grid masks, token counts (and Lite local views) for every job, in job order.

    `frames` are uint8 (3, H, W) tensors, all on one device; results come back on CPU. Lite
    `local_of[i]` names the job whose local view job i gets (`local_owners` gives the released
    per-frame cache); each view is resized once and shared. None: every job its own view.
    """
    crops = [frames[j.frame][(slice(None), *j.geom.crop_slice)] for j in jobs]
    resized = _bucketed([(c, j.geom.resize_hw, cfg.lite and not j.geom.upscale) for c, j in zip(crops, jobs)])
    local = [None] * len(jobs)
    if cfg.lite:
        local_of = range(len(jobs)) if local_of is None else local_of
        owners = sorted(set(local_of))
        views = _bucketed([(crops[i], (saot.LITE_LOCAL,) * 2, _shrinks(jobs[i].geom.crop_hw, saot.LITE_LOCAL)) for i in owners])
        view_of = dict(zip(owners, views))
        local = [view_of[i] for i in local_of]
    out = []
    for job, crop, view in zip(jobs, resized, local):
        grid = saot.grid_mask(job.crop_mask, job.geom)
        out.append(CropOut(crop, grid, saot.token_count(grid, lite=cfg.lite, n=cfg.n), view))
    return out


def _shrinks(hw: tuple[int, int], side: int) -> bool:
    """Lite's local view uses INTER_AREA when it shrinks the crop, else INTER_LINEAR."""
    return hw[0] >= side and hw[1] >= side


def global_views(frames: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Lite global views: each whole frame squashed to 336x336 with INTER_AREA, as released."""
    side = saot.LITE_GLOBAL
    return _bucketed([(f, (side, side), True) for f in frames])

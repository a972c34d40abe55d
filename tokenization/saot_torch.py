"""Batched SAOT pixels in torch: many (frame, mask) pairs -> crops, grid masks, token counts.

Runs on CUDA when present, else CPU (`default_device()`). Geometry comes from `tokenization.saot`
(computed from the RLE's area and box, without scanning the decoded mask), so crop boxes, sizes
and token counts are exactly the scalar ones. Pixels are resized with
OpenCV's INTER_LINEAR rule (half-pixel centres, fixed-point weights: torch's uint8 kernel on CPU,
11-bit integer gathers on CUDA, so CPU and CUDA bytes may differ by 1 grey level) and, for Lite's
INTER_AREA views, OpenCV's INTER_AREA rules (an exact box filter when shrinking, its 2-tap rule
when any axis grows), all rebuilt from batched tensor ops (gathers, cumulative sums). Work is
grouped into buckets of identical (crop size, output size, filter) and each bucket is one
batched resize, so equal-sized objects (common in video and in fixtures) share the kernel launches.

Tolerance against OpenCV 5 `cv2.resize` on uint8 RGB, measured on random-noise images (the worst
case) by tests/tokenization/test_saot.py: max |diff| <= 1 grey level for INTER_LINEAR and
INTER_AREA (fixed-point rounding differs from OpenCV's in the last bit).

Example:
    >>> frames = [decode_rgb(jpeg_bytes)]
    >>> jobs = [CropJob(frame=0, mask=mask, geom=saot.mask_geometry(mask))]
    >>> out = tokenize_batch(frames, jobs, SaotConfig())
    >>> out[0].crop.shape, out[0].token_count
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_image, decode_jpeg

from tokenization import saot
from tokenization.saot import Geometry, SaotConfig

PIXEL_TOLERANCE = 1  # max |ours - cv2.resize| in grey levels, INTER_LINEAR and INTER_AREA


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
    """One region frame: index into the frames list, its decoded (H, W) mask, its geometry."""

    frame: int
    mask: np.ndarray
    geom: Geometry


@dataclass(frozen=True)
class CropOut:
    """SAOT inputs of one region frame (tensors on CPU)."""

    crop: torch.Tensor  # uint8 (3, rh, rw): the padded crop resized to multiples of 14
    grid: torch.Tensor  # float32 (gh, gw): bilinear grid mask
    token_count: int
    local: torch.Tensor | None  # uint8 (3, 224, 224): Lite local view, else None


def _area_axis(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Shrink one axis by exact box filtering, as INTER_AREA does for non-integer factors.

    The mean of a piecewise-constant row over [i*r, (i+1)*r) is the difference of its running
    sum, linearly interpolated at the two ends, divided by r: O(n) and batchable.
    """
    n = x.shape[dim]
    r = n / size
    zero = torch.zeros_like(x.narrow(dim, 0, 1))
    cum = torch.cat([zero, x.cumsum(dim)], dim)
    pos = torch.arange(size + 1, dtype=torch.float64, device=x.device) * r
    lo = pos.floor().long().clamp_(max=n - 1)
    frac = (pos - lo).to(x.dtype)
    shape = [1] * x.dim()
    shape[dim] = size + 1
    at = cum.index_select(dim, lo) + frac.view(shape) * (cum.index_select(dim, lo + 1) - cum.index_select(dim, lo))
    return (at.narrow(dim, 1, size) - at.narrow(dim, 0, size)) / r


def _area_enlarge_axis(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """INTER_AREA when any axis grows: 2-tap weights that keep source pixels whole where they fit.

    Output pixel d reads source s = floor(d * n / size) and s + 1 with weight
    f = frac((d + 1) - (s + 1) * size / n) (0 when that is <= 0), as OpenCV defines area enlarging.
    """
    n = x.shape[dim]
    d = torch.arange(size, dtype=torch.float64, device=x.device)
    s = (d * (1 / (size / n))).floor()  # OpenCV multiplies by 1 / (size / n); keep its rounding
    f = ((d + 1) - (s + 1) * (size / n)).float().double()  # OpenCV rounds f to float32 first
    f = torch.where(f <= 0, torch.zeros_like(f), f - f.floor())
    s = s.long().clamp_(max=n - 1)
    f = torch.where(s >= n - 1, torch.zeros_like(f), f).to(x.dtype)
    shape = [1] * x.dim()
    shape[dim] = size
    nxt = (s + 1).clamp_(max=n - 1)
    return x.index_select(dim, s) * (1 - f.view(shape)) + x.index_select(dim, nxt) * f.view(shape)


COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS: bilinear weights in 1/2048 steps


def _linear_taps(n: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """INTER_LINEAR taps of one axis: source indices s0, s1 and integer weights w1 (w0 = 2048 - w1)."""
    f = (np.arange(size) + 0.5) * (n / size) - 0.5
    s0 = np.floor(f).astype(np.int64)
    frac = f - s0
    frac[s0 < 0] = 0
    frac[s0 >= n - 1] = 0
    s0 = np.clip(s0, 0, n - 1)
    w1 = np.round(frac * (1 << COEF_BITS)).astype(np.int32)
    return s0, np.minimum(s0 + 1, n - 1), w1


def _linear_axis(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    s0, s1, w1 = (torch.from_numpy(v).to(x.device) for v in _linear_taps(x.shape[dim], size))
    shape = [1] * x.dim()
    shape[dim] = size
    w1 = w1.view(shape)
    return x.index_select(dim, s0) * ((1 << COEF_BITS) - w1) + x.index_select(dim, s1) * w1


def linear_fixed_point(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """INTER_LINEAR as 11-bit integer gathers (the CUDA path; exact on any device)."""
    y = _linear_axis(_linear_axis(batch.int(), 3, size[1]), 2, size[0])
    return ((y + (1 << (2 * COEF_BITS - 1))) >> (2 * COEF_BITS)).clamp_(0, 255).to(torch.uint8)


def _resize(batch: torch.Tensor, size: tuple[int, int], area: bool) -> torch.Tensor:
    """uint8 (B, 3, h, w) -> uint8 (B, 3, *size), rounding like OpenCV's saturate_cast.

    The linear paths are integer fixed point, like OpenCV: exact, so bytes do not depend on the
    thread count or SIMD width (float interpolate moves by an ulp and flips .5 roundings).
    """
    h, w = batch.shape[2:]
    if not area and batch.device.type == "cpu":  # torch's native uint8 kernel: fast, fixed point
        x = batch.contiguous(memory_format=torch.channels_last)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False).contiguous()
    if not area:
        return linear_fixed_point(batch, size)
    if size[0] <= h and size[1] <= w:
        y = _area_axis(_area_axis(batch.double(), 2, size[0]), 3, size[1])
    else:
        y = _area_enlarge_axis(_area_enlarge_axis(batch.double(), 2, size[0]), 3, size[1])
    return y.round_().clamp_(0, 255).to(torch.uint8)


def resize_rgb(image: torch.Tensor, size: tuple[int, int], area: bool = False) -> torch.Tensor:
    """One uint8 (3, h, w) image resized (the scalar form of the batched resize)."""
    return _resize(image[None], size, area)[0]


def saot_crop(crop: torch.Tensor, resize_hw: tuple[int, int]) -> torch.Tensor:
    """A stored uint8 (3, h, w) crop brought to `resize_hw` (INTER_LINEAR, on the crop's device).

    Shards keep enlarged crops at their native size (see pipelines.shard.native_crop); this is the
    resize the writer would have done, so CPU bytes are identical to a crop stored resized."""
    return crop if tuple(crop.shape[1:]) == tuple(resize_hw) else resize_rgb(crop, tuple(resize_hw))


def _bucketed(items: Sequence[tuple[torch.Tensor, tuple[int, int], bool]]) -> list[torch.Tensor]:
    """Resize (image, size, area) items, one batched resize per identical (shape, size, area)."""
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for i, (img, size, area) in enumerate(items):
        buckets[(tuple(img.shape), size, area)].append(i)
    out: list[torch.Tensor] = [torch.empty(0)] * len(items)
    for (_, size, area), idx in buckets.items():
        resized = _resize(torch.stack([items[i][0] for i in idx]), size, area).cpu()
        for i, r in zip(idx, resized):
            out[i] = r
    return out


def tokenize_batch(frames: Sequence[torch.Tensor], jobs: Sequence[CropJob], cfg: SaotConfig) -> list[CropOut]:
    """Crops, grid masks, token counts (and Lite local views) for every job, in job order.

    `frames` are uint8 (3, H, W) tensors, all on one device; results come back on CPU.
    """
    crops = [frames[j.frame][(slice(None), *j.geom.crop_slice)] for j in jobs]
    resized = _bucketed([(c, j.geom.resize_hw, cfg.lite and not j.geom.upscale) for c, j in zip(crops, jobs)])
    local = [None] * len(jobs)
    if cfg.lite:
        local = _bucketed([(c, (saot.LITE_LOCAL,) * 2, _shrinks(j.geom.crop_hw, saot.LITE_LOCAL)) for c, j in zip(crops, jobs)])
    out = []
    for job, crop, view in zip(jobs, resized, local):
        grid = saot.grid_mask(job.mask[job.geom.crop_slice], job.geom)
        out.append(CropOut(crop, grid, saot.token_count(grid, lite=cfg.lite, n=cfg.n), view))
    return out


def _shrinks(hw: tuple[int, int], side: int) -> bool:
    """Lite's local view uses INTER_AREA when it shrinks the crop, else INTER_LINEAR."""
    return hw[0] >= side and hw[1] >= side


def global_views(frames: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Lite global views: each whole frame squashed to 336x336 with INTER_AREA, as released."""
    side = saot.LITE_GLOBAL
    return _bucketed([(f, (side, side), True) for f in frames])

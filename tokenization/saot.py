"""Scale-Adaptive Object Tokenizer (SAOT) geometry: pure functions, the project's one token count.

Public API (the shard writer and the trainer both call these; nothing else computes them):

    geometry(mask_area, bbox, frame_hw, cfg=SaotConfig()) -> Geometry
        padded crop box, scale s, crop size, resized size (multiples of 14), grid size.
    mask_geometry(mask, cfg=SaotConfig(), locator="") -> Geometry
        the same from a decoded (H, W) mask; an empty mask raises schemas.Reject('empty_mask').
    grid_mask(crop_mask, geom) -> torch.FloatTensor (gh, gw)
        the crop's mask resized bilinearly to the 14-px token grid (official: as uint8, as released).
    token_count(grid, *, lite=False, n=32) -> int
        object tokens of one region frame: min(n, int(grid.sum())), or n for PixelRefer-Lite.
    position_grid(geom) -> np.float32 (gh, gw, 2)
        per-cell coordinates in the full frame (paper eq. 4 / official generate_position_tensor).

Constants (DESIGN.md section 6; the released loader and object encoder of alibaba-damo-academy/PixelRefer): patch 14,
Omega = 196, n = 32, padding 2 patches (28 px) per side, large-object target 100 patches
(Lite 50), Lite views 336x336 (global) and 224x224 (local).

Modes:
* `official` (default) reproduces the released `resize_image_mask` / `generate_position_tensor`,
  quirks included: the box is `(y0, x0, y1, x1)` with *inclusive* clipped ends but the crop is
  the slice `[y0:y1, x0:x1]` (so the last padded row/column is dropped; our reading of the
  release, the reference notes do not spell the slice end out), and the position encoding reads
  that box as `(x0, y0, x1, y1)` (axes swapped; released checkpoints were trained so), and the
  grid mask is resized as uint8 (0/1 cells; see `grid_mask`).
* `paper` follows the paper: equation 2 without the implementation's large-object shrink, the
  full inclusive crop, and equation 4 with x over the width and y over the height.

Example:
    >>> g = mask_geometry(mask)                      # mask: (H, W) bool array
    >>> y0, x0, y1, x1 = g.box
    >>> crop = mask[g.crop_slice]
    >>> count = token_count(grid_mask(crop, g))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from schemas import Reject

PATCH = 14
OMEGA = PATCH * PATCH
N_TOKENS = 32
PAD_PATCHES = 2
LARGE_OBJECT_PATCHES = {False: 100, True: 50}  # keyed by lite
LITE_GLOBAL = 336  # full frame, 24x24 = 576 tokens
LITE_LOCAL = 224  # expanded crop, 16x16 = 256 tokens

Mode = Literal["official", "paper"]
MODES: tuple[str, ...] = ("official", "paper")


@dataclass(frozen=True)
class SaotConfig:
    """How object crops are tokenized."""

    mode: Mode = "official"  # 'official' (checkpoint parity, quirks kept) or 'paper'
    lite: bool = False  # PixelRefer-Lite: 50-patch large-object target, always n tokens, extra views
    n: int = N_TOKENS  # tokens per object (--mask_num)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"SAOT mode must be one of {MODES}, got {self.mode!r}")
        if self.n < 1:
            raise ValueError(f"SAOT n must be >= 1, got {self.n}")


@dataclass(frozen=True)
class Geometry:
    """Where and how one region frame is cropped and resized.

    `box` is `(y0, x0, y1, x1)`: inclusive pixel indices of the padded, clipped mask box (the
    released `box_params` order). `crop_hw` is the size of the pixels actually cropped.
    """

    mode: Mode
    frame_hw: tuple[int, int]
    area: int
    box: tuple[int, int, int, int]
    scale: float
    crop_hw: tuple[int, int]
    resize_hw: tuple[int, int]

    @property
    def grid_hw(self) -> tuple[int, int]:
        return self.resize_hw[0] // PATCH, self.resize_hw[1] // PATCH

    @property
    def crop_slice(self) -> tuple[slice, slice]:
        """Index an (H, W, ...) frame or mask with this to get the crop."""
        y0, x0, _, _ = self.box
        return slice(y0, y0 + self.crop_hw[0]), slice(x0, x0 + self.crop_hw[1])

    @property
    def upscale(self) -> bool:
        """Lite picks INTER_LINEAR when enlarging and INTER_AREA when shrinking."""
        return self.scale >= 1


def scale_factor(area: int, cfg: SaotConfig) -> float:
    """s = ceil(sqrt(Omega * n / area)); official mode shrinks huge objects to ~100 (Lite 50) patches."""
    s: float = math.ceil(math.sqrt(OMEGA * cfg.n / area))
    patches = area / OMEGA
    if cfg.mode == "official" and s == 1 and patches > LARGE_OBJECT_PATCHES[cfg.lite]:
        s = 1 / math.sqrt(patches / LARGE_OBJECT_PATCHES[cfg.lite])
    return s


def geometry(
    area: int, bbox: tuple[int, int, int, int], frame_hw: tuple[int, int], cfg: SaotConfig = SaotConfig(), locator: str = ""
) -> Geometry:
    """Geometry of a mask with `area` pixels whose tight box is `bbox = (r0, c0, r1, c1)` (inclusive).

    Raises `Reject('empty_mask')` for area 0 and `Reject('degenerate_crop')` when the official
    slice leaves no pixel (a 1-pixel-high or -wide frame).
    """
    if area <= 0:
        raise Reject("empty_mask", "SAOT needs a non-empty mask", locator)
    h, w = frame_hw
    pad = PATCH * PAD_PATCHES
    r0, c0, r1, c1 = bbox
    box = (max(0, r0 - pad), max(0, c0 - pad), min(h - 1, r1 + pad), min(w - 1, c1 + pad))
    end = 0 if cfg.mode == "official" else 1  # official slices [y0:y1), the paper keeps y1
    crop_hw = (box[2] - box[0] + end, box[3] - box[1] + end)
    if min(crop_hw) <= 0:
        raise Reject("degenerate_crop", f"crop box {box} of a {w}x{h} frame holds no pixel", locator)
    s = scale_factor(area, cfg)
    resize_hw = (math.ceil(crop_hw[0] * s / PATCH) * PATCH, math.ceil(crop_hw[1] * s / PATCH) * PATCH)
    return Geometry(cfg.mode, (h, w), int(area), box, s, crop_hw, resize_hw)


def mask_geometry(mask: np.ndarray, cfg: SaotConfig = SaotConfig(), locator: str = "") -> Geometry:
    """Geometry of a decoded (H, W) mask (nonzero = object)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        raise Reject("empty_mask", "SAOT needs a non-empty mask", locator)
    cols = np.flatnonzero(mask.any(axis=0))
    bbox = (int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1]))
    return geometry(int(np.count_nonzero(mask)), bbox, mask.shape[:2], cfg, locator)


def grid_mask(crop_mask: np.ndarray | torch.Tensor, geom: Geometry) -> torch.Tensor:
    """The crop mask resized bilinearly (align_corners=False) to the token grid, float32 (gh, gw).

    Official mode resizes the 0/1 mask as uint8, as the released loader does: it builds its masks
    with `torch.from_numpy` of pycocotools' uint8 decode and calls `F.interpolate(..., 'bilinear')`
    without `.float()` (reference notes, section 2b, step 4; `resize_image_mask` in
    `pixelrefer/mm_utils.py`), and torch >= 2.0 (the release pins 2.4) resizes uint8 natively:
    one axis at a time, rounding each pass half up, so every cell is 0 or 1 and a cell whose
    taps hold any object pixel at weight >= 1/2 per pass is 1. Specks and thin lines therefore get
    more (or, where taps miss them, fewer) tokens than the float resize's fractional sum. Paper
    mode keeps the float resize.
    """
    dtype = torch.uint8 if geom.mode == "official" else torch.float32
    m = torch.as_tensor(np.asarray(crop_mask)).to(dtype)
    grid = F.interpolate(m[None, None], size=geom.grid_hw, mode="bilinear", align_corners=False)[0, 0]
    return grid.float()


def token_count(grid: np.ndarray | torch.Tensor, *, lite: bool = False, n: int = N_TOKENS) -> int:
    """Object tokens of one region frame: `min(n, int(grid.sum()))`; PixelRefer-Lite always uses n.

    `grid` is the float32 grid mask of `grid_mask` (summed in float32, as the released code does).
    """
    if lite:
        return n
    return min(n, int(torch.as_tensor(grid, dtype=torch.float32).sum()))


def position_grid(geom: Geometry) -> np.ndarray:
    """Per-cell frame coordinates `(cell / grid * extent + origin) / (raw - 1)`, float32 (gh, gw, 2).

    Channel 0 varies along grid columns, channel 1 along grid rows. Official mode reads the
    `(y0, x0, y1, x1)` box as `(x0, y0, x1, y1)` and divides channel 0 by the width (the
    released quirk); paper mode uses the true x extent over the width and y over the height.
    """
    gh, gw = geom.grid_hw
    h, w = geom.frame_hw
    y0, x0, y1, x1 = geom.box
    a0, a1, b0, b1 = (y0, y1, x0, x1) if geom.mode == "official" else (x0, x1, y0, y1)
    cols = (np.arange(gw, dtype=np.float64) / gw * (a1 - a0) + a0) / max(w - 1, 1)
    rows = (np.arange(gh, dtype=np.float64) / gh * (b1 - b0) + b0) / max(h - 1, 1)
    out = np.empty((gh, gw, 2), dtype=np.float32)
    out[..., 0] = cols[None, :]
    out[..., 1] = rows[:, None]
    return out

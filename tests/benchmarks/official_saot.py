"""An independent, per-object OpenCV re-implementation of the released SAOT loader step.

Written from a reading of the released loader (alibaba-damo-academy/PixelRefer, no code copied), the way the released
dataloader works: scan the decoded mask with `np.where`, pad the box by 28 px, compute the
scale from `mask.sum()`, crop, `cv2.resize`, then bilinear `F.interpolate` for the grid mask.
Lite boxes the mask with `cv2.findNonZero` as the released Lite loader does, and its local view
can be skipped for all but a frame's first object, as the released per-frame cache does.
It shares no code with `tokenization.saot`, so the tests use it as the reference the geometry
must agree with, and `bench_saot.py` uses it as the speed baseline.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def official_object(image: np.ndarray, mask: np.ndarray, lite: bool = False, paper: bool = False, n: int = 32,
                    local: bool = True) -> dict:
    """SAOT inputs of one object: image (H, W, 3) uint8 RGB, mask (H, W) uint8 0/1.

    `local=False` skips Lite's 224x224 local view: the released Lite loader resizes it once per
    frame (its `img_resize_cache`), so a per-frame loop asks for it on the frame's first object only.
    """
    h, w = mask.shape
    if lite:  # the released Lite loader boxes the mask with cv2.findNonZero + boundingRect
        points = cv2.findNonZero(mask)
        if points is None:
            raise ValueError("empty mask")
        x, y, bw, bh = cv2.boundingRect(points)
        r0, c0, r1, c1 = y, x, y + bh - 1, x + bw - 1
    else:  # the released PixelRefer loader uses np.where
        rows, cols = np.where(mask == 1)
        if rows.size == 0:
            raise ValueError("empty mask")
        r0, c0, r1, c1 = rows.min(), cols.min(), rows.max(), cols.max()
    bbox = (max(0, r0 - 28), max(0, c0 - 28), min(h - 1, r1 + 28), min(w - 1, c1 + 28))
    end = 1 if paper else 0
    crop_img = image[bbox[0] : bbox[2] + end, bbox[1] : bbox[3] + end]
    crop_mask = mask[bbox[0] : bbox[2] + end, bbox[1] : bbox[3] + end]
    ch, cw = crop_mask.shape
    area = mask.sum()
    s = math.ceil(math.sqrt(196 * n / area))
    if not paper and s == 1 and area / 196 > (50 if lite else 100):
        s = 1 / math.sqrt(area / 196 / (50 if lite else 100))
    rh, rw = math.ceil(ch * s / 14) * 14, math.ceil(cw * s / 14) * 14
    interp = cv2.INTER_AREA if lite and s < 1 else cv2.INTER_LINEAR
    crop = cv2.resize(crop_img, (rw, rh), interpolation=interp)
    # The released loader interpolates the uint8 mask as is (torch rounds); the paper's eq. 2 is a float resize.
    mask_t = torch.from_numpy(crop_mask[None, None].astype(np.uint8))
    grid = F.interpolate(mask_t.float() if paper else mask_t, size=(rh // 14, rw // 14), mode="bilinear")[0, 0].float()
    tokens = n if lite else min(n, int(grid.sum()))
    out = {"box": tuple(int(v) for v in bbox), "scale": s, "crop_hw": (ch, cw), "resize_hw": (rh, rw),
           "crop": crop, "grid": grid, "tokens": tokens}
    if lite and local:
        local_interp = cv2.INTER_AREA if ch >= 224 and cw >= 224 else cv2.INTER_LINEAR
        out["local"] = cv2.resize(crop_img, (224, 224), interpolation=local_interp)
    return out


def official_positions(box: tuple[int, int, int, int], grid_hw: tuple[int, int], raw_hw: tuple[int, int], paper: bool = False) -> np.ndarray:
    """generate_position_tensor: official reads the (y0, x0, y1, x1) box as (x0, y0, x1, y1)."""
    gh, gw = grid_hw
    raw_h, raw_w = raw_hw
    y0, x0, y1, x1 = box
    bx0, by0, bx1, by1 = (x0, y0, x1, y1) if paper else (y0, x0, y1, x1)
    jj, ii = np.meshgrid(np.arange(gw), np.arange(gh))
    x = (jj / gw * (bx1 - bx0) + bx0) / max(raw_w - 1, 1)
    y = (ii / gh * (by1 - by0) + by0) / max(raw_h - 1, 1)
    return np.stack([x, y], axis=-1).astype(np.float32)


def decode_bgr_to_rgb(data: bytes) -> np.ndarray:
    """The loader's cv2.imread + BGR->RGB, from bytes."""
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

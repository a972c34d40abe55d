"""Generated training examples: random frames with square objects, tokenized by the real SAOT.

They stand in for shards in the CPU demo (`data.shards: ""` in tiny.yaml) and the tests; the
object crops, grid masks, position grids and token counts come from `tokenization.saot`, exactly
as the shard writer computes them. Seeded, so the same seed gives the same tensors.

    examples = synthetic_examples(8, seed=0, image_size=28, n_tokens=4)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from schemas import Media, Provenance, Region, RegionFrame, Sample, Turn, masks
from tokenization import saot
from train.data import Example, ObjectView, square

FRAME = 32  # side of a generated frame in pixels
WORDS = ["red", "green", "blue", "cat", "dog", "cup"]


def _view(frame: torch.Tensor, mask: np.ndarray, cfg: saot.SaotConfig, index: int) -> ObjectView:
    geom = saot.mask_geometry(mask, cfg)
    ys, xs = geom.crop_slice
    crop = F.interpolate(frame[None, :, ys, xs], size=geom.resize_hw, mode="bilinear", align_corners=False)[0]
    grid = saot.grid_mask(mask[ys, xs].astype(np.float32), geom)
    tokens = saot.token_count(grid, lite=cfg.lite, n=cfg.n)
    return ObjectView(crop, grid, torch.from_numpy(saot.position_grid(geom)), tokens, index)


def synthetic_examples(count: int, seed: int, image_size: int, n_tokens: int, lite: bool = False) -> list[Example]:
    """`count` image examples with 0, 1, 2, 0, 1, 2, ... regions; answers are random words.

    Every third example has no region (a general QA sample), so batches without regions occur.
    """
    rng = np.random.default_rng(seed)
    cfg = saot.SaotConfig(lite=lite, n=n_tokens)
    out = []
    for i in range(count):
        frame = torch.from_numpy(rng.integers(0, 256, (3, FRAME, FRAME), dtype=np.uint8))
        regions, views, words = [], [], []
        for _ in range(i % 3):
            side = int(rng.integers(10, 17))
            y, x = (int(v) for v in rng.integers(0, FRAME - side, 2))
            mask = np.zeros((FRAME, FRAME), dtype=np.uint8)
            mask[y : y + side, x : x + side] = 1
            rle = masks.encode(mask)
            regions.append(Region(prompt="mask", mask_origin="annotation", frames=[RegionFrame(frame=0, mask=rle)]))
            views.append([_view(frame, mask, cfg, 0)])
            words.append(WORDS[int(rng.integers(len(WORDS)))])
        names = " and ".join(f"<obj{r}>" for r in range(len(regions))) or "in the picture"
        words = words or [WORDS[int(rng.integers(len(WORDS)))]]
        sample = Sample(
            id=f"synthetic/demo/{i}", source="synthetic", subset="demo", split="train", license="CC0-1.0",
            task="recognition" if regions else "general_qa",
            media=Media(kind="image", path=f"{i}.png", width=FRAME, height=FRAME),
            regions=regions,
            conversation=[Turn(role="user", text=f"What are {names}?"), Turn(role="assistant", text=" ".join(words))],
            provenance=Provenance(file="generated", locator=str(i), adapter="synthetic", adapter_version="1"),
        )
        out.append(Example(sample, square(frame, image_size)[None], [], views))
    return out

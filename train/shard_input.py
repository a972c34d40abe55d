"""Shards as a trainer input: `pixelrefer shard` output -> `Example` -> `Encoded`, streamed per epoch.

Reads the stage folder's `sizes.json` for the sample count and its `NNNNNN.tar` files with the
project's shard reader (`train.shards.to_shard_sample`). Each epoch visits the shards in an order
seeded by (seed, epoch), then passes samples through a seeded shuffle buffer; every rank and
worker reads the same order and `train.data.Loader` decides which positions it decodes.

    source = ShardSource("OUT/shards/recipe/stage1", tokenizer, render_cfg, image_tokens=16, ...)
    loader = Loader(source, micro_batch=2, rank=0, world=1, seed=0, pad_id=tokenizer.pad_token_id)
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import webdataset as wds
from PIL import Image

from tokenization.chat import RenderConfig
from train.data import Encoded, Example, ObjectView, encode
from train.shards import ShardSample, to_shard_sample


def _global_view(data: bytes, size: int) -> torch.Tensor:
    """Decode a stored frame straight to its `size` x `size` uint8 global view. JPEGs are DCT-scaled
    while decoding (PIL draft: the smallest 1/2, 1/4 or 1/8 scale still >= size), which the official
    loader cannot do because it crops objects from the full-resolution frame; ours are precomputed."""
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (size, size))
        frame = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    # uint8 antialiased bilinear: torch's fast path, and no full-resolution float copy
    return F.interpolate(frame[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def _decode_frames(raw: dict, size: int) -> dict:
    """Replace the stored frame members by their global views (frames are only used for those)."""
    frames = json.loads(raw["json"])["frames"]
    return {**raw, **{f["member"]: _global_view(raw[f["member"]], size) for f in frames}}


def _normalise(image: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 (3, H, W) -> float in [-1, 1] (SigLIP's mean 0.5 / std 0.5), optionally squashed to size^2."""
    x = image.float() / 127.5 - 1.0
    if size is not None and tuple(x.shape[1:]) != (size, size):
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    return x


def example_from_shard(s: ShardSample, image_size: int, local_size: int, lite: bool) -> Example:
    """Global views (sampled frames; Lite with regions: the annotated frames) and object views."""
    objects_only = lite and bool(s.sample.regions)
    chosen = [f for f in s.frames if (f.annotated if objects_only else f.sampled)]
    index = {f.frame: k for k, f in enumerate(chosen)}
    views = [f.lite_global if lite and f.lite_global is not None else f.image for f in chosen]
    frames = torch.stack([_normalise(v, image_size) for v in views])
    times = [f.timestamp for f in chosen] if s.sample.media.kind == "video" else []
    objects = [
        [ObjectView(_normalise(o.crop), o.grid, o.pos, o.token_count, index.get(o.frame, 0),
                    None if o.local is None else _normalise(o.local, local_size))
         for o in s.objects_of(r)]
        for r in range(len(s.sample.regions))
    ]
    return Example(s.sample, frames, times, objects)


class ShardSource:
    """The samples of one shard stage folder, as a `train.data.Loader` source."""

    def __init__(self, folder: str | Path, tokenizer, cfg: RenderConfig, image_tokens: int, image_size: int,
                 local_size: int, buffer: int = 64):
        self.folder = Path(folder)
        sizes = self.folder / "sizes.json"
        if not sizes.is_file():
            raise FileNotFoundError(f"{sizes} is missing: point data.shards at a `pixelrefer shard` stage folder")
        self.sizes: dict[str, int] = json.loads(sizes.read_text())
        self.tokenizer, self.cfg, self.buffer = tokenizer, cfg, buffer
        self.image_tokens, self.image_size, self.local_size = image_tokens, image_size, local_size

    def __len__(self) -> int:
        return sum(self.sizes.values())

    def stream(self, epoch: int, seed: int) -> Iterator[dict]:
        """Raw (undecoded) samples in this epoch's order: shard order, then a shuffle buffer."""
        rng = random.Random(seed * 100_003 + epoch)
        shards = sorted(self.sizes)
        rng.shuffle(shards)
        raw = wds.WebDataset([str(self.folder / s) for s in shards], shardshuffle=False, nodesplitter=None,
                             workersplitter=None, empty_check=False)
        pool: list[dict] = []
        for item in raw:
            pool.append(item)
            if len(pool) >= self.buffer:
                yield pool.pop(rng.randrange(len(pool)))
        while pool:
            yield pool.pop(rng.randrange(len(pool)))

    def encode(self, raw: dict) -> Encoded:
        example = example_from_shard(to_shard_sample(_decode_frames(raw, self.image_size)), self.image_size, self.local_size, self.cfg.layout == "lite")
        return encode(example, self.tokenizer, self.cfg, self.image_tokens, self.local_size)

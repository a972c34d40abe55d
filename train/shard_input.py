"""Shards as a trainer input: `pixelrefer shard` output -> `Example` -> `Encoded`, streamed per epoch.

Reads the stage folder's `sizes.json` for the sample count and its `NNNNNNNNN.tar` files with the
project's shard reader (`shardformat.read_tar`, then `train.shards.to_shard_sample`). Each epoch visits the shards in an order
seeded by (seed, epoch), then passes samples through a seeded shuffle buffer. Split by
`train.data.Loader`: with at least as many shard files as readers (ranks x workers), each reader
opens only its own files of that order (`stream(epoch, seed, reader, readers)`); otherwise every
reader reads the whole order and the Loader decides which positions it decodes.

    views = Views(image_size=384, local_size=224, patch=14, video_max_tokens=8192)
    source = ShardSource("OUT/shards/recipe/stage1", tokenizer, render_cfg, views)
    loader = Loader(source, micro_batch=2, rank=0, world=1, seed=0, pad_id=tokenizer.pad_token_id)
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import torch

from tokenization.chat import RenderConfig
from tokenization.shardformat import global_view, read_tar
from train.data import Encoded, Example, ObjectView, Views, encode, square
from train.shards import ShardFrame, ShardSample, to_shard_sample


def _frame_view(f: ShardFrame, size: int, lite: bool) -> torch.Tensor:
    """A frame's global view at `size`: the stored view when it fits (no decode), else made from the
    stored pixels (Lite's 336 view, or the original bytes through the writer's own `global_view`)."""
    if lite and f.lite_global is not None:
        return square(f.lite_global, size)
    if f.view is not None and f.view.shape[-1] == size:
        return f.view
    return global_view(f.data, size) if isinstance(f.data, bytes) else square(f.data, size)


def _stacked(views: list[torch.Tensor]) -> torch.Tensor:
    """(F, 3, S, S) from (3, S, S) views, channels-last in memory as decoded JPEGs are: stacking
    them channels-first would transpose every pixel on the CPU (0.3 ms a 384 view, a fifth of a
    sample's load time); the model normalises on its device whatever the layout."""
    if len(views) == 1:  # an image: its view as it is, no copy
        return views[0][None]
    return torch.stack([v.permute(1, 2, 0) for v in views]).permute(0, 3, 1, 2)


def example_from_shard(s: ShardSample, views: Views, lite: bool) -> Example:
    """Global views (sampled frames; Lite with regions: the annotated frames) and object views, uint8.

    A clip's frames that go into the text share the video token budget (`Views.video_side`); Lite's
    annotated frames only feed Object-Centric Infusion, so they keep `image_size`. A text-only
    sample (no media) has no frames: `frames` is (0, 3, S, S), which `collate` leaves out."""
    objects_only = lite and bool(s.sample.regions)
    chosen = [f for f in s.frames if (f.annotated if objects_only else f.sampled)]
    index = {f.frame: k for k, f in enumerate(chosen)}
    video = s.sample.media is not None and s.sample.media.kind == "video"
    side = views.video_side(len(chosen)) if video and not objects_only else views.image_size
    frames = _stacked([_frame_view(f, side, lite) for f in chosen]) if chosen else torch.zeros(0, 3, side, side, dtype=torch.uint8)
    times = [f.timestamp for f in chosen] if video else []
    objects = [
        [ObjectView(o.crop, o.grid, o.pos, o.token_count, index.get(o.frame, 0), None if o.local is None else square(o.local, views.local_size))
         for o in s.objects_of(r)]
        for r in range(len(s.sample.regions))
    ]
    return Example(s.sample, frames, times, objects)


class ShardSource:
    """The samples of one shard stage folder, as a `train.data.Loader` source."""

    def __init__(self, folder: str | Path, tokenizer, cfg: RenderConfig, views: Views, buffer: int = 64):
        self.folder = Path(folder)
        sizes = self.folder / "sizes.json"
        if not sizes.is_file():
            raise FileNotFoundError(f"{sizes} is missing: point data.shards at a `pixelrefer shard` stage folder")
        self.sizes: dict[str, int] = json.loads(sizes.read_text())
        self.tokenizer, self.cfg, self.views, self.buffer = tokenizer, cfg, views, buffer

    def __len__(self) -> int:
        return sum(self.sizes.values())

    @property
    def files(self) -> int:
        return len(self.sizes)

    def reader_share(self, readers: int) -> int:
        """Samples that each of `readers` shard-level readers gets in any epoch, at least: each
        reader gets files // readers files or more, so the sum of that many smallest files."""
        sizes = sorted(self.sizes.values())
        return sum(sizes[: len(sizes) // readers])

    def stream(self, epoch: int, seed: int, reader: int = 0, readers: int = 1) -> Iterator[dict]:
        """Raw (undecoded) samples of this epoch: the shards in a seeded order, of which this reader
        opens files reader, reader + readers, ...; then a seeded shuffle buffer. One reader (the
        default) reads every shard."""
        rng = random.Random(seed * 100_003 + epoch)
        shards = sorted(self.sizes)
        rng.shuffle(shards)
        pool: list[dict] = []
        for item in (item for name in shards[reader::readers] for item in read_tar(self.folder / name)):
            pool.append(item)
            if len(pool) >= self.buffer:
                yield pool.pop(rng.randrange(len(pool)))
        while pool:
            yield pool.pop(rng.randrange(len(pool)))

    def encode(self, raw: dict) -> Encoded:
        example = example_from_shard(to_shard_sample(raw), self.views, self.cfg.layout == "lite")
        return encode(example, self.tokenizer, self.cfg, self.views)

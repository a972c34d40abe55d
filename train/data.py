"""Trainer input: typed examples -> rendered token ids -> padded `RegionBatch`es, split per rank.

An `Example` is one sample with its pixels ready for the model: global views of its frames and,
per region and region frame, the SAOT crop with its grid mask, position grid and token count
(what the shards hold). `encode` renders it (tokenization.chat) and orders the region frames as
their token groups appear; `collate` pads a list of encoded examples into a `RegionBatch`;
`Loader` deals fixed-size micro-batches to each rank from a source's seeded per-epoch order
(`InMemory` here, shards in `train.shard_input`), with a resumable position (`state_dict`), and
counts the samples it skips by reason (`Loader.skipped`).

    loader = Loader(InMemory(encoded), micro_batch=2, rank=0, world=1, seed=0, pad_id=tok.pad_token_id)
    for batch in loader.batches(): loss_sum, n = model(batch)
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from schemas import Reject, Sample
from tokenization.chat import IGNORE_INDEX, RenderConfig, VisualTokens, render


@dataclass
class ObjectView:
    """One region on one frame, as the SAOT precompute produced it."""

    crop: torch.Tensor
    """(3, h, w) uint8 RGB crop, h and w multiples of the patch size (the model normalises on its device)."""
    grid: torch.Tensor
    """(h / patch, w / patch) float grid mask."""
    pos: torch.Tensor
    """(h / patch, w / patch, 2) relative frame coordinates of each cell."""
    tokens: int
    """Object tokens (tokenization.saot.token_count of `grid`)."""
    frame: int = 0
    """Index of the frame in the example's `frames` (the Lite global view); in a batch: global index."""
    local: torch.Tensor | None = None
    """(3, L, L) uint8 Lite local view; filled from `crop` by `encode` when missing."""


@dataclass(frozen=True)
class Views:
    """How pixels become model views: square global frames, Lite local views, the video token budget."""

    image_size: int
    """Side of an image's global view (and the most a video frame gets)."""
    local_size: int
    """Side of the Lite local view of each region frame."""
    patch: int
    """Vision patch size: a frame of side S gives (S / patch)^2 global tokens."""
    video_max_tokens: int
    """Global tokens of one video, all frames together (official mm_max_length 8192)."""
    video_merge: int = 1
    """Spatial merge of video frames in the tower (VideoLLaMA3: 2, one token per 2x2 patches)."""

    def video_side(self, frames: int) -> int:
        """Side of each frame of an F-frame clip: g x g tokens with g = min(image_size / (patch x merge),
        floor(sqrt(budget / F))), at least one token. Without merge this stands in for VideoLLaMA3's
        per-frame down-scaling and 2x2 token merge: a 180-frame clip gets 6x6 patches per frame at 8192."""
        cell = self.patch * self.video_merge
        g = min(self.image_size // cell, math.isqrt(self.video_max_tokens // max(frames, 1)))
        return max(g, 1) * cell


@dataclass
class Example:
    sample: Sample
    frames: torch.Tensor
    """(F, 3, S, S) uint8 RGB global views (S: Views.image_size, or Views.video_side for a clip);
    F = 0 for a text-only sample."""
    frame_times: list[float]
    """Seconds of each global frame (videos; empty for images)."""
    objects: list[list[ObjectView]]
    """Per region, per region frame."""


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    frames: torch.Tensor
    image_in_text: bool
    """Whether the global frames' features are given to the LLM (`<image>` tokens present)."""
    objects: list[ObjectView]
    """Region frames in the order their `<REGION>` groups appear in `input_ids`."""
    merge: int = 1
    """Spatial merge of the frames in the tower (Views.video_merge for a clip in the text, else 1)."""


@dataclass
class RegionBatch:
    """A padded micro-batch.

    input_ids, labels, attention_mask: (B, T); images: per sample with frames, its (F, 3, S, S)
    uint8 frames (S differs between images and clips); image_in_text: (N_frames,) bool over all
    frames in order; objects: region frames in scatter order, `frame` indexing all frames.
    A packed batch is one row (1, T) with no padding: attention_mask is None and position_ids
    restart at 0 for every sample, which transformers turns into a block-diagonal causal mask.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor | None
    images: list[torch.Tensor]
    image_in_text: torch.Tensor
    objects: list[ObjectView] = field(default_factory=list)
    position_ids: torch.Tensor | None = None
    merges: list[int] = field(default_factory=list)
    """Spatial merge of each entry of `images` (empty: all 1)."""
    skipped: Counter = field(default_factory=Counter)
    """Samples of this micro-batch the loader skipped, by `Reject` reason (too_long, ...)."""

    @property
    def supervised(self) -> int:
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())

    @property
    def tokens(self) -> int:
        """Input tokens, padding excluded."""
        return self.input_ids.numel() if self.attention_mask is None else int(self.attention_mask.sum())

    def to(self, device: torch.device) -> RegionBatch:
        def move(o: ObjectView) -> ObjectView:
            local = o.local.to(device) if o.local is not None else None
            return ObjectView(o.crop.to(device), o.grid.to(device), o.pos.to(device), o.tokens, o.frame, local)

        def maybe(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return RegionBatch(self.input_ids.to(device), self.labels.to(device), maybe(self.attention_mask),
                           [f.to(device) for f in self.images], self.image_in_text.to(device), [move(o) for o in self.objects],
                           maybe(self.position_ids), self.merges)


def encode(example: Example, tokenizer, cfg: RenderConfig, views: Views) -> Encoded:
    """Render one example; raises `Reject` (too_long, token_count_mismatch)."""
    lite = cfg.layout == "lite"
    image_in_text = not lite or not example.sample.regions
    clip = example.sample.media is not None and example.sample.media.kind == "video"
    merge = views.video_merge if clip and image_in_text else 1
    visual = VisualTokens(
        frame_tokens=[(example.frames.shape[-1] // (views.patch * merge)) ** 2] * example.frames.shape[0],
        frame_times=example.frame_times,
        region_tokens=[[o.tokens for o in views] for views in example.objects],
    )
    out = render(example.sample, visual, tokenizer, cfg)
    objects = []
    for r in out.region_order:
        for view in example.objects[r]:
            if lite:
                tokens = cfg.lite_tokens
                local = view.local if view.local is not None else square(view.crop, views.local_size)
                view = ObjectView(view.crop, view.grid, view.pos, tokens, view.frame, local)
            objects.append(view)
    return Encoded(out.input_ids, out.labels, example.frames, image_in_text, objects, merge)


def square(image: torch.Tensor, size: int) -> torch.Tensor:
    """A uint8 (3, h, w) image squashed to (3, size, size) (antialiased bilinear), unless it already is."""
    if tuple(image.shape[1:]) == (size, size):
        return image
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def encode_all(examples: Sequence[Example], tokenizer, cfg: RenderConfig, views: Views) -> tuple[list[Encoded], Counter]:
    """Encode every example; rejected ones are left out and counted by reason."""
    kept, rejects = [], Counter()
    for ex in examples:
        try:
            kept.append(encode(ex, tokenizer, cfg, views))
        except Reject as r:
            rejects[r.reason] += 1
    return kept, rejects


def collate(items: Sequence[Encoded], pad_id: int, pack: bool = False) -> RegionBatch:
    """Right-pad ids with `pad_id` and labels with IGNORE_INDEX (or pack them into one row);
    concatenate frames and objects.

    Example: two items of 3 and 2 tokens give input_ids [[a, b, c], [d, e, pad]],
    attention_mask [[1, 1, 1], [1, 1, 0]]; packed: input_ids [[a, b, c, d, e]],
    position_ids [[0, 1, 2, 0, 1]], attention_mask None, and the label of d is IGNORE_INDEX (in
    a padded row the first token is never a target, so its label must not be one here either).
    """
    ids, labels, mask, positions = _packed(items) if pack else _padded(items, pad_id)
    objects, frames, in_text, offset = [], [], [], 0
    for it in items:
        objects += [ObjectView(o.crop, o.grid, o.pos, o.tokens, o.frame + offset, o.local) for o in it.objects]
        frames.append(it.frames)
        in_text += [it.image_in_text] * it.frames.shape[0]
        offset += it.frames.shape[0]
    return RegionBatch(ids, labels, mask, [f for f in frames if f.shape[0]], torch.tensor(in_text, dtype=torch.bool),
                       objects, positions, [it.merge for it in items if it.frames.shape[0]])


def _padded(items: Sequence[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
    width = max(len(it.input_ids) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for b, it in enumerate(items):
        n = len(it.input_ids)
        ids[b, :n], labels[b, :n], mask[b, :n] = _long(it.input_ids), _long(it.labels), 1
    return ids, labels, mask, None


def _packed(items: Sequence[Encoded]) -> tuple[torch.Tensor, torch.Tensor, None, torch.Tensor]:
    ids = _long([t for it in items for t in it.input_ids])[None]
    labels = _long([t for it in items for t in [IGNORE_INDEX, *it.labels[1:]]])[None]
    positions = torch.cat([torch.arange(len(it.input_ids)) for it in items])[None]
    return ids, labels, None, positions


def _long(values: list[int]) -> torch.Tensor:
    """A list of ints as an int64 tensor (through numpy: about 5x faster than torch.tensor on lists)."""
    return torch.from_numpy(np.asarray(values, dtype=np.int64))


class InMemory:
    """A list of already encoded items as a loader source (generated examples, tests)."""

    files = 0  # no shard files: readers split the samples (see `Loader`)

    def __init__(self, items: Sequence[Encoded]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def stream(self, epoch: int, seed: int) -> Iterator[Encoded]:
        perm = torch.randperm(len(self.items), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        return (self.items[i] for i in perm.tolist())

    def encode(self, item: Encoded) -> Encoded:
        return item


class Loader(torch.utils.data.IterableDataset):
    """Micro-batches for one rank, in a fixed order that resumes exactly.

    Readers: each rank, and each of its `workers` DataLoader workers (1 without workers), is one
    of R = world x workers readers. Batch g of a rank (counted over all epochs) is built by its
    worker g % workers, so the DataLoader's round-robin collection yields them in order.

    Shard-level split (a source with at least R shard files, R > 1): epoch e shuffles the shard
    files (seed, e) and reader i = rank x workers + worker reads only files i, i + R, ... of that
    order, through its own shuffle buffer (`source.stream(e, seed, i, R)`), so no file is opened
    by two readers. Every reader makes the same number of micro-batches per epoch, from the
    samples any reader is sure to get (`source.reader_share(R)`), so ranks stay in step; the
    rest of a longer share is left for that epoch. The batch order depends on R: resuming
    exactly needs the same world size and worker count (`workers`, fixed at construction).

    Sample-level split (one reader, fewer files than readers, or an in-memory source): every
    reader streams `source.stream(e, seed)` (the same order everywhere); rank r keeps positions p
    with p % world == r, cut so every rank gets the same number of full micro-batches (no DDP
    hang at epoch end), and encodes only its workers' batches. The order is the same for any
    worker count. With fewer files than readers, rank 0 says so on stderr once.

    Either way, items of other readers are never encoded, and one reader is the single-process
    order. The position is the number of batches consumed (`state_dict`). Samples whose
    encoding raises `Reject` leave their batch and are counted by reason in `skipped`
    (cumulative, kept by `consume`). With `pack`, each micro-batch is one packed row
    (`collate`): the same samples in the same order, without padding.
    """

    def __init__(self, source, micro_batch: int, rank: int, world: int, seed: int, pad_id: int, pack: bool = False,
                 workers: int = 0):
        self.source, self.micro_batch, self.rank, self.world = source, micro_batch, rank, world
        self.seed, self.pad_id, self.pack = seed, pad_id, pack
        self.workers = max(workers, 1)
        readers = world * self.workers
        self.shard_readers = readers if 1 < readers <= source.files else 0
        if self.shard_readers:
            self.batches_per_epoch = source.reader_share(readers) // micro_batch * self.workers
        else:
            self.batches_per_epoch = len(source) // world // micro_batch
            if source.files and readers > 1 and rank == 0:
                print(f"{source.files} shard files for {readers} readers ({world} ranks x {self.workers} workers): "
                      "every reader reads every file and keeps its share of the samples (sample-level split)", file=sys.stderr)
        if self.batches_per_epoch == 0:
            raise ValueError(f"{len(source)} samples cannot fill one micro-batch of {micro_batch} on each of {readers} readers")
        self.consumed = 0
        self.skipped: Counter = Counter()

    def state_dict(self) -> dict:
        return {"batches": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = state["batches"]

    def consume(self, batch: RegionBatch) -> None:
        """Count a batch taken from this loader (in the process that trains on it)."""
        self.consumed += 1
        self.skipped.update(batch.skipped)

    def batches(self) -> Iterator[RegionBatch]:
        """Batches from the current position on, counting them (for single-process loading)."""
        for batch in self:
            self.consume(batch)
            yield batch

    def __iter__(self) -> Iterator[RegionBatch]:
        info = torch.utils.data.get_worker_info()
        workers = info.num_workers if info else 1
        if self.shard_readers and workers != self.workers:
            raise ValueError(f"this loader splits shards over {self.workers} workers per rank but runs in {workers}")
        # The DataLoader collects round-robin from its worker 0 on, so worker 0 plays the part
        # (reader) whose batch is next: a resumed position need not start a round.
        worker = ((info.id if info else 0) + self.consumed) % workers
        yield from (self._shard_batches if self.shard_readers else self._sample_batches)(worker, workers)

    def _shard_batches(self, worker: int, workers: int) -> Iterator[RegionBatch]:
        reader, per_reader = self.rank * workers + worker, self.batches_per_epoch // workers
        g = self.consumed
        while True:
            epoch, first = divmod(g, self.batches_per_epoch)
            group: list = []
            j = 0  # this reader's batch index within the epoch; the rank's is j * workers + worker
            for raw in self.source.stream(epoch, self.seed, reader, self.shard_readers):
                group.append(raw)
                if len(group) == self.micro_batch:
                    if j * workers + worker >= first:
                        yield self._collate(group)
                    group, j = [], j + 1
                    if j == per_reader:
                        break
            g = (epoch + 1) * self.batches_per_epoch

    def _sample_batches(self, worker: int, workers: int) -> Iterator[RegionBatch]:
        g = self.consumed
        while True:
            epoch, first = divmod(g, self.batches_per_epoch)
            per_rank = self.batches_per_epoch * self.micro_batch
            group: list = []
            for p, raw in enumerate(self.source.stream(epoch, self.seed)):
                if p >= per_rank * self.world or p % self.world != self.rank:
                    continue
                b = (p // self.world) // self.micro_batch  # batch index of this item within the epoch
                gb = epoch * self.batches_per_epoch + b
                if b >= first and gb % workers == worker:
                    group.append(raw)
                    if len(group) == self.micro_batch:
                        yield self._collate(group)
                        group = []
            g = (epoch + 1) * self.batches_per_epoch

    def _collate(self, group: list) -> RegionBatch:
        """Encode and pad; a rejected item leaves the batch and is counted in `batch.skipped`."""
        items, rejected = [], []
        for raw in group:
            try:
                items.append(self.source.encode(raw))
            except Reject as r:
                rejected.append(r)
        if not items:
            raise ValueError(f"every sample of a micro-batch was rejected: {[str(r) for r in rejected]}")
        batch = collate(items, self.pad_id, self.pack)
        batch.skipped.update(r.reason for r in rejected)
        return batch

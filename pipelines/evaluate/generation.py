"""A model's answers to benchmark samples, through the trainer's own generation (`train.generate`).

A benchmark sample becomes a model input exactly as a training sample does: the shard writer's
encoding (`pipelines.shard.encode_sample`: frame decoding, SAOT crops with the model's object
token count and framework), read back by the trainer's shard reader (`train.shards`,
`train.shard_input.example_from_shard`), in memory instead of through a tar file. So a score
measures the model on the inputs it was trained on, with no second preprocessing path.

A sample the encoder rejects (an object too small for one token, an unreadable frame) gets an
empty answer, counted by reason in the result (`inputs.not_generated`), never dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from pipelines.shard import encode_sample
from schemas import Reject, Sample
from sources.roots import Roots
from tokenization.saot import SaotConfig
from train.config import DataConfig
from train.data import Example, Views
from train.generate import checkpoint_config, generate, load_checkpoint
from train.model import RegionMLLM
from train.shard_input import example_from_shard
from train.shards import to_shard_sample


def example_of(sample: Sample, roots: Roots, model: RegionMLLM, data: DataConfig, device: torch.device) -> Example:
    """The trainer's input for one sample (raises Reject)."""
    lite = model.cfg.framework == "lite"
    saot_cfg = SaotConfig(lite=lite, n=model.cfg.object_tokens)
    members = encode_sample(sample, roots, saot_cfg, device, view_size=data.image_size)
    raw = {"__key__": sample.key, **{name[len(sample.key) + 1:]: blob for name, blob in members}}
    views = Views(data.image_size, data.local_size, model.patch, data.video_max_tokens, model.video_merge)
    return example_from_shard(to_shard_sample(raw), views, lite)


def answers(model: RegionMLLM, tokenizer, samples: Sequence[Sample], roots: Roots, data: DataConfig,
            max_new_tokens: int) -> tuple[list[str], Counter]:
    """One greedy answer per sample, in order, and the count of samples left unanswered, by reason."""
    device = next(model.parameters()).device
    examples: dict[int, Example] = {}
    not_generated: Counter = Counter()
    for i, sample in enumerate(samples):
        try:
            examples[i] = example_of(sample, roots, model, data, device)
        except Reject as reject:
            not_generated[reject.reason] += 1
    texts = iter(generate(model, tokenizer, list(examples.values()), max_new_tokens=max_new_tokens, data=data))
    return [next(texts) if i in examples else "" for i in range(len(samples))], not_generated


def checkpoint_answers(folder: Path, samples: Sequence[Sample], roots: Roots, max_new_tokens: int) -> tuple[list[str], Counter]:
    """`answers` of a trained checkpoint (a run or step_* folder), with the view sizes it trained with."""
    model, tokenizer = load_checkpoint(folder)
    return answers(model, tokenizer, samples, roots, checkpoint_config(folder).data, max_new_tokens)

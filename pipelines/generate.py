"""`pixelrefer generate`: answer the questions of samples with a trained PixelRefer model.

    pixelrefer generate --checkpoint runs/pixelrefer-2b-stage2 --shards OUT/shards/recipe/stage2 --out answers.jsonl
    pixelrefer generate --checkpoint runs/x/step_000010 --samples val.jsonl --media-root /data/coco --out a.jsonl
    pixelrefer generate ... --do-sample --temperature 0.7 --top-p 0.9 --batch-size 16 --limit 100

`--checkpoint` is a training run folder (its newest complete step) or one `step_*` folder; the
model is rebuilt from the `config.yaml` stored there (backbone, framework, view sizes) and runs on
CUDA when present. Inputs: a shard stage folder (SAOT crops precomputed; every sample, shard order)
or a unified-sample `.jsonl`/`.parquet` file whose media paths resolve under `--media-root` (crops
computed here with the shard writer's own code). Each sample's last assistant turn is what the
model answers (its earlier rounds stay as context). Writes one JSON line per sample,
`{id, question, answer}`, in input order; samples that cannot be rendered or read are counted by
reason on stderr, never silently dropped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import torch

from schemas import Reject, Sample
from schemas.arrow import iter_records
from sources.roots import Roots
from tokenization.chat import RenderConfig
from train.config import DataConfig
from train.data import Example, Views
from train.generate import checkpoint_config, generate, load_checkpoint, prompt
from train.model import RegionMLLM
from train.shard_input import example_from_shard
from train.shards import iter_shards


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="A training run folder or one of its step_* folders.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--shards", type=Path, help="A `pixelrefer shard` stage folder (its RRRRRRRRR.tar shards).")
    source.add_argument("--samples", type=Path, help="A .jsonl or .parquet file of unified samples (needs --media-root).")
    parser.add_argument("--media-root", type=Path, help="Folder the samples' media paths are relative to.")
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write {id, question, answer} to.")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="Most tokens per answer (default 256).")
    parser.add_argument("--batch-size", type=int, default=8, help="Samples per generation batch (default 8).")
    parser.add_argument("--do-sample", action="store_true", help="Sample instead of greedy decoding.")
    parser.add_argument("--temperature", type=float, default=1.0, help="Sampling temperature (with --do-sample).")
    parser.add_argument("--top-p", type=float, default=1.0, help="Nucleus sampling mass (with --do-sample).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the sampling generator.")
    parser.add_argument("--limit", type=int, default=0, help="Answer only the first N samples (0: all).")


def _from_shards(folder: Path, views: Views, lite: bool) -> Iterator[tuple[str, Example | None, str]]:
    tars = sorted(folder.glob("*.tar"))
    if not tars:
        raise FileNotFoundError(f"{folder} holds no .tar shards: point --shards at a `pixelrefer shard` stage folder")
    for s in iter_shards(tars):
        yield s.sample.id, example_from_shard(s, views, lite), ""


def _from_samples(path: Path, media_root: Path, model: RegionMLLM, data: DataConfig) -> Iterator[tuple[str, Example | None, str]]:
    """Samples -> the shard writer's own crops and views (`pipelines.evaluate.generation.example_of`), one at a time."""
    from pipelines.evaluate.generation import example_of

    root, device = Roots.of(media_root), torch.device("cpu")
    for locator, record, _ in iter_records(path):
        if record is None:
            yield locator, None, "not_json"
            continue
        try:
            sample = Sample.model_validate(record)
            example = example_of(sample, root, model, data, device)
        except (ValueError, Reject) as err:  # pydantic's ValidationError is a ValueError
            yield locator, None, getattr(err, "reason", type(err).__name__)
            continue
        yield sample.id, example, ""


def run(args: argparse.Namespace) -> int:
    if args.samples and not args.media_root:
        raise ValueError("--samples needs --media-root (the folder the samples' media paths are relative to)")
    model, tokenizer = load_checkpoint(args.checkpoint)
    cfg = checkpoint_config(args.checkpoint)
    views = Views(cfg.data.image_size, cfg.data.local_size, model.patch, cfg.data.video_max_tokens, model.video_merge)
    lite = cfg.model.framework == "lite"
    items = (_from_shards(args.shards, views, lite) if args.shards
             else _from_samples(args.samples, args.media_root, model, cfg.data))
    render_cfg = RenderConfig(layout=cfg.model.framework, max_length=cfg.data.max_length, lite_tokens=cfg.model.object_tokens)
    skipped: Counter = Counter()
    written = 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for k, chunk in enumerate(_batches(islice(items, args.limit or None), args.batch_size)):
            kept = []
            for sample_id, example, reason in chunk:
                if example is None:
                    skipped[reason] += 1
                    continue
                try:
                    kept.append((sample_id, example, prompt(example, tokenizer, render_cfg, views).question))
                except Reject as r:
                    skipped[r.reason] += 1
            answers = generate(model, tokenizer, [e for _, e, _ in kept], args.max_new_tokens, args.do_sample,
                               args.temperature, args.top_p, args.batch_size, cfg.data, args.seed + k) if kept else []
            for (sample_id, _, question), answer in zip(kept, answers):
                out.write(json.dumps({"id": sample_id, "question": question, "answer": answer}, ensure_ascii=False) + "\n")
            written += len(kept)
    print(f"pixelrefer generate: {written} answers -> {args.out}"
          + (f"; skipped {dict(sorted(skipped.items()))}" if skipped else ""), file=sys.stderr)
    return 0


def _batches(items: Iterator, size: int) -> Iterator[list]:
    while chunk := list(islice(items, size)):
        yield chunk

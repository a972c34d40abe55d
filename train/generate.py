"""Answers from a PixelRefer model: batched generation with a KV cache, greedy or sampled.

    model, tokenizer = load_checkpoint("runs/x")                                 # a run or step_* folder
    answers = generate(model, tokenizer, examples, max_new_tokens=64, data=checkpoint_config("runs/x").data)
    answers = generate(model, tokenizer, examples, 64, do_sample=True, temperature=0.7, top_p=0.9)
    pixelrefer generate --checkpoint runs/x --shards OUT/shards/demo/stage1 --out answers.jsonl

Each example is rendered up to its last user turn (earlier rounds, answers included, stay as
context), then `<|im_start|>assistant\\n`: the prompt the model was trained to answer. Its image
and object features are scattered into the prompt embeddings exactly as in training
(`RegionMLLM.embed`), and transformers' `generate` continues from those embeddings (KV cache,
greedy or temperature / top-p sampling) until `<|im_end|>` or `max_new_tokens`. The prompts of a
batch are left-padded, so every row's next token sits in the last column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import GenerationConfig

from schemas import Turn
from tokenization.chat import IGNORE_INDEX, IM_END, IM_START, RenderConfig
from train import checkpoint
from train.config import DataConfig, TrainConfig, load_config
from train.data import Encoded, Example, RegionBatch, Views, collate, encode
from train.model import RegionMLLM
from train.prepare import prepare_model
from train.tokenizer import load_tokenizer


def checkpoint_config(folder: str | Path) -> TrainConfig:
    """The training config stored with a checkpoint (a run folder: its newest complete step)."""
    step = checkpoint.resolve(Path(folder))
    return replace(load_config(step / "config.yaml"), init_from="")  # its weights are in model.pt


def load_checkpoint(folder: str | Path) -> tuple[RegionMLLM, object]:
    """(model in eval mode, on CUDA when present; tokenizer) of a run or step_* folder, rebuilt from
    its config as it trained (train.prepare: backbone, LoRA) with its weights loaded."""
    cfg = checkpoint_config(folder)
    tokenizer = load_tokenizer(cfg.model.tokenizer)
    model = prepare_model(cfg, tokenizer)
    model.load_state_dict(checkpoint.load_model_state(checkpoint.resolve(Path(folder))))
    model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return model.eval(), tokenizer


@dataclass(frozen=True)
class Prompt:
    encoded: Encoded
    """The prompt's ids (ending with the assistant header) and its visual inputs."""
    question: str
    """The last user turn, as written in the sample (placeholders `<obj{i}>` kept)."""


def prompt(example: Example, tokenizer, render_cfg: RenderConfig, views: Views) -> Prompt:
    """The generation prompt of an example: its conversation before the last assistant turn (or all
    of it when it ends with a user turn), then the assistant header. Raises `schemas.Reject`."""
    turns = example.sample.conversation
    answer_at = len(turns) - 1 if turns[-1].role == "assistant" else len(turns)
    question = next(t.text for t in reversed(turns[:answer_at]) if t.role == "user")
    # A one-character stand-in answer: the renderer wants an assistant turn, whose content we cut off.
    sample = example.sample.model_copy(update={"conversation": [*turns[:answer_at], Turn(role="assistant", text=".")]})
    full = encode(replace(example, sample=sample), tokenizer, render_cfg, views)
    vocab = tokenizer.get_vocab()
    start = len(full.input_ids) - full.input_ids[::-1].index(vocab[IM_START]) - 1  # the last turn's header
    end = start + 1 + len(tokenizer.encode("assistant\n", add_special_tokens=False))
    ids = full.input_ids[:end]
    return Prompt(replace(full, input_ids=ids, labels=[IGNORE_INDEX] * len(ids)), question)


def left_padded(batch: RegionBatch) -> RegionBatch:
    """Move each row's right padding to its left: the features keep their order (row-major,
    rows in order), and every row's last prompt token lands in the last column."""
    ids, mask = batch.input_ids.clone(), batch.attention_mask.clone()
    width = ids.shape[1]
    for b, n in enumerate(batch.attention_mask.sum(dim=1).tolist()):
        ids[b], mask[b] = ids[b].roll(width - n), mask[b].roll(width - n)
    return replace(batch, input_ids=ids, labels=torch.full_like(ids, IGNORE_INDEX), attention_mask=mask)


def generate(model: RegionMLLM, tokenizer, samples: Sequence[Example], max_new_tokens: int = 64, do_sample: bool = False,
             temperature: float = 1.0, top_p: float = 1.0, batch_size: int = 8, data: DataConfig | None = None,
             seed: int = 0, use_cache: bool = True) -> list[str]:
    """One answer per example, in order (its text up to `<|im_end|>`, special tokens removed).

    `data` gives the view sizes the model was trained with (the checkpoint's `data` config;
    default `DataConfig()`, the tiny config's). Sampling draws from torch's global generator,
    seeded with `seed` first. Raises
    `schemas.Reject` for an example that cannot be rendered (use `prompt` to filter first)."""
    cfg, data = model.cfg, data or DataConfig()
    render_cfg = RenderConfig(layout=cfg.framework, max_length=data.max_length, lite_tokens=cfg.object_tokens)
    views = Views(data.image_size, data.local_size, model.patch, data.video_max_tokens, model.video_merge)
    prompts = [prompt(ex, tokenizer, render_cfg, views).encoded for ex in samples]
    im_end = tokenizer.get_vocab()[IM_END]
    settings = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=do_sample, use_cache=use_cache,
                                eos_token_id=im_end, pad_token_id=tokenizer.pad_token_id,
                                **({"temperature": temperature, "top_p": top_p, "top_k": 0} if do_sample else {}))
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    answers: list[str] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(prompts), batch_size):
                batch = left_padded(collate(prompts[i : i + batch_size], tokenizer.pad_token_id)).to(device)
                out = model.llm.generate(inputs_embeds=model.embed(batch), attention_mask=batch.attention_mask,
                                         generation_config=settings)
                answers += [_text(row.tolist(), im_end, tokenizer) for row in out]
    finally:
        model.train(was_training)
    return answers


def _text(ids: list[int], eos: int, tokenizer) -> str:
    """The generated text before the first `<|im_end|>`."""
    return tokenizer.decode(ids[: ids.index(eos)] if eos in ids else ids, skip_special_tokens=True)

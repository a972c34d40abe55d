"""The model as it trains: built, cast to fp32 master weights, stage-1 weights, LoRA, frozen globs, train mode.

    model = prepare_model(cfg, tokenizer)     # train.train and train.export build it the same way

Order matters: fp32 before `init_from` (a bf16 copy would round stage 1's fp32 weights), and
`init_from` before LoRA (stage 1 saved the plain parameter names).
"""

from __future__ import annotations

from pathlib import Path

from train import checkpoint
from train.config import TrainConfig
from train.lora import apply_lora
from train.model import RegionMLLM, build_model
from train.optim import freeze


def prepare_model(cfg: TrainConfig, tokenizer) -> RegionMLLM:
    model = build_model(cfg.model, tokenizer)
    # Master weights in fp32: a bf16 folder (transformers 5 loads the saved dtype) would otherwise
    # train and keep AdamW state in bf16, where a 1e-5 update of a weight near 1 rounds away; bf16
    # compute comes from autocast instead. One dtype everywhere also lets FSDP2 shard the root,
    # which refuses units that mix bf16 (LLM, vision) and fp32 (projector, object encoder) parameters.
    model.float()
    if cfg.init_from:
        model.load_state_dict(checkpoint.load_model_state(Path(cfg.init_from)))
    if cfg.lora.r:
        apply_lora(model, cfg.lora)
    freeze(model, cfg.optim.frozen)
    # from_pretrained returns eval mode, in which transformers skips gradient checkpointing (and dropout)
    model.train()
    return model

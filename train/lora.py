"""LoRA on the LLM (peft): adapters on the configured linear layers, the LLM's own weights frozen.

    apply_lora(model, cfg.lora)          # model.llm becomes a peft model; vision, projector and
                                         # object encoder keep their own requires_grad
    llm = merged_llm(model)              # a plain transformers model with the adapters folded in

Parameter names gain peft's prefix (`llm.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight`),
so `optim.groups` globs such as `llm.*` still cover them. Stage-1 weights (`init_from`) are loaded
before the adapters are added, under the plain names.
"""

from __future__ import annotations

import copy

from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from torch import nn

from train.config import LoraConfig


def apply_lora(model: nn.Module, cfg: LoraConfig) -> None:
    """Replace `model.llm` by its peft LoRA model (only the adapters require grad inside it)."""
    peft_cfg = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules))
    model.llm = get_peft_model(model.llm, peft_cfg)


def merged_llm(model: nn.Module) -> nn.Module:
    """The LLM with any adapters merged into its weights (a copy: the training model keeps its adapters)."""
    if not isinstance(model.llm, PeftModel):
        return model.llm
    return copy.deepcopy(model.llm).merge_and_unload()

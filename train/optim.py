"""Parameter groups from declarative globs, and the cosine-with-warmup learning-rate schedule.

    groups = param_groups(model, cfg.optim)      # raises if groups overlap or miss a parameter
    opt = torch.optim.AdamW(groups, betas=cfg.optim.betas)
    sched = cosine_schedule(opt, total_steps, cfg.optim.warmup_ratio)
"""

from __future__ import annotations

import math
from fnmatch import fnmatch

import torch
from torch import nn

from train.config import OptimConfig


def freeze(model: nn.Module, patterns: list[str]) -> int:
    """Set requires_grad=False on parameters matching any glob; return how many were frozen."""
    frozen = 0
    for name, p in model.named_parameters():
        if any(fnmatch(name, pat) for pat in patterns):
            p.requires_grad_(False)
            frozen += 1
    return frozen


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """One optimizer group per configured group; every trainable parameter in exactly one.

    Raises ValueError naming the parameters matched by two groups, or left in none.
    """
    members: dict[str, list[str]] = {g.name: [] for g in cfg.groups}
    params = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        params[name] = p
        hits = [g.name for g in cfg.groups if any(fnmatch(name, pat) for pat in g.include)]
        if len(hits) > 1:
            raise ValueError(f"parameter {name} is in groups {hits}: make optim.groups disjoint")
        if not hits:
            raise ValueError(f"trainable parameter {name} is in no group: add a glob to optim.groups or optim.frozen")
        members[hits[0]].append(name)
    return [
        {"name": g.name, "params": [params[n] for n in members[g.name]], "lr": g.lr, "weight_decay": g.weight_decay}
        for g in cfg.groups
        if members[g.name]
    ]


def warmup_steps(total: int, ratio: float) -> int:
    return math.ceil(total * ratio)


def lr_multiplier(step: int, total: int, warmup: int) -> float:
    """Linear warmup from 0 over `warmup` steps, then cosine from 1 to 0 at `total`."""
    if step < warmup:
        return step / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def cosine_schedule(opt: torch.optim.Optimizer, total: int, ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = warmup_steps(total, ratio)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_multiplier(step, total, warmup))

"""Parameter groups (disjoint, complete, frozen excluded) and the cosine-with-warmup schedule."""

import math

import pytest
import torch

from train.config import GroupConfig, ModelConfig, OptimConfig
from train.model import build_model
from train.optim import cosine_schedule, freeze, param_groups
from train.tokenizer import char_tokenizer


@pytest.fixture(scope="module")
def model():
    m = build_model(ModelConfig(framework="lite", infusion_heads=4), char_tokenizer())
    freeze(m, ["vision.*"])
    return m


def test_stage1_groups_cover_every_trainable_parameter_once(model):
    groups = param_groups(model, OptimConfig())
    assert [(g["name"], g["lr"]) for g in groups] == [("llm", 1e-5), ("projector", 1e-5), ("object_encoder", 1e-3)]
    grouped = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(grouped) == sorted(trainable) and len(set(grouped)) == len(grouped)
    assert not any(p.requires_grad for p in model.vision.parameters())
    names = {n for n, p in model.named_parameters() if any(p is q for q in groups[2]["params"])}
    assert "object_encoder.pos.weight" in names and "infusion.attn_local.in_proj_weight" in names


def test_overlap_and_gap_are_refused(model):
    overlap = OptimConfig(groups=[GroupConfig("a", ["*"], 1.0), GroupConfig("b", ["llm.*"], 1.0)])
    with pytest.raises(ValueError, match=r"parameter llm\..* is in groups \['a', 'b'\]"):
        param_groups(model, overlap)
    gap = OptimConfig(groups=[GroupConfig("llm", ["llm.*"], 1.0)])
    with pytest.raises(ValueError, match="trainable parameter projector.0.weight is in no group"):
        param_groups(model, gap)


def test_cosine_schedule_values_and_group_ratio():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a], "lr": 1e-5}, {"params": [b], "lr": 1e-3}])
    sched = cosine_schedule(opt, total=100, ratio=0.03)  # ceil(3.0) = 3 warmup steps
    seen = {}
    for step in range(101):
        seen[step] = [g["lr"] for g in opt.param_groups]
        opt.step()
        sched.step()
    assert seen[0] == [0.0, 0.0]
    assert seen[1] == pytest.approx([1e-5 / 3, 1e-3 / 3])
    assert seen[3] == pytest.approx([1e-5, 1e-3])
    mid = 0.5 * (1 + math.cos(math.pi * (50 - 3) / 97))
    assert seen[50] == pytest.approx([1e-5 * mid, 1e-3 * mid]) and seen[50][1] / seen[50][0] == pytest.approx(100)
    assert seen[100] == pytest.approx([0.0, 0.0], abs=1e-20)

"""Process setup for single-process and torchrun runs: device, process group, DDP / FSDP2 wrapping.

    torchrun --standalone --nproc_per_node 2 -m train.train --config train/configs/tiny.yaml

NCCL on CUDA, gloo on CPU. Rank and world size come from torchrun's RANK / WORLD_SIZE /
LOCAL_RANK environment variables; without them the run is a single process.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local, device)


def cleanup() -> None:
    """Tear the process group down once every rank is done (a rank leaving early aborts gloo peers)."""
    if torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def all_reduce_sum(values: list[float], d: Dist) -> list[float]:
    """Sums over ranks of several numbers, in one collective."""
    if d.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    torch_dist.all_reduce(t)
    return t.tolist()


def barrier(d: Dist) -> None:
    if d.world > 1:
        torch_dist.barrier()


def wrap(model: nn.Module, d: Dist, strategy: str) -> nn.Module:
    """DDP (default) or FSDP2 (each LLM decoder layer, then the root) when world > 1.

    FSDP2 needs one dtype per sharded unit: the trainer casts the model to fp32 first."""
    if d.world == 1:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in decoder_layers(model.llm):
            fully_shard(layer)
        return fully_shard(model)
    device_ids = [d.local_rank] if d.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def decoder_layers(llm: nn.Module) -> list[nn.Module]:
    """The LLM's decoder layers, by the class names transformers lists in `_no_split_modules`: the
    same for any backbone, and for a LoRA-wrapped LLM (peft forwards the attribute)."""
    names = set(llm._no_split_modules or ())
    return [m for m in llm.modules() if type(m).__name__ in names]


def no_sync(model: nn.Module, last: bool):
    """Skip DDP's gradient all-reduce on all but the last micro-step of an accumulation window."""
    if last or not isinstance(model, nn.parallel.DistributedDataParallel):
        return nullcontext()
    return model.no_sync()


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _fsdp(d: Dist, strategy: str) -> bool:
    return d.world > 1 and strategy == "fsdp"


def full_state(model: nn.Module, opt: torch.optim.Optimizer, strategy: str, d: Dist) -> tuple[dict, dict] | None:
    """Full (unsharded, CPU) model and optimizer states on rank 0, None elsewhere (all ranks must call)."""
    if _fsdp(d, strategy):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        states = get_model_state_dict(model, options=options), get_optimizer_state_dict(model, opt, options=options)
        return states if d.main else None
    if not d.main:
        return None
    return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}, opt.state_dict()


def load_full_state(model: nn.Module, opt: torch.optim.Optimizer, model_state: dict, optim_state: dict,
                    strategy: str, d: Dist) -> None:
    """Load full states saved by `full_state` into a (possibly sharded) model and its optimizer."""
    if _fsdp(d, strategy):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True)
        set_model_state_dict(model, model_state, options=options)
        set_optimizer_state_dict(model, opt, optim_state, options=options)
        return
    unwrap(model).load_state_dict(model_state)
    opt.load_state_dict(optim_state)

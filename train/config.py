"""Typed trainer configuration: dataclasses loaded from YAML, with dotted `key=value` CLI overrides.

    cfg = load_config("train/configs/tiny.yaml", ["optim.steps=20", "model.framework=lite"])

Unknown keys are errors (a typo never silently falls back to a default). The resolved config is
stored in every checkpoint (`config.yaml`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


@dataclass
class ModelConfig:
    framework: Literal["pixelrefer", "lite"] = "pixelrefer"
    """`pixelrefer` (Vision-Object) or `lite` (Object-Only, Object-Centric Infusion)."""
    backbone: Literal["siglip-qwen2", "videollama3"] = "siglip-qwen2"
    """Where the LLM, vision tower and projector come from (train.backbones): `siglip-qwen2`
    (`llm` + `vision`, random projector) or `videollama3` (`base_path`, the paper's init)."""
    base_path: str = "tiny-videollama3"
    """videollama3 backbone: a local HF-format VideoLLaMA3 folder (e.g. VideoLLaMA3-2B-Image) or a
    preset of train.backbones.VIDEOLLAMA3_PRESETS (random init)."""
    released: str = ""
    """videollama3 backbone: a released PixelRefer / PixelRefer-Lite checkpoint folder whose weights
    replace the backbone's and ours (train.released; `framework` must match it). Empty: none."""
    llm: str = "tiny-qwen2"
    """siglip-qwen2 backbone: a preset of train.backbones.LLM_PRESETS (random init) or a local Hugging Face folder (e.g. Qwen2.5)."""
    vision: str = "tiny-siglip"
    """siglip-qwen2 backbone: a preset of train.backbones.VISION_PRESETS or a local vision-tower folder (e.g. SigLIP)."""
    tokenizer: str = "char"
    """`char` (built-in character tokenizer) or a local tokenizer folder (usually the LLM's)."""
    vision_select_layer: int = -2
    """siglip-qwen2: hidden layer of the vision tower whose features are used (official: -2);
    videollama3 uses the tower's post-LayerNorm output, as VideoLLaMA3 does."""
    object_tokens: int = 32
    """n: most object tokens per region frame (Lite: exactly n)."""
    kmeans_iterations: int = 5
    """k-means iterations of the object encoder (official: 5; Lite: 3)."""
    infusion_heads: int = 8
    """Attention heads of Object-Centric Infusion (Lite)."""
    gradient_checkpointing: bool = False
    """Recompute LLM activations in backward to save memory."""
    seed: int = 0
    """Seed of the random init and of the k-means initialisation."""


@dataclass
class DataConfig:
    shards: str = ""
    """Folder of WebDataset shards (`pixelrefer shard` output); empty: use `synthetic` examples."""
    synthetic: int = 8
    """Number of generated examples when `shards` is empty (CPU demo and tests)."""
    image_size: int = 28
    """Side of the square global view given to the vision tower (Lite: 336 officially)."""
    local_size: int = 28
    """Side of the Lite local view of each region (official: 224)."""
    video_max_tokens: int = 8192
    """Global tokens of one video, all frames together (official mm_max_length): each frame of an
    F-frame clip gets min(image_size / patch, floor(sqrt(video_max_tokens / F)))^2 patches."""
    workers: int = 0
    """DataLoader worker processes per rank (0: load in the training process)."""
    shuffle_buffer: int = 64
    """Samples in the seeded shuffle buffer of the shard stream."""
    max_length: int = 16384
    """Longest rendered sample in tokens; longer ones lose trailing rounds or are rejected."""
    seed: int = 0
    """Seed of the per-epoch shuffle."""
    pack: bool = False
    """Pack each micro-batch into one row without padding (official use_batch_flattening): every
    sample keeps its own position ids and attends only to itself; the loss is unchanged."""
    val_shards: str = ""
    """Shard folder of a validation set (empty: no validation); its loss is logged every `val_every` steps."""
    val_batches: int = 0
    """Micro-batches per rank of each validation (0: the whole validation set, one pass)."""


@dataclass
class GroupConfig:
    name: str
    include: list[str]
    """Glob patterns over parameter names (fnmatch)."""
    lr: float
    weight_decay: float = 0.0


def _stage1_groups() -> list[GroupConfig]:
    return [
        GroupConfig("llm", ["llm.*"], 1e-5),
        GroupConfig("projector", ["projector.*"], 1e-5),
        GroupConfig("object_encoder", ["object_encoder.*", "infusion.*"], 1e-3),
    ]


@dataclass
class OptimConfig:
    groups: list[GroupConfig] = field(default_factory=_stage1_groups)
    """Parameter groups; together they must cover every trainable parameter exactly once."""
    frozen: list[str] = field(default_factory=lambda: ["vision.*"])
    """Globs of parameters that are frozen and left out of the optimizer."""
    global_batch: int = 256
    """Samples per optimizer step over all ranks (official: 256)."""
    micro_batch: int = 2
    """Samples per forward pass per rank; accumulation = global_batch / (micro_batch * world)."""
    epochs: float = 1.0
    """Passes over the data; sets the step count unless `steps` is given."""
    steps: int = 0
    """Optimizer steps (0: from epochs and the dataset size)."""
    warmup_ratio: float = 0.03
    """Fraction of the steps with linear warmup, then cosine decay to 0."""
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    """Max global gradient norm (0: no clipping)."""


@dataclass
class LoraConfig:
    """Low-rank adapters on the LLM (peft); the LLM's own weights are then frozen."""

    r: int = 0
    """Adapter rank (0: no LoRA, the LLM trains fully; official: 128)."""
    alpha: int = 256
    """Scale numerator: adapters are scaled by alpha / r (official: 256)."""
    dropout: float = 0.05
    """Dropout on the adapter input (official: 0.05)."""
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    """Names of the LLM's linear layers that get adapters (default: every decoder linear, as the official code)."""


@dataclass
class LogConfig:
    tensorboard: bool = False
    """Also write the logged scalars as TensorBoard events in `output_dir/tensorboard`."""


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output_dir: str = "runs/tiny"
    """Checkpoints, logs and the resolved config go here; an existing run there is resumed."""
    init_from: str = ""
    """Model weights that start this run (stage 2 from stage 1): a step_* folder, or a run folder (its newest step)."""
    save_every: int = 0
    """Checkpoint every N steps (0: only at the end)."""
    log_every: int = 1
    """Write a JSONL log line every N steps."""
    val_every: int = 0
    """Validation loss every N steps, and after the last (0: after the last only); needs data.val_shards."""
    log: LogConfig = field(default_factory=LogConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    resume_allow_data_change: bool = False
    """Resume a run in output_dir even when data.shards' index.json differs from the one it was trained on."""
    parallel: Literal["ddp", "fsdp"] = "ddp"
    """Multi-process strategy under torchrun (FSDP2 shards each decoder layer)."""
    bf16: bool = True
    """bf16 autocast on CUDA (ignored on CPU, which trains in fp32). Weights and optimizer state are
    fp32 either way: a bf16 checkpoint is cast up before training (master weights)."""

    def __post_init__(self):
        init, out = Path(self.init_from).resolve(), Path(self.output_dir).resolve()
        if self.init_from and out in (init, init.parent):
            raise ValueError(f"init_from {self.init_from} is inside output_dir {self.output_dir}: "
                             "give stage 2 its own output_dir")
        if self.val_every and not self.data.val_shards:
            raise ValueError(f"val_every {self.val_every} needs data.val_shards (a shard folder to validate on)")

    def accumulation(self, world: int) -> int:
        per_step = self.optim.micro_batch * world
        if self.optim.global_batch % per_step:
            raise ValueError(f"optim.global_batch {self.optim.global_batch} is not a multiple of "
                             f"micro_batch x world = {per_step}")
        return self.optim.global_batch // per_step


class ConfigError(ValueError):
    """A config file or override the user must fix (one line, naming the key)."""


_SCALARS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _build(cls: type, value: Any, where: str) -> Any:
    """Turn plain YAML values into the (nested) dataclass / list types of `cls`."""
    origin = typing.get_origin(cls)
    if dataclasses.is_dataclass(cls):
        if not isinstance(value, dict):
            raise ConfigError(f"{where or 'config'}: expected a mapping, got {value!r}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ConfigError(f"{where or 'config'}: unknown keys {unknown}; known: {sorted(names)}")
        return cls(**{k: _build(hints[k], v, f"{where}.{k}".lstrip(".")) for k, v in value.items()})
    if origin is list:
        return [_build(typing.get_args(cls)[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        return tuple(value)
    if origin is Literal:
        if value not in typing.get_args(cls):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(cls))}")
        return value
    if origin in (typing.Union, types.UnionType):
        return value
    if cls is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if cls in _SCALARS and (not isinstance(value, cls) or (cls is int and isinstance(value, bool))):
        raise ConfigError(f"{where}: expected {_SCALARS[cls]}, got {value!r}")
    return value


def apply_override(tree: dict, override: str) -> None:
    """`a.b.c=value` (value parsed as YAML) sets tree['a']['b']['c']."""
    key, sep, raw = override.partition("=")
    if not sep:
        raise ValueError(f"override {override!r} is not key=value (e.g. optim.steps=20)")
    *parents, leaf = key.split(".")
    node = tree
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = yaml.safe_load(raw)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    tree = {}
    if path:
        with open(path, encoding="utf-8") as f:  # a YAML error then names the file and line
            tree = yaml.safe_load(f) or {}
    for o in overrides:
        apply_override(tree, o)
    return _build(TrainConfig, tree, "")


def to_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)

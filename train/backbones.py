"""Backbones of a PixelRefer model: where its LLM, vision tower and projector come from, and how the
tower turns normalised pixels into per-cell features. `model.backbone` in the config picks one:

* `siglip-qwen2`: a Qwen2 causal LM (`model.llm`) + a fixed-resolution SigLIP tower
  (`model.vision`, features of hidden layer `vision_select_layer`, position embeddings
  interpolated for other sizes) + a random `mlp2x_gelu` projector. Tiny presets back the CPU demo
  and tests.
* `videollama3`: VideoLLaMA3 through transformers (`VideoLlama3ForConditionalGeneration`), the
  paper's starting point (PixelRefer inits from VideoLLaMA3-Image): `model.base_path` is a local
  HF-format folder (e.g. VideoLLaMA3-2B-Image, loaded with `local_files_only=True`) or the
  `tiny-videollama3` preset (random weights, same classes). Its parts become ours: the
  SigLIP-NaViT tower (2D RoPE, any H x W that is a multiple of the patch; features are its
  post-LayerNorm output, as VideoLLaMA3 and the released PixelRefer use), its aligned projector
  (`readout`: Linear-GELU-Linear), and its Qwen2 language model + LM head as one
  `Qwen2ForCausalLM` (so generation, checkpointing and FSDP see a plain causal LM). Video frames
  are 2x2-merged (the tower's bilinear `pixel_unshuffle`, VideoLLaMA3's `spatial_merge_size` 2);
  images and object crops keep merge 1.

    parts = BACKBONES[cfg.backbone](cfg, vocab_size)
    feats = parts.features(parts.vision, pixels, merge=1, select_layer=-2)   # (N, cells, D)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    Qwen2Config,
    SiglipVisionConfig,
    SiglipVisionModel,
    VideoLlama3Config,
    VideoLlama3ForConditionalGeneration,
    VideoLlama3VisionConfig,
)

from train.config import ModelConfig

# Named architectures with random init (tests, demo, benchmarks); anything else is a local folder.
LLM_PRESETS: dict[str, dict] = {
    "tiny-qwen2": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       intermediate_size=64, tie_word_embeddings=True),
    "qwen2.5-1.5b-random": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                                intermediate_size=8960, tie_word_embeddings=True, rope_theta=1e6),
}
VISION_PRESETS: dict[str, dict] = {
    "tiny-siglip": dict(image_size=28, patch_size=14, hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=4),
    "siglip-so400m-random": dict(image_size=384, patch_size=14, hidden_size=1152, intermediate_size=4304,
                                 num_hidden_layers=27, num_attention_heads=16),
}
# VideoLLaMA3 configs with random init: the tiny one has the released classes at toy sizes.
VIDEOLLAMA3_PRESETS: dict[str, dict] = {
    "tiny-videollama3": dict(
        text_config=dict(model_type="qwen2", **LLM_PRESETS["tiny-qwen2"]),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, patch_size=14),
    ),
}
VIDEO_MERGE = 2  # VideoLLaMA3 / PixelRefer `spatial_merge_size` for video frames


Features = Callable[[nn.Module, torch.Tensor, int, int], torch.Tensor]


@dataclass
class Backbone:
    llm: nn.Module
    """A Hugging Face causal LM (embeddings, decoder, LM head; `generate` works)."""
    vision: nn.Module
    projector: nn.Module
    features: Features
    """(vision, normalised pixels (N, 3, H, W), merge, select_layer) -> (N, cells, D) features."""
    video_merge: int
    """Spatial merge of video frames: 1 (one token per patch) or 2 (one per 2x2 patches)."""


def mlp(d_in: int, d_out: int) -> nn.Sequential:
    """The 2-layer GELU MLP (mlp2x_gelu)."""
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))


def _require_dir(name: str, key: str, presets: dict) -> Path:
    if not Path(name).is_dir():
        raise FileNotFoundError(f"{key}={name!r} is neither a preset ({', '.join(sorted(presets))}) nor a local folder")
    return Path(name)


def siglip_features(vision: nn.Module, x: torch.Tensor, merge: int, select_layer: int) -> torch.Tensor:
    if merge != 1:
        raise ValueError("the siglip-qwen2 backbone has no spatial merge")
    out = vision(pixel_values=x, interpolate_pos_encoding=True, output_hidden_states=True)
    return out.hidden_states[select_layer]


def navit_features(vision: nn.Module, x: torch.Tensor, merge: int, select_layer: int) -> torch.Tensor:
    """VideoLLaMA3's tower on N same-size images: patchify as `VideoLlama3ImageProcessor.patchify`
    does (patches grouped by merge block; temporal patch 1), one [1, h, w] grid per image (each
    image attends only to itself), bilinear merge inside the tower. `select_layer` does not apply:
    VideoLLaMA3 reads the post-LayerNorm output."""
    n, c, h, w = x.shape
    p, m = vision.config.patch_size, merge
    gh, gw = h // p, w // p
    patches = (x.reshape(n, c, gh // m, m, p, gw // m, m, p).permute(0, 2, 5, 3, 6, 1, 4, 7).reshape(n * gh * gw, c * p * p))
    grid = torch.tensor([[1, gh, gw]] * n, device=x.device)
    merges = torch.full((n,), m, dtype=torch.long, device=x.device)
    out = vision(pixel_values=patches, grid_thw=grid, merge_sizes=merges).last_hidden_state
    return out.view(n, (gh // m) * (gw // m), -1)


def siglip_qwen2(cfg: ModelConfig, vocab_size: int) -> Backbone:
    if cfg.llm in LLM_PRESETS:
        llm = AutoModelForCausalLM.from_config(Qwen2Config(vocab_size=vocab_size, **LLM_PRESETS[cfg.llm]))
    else:
        llm = AutoModelForCausalLM.from_pretrained(_require_dir(cfg.llm, "model.llm", LLM_PRESETS), local_files_only=True)
    if cfg.vision in VISION_PRESETS:
        vision = SiglipVisionModel(SiglipVisionConfig(**VISION_PRESETS[cfg.vision]))
    else:
        model = AutoModel.from_pretrained(_require_dir(cfg.vision, "model.vision", VISION_PRESETS), local_files_only=True)
        vision = getattr(model, "vision_model", model)  # a full SigLIP/CLIP checkpoint: keep the vision half
    projector = mlp(vision.config.hidden_size, llm.config.hidden_size)
    return Backbone(llm, vision, projector, siglip_features, video_merge=1)


def tiny_videollama3_config(vocab_size: int, preset: str = "tiny-videollama3") -> VideoLlama3Config:
    spec = VIDEOLLAMA3_PRESETS[preset]
    return VideoLlama3Config(text_config={**spec["text_config"], "vocab_size": vocab_size},
                             vision_config=VideoLlama3VisionConfig(**spec["vision_config"]))


def videollama3(cfg: ModelConfig, vocab_size: int) -> Backbone:
    if cfg.base_path in VIDEOLLAMA3_PRESETS:
        vl3 = VideoLlama3ForConditionalGeneration(tiny_videollama3_config(vocab_size, cfg.base_path))
    else:
        folder = _require_dir(cfg.base_path, "model.base_path", VIDEOLLAMA3_PRESETS)
        vl3 = VideoLlama3ForConditionalGeneration.from_pretrained(folder, local_files_only=True)
    return split_videollama3(vl3)


def split_videollama3(vl3: VideoLlama3ForConditionalGeneration) -> Backbone:
    """Our parts of a VideoLLaMA3 model; its modules (and tied weights) are reused, not copied."""
    text_config = vl3.config.text_config
    with torch.device("meta"):  # only the shell: its decoder and head are replaced below
        llm = AutoModelForCausalLM.from_config(text_config)
    llm.model, llm.lm_head = vl3.model.language_model, vl3.lm_head
    return Backbone(llm, vl3.model.vision_model, vl3.model.projector, navit_features, video_merge=VIDEO_MERGE)


BACKBONES: dict[str, Callable[[ModelConfig, int], Backbone]] = {
    "siglip-qwen2": siglip_qwen2,
    "videollama3": videollama3,
}

"""Load a released PixelRefer / PixelRefer-Lite checkpoint (a local folder) into our `videollama3` model.

    model = build_model(ModelConfig(backbone="videollama3", base_path="/ckpt/VideoLLaMA3-2B-Image",
                                    released="/ckpt/PixelRefer-2B", tokenizer="/ckpt/PixelRefer-2B"), tok)
    # or by hand:  load_released(model, "/ckpt/PixelRefer-2B")

The released folder holds the whole model in the official module layout (`*.safetensors`, sharded
or not, or `pytorch_model*.bin`); its `config.json` is `pixelrefer_qwen2`, which transformers does
not know, so the architecture comes from `model.base_path` (the VideoLLaMA3 HF folder it was
trained from) and only the weights come from the release. Every official name maps to one of ours
(`KEY_MAP`, prefixes, first match wins); a name that maps nowhere, or a parameter of ours that the
release lacks, is an error naming it. The one exception is a tied LM head (Qwen2.5-1.5B ties it to
the input embeddings), which safetensors files store once.

Official module names, from alibaba-damo-academy/PixelRefer (commit 2d3fc26, `PixelRefer/`):
* `pixelrefer/model/pixelrefer_qwen2.py`: `PixelreferQwen2ForCausalLM` = `model` (a `Qwen2Model`
  that is also a `PixelreferMetaModel`) + `lm_head`; the Qwen2 decoder keeps transformers' names
  (`model.embed_tokens`, `model.layers.N.*`, `model.norm`).
* `pixelrefer/model/pixelrefer_arch.py` `PixelreferMetaModel`: `vision_encoder`, `mm_projector`,
  `region_encoder`.
* `pixelrefer/model/encoder.py` `DAMOVLVisionEncoder.vision_encoder` = `DAMOVLVisionModel`
  (`damovl_encoder/modeling_damovl_encoder.py`: `embeddings.patch_embedding`,
  `encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}`,
  `post_layernorm`): the names of transformers' `VideoLlama3VisionModel`. Hence
  `model.vision_encoder.vision_encoder.*` (`scripts/convert_hf_checkpoint.py` renames VideoLLaMA3's
  `vision_encoder` to `vision_encoder.vision_encoder` for exactly this).
* VideoLLaMA3's `projector.py` `MlpGeluProjector.readout` (Linear, GELU, Linear): `model.mm_projector.readout.{0,2}`.
* `pixelrefer/model/region_encoder.py` `MaskExtractor`: `feat_linear` (Linear, GELU, Linear) and
  `pos_linear` (Linear(2, D)). Lite (`pixelreferlite/model/region_encoder.py`) adds
  `fusion_attention_local`, `fusion_attention_global` (`nn.MultiheadAttention`), `ln_local`,
  `ln_global`, and `mask_embedding` (a Conv2d that `forward` never calls: skipped, `IGNORED`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

KEY_MAP: tuple[tuple[str, str], ...] = (
    ("model.vision_encoder.vision_encoder.", "vision."),
    ("model.mm_projector.readout.", "projector.readout."),
    ("model.region_encoder.feat_linear.", "object_encoder.mlp."),
    ("model.region_encoder.pos_linear.", "object_encoder.pos."),
    ("model.region_encoder.fusion_attention_local.", "infusion.attn_local."),
    ("model.region_encoder.fusion_attention_global.", "infusion.attn_global."),
    ("model.region_encoder.ln_local.", "infusion.ln_local."),
    ("model.region_encoder.ln_global.", "infusion.ln_global."),
    ("model.", "llm.model."),  # the Qwen2 decoder: after every more specific `model.*` prefix
    ("lm_head.", "llm.lm_head."),
)
IGNORED: tuple[str, ...] = ("model.region_encoder.mask_embedding.",)  # Lite: defined, unused in forward


def map_key(name: str) -> str | None:
    """Our parameter name for an official one; None for an ignored one; KeyError when unknown."""
    if name.startswith(IGNORED):
        return None
    for official, ours in KEY_MAP:
        if name.startswith(official):
            return ours + name[len(official):]
    raise KeyError(name)


def read_state(folder: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint folder: all `*.safetensors` files, else all `pytorch_model*.bin`."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no *.safetensors or pytorch_model*.bin: point model.released "
                                "at a released PixelRefer checkpoint folder")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(f) if f.suffix == ".safetensors" else torch.load(f, map_location="cpu", weights_only=True))
    return state


def to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official state dict under our names; unknown names raise, listed together."""
    mapped, unknown = {}, []
    for name, tensor in state.items():
        try:
            ours = map_key(name)
        except KeyError:
            unknown.append(name)
            continue
        if ours is not None:
            mapped[ours] = tensor
    if unknown:
        raise ValueError(f"{len(unknown)} released names have no counterpart in our model: {unknown[:10]}")
    return mapped


def load_released(model: nn.Module, source: str | Path | dict[str, torch.Tensor]) -> None:
    """Load a released checkpoint (folder or official state dict) into `model`; every parameter
    must be covered and every released tensor used (shapes are checked by `load_state_dict`)."""
    state = to_ours(source if isinstance(source, dict) else read_state(source))
    missing, unexpected = model.load_state_dict(state, strict=False)
    llm = model.llm
    tied = llm.get_output_embeddings().weight is llm.get_input_embeddings().weight
    missing = [k for k in missing if not (tied and k == "llm.lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"released checkpoint does not fit the model (check model.framework and model.base_path): "
                         f"missing {missing[:10]}, unexpected {unexpected[:10]}")

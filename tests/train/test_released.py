"""Released PixelRefer checkpoints: a state dict in the official layout loads with no missing or
unexpected keys, each tensor where the released module put it.

The synthetic checkpoint is written from the released code's module definitions (see
train/released.py for the files), at the tiny-videollama3 sizes: not from our model, so a wrong
name or shape in the key map fails here."""

import pytest
import torch
from safetensors.torch import save_file

from train.config import ModelConfig
from train.model import build_model
from train.released import load_released, map_key
from train.tokenizer import char_tokenizer

H, I, L = 32, 64, 2  # LLM hidden / MLP width / layers (the vocab comes from the tokenizer)
KV = 16  # 2 key-value heads x head dim 8 (Qwen2 GQA)
DV, IV, LV, P = 32, 64, 2, 14  # vision hidden / MLP width / layers, patch


def official_state(vocab: int, lite: bool, with_lm_head: bool) -> dict[str, torch.Tensor]:
    shapes = {"model.embed_tokens.weight": (vocab, H), "model.norm.weight": (H,)}
    for i in range(L):  # Qwen2DecoderLayer (transformers), as PixelreferQwen2Model inherits it
        q = f"model.layers.{i}."
        shapes |= {q + "self_attn.q_proj.weight": (H, H), q + "self_attn.q_proj.bias": (H,),
                   q + "self_attn.k_proj.weight": (KV, H), q + "self_attn.k_proj.bias": (KV,),
                   q + "self_attn.v_proj.weight": (KV, H), q + "self_attn.v_proj.bias": (KV,),
                   q + "self_attn.o_proj.weight": (H, H), q + "mlp.gate_proj.weight": (I, H),
                   q + "mlp.up_proj.weight": (I, H), q + "mlp.down_proj.weight": (H, I),
                   q + "input_layernorm.weight": (H,), q + "post_attention_layernorm.weight": (H,)}
    v = "model.vision_encoder.vision_encoder."  # DAMOVLVisionModel inside DAMOVLVisionEncoder
    shapes |= {v + "embeddings.patch_embedding.weight": (DV, 3, P, P), v + "embeddings.patch_embedding.bias": (DV,),
               v + "post_layernorm.weight": (DV,), v + "post_layernorm.bias": (DV,)}
    for i in range(LV):  # DAMOVLVisionEncoderLayer
        q = f"{v}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes |= {f"{q}self_attn.{proj}.weight": (DV, DV), f"{q}self_attn.{proj}.bias": (DV,)}
        shapes |= {q + "layer_norm1.weight": (DV,), q + "layer_norm1.bias": (DV,),
                   q + "layer_norm2.weight": (DV,), q + "layer_norm2.bias": (DV,),
                   q + "mlp.fc1.weight": (IV, DV), q + "mlp.fc1.bias": (IV,),
                   q + "mlp.fc2.weight": (DV, IV), q + "mlp.fc2.bias": (DV,)}
    # mm_projector: MlpGeluProjector.readout = Linear(DV, H), GELU, Linear(H, H)
    shapes |= {"model.mm_projector.readout.0.weight": (H, DV), "model.mm_projector.readout.0.bias": (H,),
               "model.mm_projector.readout.2.weight": (H, H), "model.mm_projector.readout.2.bias": (H,)}
    r = "model.region_encoder."  # MaskExtractor: feat_linear = Linear(DV, H), GELU, Linear(H, H); pos_linear
    shapes |= {r + "feat_linear.0.weight": (H, DV), r + "feat_linear.0.bias": (H,),
               r + "feat_linear.2.weight": (H, H), r + "feat_linear.2.bias": (H,),
               r + "pos_linear.weight": (DV, 2), r + "pos_linear.bias": (DV,)}
    if lite:  # Lite's MaskExtractor adds the fusion attention, its LayerNorms and an unused Conv2d
        for side in ("local", "global"):
            a = f"{r}fusion_attention_{side}."
            shapes |= {a + "in_proj_weight": (3 * DV, DV), a + "in_proj_bias": (3 * DV,),
                       a + "out_proj.weight": (DV, DV), a + "out_proj.bias": (DV,),
                       f"{r}ln_{side}.weight": (DV,), f"{r}ln_{side}.bias": (DV,)}
        shapes |= {r + "mask_embedding.weight": (DV, 1, 1, 1), r + "mask_embedding.bias": (DV,)}
    if with_lm_head:
        shapes["lm_head.weight"] = (vocab, H)
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
    if with_lm_head:
        state["lm_head.weight"] = state["model.embed_tokens.weight"].clone()  # tied in Qwen2.5-1.5B
    return state


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


def tiny(framework: str, **extra) -> ModelConfig:
    return ModelConfig(backbone="videollama3", base_path="tiny-videollama3", framework=framework, object_tokens=4,
                       infusion_heads=4, **extra)


@pytest.mark.parametrize("framework", ["pixelrefer", "lite"])
@pytest.mark.parametrize("with_lm_head", [False, True])  # safetensors keeps one copy of tied weights
def test_a_released_folder_loads_every_tensor_in_place(tok, tmp_path, framework, with_lm_head):
    lite = framework == "lite"
    state = official_state(len(tok), lite, with_lm_head)
    save_file(state, tmp_path / "model.safetensors")
    model = build_model(tiny(framework, released=str(tmp_path)), tok)  # loads it; raises on any missing/unexpected key
    ours = model.state_dict()
    pairs = {
        "model.vision_encoder.vision_encoder.encoder.layers.1.mlp.fc2.weight": "vision.encoder.layers.1.mlp.fc2.weight",
        "model.mm_projector.readout.0.weight": "projector.readout.0.weight",
        "model.region_encoder.feat_linear.2.bias": "object_encoder.mlp.2.bias",
        "model.region_encoder.pos_linear.weight": "object_encoder.pos.weight",
        "model.layers.1.self_attn.k_proj.bias": "llm.model.layers.1.self_attn.k_proj.bias",
        "model.embed_tokens.weight": "llm.lm_head.weight",  # tied
    }
    if lite:
        pairs |= {"model.region_encoder.fusion_attention_global.in_proj_weight": "infusion.attn_global.in_proj_weight",
                  "model.region_encoder.ln_local.bias": "infusion.ln_local.bias"}
    for official, name in pairs.items():
        assert torch.equal(ours[name], state[official]), name
    mapped = {map_key(k) for k in state} - {None}
    assert mapped | {"llm.lm_head.weight"} == set(ours)  # every parameter came from the release


def test_mismatches_are_named(tok):
    model = build_model(tiny("pixelrefer"), tok)
    with pytest.raises(ValueError, match=r"unexpected \['infusion"):  # a Lite release into a PixelRefer model
        load_released(model, official_state(len(tok), lite=True, with_lm_head=False))
    partial = official_state(len(tok), lite=False, with_lm_head=False)
    del partial["model.region_encoder.pos_linear.bias"]
    with pytest.raises(ValueError, match=r"missing \['object_encoder.pos.bias'\]"):
        load_released(model, partial)
    with pytest.raises(ValueError, match=r"no counterpart in our model: \['vision_tower.x'\]"):
        load_released(model, partial | {"vision_tower.x": torch.zeros(1)})


def test_an_empty_folder_says_what_it_needs(tok, tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no \\*.safetensors or pytorch_model\\*.bin"):
        build_model(tiny("pixelrefer", released=str(tmp_path)), tok)

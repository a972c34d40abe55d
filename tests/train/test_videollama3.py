"""The videollama3 backbone: VideoLLaMA3's own classes at tiny sizes (random weights), loaded from a
save_pretrained folder like a real checkpoint, with PixelRefer's object path on its features."""

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import VideoLlama3ForConditionalGeneration, VideoLlama3ImageProcessor

from schemas import Media
from tokenization.chat import RenderConfig
from train.backbones import split_videollama3, tiny_videollama3_config
from train.config import ModelConfig, load_config
from train.data import Example, Views, collate, encode_all
from train.model import RegionMLLM, build_model
from train.synthetic import synthetic_examples
from train.tokenizer import char_tokenizer
from train.train import train

CFG = {"backbone": "videollama3", "base_path": "tiny-videollama3", "object_tokens": 4, "infusion_heads": 4}


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


def encoded(model, tok, framework, examples, image_size=28):
    items, rejects = encode_all(examples, tok, RenderConfig(layout=framework, lite_tokens=4),
                                Views(image_size, 28, model.patch, 8192, model.video_merge))
    assert not rejects
    return collate(items, tok.pad_token_id)


@pytest.mark.parametrize("framework", ["pixelrefer", "lite"])
def test_tiny_videollama3_trains_with_the_object_path_on_its_features(tok, framework):
    model = build_model(ModelConfig(framework=framework, **CFG), tok)
    names = [n for n, _ in model.named_parameters()]
    # VideoLLaMA3's parts under our names: its NaViT tower, its aligned projector, its Qwen2 + head
    assert {"vision.embeddings.patch_embedding.weight", "projector.readout.2.weight", "llm.model.norm.weight",
            "object_encoder.pos.weight"} <= set(names)
    assert ("infusion.attn_local.in_proj_weight" in names) == (framework == "lite")
    examples = synthetic_examples(6, seed=1, image_size=28, n_tokens=4, lite=framework == "lite")
    batch = encoded(model, tok, framework, [examples[1], examples[2]])
    loss, n = model(batch)
    assert n == batch.supervised and loss.item() / n == pytest.approx(math.log(len(tok)), abs=0.3)  # random init
    loss.backward()
    assert torch.count_nonzero(model.object_encoder.pos.weight.grad) > 0
    assert all(p.grad is None for p in model.vision.parameters())  # frozen, as in both stages of the recipe


def test_loading_from_a_save_pretrained_folder_reuses_its_weights(tok, tmp_path):
    torch.manual_seed(3)
    saved = VideoLlama3ForConditionalGeneration(tiny_videollama3_config(len(tok)))
    saved.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "video_llama_3"
    model = build_model(ModelConfig(**CFG | {"base_path": str(tmp_path)}), tok)
    for ours, theirs in [(model.vision, saved.model.vision_model), (model.projector, saved.model.projector),
                         (model.llm.model, saved.model.language_model), (model.llm.lm_head, saved.lm_head)]:
        a, b = ours.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert model.llm.lm_head.weight is model.llm.model.embed_tokens.weight  # tied, as Qwen2.5-1.5B
    examples = synthetic_examples(3, seed=1, image_size=28, n_tokens=4)
    with torch.no_grad():
        loss, n = model(encoded(model, tok, "pixelrefer", [examples[1], examples[2]]))
    assert math.isfinite(loss.item()) and n > 0


@pytest.mark.parametrize("merge", [1, 2])
def test_tower_features_equal_videollama3_processor_and_get_image_features(tok, merge):
    torch.manual_seed(0)
    vl3 = VideoLlama3ForConditionalGeneration(tiny_videollama3_config(len(tok))).eval()
    model = RegionMLLM(split_videollama3(vl3), ModelConfig(**CFG), 0, 1)
    pixels = torch.randint(0, 256, (2, 3, 56, 84), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    # The released processor at the same size: rescale + normalise (mean = std = 0.5), patchify per merge block
    inputs = VideoLlama3ImageProcessor(do_resize=False, merge_size=merge)(list(pixels), return_tensors="pt")
    with torch.no_grad():
        theirs = vl3.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"],
                                              inputs["image_merge_sizes"]).pooler_output
        ours = model.projector(model.encode_images(pixels, merge))
    assert ours.shape == (2, 4 * 6 // merge**2, 32)
    assert torch.allclose(ours, torch.stack(theirs), atol=1e-5)


def test_video_frames_are_merged_2x2_and_the_text_counts_match(tok):
    model = build_model(ModelConfig(**CFG), tok)
    sample = synthetic_examples(1, seed=1, image_size=28, n_tokens=4)[0].sample  # region-less
    video = Media(kind="video", path="clip", frames=["0.jpg", "1.jpg"], fps=1.0, width=32, height=32)
    clip = Example(sample.model_copy(update={"media": video, "task": "video_qa"}),
                   torch.randint(0, 256, (2, 3, 56, 56), dtype=torch.uint8), [0.0, 1.0], [])
    batch = encoded(model, tok, "pixelrefer", [clip], image_size=56)
    # 56 px = 4x4 patches per frame, 2x2-merged: 4 tokens per frame
    assert int((batch.input_ids == tok.get_vocab()["<image>"]).sum()) == 2 * 4 and batch.merges == [2]
    with torch.no_grad():
        loss, n = model(batch)
    assert math.isfinite(loss.item()) and n > 0


@pytest.mark.parametrize("framework", ["pixelrefer", "lite"])
def test_tiny_videollama3_trains_from_the_config(tmp_path, framework):
    cfg = load_config("train/configs/tiny-videollama3.yaml",
                      [f"model.framework={framework}", "optim.steps=2", "save_every=0", f"output_dir={tmp_path}"])
    losses = train(cfg)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert (tmp_path / "step_000002" / "meta.json").is_file()


def test_paper_presets_start_from_a_local_videollama3_image_folder(tok):
    presets = sorted(Path("train/configs").glob("pixelrefer-*.yaml"))
    assert len(presets) == 6  # 2B and 7B stages 1-2, Lite-2B stages 1-2
    for path in presets:
        model = load_config(path).model
        size = "7B" if "-7b-" in path.name else "2B"
        assert (model.backbone, model.base_path, model.tokenizer) == ("videollama3", *[f"checkpoints/VideoLLaMA3-{size}-Image"] * 2)
    with pytest.raises(FileNotFoundError, match=r"model.base_path='checkpoints/VideoLLaMA3-2B-Image' is neither a preset"):
        build_model(ModelConfig(backbone="videollama3", base_path="checkpoints/VideoLLaMA3-2B-Image"), tok)

"""Generation: prompts end at the assistant header, the KV cache and batching change no token, the
CLI writes {id, question, answer} per sample."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.cli import main as cli
from tokenization.chat import RenderConfig
from train.config import ModelConfig, load_config
from train.data import Views
from train.generate import generate, prompt
from train.model import build_model
from train.synthetic import synthetic_examples
from train.tokenizer import char_tokenizer
from train.train import train


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


@pytest.fixture(scope="module", params=["siglip-qwen2", "videollama3"])
def model(request, tok):
    m = build_model(ModelConfig(backbone=request.param, object_tokens=4), tok)
    # Random init gives nearly flat logits, and a tied head copies the last token ("\n" after the
    # assistant header) forever; an untied unit-scale head makes greedy answers depend on the prompt,
    # which the comparisons below need.
    gen = torch.Generator().manual_seed(0)
    m.llm.lm_head.weight = torch.nn.Parameter(torch.randn(m.llm.lm_head.weight.shape, generator=gen))
    return m


def test_the_prompt_is_the_conversation_up_to_the_assistant_header(tok):
    example = synthetic_examples(2, seed=1, image_size=28, n_tokens=4)[1]  # one region: "What are <obj0>?"
    p = prompt(example, tok, RenderConfig(lite_tokens=4), Views(28, 28, 14, 8192))
    text = tok.decode(p.encoded.input_ids)
    assert p.question == "What are <obj0>?"
    assert text.startswith("<|im_start|>user\n<image><image><image><image>\nWhat are <obj0>[<REGION>")
    assert text.endswith("]?<|im_end|>\n<|im_start|>assistant\n")  # the stand-in answer is cut off
    assert len(p.encoded.objects) == 1


def test_greedy_is_the_same_with_and_without_cache_batched_or_not(model, tok):
    examples = synthetic_examples(4, seed=1, image_size=28, n_tokens=4)  # 0, 1, 2, 0 regions: prompts of 3 lengths
    batched = generate(model, tok, examples, max_new_tokens=6, batch_size=4)
    assert len(set(batched)) > 1 and all(batched)  # text, and it depends on the prompt
    assert generate(model, tok, examples, max_new_tokens=6, batch_size=4, use_cache=False) == batched
    assert [generate(model, tok, [e], max_new_tokens=6)[0] for e in examples] == batched  # left padding changes nothing


def test_sampling_is_seeded(model, tok):
    examples = synthetic_examples(3, seed=2, image_size=28, n_tokens=4)
    kwargs = {"max_new_tokens": 6, "do_sample": True, "temperature": 1.5, "top_p": 0.95, "batch_size": 3}
    first = generate(model, tok, examples, seed=1, **kwargs)
    assert generate(model, tok, examples, seed=1, **kwargs) == first
    assert generate(model, tok, examples, seed=2, **kwargs) != first
    assert model.training  # generate restores the mode it found


def test_cli_answers_every_sample_of_a_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    train(load_config("train/configs/tiny.yaml", ["optim.steps=1", "save_every=0", f"output_dir={run}"]))
    examples = synthetic_examples(3, seed=0, image_size=28, n_tokens=4)
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(e.sample.model_dump_json() + "\n" for e in examples))
    media = tmp_path / "media"
    media.mkdir()
    rng = np.random.default_rng(0)
    for i in range(len(examples)):  # the samples' media: 32x32 frames, as PNG files
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(media / f"{i}.png")
    out = tmp_path / "answers.jsonl"
    assert cli(["generate", "--checkpoint", str(run), "--samples", str(samples), "--media-root", str(media),
                "--out", str(out), "--max-new-tokens", "4"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [e.sample.id for e in examples]
    assert [r["question"] for r in rows] == ["What are in the picture?", "What are <obj0>?", "What are <obj0> and <obj1>?"]
    assert all(isinstance(r["answer"], str) for r in rows)
    assert f"3 answers -> {out}" in capsys.readouterr().err


@pytest.mark.parametrize("framework", ["pixelrefer", "lite"])
def test_cli_answers_every_shard_sample_with_a_videollama3_checkpoint(tmp_path, capsys, framework):
    # image, video (2x2-merged frames), region-less and text-only samples, as `pixelrefer shard` wrote them
    from tests.train.test_shard_input import SAMPLES, VIEW, write_stage

    shards = write_stage(tmp_path / "media", tmp_path / "shards", lite=framework == "lite")
    run = tmp_path / "run"
    train(load_config("train/configs/tiny-videollama3.yaml", [f"model.framework={framework}", f"data.image_size={VIEW}",
                                                               "optim.steps=1", "save_every=0", f"output_dir={run}"]))
    out = tmp_path / "answers.jsonl"
    assert cli(["generate", "--checkpoint", str(run), "--shards", str(shards), "--out", str(out),
                "--max-new-tokens", "3", "--batch-size", "2"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [s.id for s in SAMPLES]  # shard order, none skipped
    assert [r["question"] for r in rows][:2] == ["Describe <obj0>.", "Describe <obj0> and <obj1>."]
    assert f"5 answers -> {out}" in capsys.readouterr().err

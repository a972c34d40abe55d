"""Real-weight fixes and operations: fp32 master weights, gradient checkpointing on a folder model,
throughput and validation in the log, TensorBoard, Hugging Face export, LoRA, sequence packing."""

import json
import math
import shutil

import pytest
import torch
import transformers.modeling_utils

from tokenization.chat import IGNORE_INDEX, RenderConfig
from train import dist
from train.config import ModelConfig, load_config
from train.data import Views, collate, encode_all
from train.export import load_hf
from train.model import build_model
from train.prepare import prepare_model
from train.synthetic import synthetic_examples
from train.tokenizer import char_tokenizer
from train.train import make_loader, validate
from tests.train.test_shard_input import write_stage
from tests.train.test_train import TINY, bf16_folders, logged, run


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return bf16_folders(tmp_path_factory.mktemp("models"))


def lines(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_a_bf16_folder_trains_with_fp32_master_weights(tmp_path, folders):
    cfg = load_config(TINY, folders)
    assert build_model(cfg.model, char_tokenizer()).llm.dtype == torch.bfloat16  # transformers 5 keeps the saved dtype
    model = prepare_model(cfg, char_tokenizer())
    assert {p.dtype for p in model.parameters()} == {torch.float32} and model.training and model.llm.training
    run(tmp_path, "optim.steps=1", *folders)
    optim = torch.load(tmp_path / "step_000001" / "optim.pt", weights_only=True)["optimizer"]["state"]
    assert {t.dtype for s in optim.values() for k, t in s.items() if k != "step"} == {torch.float32}
    model_state = torch.load(tmp_path / "step_000001" / "model.pt", weights_only=True)
    assert {t.dtype for t in model_state.values() if t.is_floating_point()} == {torch.float32}


def test_gradient_checkpointing_runs_on_a_folder_model(tmp_path, folders, monkeypatch):
    calls = []
    checkpoint = transformers.modeling_utils.checkpoint  # bound when checkpointing is enabled, at model build

    def counting(*args, **kwargs):
        calls.append(1)
        return checkpoint(*args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", counting)
    run(tmp_path, "optim.steps=1", "model.gradient_checkpointing=true", *folders)
    assert len(calls) == 2 * 2  # 2 decoder layers x 2 micro-batches (from_pretrained's eval mode gave 0)


def test_log_has_supervised_tokens_and_throughput(tmp_path):
    run(tmp_path, "optim.steps=2")
    entries = lines(tmp_path)
    assert [e["step"] for e in entries] == [1, 2]
    assert all(e["supervised"] > 0 and e["tokens_per_s"] > 0 for e in entries)
    assert [e["tokens"] for e in entries] == [entries[0]["supervised"], entries[0]["supervised"] + entries[1]["supervised"]]


@pytest.fixture(scope="module")
def val_shards(tmp_path_factory):
    base = tmp_path_factory.mktemp("val")
    return write_stage(base / "media", base / "stage", lite=False)


def test_validation_loss_is_logged_and_leaves_training_unchanged(tmp_path, val_shards):
    args = ["optim.steps=4", "save_every=0", "log_every=3"]
    plain = run(tmp_path / "plain", *args)
    with_val = run(tmp_path / "val", *args, f"data.val_shards={val_shards}", "val_every=2")
    assert with_val == plain
    entries = lines(tmp_path / "val")
    assert [(e["step"], "val_loss" in e) for e in entries] == [(2, True), (3, False), (4, True)]
    assert entries[0]["val_loss"] != entries[2]["val_loss"]
    # the logged value is the loss of the final weights over the whole validation set (5 samples: 2 batches of 2)
    cfg = load_config(TINY, ["optim.steps=4"])
    tok = char_tokenizer()
    model = prepare_model(cfg, tok)
    model.load_state_dict(torch.load(tmp_path / "val" / "step_000004" / "model.pt", weights_only=True))
    d = dist.Dist(0, 1, 0, torch.device("cpu"))
    loader = make_loader(cfg, model, tok, d, str(val_shards))
    assert loader.batches_per_epoch == 2
    assert validate(model, loader, 0, False, d) == pytest.approx(entries[2]["val_loss"], rel=1e-6)
    assert model.training  # validation leaves the model in training mode


def test_val_every_without_val_shards_is_refused():
    with pytest.raises(ValueError, match="val_every 2 needs data.val_shards"):
        load_config(TINY, ["val_every=2"])


def test_tensorboard_events_hold_the_logged_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    losses = run(tmp_path, "optim.steps=3", "log.tensorboard=true")
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"loss", "supervised", "tokens_per_s", "lr/llm"} <= set(events.Tags()["scalars"])
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(s + 1, pytest.approx(v, rel=1e-6)) for s, v in enumerate(losses)]


def batch_of(framework, indices=(1, 2, 3), pack=False):
    tok = char_tokenizer()
    examples = synthetic_examples(6, seed=1, image_size=28, n_tokens=4, lite=framework == "lite")
    items, _ = encode_all([examples[i] for i in indices], tok, RenderConfig(layout=framework, lite_tokens=4), Views(28, 28, 14, 8192))
    return items, collate(items, tok.pad_token_id, pack=pack)


def logits(model, batch):
    with torch.no_grad():
        return model.llm(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, model(batch)[0]


def trained(step_dir, *overrides):
    model = prepare_model(load_config(TINY, list(overrides)), char_tokenizer())
    model.load_state_dict(torch.load(step_dir / "model.pt", weights_only=True))
    return model.eval()


def test_export_hf_reloads_with_the_same_logits(tmp_path):
    from pipelines.cli import main

    hf = tmp_path / "hf"
    assert main(["train", "--config", str(TINY), f"output_dir={tmp_path / 'run'}", "optim.steps=2", "--export-hf", str(hf)]) == 0
    assert sorted(p.name for p in hf.iterdir()) == ["llm", "pixelrefer.safetensors", "pixelrefer.yaml", "tokenizer", "vision"]
    reloaded, tok = load_hf(hf)
    assert len(tok) == len(char_tokenizer())
    _, batch = batch_of("pixelrefer")
    (want_logits, want_loss), (got_logits, got_loss) = logits(trained(tmp_path / "run" / "step_000002"), batch), logits(reloaded, batch)
    assert torch.equal(got_logits, want_logits) and got_loss.item() == want_loss.item()


LORA = ["lora.r=4", "lora.alpha=8", "lora.target_modules=[q_proj, v_proj]"]


def test_lora_trains_only_adapters_and_our_modules_and_exports_merged(tmp_path):
    cfg = load_config(TINY, LORA)
    initial = {k: v.clone() for k, v in prepare_model(cfg, char_tokenizer()).state_dict().items()}
    model = prepare_model(cfg, char_tokenizer())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n.split(".")[0] for n in trainable} == {"llm", "projector", "object_encoder"}
    lora = {n for n in trainable if n.startswith("llm.")}
    assert len(lora) == 2 * 2 * 2 and all(".lora_A." in n or ".lora_B." in n for n in lora)  # 2 layers x q, v x A, B
    run(tmp_path / "run", "optim.steps=2", "optim.warmup_ratio=0", *LORA)  # step 1 moves B off 0, then A gets gradients
    after = torch.load(tmp_path / "run" / "step_000002" / "model.pt", weights_only=True)
    changed = {k for k in after if not torch.equal(after[k], initial[k])}
    assert {k for k in changed if k.startswith("llm.")} == lora
    assert not any(k.startswith("vision.") for k in changed) and any(k.startswith("object_encoder.") for k in changed)

    from train.export import export_hf

    export_hf(tmp_path / "run", tmp_path / "hf")
    reloaded, _ = load_hf(tmp_path / "hf")
    assert not any("lora" in k for k in reloaded.state_dict())
    _, batch = batch_of("pixelrefer")
    (want_logits, want_loss), (got_logits, got_loss) = logits(trained(tmp_path / "run" / "step_000002", *LORA), batch), logits(reloaded, batch)
    assert torch.allclose(got_logits, want_logits, atol=1e-5) and got_loss.item() == pytest.approx(want_loss.item(), rel=1e-5)


def test_lora_with_dropout_resumes_exactly(tmp_path):
    args = ["optim.steps=4", "save_every=2", "lora.dropout=0.5", *LORA]
    whole = run(tmp_path / "a", *args)
    run(tmp_path / "b", *args)
    shutil.rmtree(tmp_path / "b" / "step_000004")
    run(tmp_path / "b", *args)
    assert logged(tmp_path / "b") == logged(tmp_path / "a") == whole


def test_packed_batch_is_one_row_with_per_sample_positions():
    items, packed = batch_of("pixelrefer", pack=True)
    lengths = [len(it.input_ids) for it in items]
    assert packed.input_ids.shape == (1, sum(lengths)) and packed.attention_mask is None
    assert packed.position_ids[0].tolist() == [i for n in lengths for i in range(n)]
    assert packed.input_ids[0].tolist() == [t for it in items for t in it.input_ids]
    starts = [sum(lengths[:k]) for k in range(len(lengths))]
    assert all(packed.labels[0, s] == IGNORE_INDEX for s in starts)
    assert packed.supervised == collate(items, char_tokenizer().pad_token_id).supervised
    assert packed.tokens == sum(lengths)


@pytest.mark.parametrize("framework", ["pixelrefer", "lite"])
def test_packed_loss_equals_the_padded_loss(framework):
    model = build_model(ModelConfig(framework=framework, object_tokens=4, infusion_heads=4), char_tokenizer())
    _, padded = batch_of(framework, (0, 1, 2, 3, 4, 5))
    _, packed = batch_of(framework, (0, 1, 2, 3, 4, 5), pack=True)
    with torch.no_grad():
        (a, n), (b, m) = model(padded), model(packed)
        packed.position_ids = None  # one long sequence: samples would attend to the ones before them
        crossed, _ = model(packed)
    assert n == m > 0
    assert abs(a.item() / n - b.item() / m) < 1e-5  # measured 3.8e-7 on both frameworks
    assert abs(crossed.item() - a.item()) / n > 1e-4  # the check would see attention across samples


def test_packed_training_follows_the_padded_curve(tmp_path):
    padded = run(tmp_path / "padded", "optim.steps=3")
    packed = run(tmp_path / "packed", "optim.steps=3", "data.pack=true")
    assert packed == pytest.approx(padded, rel=1e-5)
    assert all(math.isfinite(v) for v in packed)

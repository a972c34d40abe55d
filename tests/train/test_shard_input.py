"""Training from real shards written by `pipelines.shard` (the colleague's writer and reader)."""

import hashlib
import json
import math
import shutil
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.shard import ShardLimits, encode_sample, write_block, write_index
from schemas import Media, Provenance, Region, RegionFrame, Sample, Turn, masks
from tests.train.test_train import TINY, logged

TINY_VL3 = TINY.parent / "tiny-videollama3.yaml"
from tokenization.chat import RenderConfig
from tokenization.saot import SaotConfig
from tokenization.shardformat import VIEW_QUALITY, global_view, image, jpeg
from train.config import load_config
from train.data import Loader, Views
from train.shard_input import ShardSource, example_from_shard
from train.shards import iter_shards
from train.tokenizer import char_tokenizer
from train.train import train

SIDE = 32
VIEW = 28  # stored global view of images, the tiny config's image_size
VIEWS = Views(image_size=VIEW, local_size=28, patch=14, video_max_tokens=8192)


def square(y, x, size):
    m = np.zeros((SIDE, SIDE), dtype=np.uint8)
    m[y : y + size, x : x + size] = 1
    return masks.encode(m)


def sample(i: int, kind: str | None, regions: list[list[tuple[int, tuple]]]) -> Sample:
    """`regions`: per region, [(frame, (y, x, size)), ...]; `kind` None: a text-only sample."""
    frames = [f"v{i}/{k}.png" for k in range(3)] if kind == "video" else []
    names = " and ".join(f"<obj{r}>" for r in range(len(regions))) or "the scene"
    return Sample(
        id=f"demo/train/{i}", source="demo", subset="train", split="train", license="CC0-1.0",
        task="region_qa" if regions else "general_qa",
        media=None if kind is None else Media(kind=kind, path=f"v{i}" if frames else f"{i}.png", frames=frames, fps=1.0 if frames else None,
                                            width=SIDE, height=SIDE),
        regions=[Region(prompt="mask", mask_origin="annotation",
                        frames=[RegionFrame(frame=f, mask=square(*box)) for f, box in r]) for r in regions],
        conversation=[Turn(role="user", text=f"Describe {names}."), Turn(role="assistant", text=f"thing {i}")],
        provenance=Provenance(file="demo.json", locator=str(i), adapter="demo", adapter_version="1"),
    )


SAMPLES = [
    sample(0, "image", [[(0, (4, 4, 12))]]),
    sample(1, "video", [[(0, (2, 2, 10)), (2, (8, 8, 10))], [(1, (16, 16, 12))]]),  # region 0 misses frame 1
    sample(2, "image", []),
    sample(3, "image", [[(0, (10, 12, 14))], [(0, (1, 1, 9))]]),
    sample(4, None, []),  # text-only general_qa (LLaVA-OneVision's text parts)
]


def write_stage(root, dest, lite):
    rng = np.random.default_rng(0)
    for s in SAMPLES:
        for rel in [] if s.media is None else s.media.frames or [s.media.path]:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8)).save(root / rel)
    cfg = SaotConfig(lite=lite, n=4)
    outcomes = [(i, s.key, encode_sample(s, root, cfg, torch.device("cpu"), VIEW)) for i, s in enumerate(SAMPLES)]
    dest.mkdir(parents=True)
    write_index(dest, [write_block(outcomes, dest, 0, len(SAMPLES), ShardLimits(max_samples=2))],
                {"mix": "demo", "saot": asdict(cfg), "view_size": VIEW})
    return dest


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    base = tmp_path_factory.mktemp("shards")
    return {lite: write_stage(base / "media", base / ("lite" if lite else "full"), lite) for lite in (False, True)}


def test_video_example_has_sampled_frames_and_saot_counts(stages):
    shard = next(s for s in iter_shards(sorted(stages[False].glob("*.tar"))) if s.sample.id == "demo/train/1")
    ex = example_from_shard(shard, VIEWS, lite=False)
    assert ex.frames.shape == (3, 3, 28, 28) and ex.frame_times == [0.0, 1.0, 2.0]
    assert [[v.tokens for v in r] for r in ex.objects] == [[o.token_count for o in shard.objects_of(r)] for r in (0, 1)]
    assert ex.frames.dtype == torch.uint8 and [f.view for f in shard.frames] == [None] * 3  # videos store no views
    lite_shard = next(s for s in iter_shards(sorted(stages[True].glob("*.tar"))) if s.sample.id == "demo/train/1")
    lite = example_from_shard(lite_shard, VIEWS, lite=True)
    assert lite.frames.shape[0] == 3 and [v.frame for v in lite.objects[0]] == [0, 2]  # annotated frames 0, 1, 2
    assert lite.objects[0][0].local.shape == (3, 28, 28)


def test_image_view_is_stored_and_used_without_decoding(stages):
    shard = next(s for s in iter_shards(sorted(stages[False].glob("*.tar"))) if s.sample.id == "demo/train/0")
    frame = shard.frames[0]
    assert shard.view_size == VIEW and frame.view.dtype == torch.uint8 and frame.view.shape == (3, VIEW, VIEW)
    # the JPEG of what the trainer would make from the original
    assert torch.equal(frame.view, image(jpeg(global_view(frame.data, VIEW), VIEW_QUALITY)))
    assert torch.equal(example_from_shard(shard, VIEWS, lite=False).frames[0], frame.view)
    other = example_from_shard(shard, Views(14, 28, 14, 8192), lite=False)  # another model size: from the original
    assert torch.equal(other.frames[0], global_view(frame.data, 14))


def test_shard_source_streams_every_sample_once_per_epoch(stages):
    tok = char_tokenizer()
    source = ShardSource(stages[False], tok, RenderConfig(), VIEWS, buffer=2)
    keys = [raw["__key__"] for raw in source.stream(0, 0)]
    assert len(source) == 5 and sorted(keys) == sorted(s.key for s in SAMPLES)
    assert keys == [raw["__key__"] for raw in source.stream(0, 0)]
    batch = next(Loader(source, 2, 0, 1, 0, tok.pad_token_id).batches())
    assert batch.input_ids.shape[0] == 2


@pytest.mark.parametrize("config", [TINY, TINY_VL3], ids=["siglip-qwen2", "videollama3"])
@pytest.mark.parametrize("framework", ["pixelrefer", "lite"])
def test_train_from_shards_and_resume(tmp_path, stages, framework, config):
    args = [f"data.shards={stages[framework == 'lite']}", f"model.framework={framework}", "optim.global_batch=2",
            "optim.micro_batch=1", "optim.steps=4", "save_every=2", "data.shuffle_buffer=2", "data.synthetic=0"]
    whole = train(load_config(config, [f"output_dir={tmp_path / 'a'}", *args]))
    assert all(math.isfinite(v) for v in whole) and len(whole) == 4
    train(load_config(config, [f"output_dir={tmp_path / 'b'}", *args]))
    shutil.rmtree(tmp_path / "b" / "step_000004")  # as if the run died after step 3
    train(load_config(config, [f"output_dir={tmp_path / 'b'}", *args]))
    assert logged(tmp_path / "b") == logged(tmp_path / "a") == whole
    assert json.loads((tmp_path / "a" / "step_000004" / "meta.json").read_text())["loader"] == {"batches": 8}


def test_resume_on_changed_shards_is_refused_unless_allowed(tmp_path, stages, capsys):
    from train.train import main as train_main

    changed = tmp_path / "changed"
    shutil.copytree(stages[False], changed)
    index = json.loads((changed / "index.json").read_text())
    (changed / "index.json").write_text(json.dumps({**index, "mix": "other"}))  # as if re-sharded from another mix
    digest = {d: hashlib.sha256((d / "index.json").read_bytes()).hexdigest() for d in (stages[False], changed)}
    run = ["--config", str(TINY), f"output_dir={tmp_path / 'run'}", "optim.global_batch=2", "optim.micro_batch=1",
           "data.shuffle_buffer=2"]
    assert train_main([*run, f"data.shards={stages[False]}", "optim.steps=2"]) == 0
    meta = json.loads((tmp_path / "run" / "step_000002" / "meta.json").read_text())
    assert meta["data"] == {"shards": str(stages[False]), "index_sha256": digest[stages[False]]}
    capsys.readouterr()
    assert train_main([*run, f"data.shards={changed}", "optim.steps=3"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"pixelrefer train: {tmp_path / 'run' / 'step_000002'} was trained on shards with index.json sha256 "
        f"{digest[stages[False]]} ({stages[False]}), but data.shards now has {digest[changed]} ({changed}): the data "
        "changed since. Resume anyway with --allow-data-change (or resume_allow_data_change: true), or use a new output_dir")
    assert not (tmp_path / "run" / "step_000003").exists()
    assert train_main([*run, f"data.shards={changed}", "optim.steps=3", "--allow-data-change"]) == 0
    meta = json.loads((tmp_path / "run" / "step_000003" / "meta.json").read_text())
    assert meta["data"]["index_sha256"] == digest[changed]


def test_a_clip_over_the_video_budget_gets_smaller_frames_and_mixes_with_images(stages):
    from train.config import ModelConfig
    from train.data import collate
    from train.model import build_model

    tok = char_tokenizer()
    views = Views(image_size=28, local_size=28, patch=14, video_max_tokens=6)  # 3 frames: floor(sqrt(6 / 3)) = 1 patch each
    source = ShardSource(stages[False], tok, RenderConfig(), views)
    raw = {r["__key__"]: r for r in source.stream(0, 0)}
    image, clip = source.encode(raw["demo~train~0"]), source.encode(raw["demo~train~1"])
    assert image.frames.shape == (1, 3, 28, 28) and clip.frames.shape == (3, 3, 14, 14)
    image_id = tok.get_vocab()["<image>"]
    assert image.input_ids.count(image_id) == 4 and clip.input_ids.count(image_id) == 3
    batch = collate([image, clip], tok.pad_token_id)
    model = build_model(ModelConfig(object_tokens=4), tok)
    loss, n = model(batch)  # frames of two sizes: one tower call per size, features in batch order
    assert math.isfinite(loss.item()) and n == batch.supervised > 0


@pytest.mark.parametrize("framework", ["pixelrefer", "lite"])
def test_a_text_only_row_mixes_with_an_image_with_regions(stages, framework):
    from tokenization.chat import IGNORE_INDEX
    from train.data import collate
    from train.model import build_model

    tok, lite = char_tokenizer(), framework == "lite"
    cfg = load_config(TINY, [f"model.framework={framework}"])
    model = build_model(cfg.model, tok)
    source = ShardSource(stages[lite], tok, RenderConfig(layout=framework, lite_tokens=cfg.model.object_tokens), VIEWS)
    raw = {r["__key__"]: r for r in source.stream(0, 0)}
    text, image = source.encode(raw["demo~train~4"]), source.encode(raw["demo~train~0"])
    plain = "<|im_start|>user\nDescribe the scene.<|im_end|>\n<|im_start|>assistant\nthing 4<|im_end|>\n"
    assert text.input_ids == tok.encode(plain, add_special_tokens=False)
    assert text.frames.shape == (0, 3, 28, 28) and text.objects == []
    batch = collate([text, image], tok.pad_token_id)
    assert len(batch.images) == 1 and batch.image_in_text.tolist() == [not lite] and len(batch.objects) == 1
    assert int((batch.labels[0, 1:] != IGNORE_INDEX).sum()) == len("thing 4") + 1  # the answer and its <|im_end|>
    loss, n = model(batch)
    assert math.isfinite(loss.item()) and n == batch.supervised
    alone = [model(collate([item], tok.pad_token_id))[0].item() for item in (text, image)]
    assert alone[0] > 0 and loss.item() == pytest.approx(sum(alone), rel=1e-5)  # the text row's loss is in the sum
    loss.backward()
    assert torch.count_nonzero(model.object_encoder.mlp[0].weight.grad) > 0


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_videollama3_from_a_bf16_folder_runs_under_torchrun(tmp_path, stages, parallel):
    """Two ranks on CPU (gloo), from shards, starting from a bf16 VideoLLaMA3 folder as real ones ship."""
    from transformers import VideoLlama3ForConditionalGeneration

    from train.backbones import tiny_videollama3_config

    torch.manual_seed(0)
    folder = tmp_path / "videollama3"
    VideoLlama3ForConditionalGeneration(tiny_videollama3_config(len(char_tokenizer()))).to(torch.bfloat16).save_pretrained(folder)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "train.train",
           "--config", str(TINY_VL3), f"output_dir={tmp_path / 'run'}", f"model.base_path={folder}", f"parallel={parallel}",
           f"data.shards={stages[False]}", "data.synthetic=0", "optim.global_batch=2", "optim.micro_batch=1",
           "optim.steps=3", "save_every=3", "data.shuffle_buffer=2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=TINY.parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    losses = logged(tmp_path / "run")
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    state = torch.load(tmp_path / "run" / "step_000003" / "model.pt", weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float32}  # fp32 master weights

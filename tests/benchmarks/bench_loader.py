"""Trainer input throughput: our shard loader vs an official-style per-step loader, same corpus.

    .venv/bin/python tests/benchmarks/bench_loader.py [--samples 48] [--repeats 3]

Corpus: `--samples` JPEG images (`--size`, 640x480 by default) with 2 elliptic mask regions each
(8 px up to 5/8 of the short side), in a temp folder. Both loaders produce the same model inputs per sample: the global view at 384x384,
per region frame the SAOT crop, grid mask, position grid and token count, and the rendered chat
ids (tokenization.chat with the built-in character tokenizer), collated into batches of 4.

* baseline (official-style, re-implemented by us, as the released dataloader works per step):
  JSON parse, cv2 image decode, pycocotools RLE decode, per-object OpenCV SAOT crop/resize
  (`tests/benchmarks/official_saot.py`), then the same rendering and collation;
* ours: `train.shard_input.ShardSource` + `train.data.Loader` over shards written once by
  `pixelrefer shard`'s encoder with `--view-size 384` (raw uint8 view and crops, npy grids): no
  image decode at all. Enlarged crops are handed over at native size; the model resizes them on
  its device (`tokenization.saot_torch.saot_crop`), which is not timed here.

Both produce uint8 pixels; the model normalises them on its device.

Prints samples/s of each and the ratio (target >= 3x), the one-off shard writing rate, and the
disk price: shard KB per sample against the source JPEG.

GPU part (`--gpu`): tokens/s and step time of a 2B-sized model (Qwen2.5-1.5B + SigLIP-so400m
shapes, random weights, bf16) on CUDA; prints "not run on GPU" without CUDA.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipelines.shard import ShardLimits, encode_sample, write_index, write_shards  # noqa: E402
from schemas import Media, Provenance, Region, RegionFrame, Sample, Turn, masks  # noqa: E402
from tests.benchmarks.official_saot import decode_bgr_to_rgb, official_object, official_positions  # noqa: E402
from tokenization.chat import RenderConfig  # noqa: E402
from tokenization.saot import SaotConfig  # noqa: E402
from train.data import Encoded, Example, InMemory, Loader, ObjectView, Views, collate, encode  # noqa: E402
from train.shard_input import ShardSource  # noqa: E402
from train.tokenizer import char_tokenizer  # noqa: E402

IMAGE_SIZE, BATCH = 384, 4
VIEWS = Views(image_size=IMAGE_SIZE, local_size=224, patch=14, video_max_tokens=8192)


def make_corpus(root: Path, count: int, W: int, H: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(count):
        image = rng.integers(0, 255, (-(-H // 8), -(-W // 8), 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)[:H, :W]
        cv2.imwrite(str(root / f"{i}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        regions = []
        for _ in range(2):
            side = int(rng.integers(8, min(W, H) * 5 // 8))
            y, x = int(rng.integers(0, H - side)), int(rng.integers(0, W - side))
            m = np.zeros((H, W), dtype=np.uint8)
            cv2.ellipse(m, (x + side // 2, y + side // 2), (side // 2, side // 3 + 1), 0, 0, 360, 1, -1)
            regions.append(Region(prompt="mask", mask_origin="annotation", frames=[RegionFrame(frame=0, mask=masks.encode(m))]))
        samples.append(Sample(
            id=f"bench/train/{i}", source="bench", subset="train", split="train", license="CC0-1.0", task="region_qa",
            media=Media(kind="image", path=f"{i}.jpg", width=W, height=H), regions=regions,
            conversation=[Turn(role="user", text="Compare <obj0> and <obj1>."), Turn(role="assistant", text="They differ.")],
            provenance=Provenance(file="bench", locator=str(i), adapter="bench", adapter_version="1"),
        ))
    return samples


def official_records(samples: list[Sample]) -> list[str]:
    """The official training JSON: image path, conversations, masks as RLE (one JSON line each)."""
    return [json.dumps({"image": s.media.path, "height": s.media.height, "width": s.media.width,
                        "conversations": [{"from": t.role, "value": t.text} for t in s.conversation],
                        "masks": [r.frames[0].mask.model_dump() for r in s.regions], "sample": s.model_dump(mode="json")})
            for s in samples]


def official_batches(records: list[str], root: Path, tok, cfg: RenderConfig):
    """Per step, as the released loader: parse, decode image and masks, crop every object with OpenCV."""
    for start in range(0, len(records) - BATCH + 1, BATCH):
        items: list[Encoded] = []
        for line in records[start : start + BATCH]:
            rec = json.loads(line)
            image = decode_bgr_to_rgb((root / rec["image"]).read_bytes())
            frame = torch.from_numpy(cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR))
            objects = []
            for rle in rec["masks"]:
                obj = official_object(image, masks.decode(rle).astype(np.uint8))
                grid_hw = (obj["resize_hw"][0] // 14, obj["resize_hw"][1] // 14)
                pos = torch.from_numpy(official_positions(obj["box"], grid_hw, image.shape[:2]))
                crop = torch.from_numpy(obj["crop"]).permute(2, 0, 1)
                objects.append([ObjectView(crop, obj["grid"], pos, obj["tokens"])])
            glob = frame.permute(2, 0, 1)[None]
            example = Example(Sample.model_validate(rec["sample"]), glob, [], objects)
            items.append(encode(example, tok, cfg, VIEWS))
        yield collate(items, tok.pad_token_id)


def rate(batches, count: int) -> float:
    t0 = time.perf_counter()
    n = sum(b.input_ids.shape[0] for _, b in zip(range(count // BATCH), batches))
    return n / (time.perf_counter() - t0)


def storage(dest: Path, root: Path, count: int) -> tuple[float, float]:
    """KB per sample: our shards (original image + raw view + raw crops + grids) vs the source JPEGs."""
    shards = sum(p.stat().st_size for p in dest.glob("*.tar"))
    images = sum(p.stat().st_size for p in root.glob("*.jpg"))
    return shards / count / 1024, images / count / 1024


def gpu_part() -> None:
    if not torch.cuda.is_available():
        print("GPU part: not run on GPU (no CUDA device)")
        return
    from train.config import ModelConfig
    from train.model import build_model
    from train.synthetic import synthetic_examples

    tok = char_tokenizer()
    model = build_model(ModelConfig(llm="qwen2.5-1.5b-random", vision="siglip-so400m-random", gradient_checkpointing=True), tok).cuda()
    items = [encode(e, tok, RenderConfig(), VIEWS) for e in synthetic_examples(8, 0, IMAGE_SIZE, 32)]
    batch = next(Loader(InMemory(items), 2, 0, 1, 0, tok.pad_token_id).batches()).to(torch.device("cuda"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    times = []
    for _ in range(6):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, n = model(batch)
        (loss / max(n, 1)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    step = float(np.median(times[1:]))
    tokens = int(batch.attention_mask.sum())
    print(f"GPU part ({torch.cuda.get_device_name()}): step {step * 1000:.1f} ms, {tokens / step:.0f} tokens/s "
          f"(batch 2, {tokens} tokens, 2B-sized random model, bf16, gradient checkpointing)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=48, help="corpus size (multiple of 4)")
    parser.add_argument("--size", default="640x480", help="image WxH: 640x480 (COCO-like) or 2250x1500 (SA-1B-like)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per loader (best is reported)")
    parser.add_argument("--gpu", action="store_true", help="also time a 2B-sized model step on CUDA")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tok = char_tokenizer()
    cfg = RenderConfig()
    with tempfile.TemporaryDirectory() as tmp:
        root, dest = Path(tmp) / "media", Path(tmp) / "shards"
        root.mkdir()
        dest.mkdir()
        width, height = (int(v) for v in args.size.split("x"))
        samples = make_corpus(root, args.samples, width, height)
        t0 = time.perf_counter()
        saot_cfg = SaotConfig()
        outcomes = [(i, s.key, encode_sample(s, root, saot_cfg, torch.device("cpu"), IMAGE_SIZE)) for i, s in enumerate(samples)]
        write_index(dest, write_shards(outcomes, dest, 0, 0, len(samples), ShardLimits(max_samples=16)),
                    {"mix": "bench", "saot": asdict(saot_cfg), "view_size": IMAGE_SIZE})
        print(f"one-off shard writing: {len(samples) / (time.perf_counter() - t0):.1f} samples/s")
        kb_shard, kb_image = storage(dest, root, args.samples)
        records = official_records(samples)
        source = ShardSource(dest, tok, cfg, VIEWS, buffer=8)
        ours = max(rate(Loader(source, BATCH, 0, 1, 0, tok.pad_token_id).batches(), args.samples) for _ in range(args.repeats))
        base = max(rate(official_batches(records, root, tok, cfg), args.samples) for _ in range(args.repeats))
    print(f"corpus: {args.samples} images of {args.size}, 2 regions each")
    print(f"official-style loader: {base:.1f} samples/s")
    print(f"our shard loader:      {ours:.1f} samples/s")
    print(f"ratio ours/official:   {ours / base:.2f}x (target >= 3x)")
    print(f"storage: {kb_shard:.0f} KB per sample in our shards vs {kb_image:.0f} KB per source JPEG "
          f"(the price of raw views and crops, paid once on disk)")
    if args.gpu:
        gpu_part()
    else:
        print("GPU part: not run (pass --gpu on a CUDA machine)")


if __name__ == "__main__":
    main()

"""Trainer input throughput: our shard loader vs an official-style per-step loader, same corpus.

    .venv/bin/python tests/benchmarks/bench_loader.py [--samples 48] [--repeats 5]

Corpus: `--samples` photo-like JPEG images (`--size`, 640x480 by default) with 2 elliptic mask regions each
(8 px up to 5/8 of the short side), in a temp folder. Both loaders produce the same model inputs per sample: the global view at 384x384,
per region frame the SAOT crop at its resized size, grid mask, position grid and token count, and the rendered chat
ids (tokenization.chat with the built-in character tokenizer), collated into batches of 4.

* baseline (official-style, re-implemented by us, as the released dataloader works per step):
  JSON parse, cv2 image decode, pycocotools RLE decode, per-object OpenCV SAOT crop/resize
  (`tests/benchmarks/official_saot.py`), then the same rendering and collation;
* ours: `train.shard_input.ShardSource` + `train.data.Loader` over format-3 shards written once by
  `pixelrefer shard`'s encoder with `--view-size 384`: our tar reader, JPEG view and crops decoded,
  grids read, plus the resize of the crops stored at native size (enlarged over 2x) that the
  trainer does on the model's device (`tokenization.saot_torch.saot_crop`), timed here on CPU.

Every pixel operation of either side is timed, on CPU, one thread (torch and OpenCV). The two loaders alternate
within each repeat (ours, then the baseline), so drift hits both; the best repeat of each is
reported. Files are read from the page cache on both sides (written just before).

`--video` also sizes the shard of a 10 s 720p H.264 clip with 16 annotated frames against the clip.

Also printed: the one-off shard writing rate; the disk price, shard bytes against the source
JPEGs; and the storage choice for crops and views: per sample, bytes and CPU pixel time of JPEG
crops and views (format 3) against storing geometry only (decode the original image, view and
crop it at load time).

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

from pipelines.shard import ShardLimits, encode_sample, write_block, write_index
from schemas import Media, Provenance, Region, RegionFrame, Sample, Turn, masks
from tests.benchmarks.official_saot import (
    decode_bgr_to_rgb,
    official_object,
    official_positions,
)
from tokenization import shardformat
from tokenization.chat import RenderConfig
from tokenization.saot import SaotConfig
from tokenization.saot_torch import saot_crop
from train.data import (
    Encoded,
    Example,
    InMemory,
    Loader,
    ObjectView,
    Views,
    collate,
    encode,
)
from train.shard_input import ShardSource
from train.tokenizer import char_tokenizer

IMAGE_SIZE, BATCH = 384, 4
VIEWS = Views(image_size=IMAGE_SIZE, local_size=224, patch=14, video_max_tokens=8192)


def make_corpus(root: Path, count: int, W: int, H: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(count):
        # photo-like: a smooth colour field plus sensor grain gives real-photo JPEG sizes (640x480 q90: ~107 KB, an
        # LVIS image ~112 KB); flat 8-px blocks on JPEG's own 8x8 grid compressed far better than any photo
        field = cv2.resize(rng.integers(0, 255, (H // 16 + 1, W // 16 + 1, 3), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
        image = np.clip(field.astype(np.int16) + rng.normal(0, 8, (H, W, 3)).astype(np.int16), 0, 255).astype(np.uint8)
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


def video_storage(root: Path) -> tuple[float, float]:
    """(shard MB, source MB) of one clip as the issue sizes it: 10 s of 720p at 30 fps, H.264 at
    880 kbit/s (~1.1 MB, a real clip's rate), one region annotated on 16 frames; the shard holds
    the clip (its 10 sampled and 16 annotated frames are decoded when read), crops and grids."""
    import av

    rng = np.random.default_rng(0)
    W, H, fps, count = 1280, 720, 30, 300
    field = cv2.resize(rng.integers(0, 255, (H // 16 + 1, W // 16 + 41, 3), dtype=np.uint8), (W + 640, H), interpolation=cv2.INTER_CUBIC)
    with av.open(str(root / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = W, H, "yuv420p", 880_000
        stream.options = {"preset": "ultrafast"}
        for i in range(count):  # the field pans 2 px a frame, with fresh grain
            frame = np.clip(field[:, i * 2 : i * 2 + W].astype(np.int16) + rng.normal(0, 8, (H, W, 3)).astype(np.int16), 0, 255)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")))
        container.mux(stream.encode())
    region = []
    for f in np.linspace(0, count - 1, 16).astype(int).tolist():
        m = np.zeros((H, W), dtype=np.uint8)
        cv2.ellipse(m, (300 + f, 360), (120, 80), 0, 0, 360, 1, -1)
        region.append(RegionFrame(frame=f, mask=masks.encode(m)))
    clip = Sample(id="bench/train/clip", source="bench", subset="train", split="train", license="CC0-1.0", task="region_qa",
                  media=Media(kind="video", path="clip.mp4", num_frames=count, fps=fps, width=W, height=H),
                  regions=[Region(prompt="mask", mask_origin="annotation", frames=region)],
                  conversation=[Turn(role="user", text="Track <obj0>."), Turn(role="assistant", text="It moves right.")],
                  provenance=Provenance(file="bench", locator="clip", adapter="bench", adapter_version="1"))
    members = encode_sample(clip, root, SaotConfig(), torch.device("cpu"))
    return sum(len(d) for _, d in members) / 1e6, (root / "clip.mp4").stat().st_size / 1e6


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


def resized_on_device(batches):
    """Our batches with enlarged crops brought to their SAOT size, as `train.model` does on its device."""
    for batch in batches:
        for o in batch.objects:
            saot_crop(o.crop, (o.grid.shape[0] * 14, o.grid.shape[1] * 14))
        yield batch


def rate(batches, count: int) -> float:
    t0 = time.perf_counter()
    n = sum(b.input_ids.shape[0] for _, b in zip(range(count // BATCH), batches))
    return n / (time.perf_counter() - t0)


def storage(dest: Path, root: Path, count: int) -> tuple[float, float]:
    """KB per sample: our shards vs the source JPEGs."""
    shards = sum(p.stat().st_size for p in dest.glob("*.tar"))
    images = sum(p.stat().st_size for p in root.glob("*.jpg"))
    return shards / count / 1024, images / count / 1024


def storage_choice(dest: Path) -> dict[str, tuple[float, float]]:
    """(KB, CPU ms) per sample of the pixels that differ between two ways to store crops and views:
    'jpeg' decodes the stored view and crops and resizes enlarged crops; 'geometry' stores none of
    them and decodes the original image, squashes its view and crops and resizes every object."""
    raws = [{m.split(".", 1)[1]: d for m, d in members} for members in _members(dest)]
    cost = {"jpeg": [0, 0.0], "geometry": [0, 0.0]}
    for raw in raws:
        meta = shardformat.Header.decode(raw["json"], "bench")
        (frame,) = meta.frames
        cost["jpeg"][0] += len(raw[frame.view]) + sum(len(raw[o.crop]) for o in meta.objects)
        t0 = time.perf_counter()
        shardformat.image(raw[frame.view])
        for o in meta.objects:
            saot_crop(shardformat.image(raw[o.crop]), o.resize_hw)
        t1 = time.perf_counter()
        image = shardformat.image(raw[frame.member])
        shardformat.global_view(raw[frame.member], IMAGE_SIZE)
        for o in meta.objects:
            saot_crop(image[:, o.box[0] : o.box[2], o.box[1] : o.box[3]], o.resize_hw)
        t2 = time.perf_counter()
        cost["jpeg"][1] += t1 - t0
        cost["geometry"][1] += t2 - t1
    return {k: (b / len(raws) / 1024, t / len(raws) * 1000) for k, (b, t) in cost.items()}


def _members(dest: Path) -> list[list[tuple[str, bytes]]]:
    """Every sample's (member name, bytes), from the shard tars."""
    import tarfile

    samples: dict[str, list] = {}
    for path in sorted(dest.glob("*.tar")):
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                samples.setdefault(m.name.split(".", 1)[0], []).append((m.name, tar.extractfile(m).read()))
    return list(samples.values())


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
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per loader, alternating (best is reported)")
    parser.add_argument("--gpu", action="store_true", help="also time a 2B-sized model step on CUDA")
    parser.add_argument("--video", action="store_true", help="also size the shard of a 10 s 720p clip (minutes: H.264 encoding)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
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
        write_index(dest, [write_block(outcomes, dest, 0, len(samples), ShardLimits(max_samples=16))],
                    {"mix": "bench", "saot": asdict(saot_cfg), "view_size": IMAGE_SIZE})
        print(f"one-off shard writing: {len(samples) / (time.perf_counter() - t0):.1f} samples/s")
        kb_shard, kb_image = storage(dest, root, args.samples)
        choice = storage_choice(dest)
        records = official_records(samples)
        source = ShardSource(dest, tok, cfg, VIEWS, buffer=8)
        ours, base = [], []
        for _ in range(args.repeats):  # interleaved: drift (caches, clocks) hits both loaders alike
            ours.append(rate(resized_on_device(Loader(source, BATCH, 0, 1, 0, tok.pad_token_id).batches()), args.samples))
            base.append(rate(official_batches(records, root, tok, cfg), args.samples))
    print(f"corpus: {args.samples} images of {args.size}, 2 regions each; {args.repeats} interleaved repeats, best of each")
    print(f"official-style loader: {max(base):.1f} samples/s")
    print(f"our shard loader:      {max(ours):.1f} samples/s (incl. the enlarged-crop resize, on CPU here)")
    print(f"ratio ours/official:   {max(ours) / max(base):.2f}x (target >= 3x)")
    print(f"storage: {kb_shard:.0f} KB per sample in our shards vs {kb_image:.0f} KB per source JPEG: "
          f"{kb_shard / kb_image:.2f}x (target <= 2x)")
    for name, (kb, ms) in choice.items():
        print(f"crops and views as {name:8s}: {kb:6.1f} KB/sample stored, {ms:5.2f} ms/sample of pixel work at load")
    if args.video:
        with tempfile.TemporaryDirectory() as tmp:
            mb_shard, mb_clip = video_storage(Path(tmp))
        print(f"video storage: {mb_shard:.2f} MB in our shard vs {mb_clip:.2f} MB of source clip: {mb_shard / mb_clip:.2f}x "
              "(target <= 2x)")
    if args.gpu:
        gpu_part()
    else:
        print("GPU part: not run (pass --gpu on a CUDA machine)")


if __name__ == "__main__":
    main()

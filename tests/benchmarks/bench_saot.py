"""SAOT crop throughput: the official-style per-object OpenCV loop vs our batched torch path.

    .venv/bin/python tests/benchmarks/bench_saot.py [--images 96] [--regions 4] [--batch 16] [--repeat 3]
                                                   [--width 640 --height 480] [--threads 1]

One generated corpus (JPEGs, RLE ellipse masks of ~300 px to ~60k px), one process, official
mode, PixelRefer and PixelRefer-Lite side by side:
  baseline: cv2 decode, per object pycocotools decode + box scan (np.where; Lite: cv2.findNonZero,
      as each release does) + mask.sum() + cv2.resize + bilinear grid mask
      (tests/benchmarks/official_saot.py); Lite adds the 336x336 global view and the 224x224 local
      view once per frame, as the released Lite loader caches them;
  ours: the shard writer's path: torchvision decode, geometry from the RLE, each mask decoded in
      its crop window only (masks.decode_window), crops and grid masks (tokenize_batch: on CPU
      with cv2.resize, the baseline's own resize; on CUDA, nvjpeg decode and batched tap tables,
      when a GPU is present), Lite local views once per frame (local_owners), global views per batch;
  floor: decoding the images and the whole masks only (all the baseline must do besides SAOT).
Prints region-crops/s per path (best of --repeat interleaved rounds) and ours/baseline per mode.
Torch and OpenCV get the same CPU thread count (--threads; 1 by default, because on a shared
machine thread pools spin against other load and the figures become noise).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from schemas import masks  # noqa: E402
from sources.fixtures import draw  # noqa: E402
from tests.benchmarks.official_saot import decode_bgr_to_rgb, official_object  # noqa: E402
from tokenization import saot, saot_torch  # noqa: E402
from tokenization.saot import SaotConfig  # noqa: E402

def corpus(images: int, regions: int, size: tuple[int, int], seed: int = 0) -> list[tuple[bytes, list[dict]]]:
    """JPEG bytes + RLE masks per image: ellipses of random size and place."""
    W, H = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    out = []
    for i in range(images):
        rects = [tuple(int(v) for v in (x, y, x + rng.integers(20, 200), y + rng.integers(20, 200)))
                 for x, y in zip(rng.integers(0, W - 60, 3), rng.integers(0, H - 60, 3))]
        buf = io.BytesIO()
        Image.fromarray(draw(W, H, rects, seed=i)).save(buf, format="JPEG", quality=90)
        rles = []
        for _ in range(regions):
            cy, cx = rng.integers(0, H), rng.integers(0, W)
            ry, rx = rng.integers(10, 140, 2)
            rles.append(masks.encode(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1))
        out.append((buf.getvalue(), rles))
    return out


def baseline(data, cfg: SaotConfig) -> int:
    """The released loaders' loop over one sample's frames (official mode). Lite resizes the
    336x336 global view and the 224x224 local view once per frame (the released `img_resize_cache`
    keeps both per frame; the local one is the frame's first object's)."""
    n = 0
    for jpeg, rles in data:
        image = decode_bgr_to_rgb(jpeg)
        if cfg.lite:
            cv2.resize(image, (saot.LITE_GLOBAL,) * 2, interpolation=cv2.INTER_AREA)
        for k, rle in enumerate(rles):
            official_object(image, masks.decode(rle).astype(np.uint8), lite=cfg.lite, local=k == 0)
            n += 1
    return n


def ours(data, cfg: SaotConfig, device: torch.device, batch: int) -> int:
    """The shard writer's path: batched crops, grid masks, per-frame Lite local and global views."""
    n = 0
    H, W = masks.decode(data[0][1][0]).shape
    for start in range(0, len(data), batch):
        frames, jobs = [], []
        for jpeg, rles in data[start : start + batch]:
            frames.append(saot_torch.decode_rgb(jpeg, device))
            for rle in rles:
                x0, y0, x1, y1 = masks.bbox(rle)
                geom = saot.geometry(masks.area(rle), (int(y0), int(x0), int(y1) - 1, int(x1) - 1), (H, W), cfg)
                jobs.append(saot_torch.CropJob(len(frames) - 1, masks.decode_window(rle, *geom.crop_slice), geom))
        n += len(saot_torch.tokenize_batch(frames, jobs, cfg, saot_torch.local_owners(jobs, cfg)))
        if cfg.lite:
            saot_torch.global_views(frames)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n


def floor(data, device: torch.device) -> int:
    n = 0
    for jpeg, rles in data:
        saot_torch.decode_rgb(jpeg, device)
        n += sum(1 for rle in rles if masks.decode(rle) is not None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n


def best_rates(paths: dict, repeat: int) -> dict[str, float]:
    """Region crops per second per path, best of `repeat` rounds after a warm-up round.

    Rounds interleave the paths, so a change in the machine's load hits all of them alike.
    """
    best = dict.fromkeys(paths, 0.0)
    for round_ in range(repeat + 1):
        for name, fn in paths.items():
            t = time.perf_counter()
            n = fn()
            if round_:
                best[name] = max(best[name], n / (time.perf_counter() - t))
    return best


MODES = {"PixelRefer": SaotConfig(), "Lite": SaotConfig(lite=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96, help="Images in the generated corpus.")
    parser.add_argument("--regions", type=int, default=4, help="Masks per image.")
    parser.add_argument("--batch", type=int, default=16, help="Images per tokenize_batch call (ours).")
    parser.add_argument("--repeat", type=int, default=3, help="Timed rounds (each runs every path once); the best per path is reported.")
    parser.add_argument("--width", type=int, default=640, help="Image width.")
    parser.add_argument("--height", type=int, default=480, help="Image height.")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and OpenCV alike.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    data = corpus(args.images, args.regions, (args.width, args.height))
    print(f"corpus: {args.images} images {args.width}x{args.height}, {args.images * args.regions} regions; "
          f"threads {args.threads}; official mode")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if len(devices) == 1:
        print("CUDA: not available, ours on CUDA not run")
    paths = {f"floor, decode only ({d.type})": (lambda d=d: floor(data, d)) for d in devices}
    for mode, cfg in MODES.items():
        paths[f"{mode} baseline (OpenCV)"] = lambda cfg=cfg: baseline(data, cfg)
        for d in devices:
            paths[f"{mode} ours ({d.type})"] = lambda cfg=cfg, d=d: ours(data, cfg, d, args.batch)
    rates = best_rates(paths, args.repeat)
    for name, rate in rates.items():
        print(f"{name:32s} {rate:10.1f} region-crops/s")
    for mode in MODES:
        for d in devices:
            ratio = rates[f"{mode} ours ({d.type})"] / rates[f"{mode} baseline (OpenCV)"]
            print(f"{mode:10s} ours ({d.type}) / baseline = {ratio:.2f}x")


if __name__ == "__main__":
    main()

"""SAOT crop throughput: the official-style per-object OpenCV loop vs our batched torch path.

    .venv/bin/python tests/benchmarks/bench_saot.py [--images 96] [--regions 4] [--batch 16] [--repeat 3]
                                                   [--width 640 --height 480] [--threads 1] [--lite]

One generated corpus (JPEGs, RLE ellipse masks of ~300 px to ~60k px), one process, four paths:
  (a) baseline: cv2 decode, per object pycocotools decode + np.where box + mask.sum() + cv2.resize
      + bilinear grid mask (tests/benchmarks/official_saot.py, the released algorithm);
  (b) ours on CPU: torchvision decode, geometry from the RLE, batched torch crops (tokenize_batch);
  (c) ours on CUDA (nvjpeg decode), when a GPU is present;
  (d) floor: decoding the images and masks only (what any path must at least do).
Prints region-crops/s per path (best of --repeat interleaved rounds) and the ratios ours/baseline and ours/floor.
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
    n = 0
    for jpeg, rles in data:
        image = decode_bgr_to_rgb(jpeg)
        for rle in rles:
            official_object(image, masks.decode(rle).astype(np.uint8), lite=cfg.lite, paper=cfg.mode == "paper")
            n += 1
    return n


def ours(data, cfg: SaotConfig, device: torch.device, batch: int) -> int:
    n = 0
    H, W = masks.decode(data[0][1][0]).shape
    for start in range(0, len(data), batch):
        frames, jobs = [], []
        for jpeg, rles in data[start : start + batch]:
            frames.append(saot_torch.decode_rgb(jpeg, device))
            for rle in rles:
                x0, y0, x1, y1 = masks.bbox(rle)
                geom = saot.geometry(masks.area(rle), (int(y0), int(x0), int(y1) - 1, int(x1) - 1), (H, W), cfg)
                jobs.append(saot_torch.CropJob(len(frames) - 1, masks.decode(rle), geom))
        n += len(saot_torch.tokenize_batch(frames, jobs, cfg))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96, help="Images in the generated corpus.")
    parser.add_argument("--regions", type=int, default=4, help="Masks per image.")
    parser.add_argument("--batch", type=int, default=16, help="Images per tokenize_batch call (ours).")
    parser.add_argument("--repeat", type=int, default=3, help="Timed rounds (each runs every path once); the best per path is reported.")
    parser.add_argument("--lite", action="store_true", help="Benchmark the PixelRefer-Lite configuration.")
    parser.add_argument("--width", type=int, default=640, help="Image width.")
    parser.add_argument("--height", type=int, default=480, help="Image height.")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and OpenCV alike.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    cfg = SaotConfig(lite=args.lite)
    data = corpus(args.images, args.regions, (args.width, args.height))
    cpu = torch.device("cpu")
    print(f"corpus: {args.images} images {args.width}x{args.height}, {args.images * args.regions} regions; "
          f"threads {args.threads}; {cfg}")
    paths = {
        "a baseline (OpenCV per object)": lambda: baseline(data, cfg),
        "b ours, torch CPU": lambda: ours(data, cfg, cpu, args.batch),
        "d floor, decode only (CPU)": lambda: floor(data, cpu),
    }
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        paths["c ours, torch CUDA"] = lambda: ours(data, cfg, gpu, args.batch)
        paths["d floor, decode only (CUDA)"] = lambda: floor(data, gpu)
    else:
        print("CUDA: not available, path (c) not run")
    rates = best_rates(paths, args.repeat)
    for name, rate in sorted(rates.items()):
        print(f"{name:32s} {rate:10.1f} region-crops/s")
    base = rates["a baseline (OpenCV per object)"]
    for name in sorted(k for k in rates if k.split()[1] == "ours,"):
        device = name.split()[-1]
        fl = rates[f"d floor, decode only ({device})"]
        print(f"{name}: ours/baseline = {rates[name] / base:.2f}x, ours/floor = {rates[name] / fl:.2f}")


if __name__ == "__main__":
    main()

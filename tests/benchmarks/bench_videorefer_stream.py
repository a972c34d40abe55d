"""Streaming benchmark of the VideoRefer adapter: peak memory is flat in the JSON file size.

Generates VideoRefer-700K-style `videorefer-detailed-caption-125k.json` files in a temporary
folder and runs the adapter (`units()`, then `convert()` of every unit: one process, one core)
over each in a fresh subprocess, reporting peak RSS and samples per CPU-second (one core):

* `text` records (~40 KB, like the real file's ~45 KB, but the bulk is caption text and the
  masks are 64x36 on 8 frames) at about 200 MB and 1 GB: the memory-flatness test, cheap enough
  per record to finish in minutes;
* `mask` records (~33 KB of RLE: a 640x360 object mask on 16 frames) at 10 MB: the throughput
  on realistic masks, where checking RLE counts (`schemas.masks.check_counts`) dominates.

The baseline is what the streaming replaces: `json.load` of the whole small file, in a fresh
subprocess too. Everything generated is deleted at the end.

    .venv/bin/python tests/benchmarks/bench_videorefer_stream.py            # ~200 MB and ~1 GB
    .venv/bin/python tests/benchmarks/bench_videorefer_stream.py --mb 20 100  # a quick run
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from schemas import Reject, masks  # noqa: E402
from sources import fixtures  # noqa: E402
from sources.roots import Roots  # noqa: E402
from sources.videorefer import VideoReferAdapter  # noqa: E402

FILE = "videorefer-detailed-caption-125k.json"
# kind -> (width, height, frames, caption repeats) of the generated records
KINDS = {"text": (64, 36, 8, 1250), "mask": (640, 360, 16, 30)}


def blob_rle(width: int, height: int) -> dict:
    """A wavy blob: about two runs per column, like a real object mask (~1.2 KB of counts at 640x360)."""
    y, x = np.mgrid[:height, :width]
    edge = height * (0.5 + 0.17 * np.sin(x / 9.0) + 0.07 * np.sin(x / 2.3))
    return masks.encode(((y < edge) & (x > width // 16) & (x < width - width // 16)).astype(np.uint8))


def generate(root: Path, kind: str, megabytes: int) -> int:
    """Write a frame folder and a JSON array of ~`megabytes` MB of `kind` records; return the record count."""
    width, height, frames, repeats = KINDS[kind]
    for i in range(frames):
        fixtures.write_image(root / f"videos/{kind}/{i:05d}.jpg", width, height, [(4, 4, width - 4, height - 4)], seed=i)
    rle = blob_rle(width, height)
    template = json.dumps({
        "id": "ID", "video": f"videos/{kind}", "ratio": 1.0,
        "conversations": [{"from": "human", "value": "<video>\nPlease give a detailed description of <region> in the video."},
                          {"from": "gpt", "value": "The wavy object drifts slowly. " * repeats}],
        "annotation": [{str(f): {"segmentation": rle} for f in range(frames)}],
    }, indent=1).split('"ID"')
    count = megabytes * 1_000_000 // (len(template[0]) + len(template[1]) + 12)
    with open(root / FILE, "w") as f:
        f.write("[\n")
        for i in range(count):
            f.write(("" if i == 0 else ",\n") + template[0] + f'"panda_{i:07d}"' + template[1])
        f.write("\n]\n")
    return count


def run_adapter(root: str) -> dict:
    """Child process: the adapter over the whole folder; counts, seconds, peak RSS."""
    adapter, start, cpu = VideoReferAdapter(), time.perf_counter(), time.process_time()
    samples = rejects = 0
    for unit in adapter.units(Roots.of(root)):
        for outcome in adapter.convert(Path(root), unit):
            rejects += isinstance(outcome, Reject)
            samples += not isinstance(outcome, Reject)
    return {"samples": samples, "rejects": rejects, "seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}


def run_json_load(root: str) -> dict:
    """Child process: the baseline, `json.load` of the whole file."""
    start, cpu = time.perf_counter(), time.process_time()
    with open(Path(root) / FILE) as f:
        records = len(json.load(f))
    return {"samples": records, "rejects": 0, "seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}


def child(mode: str, root: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(root)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, nargs=2, default=[200, 1000], metavar=("SMALL", "LARGE"), help="sizes of the two text-record files in MB")
    parser.add_argument("--mask-mb", type=int, default=10, help="size of the realistic-mask file in MB")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = {"adapter": run_adapter, "json.load": run_json_load}[args.child[0]](args.child[1])
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for kind, mb in (("mask", args.mask_mb), ("text", args.mb[0]), ("text", args.mb[1])):
            records = generate(root, kind, mb)
            size = (root / FILE).stat().st_size / 1e6
            rows[f"adapter {kind} {mb} MB"] = {**child("adapter", root), "file_mb": size, "records": records}
            if mb == args.mb[0]:
                rows[f"json.load {kind} {mb} MB"] = {**child("json.load", root), "file_mb": size, "records": records}
    print(f"{'run':<27}{'file MB':>9}{'records':>9}{'samples':>9}{'wall s':>9}{'CPU s':>9}{'samples/s/core':>16}{'peak RSS MB':>13}")
    for name, r in rows.items():
        print(f"{name:<27}{r['file_mb']:>9.0f}{r['records']:>9}{r['samples']:>9}{r['seconds']:>9.1f}{r['cpu']:>9.1f}"
              f"{r['samples'] / r['cpu']:>16.0f}{r['peak_rss_mb']:>13.0f}")
    small, large = (rows[f"adapter text {mb} MB"] for mb in args.mb)
    baseline = rows[f"json.load text {args.mb[0]} MB"]
    print(f"peak RSS ratio, adapter {args.mb[1]} MB / {args.mb[0]} MB: {large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x (target <= 1.2x)")
    print(f"peak RSS ratio, adapter / json.load on {args.mb[0]} MB: {small['peak_rss_mb'] / baseline['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()

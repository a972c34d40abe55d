"""Ingest throughput: a plain single-process loop vs `pipelines.ingest` on local Ray with 1 and 2 workers;
with `--memory`, per-process peak memory of the LVIS adapter at 1/64 and 1/8 of LVIS v1 train.

    .venv/bin/python tests/benchmarks/bench_ingest.py [--annotations 50000] [--per-image 5]
    .venv/bin/python tests/benchmarks/bench_ingest.py --memory

Generates an LVIS-style corpus in a temp folder (`lvis_v1_train.json` + small JPEGs), then
converts it with the `lvis` adapter three ways, all through the same part-writing code:

* baseline: `ingest_source(..., workers=0)`: the parts converted in a loop in this process (no Ray);
* Ray, 1 worker and 2 workers in flight (local Ray with 2 CPUs).

`--memory` writes the corpus at 1/64 and 1/8 of LVIS v1 train (1,270,141 annotations on
100,170 images, 1.1 GB: polygons padded to its ~870 bytes per annotation) and measures peak RSS
(`VmHWM`: `ru_maxrss` would report the parent's peak, which Linux keeps across exec), each in a fresh subprocess: the driver planning the units (the streaming pass that
writes the index included), a worker converting one unit, and, for comparison, `json.load` of the
whole file (what every process did before `sources.cocoindex`). It prints the 1/8 : 1/64 ratios
and a linear extrapolation to the full file.

Each mode runs once cold (Ray worker start-up, module imports and the per-process JSON parse
included) and once warm (those cached); samples/s, the ratios and the parts in flight (summed
per-part seconds / wall seconds) are printed. Outputs of all modes are checked byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipelines import ingest  # noqa: E402
from sources import registry  # noqa: E402
from sources.fixtures import rect_polygon, write_image  # noqa: E402
from sources.roots import Roots  # noqa: E402

LVIS_TRAIN = {"annotations": 1_270_141, "images": 100_170, "bytes": 1_100_000_000}


def padded_polygon(rect: tuple[int, int, int, int], points: int) -> list[float]:
    """The rectangle's ring with `points` extra vertices along its top edge (2-decimal floats, as
    LVIS writes them), so that annotations weigh what real ones do; the mask is the same."""
    x0, y0, x1, y1 = rect
    top = [v for k in range(points) for v in (round(x0 + (x1 - x0) * (k + 1) / (points + 1), 2), float(y0))]
    return [float(x0), float(y0), *top, *rect_polygon(rect)[2:]]


def make_corpus(root: Path, annotations: int, per_image: int, seed: int = 0, points: int = 0) -> None:
    rng = random.Random(seed)
    images, anns = [], []
    for image_id in range(1, annotations // per_image + 1):
        rects = []
        for _ in range(per_image):
            x0, y0 = rng.randrange(0, 48), rng.randrange(0, 32)
            rects.append((x0, y0, x0 + rng.randrange(4, 16), y0 + rng.randrange(4, 16)))
        write_image(root / f"train2017/{image_id:012d}.jpg", 64, 48, rects[:3], seed=image_id)
        images.append({"id": image_id, "coco_url": f"http://images.cocodataset.org/train2017/{image_id:012d}.jpg",
                       "width": 64, "height": 48, "neg_category_ids": [], "not_exhaustive_category_ids": []})
        for x0, y0, x1, y1 in rects:
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1 + len(anns) % 3,
                         "segmentation": [padded_polygon((x0, y0, x1, y1), points)], "area": float((x1 - x0) * (y1 - y0)),
                         "bbox": [x0, y0, x1 - x0, y1 - y0]})
    categories = [{"id": i, "name": n, "synonyms": [n], "synset": f"{n}.n.01", "frequency": "f"}
                  for i, n in enumerate(["car_(automobile)", "trash_can", "dog"], start=1)]
    (root / "lvis_v1_train.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))


def peak_rss(mode: str, root: Path, cache: Path) -> int:
    """Peak RSS in bytes of `mode` run in a fresh interpreter (see `child`)."""
    result = subprocess.run([sys.executable, __file__, "--child", mode, str(root)], capture_output=True, text=True,
                            env={**os.environ, "PIXELREFER_CACHE": str(cache)}, check=True)
    return int(result.stdout.split()[-1])


def child(mode: str, root: Path) -> None:
    """One measured process: `plan` (the driver's units()), `convert` (one unit, as a worker after
    the plan) or `parse` (json.load of the whole file); prints its peak RSS in bytes."""
    adapter = registry.get("lvis")
    if mode == "plan":
        adapter.units(Roots.of(root))
    elif mode == "convert":
        unit = adapter.units(Roots.of(root))[0]  # the index the driver wrote
        assert sum(1 for _ in adapter.convert(root, unit)) > 0
    else:
        json.loads((root / "lvis_v1_train.json").read_bytes())
    status = Path("/proc/self/status").read_text()
    print(int(status.split("VmHWM:")[1].split()[0]) * 1024)


def memory(tmp: Path) -> None:
    per_image = LVIS_TRAIN["annotations"] / LVIS_TRAIN["images"]
    # vertices that bring a synthetic annotation (~190 bytes with a 4-vertex ring) to LVIS's ~870 bytes
    points = round((LVIS_TRAIN["bytes"] / LVIS_TRAIN["annotations"] - 190) / 12)
    rows = {}
    for fraction in (64, 8):
        root = tmp / f"lvis-1of{fraction}"
        make_corpus(root, LVIS_TRAIN["annotations"] // fraction, round(per_image), points=points)
        size = (root / "lvis_v1_train.json").stat().st_size
        rows[fraction] = {"size": size, **{mode: peak_rss(mode, root, tmp / f"cache-{fraction}") for mode in ("plan", "convert", "parse")}}
    print(f"{'LVIS fraction':<14} {'file MB':>8} {'driver (plan) MB':>17} {'worker (1 unit) MB':>19} {'json.load whole MB':>19}")
    for fraction, r in rows.items():
        print(f"1/{fraction:<12} {r['size'] / 1e6:>8.0f} {r['plan'] / 2**20:>17.0f} {r['convert'] / 2**20:>19.0f} {r['parse'] / 2**20:>19.0f}")
    small, big = rows[64], rows[8]
    print("1/8 : 1/64 peak ratio: " + ", ".join(f"{mode} {big[mode] / small[mode]:.2f}x" for mode in ("plan", "convert", "parse")))
    for name, size in (("LVIS v1 train", LVIS_TRAIN["bytes"]), ("1 GB of PACO JSON", 1 << 30)):
        extrapolated = {mode: big[mode] + (big[mode] - small[mode]) / (big["size"] - small["size"]) * (size - big["size"])
                        for mode in ("plan", "convert", "parse")}
        print(f"extrapolated (linear in file size) to {name}: " + ", ".join(f"{mode} {v / 2**20:.0f} MB" for mode, v in extrapolated.items()))


def baseline(root: Path, out: Path) -> list[dict]:
    """Per-part results of a plain loop over the parts in this process (`--workers 0`: no Ray)."""
    return ingest.ingest_source("lvis", root, out, 0)["timings"]["per_part"]


def ray_run(root: Path, out: Path, workers: int) -> list[dict]:
    return ingest.ingest_source("lvis", root, out, workers)["timings"]["per_part"]


def parts_bytes(out: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((out / "unified" / "lvis").glob("part-*.parquet"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=int, default=50_000)
    parser.add_argument("--per-image", type=int, default=5)
    parser.add_argument("--memory", action="store_true", help="Measure peak RSS at 1/64 and 1/8 of LVIS instead.")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if "lvis" not in registry.available():
        print("the lvis adapter is not registered; nothing to benchmark")
        return 1
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    if args.memory:
        with tempfile.TemporaryDirectory() as tmp:
            memory(Path(tmp))
        return 0
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        make_corpus(tmp / "lvis", args.annotations, args.per_image)
        print(f"corpus: {args.annotations} annotations on {args.annotations // args.per_image} images, "
              f"generated in {time.perf_counter() - start:.1f}s")
        modes = {"baseline (1 process, no Ray)": lambda out: baseline(tmp / "lvis", out),
                 "ray, 1 worker": lambda out: ray_run(tmp / "lvis", out, 1),
                 "ray, 2 workers": lambda out: ray_run(tmp / "lvis", out, 2)}
        rates: dict[str, dict[str, float]] = {}
        busy: dict[str, dict[str, float]] = {}
        reference = None
        for k, (name, fn) in enumerate(modes.items()):
            if name.startswith("ray") and not ray.is_initialized():  # after the baseline, so Ray's start-up does not slow it
                ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            for phase in ("cold", "warm"):
                out = tmp / f"out-{k}-{phase}"
                t0 = time.perf_counter()
                parts = fn(out)
                wall = time.perf_counter() - t0
                samples = sum(r["read"] for r in parts)
                rates.setdefault(name, {})[phase] = samples / wall
                busy.setdefault(name, {})[phase] = sum(r["seconds"] for r in parts) / wall
                reference = reference or parts_bytes(out)
                assert parts_bytes(out) == reference, f"{name} wrote different parts"
        ray.shutdown()
    print(f"\n{'mode':<30} {'cold samples/s':>15} {'warm samples/s':>15} {'parts in flight (warm)':>23}"
          f"   ({samples} samples per run)")
    for name, r in rates.items():
        print(f"{name:<30} {r['cold']:>15.0f} {r['warm']:>15.0f} {busy[name]['warm']:>23.2f}")
    print("parts in flight = summed part seconds / wall seconds: 2 workers on 2 free cores give ~2 and a "
          "~2x rate; ~2 in flight without the rate means the cores were busy with other work")
    two, one, base = rates["ray, 2 workers"], rates["ray, 1 worker"], rates["baseline (1 process, no Ray)"]
    print(f"\n2 workers / 1 worker: cold {two['cold'] / one['cold']:.2f}x, warm {two['warm'] / one['warm']:.2f}x")
    print(f"2 workers / baseline: cold {two['cold'] / base['cold']:.2f}x, warm {two['warm'] / base['warm']:.2f}x")
    print(f"1 worker / baseline:  cold {one['cold'] / base['cold']:.2f}x, warm {one['warm'] / base['warm']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

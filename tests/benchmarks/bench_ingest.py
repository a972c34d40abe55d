"""Ingest throughput: a plain single-process loop vs `pipelines.ingest` on local Ray with 1 and 2 workers.

    .venv/bin/python tests/benchmarks/bench_ingest.py [--annotations 50000] [--per-image 5]

Generates an LVIS-style corpus in a temp folder (`lvis_v1_train.json` + small JPEGs), then
converts it with the `lvis` adapter three ways, all through the same part-writing code:

* baseline: `ingest_source(..., workers=0)`: the parts converted in a loop in this process (no Ray);
* Ray, 1 worker and 2 workers in flight (local Ray with 2 CPUs).

Each mode runs once cold (Ray worker start-up, module imports and the per-process JSON parse
included) and once warm (those cached); samples/s, the ratios and the parts in flight (summed
per-part seconds / wall seconds) are printed. Outputs of all modes are checked byte-identical.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipelines import ingest  # noqa: E402
from sources import registry  # noqa: E402
from sources.fixtures import rect_polygon, write_image  # noqa: E402


def make_corpus(root: Path, annotations: int, per_image: int, seed: int = 0) -> None:
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
                         "segmentation": [rect_polygon((x0, y0, x1, y1))], "area": float((x1 - x0) * (y1 - y0)),
                         "bbox": [x0, y0, x1 - x0, y1 - y0]})
    categories = [{"id": i, "name": n, "synonyms": [n], "synset": f"{n}.n.01", "frequency": "f"}
                  for i, n in enumerate(["car_(automobile)", "trash_can", "dog"], start=1)]
    (root / "lvis_v1_train.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))


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
    args = parser.parse_args()
    if "lvis" not in registry.available():
        print("the lvis adapter is not registered; nothing to benchmark")
        return 1
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

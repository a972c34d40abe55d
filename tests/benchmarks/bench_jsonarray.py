"""Benchmark: planning + reading byte-range units of a big JSON array (sources.jsonarray) vs `json.load`.

Writes VG-style region_descriptions.json files of two sizes, then for each runs, in this one
process, (a) ours: `spans()` (the units() pass) followed by `read_span()` of every unit, one
at a time, as the workers do; (b) the baseline: `json.load` of the whole file. It prints
seconds and MB/s (untraced), peak traced Python memory (a second, tracemalloc run, which
sees the JSON decoder's objects), and the ratio of the larger file's peak to the smaller's:
flat memory means ~1.

    .venv/bin/python tests/benchmarks/bench_jsonarray.py            # 20 MB and 80 MB
    .venv/bin/python tests/benchmarks/bench_jsonarray.py 50 400     # sizes in MB
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sources import jsonarray  # noqa: E402


def write_regions(path: Path, megabytes: int) -> None:
    """About `megabytes` of `[{"id", "regions": [50 regions]}, ...]`, written image by image."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("[")
        image = 0
        while f.tell() < megabytes << 20:
            regions = [{"region_id": image * 100 + r, "image_id": image, "phrase": f"a phrase número {r} of image {image}",
                        "x": r, "y": r * 2, "width": 30, "height": 40} for r in range(50)]
            f.write(("," if image else "") + json.dumps({"id": image, "regions": regions}, ensure_ascii=False))
            image += 1
        f.write("]")


def measure(run: Callable[[], int]) -> tuple[float, int, int]:
    """(seconds, peak traced bytes, records): timed untraced, then run again under tracemalloc
    (which slows the JSON decoder several-fold, so it must not share the timed run)."""
    gc.collect()
    start = time.perf_counter()
    records = run()
    seconds = time.perf_counter() - start
    gc.collect()
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak, records


def ours(path: Path) -> int:
    return sum(len(jsonarray.read_span(path, span)) for span in jsonarray.spans(path))


def baseline(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        return len(json.load(f))


def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        peaks: dict[str, list[int]] = {"ours": [], "json.load": []}
        for megabytes in sizes:
            path = Path(tmp) / f"regions_{megabytes}.json"
            write_regions(path, megabytes)
            size = path.stat().st_size / 2**20
            results = {"ours": measure(lambda: ours(path)), "json.load": measure(lambda: baseline(path))}
            for name, (seconds, peak, records) in results.items():
                peaks[name].append(peak)
                print(f"{size:7.1f} MB  {name:9s}  {records:8d} records  {seconds:6.2f} s  "
                      f"{size / seconds:6.1f} MB/s  peak {peak / 2**20:8.1f} MiB")
            print(f"{size:7.1f} MB  ours/json.load: time x{results['ours'][0] / results['json.load'][0]:.2f}, "
                  f"peak memory x{results['ours'][1] / results['json.load'][1]:.3f}")
            path.unlink()
        for name, values in peaks.items():
            print(f"{name:9s} peak memory, {sizes[-1]} MB file / {sizes[0]} MB file: x{values[-1] / values[0]:.2f}")


if __name__ == "__main__":
    main([int(v) for v in sys.argv[1:]] or [20, 80])

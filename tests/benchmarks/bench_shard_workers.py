"""`pixelrefer shard` on Ray: 2 workers against 1, and the driver's share of the CPU.

    .venv/bin/python tests/benchmarks/bench_shard_workers.py [--samples 96] [--repeats 2]

Corpus: `--samples` photo-like 640x480 JPEG images with 2 mask regions each (bench_loader's), in a
hand-built unified workspace and mix. One local Ray with 2 CPUs serves every run, so Ray's start
is not timed; runs alternate 1 worker / 2 workers per repeat and the best of each is reported.
Each worker reads its own mix rows and writes its own shards; the driver plans row blocks and
collects counts. CPU seconds are those of the driver process and of its whole process tree
(Ray's raylet and workers, sampled every 0.1 s, so a worker that exits loses at most 0.1 s).
Prints samples/s of each, overall and after the first block is written (Ray actors start by
importing torch, seconds that a long run amortises), the ratios (2 workers over 1), the driver's
share of the CPU, and checks that both runs wrote the same bytes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipelines import shard, workspace
from tests.benchmarks.bench_loader import make_corpus
from tokenization.saot import SaotConfig

LIMITS = shard.ShardLimits(max_samples=8)  # 8-row blocks: enough blocks for both workers


def build(out: Path, count: int) -> Path:
    """unified/bench/part-00000.parquet, its source.json and mix/bench/stage1.parquet; returns the mix."""
    root = out / "media"
    root.mkdir(parents=True)
    samples = make_corpus(root, count, 640, 480)
    part = workspace.part_path(out, "bench", 0)
    workspace.write_part(part, samples, {"samples": len(samples)})
    workspace.write_json_atomic(workspace.unified_dir(out, "bench") / "source.json", {"source": "bench", "root": str(root), "adapter_version": "1"})
    mix = out / "mix" / "bench" / "stage1.parquet"
    mix.parent.mkdir(parents=True)
    rows = [{"id": s.id, "source": "bench", "part": str(part.relative_to(out)), "row": i} for i, s in enumerate(samples)]
    pq.write_table(pa.Table.from_pylist(rows, schema=workspace.MIX_SCHEMA), mix)
    return mix


class TreeCpu:
    """CPU seconds of this process and of its whole process tree while the block runs, and when the
    first block's stats file appeared in `dest` (the workers' start: Ray actors import torch)."""

    def __init__(self, dest: Path):
        self.dest, self.first = dest, None

    def __enter__(self) -> Self:
        self.me = psutil.Process()
        self.start = self._tree()
        self.last, self.stop, self.own = dict(self.start), threading.Event(), 0.0
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()
        self.driver0 = sum(self.me.cpu_times()[:2])
        return self

    def _tree(self) -> dict[int, float]:
        times = {}
        for p in [self.me, *self.me.children(recursive=True)]:
            try:
                times[p.pid] = sum(p.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return times

    def _sample(self) -> None:
        while not self.stop.wait(0.1):
            self.own = time.thread_time()  # this sampler's CPU, not the driver's work
            self.last.update(self._tree())
            if self.first is None and (done := list(self.dest.glob("*_stats.json"))):
                self.first = (time.perf_counter(), len(done) * LIMITS.max_samples)  # (when, rows done then)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.sampler.join()
        self.driver = sum(self.me.cpu_times()[:2]) - self.driver0 - self.own
        self.last.update(self._tree())
        self.total = sum(t - self.start.get(pid, 0.0) for pid, t in self.last.items())


def run(out: Path, mix: Path, workers: int) -> tuple[float, TreeCpu, dict[str, bytes]]:
    dest = out / "shards" / "bench" / "stage1"
    dest.mkdir(parents=True, exist_ok=True)
    for p in dest.glob("*"):
        p.unlink()
    with TreeCpu(dest) as cpu:
        t0 = time.perf_counter()
        shard.shard_stage(out, mix, SaotConfig(), LIMITS, view_size=384, workers=workers)
        end = time.perf_counter()
    cpu.started = cpu.first[0] - t0
    cpu.steady = (pq.read_metadata(mix).num_rows - cpu.first[1]) / (end - cpu.first[0])  # samples/s once running
    return end - t0, cpu, {p.name: p.read_bytes() for p in sorted(dest.iterdir())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        mix = build(out, args.samples)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            best: dict[int, tuple[float, TreeCpu]] = {}
            files: dict[int, dict[str, bytes]] = {}
            for _ in range(args.repeats):
                for workers in (1, 2):
                    wall, cpu, files[workers] = run(out, mix, workers)
                    if workers not in best or wall < best[workers][0]:
                        best[workers] = (wall, cpu)
        finally:
            ray.shutdown()
    for workers, (wall, cpu) in sorted(best.items()):
        print(f"{workers} worker(s): {args.samples / wall:.1f} samples/s overall ({wall:.1f} s, first block after "
              f"{cpu.started:.1f} s), {cpu.steady:.1f} samples/s after it; CPU {cpu.total:.1f} s, "
              f"driver {cpu.driver:.1f} s = {cpu.driver / cpu.total:.0%} of it")
    print(f"2 workers / 1 worker: {best[1][0] / best[2][0]:.2f}x overall, {best[2][1].steady / best[1][1].steady:.2f}x after "
          f"the first block; outputs byte-identical: {files[1] == files[2]}")


if __name__ == "__main__":
    main()

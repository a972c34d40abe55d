"""`pixelrefer inspect OUT`: render chosen samples of a build as PNG, masks and boxes drawn on their frames.

    pixelrefer inspect out --source lvis --count 4
    pixelrefer inspect out --id lvis/val2017/397133 --png-dir pngs/

Samples come from the unified parts (`OUT/unified/<source>/part-*.parquet`); their media from
the root recorded by ingest. PNGs are named by sample key and are byte-identical across reruns.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from pipelines.render import media_frame_loader, pick, render_sample, save_png
from pipelines.workspace import source_root
from schemas import TASKS, Sample
from schemas.arrow import read_parquet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="The build folder (holding unified/).")
    parser.add_argument("--id", dest="ids", action="append", default=[], help="A sample id to draw (repeatable).")
    parser.add_argument("--source", help="Draw samples of this source only.")
    parser.add_argument("--task", choices=TASKS, help="Draw samples of this task only.")
    parser.add_argument("--count", type=int, default=8, help="How many samples to pick at random (default 8).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random pick (default 0).")
    parser.add_argument("--max-frames", type=int, default=4, help="Annotated video frames drawn per sample (default 4).")
    parser.add_argument("--png-dir", type=Path, help="Where PNGs go (default OUT/inspect/).")


def iter_unified(out: Path, source: str | None = None) -> Iterator[Sample]:
    """Every sample of the unified parts, sources and parts in sorted order."""
    for part in sorted((out / "unified").glob(f"{source or '*'}/part-*.parquet")):
        yield from read_parquet(part)


def inspect(out: Path, chosen: list[Sample], png_dir: Path, max_frames: int = 4) -> list[Path]:
    """Render each chosen sample to `png_dir/<key>.png`; return the paths."""
    loaders = {}
    paths = []
    for sample in chosen:
        if sample.source not in loaders:
            loaders[sample.source] = media_frame_loader(source_root(out, sample.source))
        path = png_dir / f"{sample.key}.png"
        save_png(render_sample(sample, loaders[sample.source], max_frames=max_frames), path)
        paths.append(path)
    return paths


def run(args: argparse.Namespace) -> int:
    if not (args.out / "unified").is_dir():
        print(f"pixelrefer inspect: {args.out / 'unified'} does not exist; run `pixelrefer ingest` first", file=sys.stderr)
        return 2
    samples = list(iter_unified(args.out, args.source if not args.ids else None))
    try:
        chosen = pick(samples, args.ids, args.source, args.task, args.count, args.seed)
    except KeyError as err:
        print(f"pixelrefer inspect: {err.args[0]}", file=sys.stderr)
        return 2
    if not chosen:
        print("pixelrefer inspect: no sample matches", file=sys.stderr)
        return 1
    png_dir = args.png_dir or args.out / "inspect"
    for path in inspect(args.out, chosen, png_dir, args.max_frames):
        print(path)
    return 0

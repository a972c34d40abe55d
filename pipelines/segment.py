"""`pixelrefer segment`: box/point prompts to masks (SAM 2, or the box itself), as a new unified source.

    pixelrefer segment --source vg --out OUT --sam2-config configs/sam2.1/sam2.1_hiera_l.yaml \
        --sam2-checkpoint ckpt/sam2.1_hiera_large.pt
    pixelrefer segment --source vg --out OUT --segmentor box-mask

Reads the complete parts of OUT/unified/<source>/, writes OUT/unified/<source>_sam2/ (same part
numbers, same media root in source.json; `workspace.sam2_source` names it), plus
OUT/rejects/<source>_sam2.jsonl and OUT/stats/<source>_sam2.json (`workspace.SourceStats`).
The conversion itself (`pipelines.sam2.convert`) is documented there: image prompts get a
mask per frame, single-keyframe video regions are propagated by SAM 2, the rest is copied.

Fingerprints: each output part's marker records the input part (workspace path and sha256),
the Segmentor (`describe()`: kind, config, checkpoint file, input size) and SEGMENT_VERSION. A
rerun reuses an output part only when all of that matches; otherwise it redoes the part (the
Segmentor is deterministic, so an unchanged part comes out byte-identical). Output parts whose
input part is gone are deleted.

Where it runs: `--workers 0` (the default) in this process, on CUDA when present (`--device
auto`), else CPU; `--workers K` (or `--ray-address`) converts parts on K Ray actors, each
holding one model and taking a GPU when the cluster has GPUs; parts are independent, so the
output is the same as in-process. BoxMask needs no model and always runs in this process.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from tqdm import tqdm

from pipelines import raypool, workspace
from pipelines.sam2 import (
    SEGMENT_VERSION,
    Segmentor,
    add_sam2_arguments,
    convert,
    sam2_args_error,
    segmentor_from_args,
)
from schemas import Reject
from schemas.arrow import read_parquet
from sources.roots import Roots


def segment_part(part: Path, dest: Path, root: Roots, target: str, made_from: dict, segmentor: Segmentor) -> dict:
    """Convert one input part into `dest` (its marker records `made_from`); returns the marker."""
    samples = read_parquet(part) if part.is_file() else []
    kept, rejected = [], []
    for sample in samples:
        try:
            kept.append(convert(sample, root, segmentor, target))
        except Reject as err:
            rejected.append(err.to_dict())
        except FileNotFoundError as err:  # a frame the sample names is missing under the media root
            rejected.append({"reason": "media_missing", "locator": sample.id, "detail": str(err)})
    return workspace.write_source_part(dest, kept, rejected, made_from)


def segment_source(out: Path, source: str, segmentor: Segmentor | list, describe: dict | None = None) -> dict:
    """Convert every complete part of `source` on `segmentor` (a Segmentor, or Sam2Worker actors,
    then `describe` is their `describe()`); returns the stats (also written to OUT/stats)."""
    target = workspace.sam2_source(source)
    root = workspace.source_root(out, source)
    inputs = workspace.source_parts(out, source)
    if not inputs:
        raise FileNotFoundError(f"{workspace.unified_dir(out, source)} holds no complete parts: run `pixelrefer ingest --source {source}` first")
    workspace.write_json_atomic(workspace.unified_dir(out, target) / "source.json",
                                {"source": target, **root.to_json(), "adapter_version": SEGMENT_VERSION})
    workspace.remove_parts_except(out, target, {workspace.part_index(p) for p, _ in inputs})
    workspace.remove_dead_temps(workspace.unified_dir(out, target))
    hashes = workspace.FileHashes(out)
    model = describe if describe is not None else segmentor.describe()
    jobs = []
    for part, _ in inputs:
        dest = workspace.part_path(out, target, workspace.part_index(part))
        made_from = {"stage": "segment", "version": SEGMENT_VERSION, "input": hashes.part(out, part), "segmentor": model}
        if (workspace.read_marker(dest) or {}).get("made_from") != made_from:
            jobs.append((dest, (part, dest, root, target, made_from)))
    hashes.save()
    if isinstance(segmentor, list):
        results = raypool.fan_out(segmentor, jobs, len(segmentor), method="segment_part")
    else:
        results = raypool.fan_out(functools.partial(segment_part, segmentor=segmentor), jobs, 0)
    for _ in tqdm(results, total=len(inputs), initial=len(inputs) - len(jobs), desc=f"segment {source}", unit="part"):
        pass
    parts = [workspace.part_path(out, target, workspace.part_index(p)) for p, _ in inputs]
    return workspace.finish_source(out, target, "segment", parts, detail={"from": source, **model}).to_json()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="Unified source to convert (OUT/unified/<source>/).")
    parser.add_argument("--out", required=True, type=Path, help="Workspace folder (the --out of ingest).")
    add_sam2_arguments(parser, required=True)
    raypool.add_ray_arguments(parser, what="Each is a SAM 2 actor converting parts, on a GPU when the cluster has one. ")


def run(args: argparse.Namespace) -> int:
    error = sam2_args_error(args)
    workers = raypool.stage_workers(args.workers, args.ray_address)
    if error:
        print(f"segment: {error}", file=sys.stderr)
        return 2
    segmentor = segmentor_from_args(args)  # SAM 2 builds its model on first use: this costs nothing on Ray
    if segmentor.origin == "sam2_random":
        print("segment: random SAM 2 weights: the masks are meaningless (mask_origin sam2_random)", file=sys.stderr)
    try:
        if not workers or not segmentor.needs_pixels:  # BoxMask needs no model: no actors
            stats = segment_source(args.out, args.source, segmentor)
        else:
            with raypool.ray_session(args.ray_address, workers):
                stats = segment_source(args.out, args.source, segmentor_from_args(args, workers), segmentor.describe())
    except FileNotFoundError as err:
        print(f"segment: {err}", file=sys.stderr)
        return 2
    target = stats["source"]
    print(f"segment: {stats['written']} of {stats['read']} samples written to {workspace.unified_dir(args.out, target)}; "
          f"{stats['rejected']} rejected ({args.out / 'rejects' / (target + '.jsonl')}); stats in {args.out / 'stats' / (target + '.json')}")
    return 0


"""`pixelrefer ingest`: convert native releases into the unified Parquet dataset, in parallel on Ray.

    pixelrefer ingest --source lvis --root /data/lvis --out build
    pixelrefer ingest --source all --root demo --out build        # demo/<source>/ per source
    pixelrefer ingest --source all --roots roots.yaml --out build  # {source: root or {annotations, media}}
    pixelrefer ingest --source lvis --root /data/lvis --out /shared/build --ray-address auto

The adapter splits its release into ordered units (`Adapter.units`); `--units-per-part`
consecutive units make one part, numbered by unit order, so part names never depend on Ray's
scheduling. Each part is one Ray task (`--workers 0`: a loop in this process) that converts its
units, re-validates every sample (one contract check for built-in and entry-point adapters
alike), and writes the part itself with `workspace.write_source_part`:
`part-NNNNN.rejects.jsonl`, then `part-NNNNN.parquet` (temp name + rename; none for a part
without samples, since `datasets` refuses zero-row files), then the `part-NNNNN.done` marker.

Part size: a task receives a unit spec of a few bytes and returns only counts and timing, so
nothing bigger than a few KB crosses Ray's object store whatever the part size (Ray's gRPC
messages are capped at 512 MB, and big objects would spill). The default of one unit per part
keeps a part at the adapter's own unit size (the COCO-style adapters take 1000 images per unit,
i.e. up to ~1000 samples, a few MB of Parquet), which bounds a worker's memory to one part of
samples and the redo after a crash to one part per worker. On a cluster, `--out` and the roots
must be on storage every node sees.

A part's marker records what it was made from (`made_from`): the adapter and its version, the
unit names, a hash of the unit specs, and the size and sha256 of every annotation file its
units read (`Adapter.inputs`; hashes cached by size and mtime in `stats/file-hashes.json`).
A rerun reuses a part only when all of that matches and redoes the rest, printing which parts
it redoes and why; outputs are byte-identical to an uninterrupted run. Timings live only in
`stats/<source>.json` under "timings"; everything else in the outputs is deterministic.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml
from tqdm import tqdm

from pipelines import raypool, workspace
from schemas import Reject, Sample, validate
from sources import registry
from sources.base import ADAPTER_ERROR, Adapter, Unit
from sources.roots import Roots


@dataclass(frozen=True)
class Part:
    """A run of consecutive units written as one Parquet part."""

    index: int
    units: tuple[Unit, ...]

    def made_from(self, adapter: Adapter, roots: Roots, hashes: workspace.FileHashes) -> dict[str, Any]:
        """What a complete part's marker must say for the part to be reused: adapter, units, and
        the identity (size, sha256) of every annotation file the units read."""
        files = sorted({path for unit in self.units for path in adapter.inputs(roots, unit)})
        return {"stage": "ingest", "adapter": adapter.name, "adapter_version": adapter.version,
                "units": [u.name for u in self.units], "specs": workspace.canonical_sha256([u.spec for u in self.units]),
                "inputs": [hashes.identity(path, roots.annotations) for path in files]}


class IngestError(Exception):
    """A problem that stops one source: the message names the file or unit and the fix."""


def plan_parts(units: list[Unit], units_per_part: int) -> list[Part]:
    return [Part(i, tuple(units[s : s + units_per_part])) for i, s in enumerate(range(0, len(units), units_per_part))]


def _outcomes(adapter: Adapter, roots: Roots, part: Part) -> Iterator[Sample | Reject]:
    for unit in part.units:
        for outcome in adapter.convert(roots, unit):
            if not isinstance(outcome, (Sample, Reject)):
                raise TypeError(f"adapter {adapter.name} yielded a {type(outcome).__name__} for unit {unit.name}")
            yield outcome


def convert_part(adapter: Adapter, roots: Roots, out: Path, part: Part, made_from: dict[str, Any]) -> dict[str, Any]:
    """Convert and write one part (runs in a Ray worker); return its counts and seconds."""
    start = time.perf_counter()
    samples, rejects = [], []
    for outcome in _outcomes(adapter, roots, part):
        try:
            if isinstance(outcome, Reject):
                raise outcome
            samples.append(validate(outcome))
        except Reject as reject:
            rejects.append(reject.to_dict())
    marker = workspace.write_source_part(workspace.part_path(out, adapter.name, part.index), samples, rejects, made_from)
    return {"part": part.index, "read": marker["read"], "seconds": round(time.perf_counter() - start, 4)}


def _run(adapter: Adapter, roots: Roots, out: Path, todo: list[tuple[Part, dict]], workers: int, bar: tqdm) -> tuple[list, list]:
    """Run parts with at most `workers` in flight (0: here); return (timings, failures)."""
    jobs = ((part, (adapter, roots, out, part, made_from)) for part, made_from in todo)
    timings, failures, start, read = [], [], time.perf_counter(), 0
    for part, result in raypool.fan_out(convert_part, jobs, workers, keep_failures=True):
        if isinstance(result, raypool.Failure):  # the unit raised, or its worker died
            failures.append(f"part {part.index} (units {part.units[0].name}..{part.units[-1].name}): {result.error!r}")
            continue
        timings.append({**result, "units": [u.name for u in part.units]})
        read += result["read"]
        bar.update(1)
        bar.set_postfix(samples_per_s=f"{read / (time.perf_counter() - start):.0f}")
    return sorted(timings, key=lambda t: t["part"]), failures


def ingest_source(name: str, roots: Roots | Path, out: Path, workers: int, units_per_part: int = 1) -> dict[str, Any]:
    """Ingest one source into `out` (`workers` Ray tasks, 0: in this process); return its stats
    (`workspace.SourceStats`, also written to stats/<name>.json)."""
    try:
        adapter = registry.get(name)
    except KeyError as err:
        raise IngestError(err.args[0]) from None
    roots = Roots.of(roots)
    for folder in roots.declared:
        if not folder.is_dir():
            raise IngestError(f"source {name}: the declared root {folder} is not a folder; fix the path given "
                              "with --root or in the roots file")
    try:
        units = adapter.units(roots)
    except FileNotFoundError as err:
        raise IngestError(f"source {name}: {err}") from None
    except ValueError as err:  # a malformed annotation file: one line naming it
        raise IngestError(f"source {name}: {err}") from None
    parts = plan_parts(units, units_per_part)
    hashes = workspace.FileHashes(out)
    made_from = [part.made_from(adapter, roots, hashes) for part in parts]
    hashes.save()
    workspace.write_json_atomic(workspace.unified_dir(out, name) / "source.json",
                                {"source": name, **roots.to_json(), "adapter_version": adapter.version})
    workspace.remove_parts_except(out, name, {p.index for p in parts})
    workspace.remove_dead_temps(workspace.unified_dir(out, name))
    todo = []
    for part, fingerprint in zip(parts, made_from):
        marker = workspace.read_marker(workspace.part_path(out, name, part.index))
        if marker is None or marker.get("made_from") != fingerprint:
            if marker is not None:  # a finished part made from other inputs: say why it is redone
                print(f"ingest {name}: redoing part {part.index}: {workspace.what_changed(marker.get('made_from') or {}, fingerprint)} changed")
            todo.append((part, fingerprint))
    start = time.perf_counter()
    with tqdm(total=len(parts), initial=len(parts) - len(todo), unit="part", desc=f"ingest {name}") as bar:
        timings, failures = _run(adapter, roots, out, todo, workers, bar)
    paths = [workspace.part_path(out, name, p.index) for p, f in zip(parts, made_from)
             if (workspace.read_marker(workspace.part_path(out, name, p.index)) or {}).get("made_from") == f]
    _check_unique_ids(name, paths)
    seconds = time.perf_counter() - start
    run_read = sum(t["read"] for t in timings)
    stats = workspace.finish_source(
        out, name, "ingest", paths, failed_parts=failures,
        timings={"wall_seconds": round(seconds, 3), "parts_run": len(timings), "parts_reused": len(parts) - len(todo),
                 "samples_per_second": round(run_read / max(seconds, 1e-9), 1), "per_part": timings},
        detail={**roots.to_json(), "adapter_version": adapter.version, "planned_parts": len(parts)})
    if failures:
        raise IngestError(f"source {name}: {len(failures)} part(s) failed, the rest are kept; fix and rerun "
                          "(complete parts are skipped):\n  " + "\n  ".join(failures))
    return stats.to_json()


def _check_unique_ids(name: str, paths: list[Path]) -> None:
    """Sample ids must be unique across a source's parts."""
    seen: dict[str, str] = {}
    for path in paths:
        ids = pq.read_table(path, columns=["id"]).column("id").to_pylist() if path.is_file() else []
        for sample_id in ids:
            if sample_id in seen:
                raise IngestError(f"source {name}: sample id {sample_id} is in {seen[sample_id]} and "
                                  f"{path.name}; the adapter must give unique ids (fix the adapter)")
            seen[sample_id] = path.name


def _roots_entry(entry: Any, base: Path, where: str) -> Roots:
    """One roots-file entry: a folder, or `{annotations: DIR, media: [DIR, ...]}` (relative to `base`)."""
    if isinstance(entry, str):
        return Roots.of(base / entry)
    if isinstance(entry, dict) and isinstance(entry.get("annotations"), str) and set(entry) <= {"annotations", "media"}:
        media = entry.get("media", [])
        media = [media] if isinstance(media, str) else media
        if isinstance(media, list) and all(isinstance(m, str) for m in media):
            return Roots.of(base / entry["annotations"], [base / m for m in media])
    raise IngestError(f"{where}: expected a folder or {{annotations: DIR, media: [DIR, ...]}}, got {str(entry)[:120]}")


def resolve_roots(source: str, root: Path | None, roots_file: Path | None) -> dict[str, Roots]:
    """{source: roots} for `--source NAME|all` with `--root DIR` or `--roots FILE.yaml`."""
    if roots_file is not None:
        if not roots_file.is_file():
            raise IngestError(f"roots file {roots_file} does not exist; give a YAML mapping `source: folder`")
        try:
            mapping = yaml.safe_load(roots_file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise IngestError(f"{roots_file}{line}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
        if not isinstance(mapping, dict):
            raise IngestError(f"{roots_file}: expected a mapping `source: root`")
        roots = {str(k): _roots_entry(v, roots_file.parent, f"{roots_file}: {k}") for k, v in mapping.items()}
        if source != "all":
            if source not in roots:
                raise IngestError(f"{roots_file} has no root for source {source!r}; add `{source}: <dir>`")
            roots = {source: roots[source]}
        return roots
    if root is None:
        raise IngestError("give --root DIR or --roots FILE.yaml")
    if source != "all":
        return {source: Roots.of(root)}
    found = {name: Roots.of(root / name) for name in registry.available() if (root / name).is_dir()}
    for name in sorted(set(registry.available()) - set(found)):
        print(f"ingest: skipping {name}: no folder {root / name}")
    if not found:
        raise IngestError(f"no source folder under {root}; expected {root}/<source>/ (see `pixelrefer demo-data`)")
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="A registered source name (see `pixelrefer sources`), or `all`.")
    parser.add_argument("--root", type=Path, help="The source's release folder; with --source all, a folder holding <source>/ per source.")
    parser.add_argument("--roots", type=Path, help="YAML mapping source -> folder, or source -> {annotations: DIR, media: [DIR, ...]} "
                        "(one COCO folder can serve every COCO-based source; relative paths are relative to this file); replaces --root.")
    parser.add_argument("--out", type=Path, required=True, help="Workspace folder: writes unified/, rejects/ and stats/ under it.")
    raypool.add_ray_arguments(parser, default=None, what="Each converts one part at a time. ")
    parser.add_argument("--units-per-part", type=int, default=1,
                        help="Consecutive adapter units per Parquet part (default 1). Changing it renames parts, so a rerun redoes them.")


def run(args: argparse.Namespace) -> int:
    import ray

    if args.units_per_part < 1:
        print("pixelrefer ingest: --units-per-part must be at least 1", file=sys.stderr)
        return 2
    workers = raypool.stage_workers(args.workers, args.ray_address)
    try:
        roots = resolve_roots(args.source, args.root, args.roots)
        with raypool.maybe_ray(args.ray_address, workers):
            workers = int(ray.cluster_resources().get("CPU", 1)) if workers is None else workers
            for name, source_roots in roots.items():
                stats = ingest_source(name, source_roots, args.out, workers, args.units_per_part)
                print(f"{name}: read {stats['read']}, written {stats['written']}, rejected {stats['rejected']} "
                      f"-> {workspace.unified_dir(args.out, name)}, {args.out / 'rejects' / (name + '.jsonl')}, "
                      f"{args.out / 'stats' / (name + '.json')}")
                if stats["by_reason"].get(ADAPTER_ERROR):
                    print(f"WARNING {name}: {stats['by_reason'][ADAPTER_ERROR]} record(s) failed inside the adapter "
                          f"({ADAPTER_ERROR}: a bug in the adapter, not in the data); see {args.out / 'rejects' / (name + '.jsonl')}",
                          file=sys.stderr)
    except IngestError as err:
        print(f"pixelrefer ingest: {err}", file=sys.stderr)
        return 1
    return 0

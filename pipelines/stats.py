"""`pixelrefer stats OUT`: what the unified dataset holds, per source and task.

    pixelrefer stats build

Prints one row per (source, task) with samples, regions, frames (1 per image, the frame count
per video, 0 for a text-only sample), regions by prompt kind (mask/box/point) and licences, a
total row per source and a grand total; writes the same as `OUT/stats/summary.json`, together
with each source's stage counts (`workspace.SourceStats`: stage, read/written/rejected, by_reason;
ingest, segment and videoqa write the same schema) and the duplicates each mix removed. Reads only the columns it
counts, part by part, so memory stays at one part.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import workspace

COUNTS = ("samples", "regions", "frames", "mask", "box", "point")


def _part_counts(path: Path) -> dict[str, tuple[Counter, set[str]]]:
    """{task: (counts, licences)} of one part."""
    table = pq.read_table(path, columns=["task", "license", "media", "regions"])
    media = table["media"].combine_chunks()
    frames = pc.list_value_length(media.field("frames")).to_pylist()
    num_frames = media.field("num_frames").to_pylist()
    kinds = pc.struct_field(media, "kind").to_pylist()  # None for a text-only sample (null media), unlike .field()
    regions = table["regions"].combine_chunks()
    prompts: list[list[str]] = [[] for _ in range(table.num_rows)]
    for parent, prompt in zip(pc.list_parent_indices(regions).to_pylist(), pc.list_flatten(regions).field("prompt").to_pylist()):
        prompts[parent].append(prompt)
    result: dict[str, tuple[Counter, set[str]]] = {}
    for i, (task, licence) in enumerate(zip(table["task"].to_pylist(), table["license"].to_pylist())):
        counts, licences = result.setdefault(task, (Counter(), set()))
        counts.update(samples=1, regions=len(prompts[i]),
                      frames=0 if kinds[i] is None else 1 if kinds[i] == "image" else (frames[i] or num_frames[i] or 0))
        counts.update(prompts[i])
        licences.add(licence)
    return result


def _row(counts: Counter, licences: set[str]) -> dict[str, Any]:
    return {**{k: counts[k] for k in COUNTS}, "licenses": sorted(licences)}


def summarize(out: Path) -> dict[str, Any]:
    """The summary of every ingested source under `out` (see the module docstring)."""
    sources: dict[str, Any] = {}
    grand, grand_licences = Counter(), set()
    for source in workspace.ingested_sources(out):
        tasks: dict[str, tuple[Counter, set[str]]] = {}
        for part in workspace.complete_parts(out, source):
            for task, (counts, licences) in _part_counts(part).items():
                total, seen = tasks.setdefault(task, (Counter(), set()))
                total.update(counts)
                seen.update(licences)
        source_total, source_licences = Counter(), set()
        for counts, licences in tasks.values():
            source_total.update(counts)
            source_licences.update(licences)
        counts = workspace.read_source_stats(out, source) or {}
        sources[source] = {
            "counts": {k: counts.get(k) for k in ("stage", "read", "written", "rejected", "by_reason")},
            "tasks": {task: _row(*tasks[task]) for task in sorted(tasks)},
            "total": _row(source_total, source_licences),
        }
        grand.update(source_total)
        grand_licences.update(source_licences)
    mixes = {p.stem[4:]: json.loads(p.read_text(encoding="utf-8"))["duplicates_removed"]
             for p in sorted((out / "stats").glob("mix-*.json"))}
    return {"sources": sources, "total": _row(grand, grand_licences), "mix_duplicates_removed": mixes}


def format_table(summary: dict[str, Any]) -> str:
    header = f"{'source':<14} {'task':<18}" + "".join(f"{k:>10}" for k in COUNTS) + "  licences"

    def line(source: str, task: str, row: dict[str, Any]) -> str:
        return f"{source:<14} {task:<18}" + "".join(f"{row[k]:>10}" for k in COUNTS) + "  " + ", ".join(row["licenses"])

    lines = [header]
    for source, info in summary["sources"].items():
        lines += [line(source, task, row) for task, row in info["tasks"].items()]
        lines.append(line(source, "(all)", info["total"]))
    lines.append(line("(all)", "(all)", summary["total"]))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="The workspace folder that `pixelrefer ingest --out` wrote.")


def run(args: argparse.Namespace) -> int:
    if not workspace.ingested_sources(args.out):
        print(f"pixelrefer stats: no ingested source under {args.out / 'unified'}; run `pixelrefer ingest` first",
              file=sys.stderr)
        return 1
    summary = summarize(args.out)
    print(format_table(summary))
    path = args.out / "stats" / "summary.json"
    workspace.write_json_atomic(path, summary)
    print(f"summary written to {path}")
    return 0

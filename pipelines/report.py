"""`pixelrefer report OUT`: a self-contained HTML page (plus its PNGs) describing a build.

    pixelrefer report out            # writes out/report/index.html and out/report/*.png

Sections: samples per source and task, licences (non-commercial ones flagged), rejects by reason
with example locators, histograms (region area, regions per sample, frames per video region,
and from the shards object tokens per sample and SAOT scale factors),
each mixed recipe's requested vs achieved counts per entry (from `stats/mix-<recipe>.json`), and
a gallery of inspected samples. Everything is
computed from the build's own files; charts are inline SVG and images are embedded, so the page
opens anywhere without a server.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import sys
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from pipelines.inspect import inspect, iter_unified
from pipelines.render import pick
from schemas import Sample, masks
from schemas.arrow import read_parquet

NON_COMMERCIAL_MARKERS = ("NC", "NONCOMMERCIAL", "NON-COMMERCIAL", "RESEARCH")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="The build folder (holding unified/, rejects/, mix/, shards/).")
    parser.add_argument("--gallery", type=int, default=2, help="Samples drawn per source in the gallery (default 2).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the gallery pick (default 0).")


def is_non_commercial(licence: str) -> bool:
    upper = licence.upper()
    return any(marker in upper for marker in NON_COMMERCIAL_MARKERS)


def dataset_facts(samples: Iterable[Sample]) -> dict:
    """Counts and distributions of the unified samples (streamed), in plain JSON-able values."""
    per_source_task: Counter = Counter()
    licences: dict[str, set[str]] = defaultdict(set)
    region_area, regions_per_sample, frames_per_video_region = [], [], []
    for s in samples:
        per_source_task[(s.source, s.task)] += 1
        licences[s.license].add(s.source)
        regions_per_sample.append(len(s.regions))
        for region in s.regions:
            if s.media.kind == "video":
                frames_per_video_region.append(len(region.frames))
            first = region.frames[0]
            if first.mask is not None:
                region_area.append(masks.area(first.mask.model_dump()))
            elif first.box is not None:
                x0, y0, x1, y1 = first.box
                region_area.append((x1 - x0) * (y1 - y0))
    return {
        "per_source_task": sorted([src, task, n] for (src, task), n in per_source_task.items()),
        "licences": {lic: sorted(srcs) for lic, srcs in sorted(licences.items())},
        "region_area": region_area,
        "regions_per_sample": regions_per_sample,
        "frames_per_video_region": frames_per_video_region,
    }


def read_rejects(out: Path, examples: int = 3) -> list[tuple[str, str, int, list[str]]]:
    """(source, reason, count, first locators) from rejects/<source>.jsonl."""
    rows = []
    for path in sorted((out / "rejects").glob("*.jsonl")):
        counts: Counter = Counter()
        seen: dict[str, list[str]] = defaultdict(list)
        for line in path.read_text(encoding="utf-8").splitlines():
            reject = json.loads(line)
            counts[reject["reason"]] += 1
            if len(seen[reject["reason"]]) < examples:
                seen[reject["reason"]].append(reject["locator"])
        rows += [(path.stem, reason, n, seen[reason]) for reason, n in sorted(counts.items())]
    return rows


def shard_facts(out: Path) -> dict[str, list[float]]:
    """Object tokens per sample and SAOT scale factors, from the sample JSON of every shard."""
    tokens, scales = [], []
    for tar_path in sorted((out / "shards").glob("*/*/[0-9]*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar:
                if member.name.endswith(".json"):
                    objects = json.load(tar.extractfile(member))["objects"]
                    tokens.append(sum(o["token_count"] for o in objects))
                    scales += [o["scale"] for o in objects]
    return {"tokens_per_sample": tokens, "saot_scale": scales}


def mixture_sections(out: Path) -> list[str]:
    """One table per mixed recipe: per stage and entry, requested vs available vs selected."""
    sections = []
    for path in sorted((out / "stats").glob("mix-*.json")):
        mix = json.loads(path.read_text(encoding="utf-8"))
        rows = [(html.escape(stage), html.escape(r["name"]), html.escape(r["source"]), html.escape(r["status"]),
                 r["requested"], "-" if r["available"] is None else r["available"], r["duplicates"], r["selected"])
                for stage, entries in mix["stages"].items() for r in entries]
        sections.append(f"<h2>Mixture: recipe {html.escape(mix['recipe'])} (requested vs achieved)</h2>"
                        + _table(["stage", "entry", "source", "status", "requested", "available", "duplicates", "selected"], rows))
    return sections


def svg_histogram(values: Sequence[float], title: str, log_x: bool = False, bins: int = 20) -> str:
    """An inline SVG bar chart of `values` (log10 bins when `log_x`)."""
    if not values:
        return f"<figure><figcaption>{html.escape(title)}: no data</figcaption></figure>"
    xs = [math.log10(max(v, 1e-9)) for v in values] if log_x else list(values)
    lo, hi = min(xs), max(xs)
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for x in xs:
        counts[min(bins - 1, int((x - lo) / width))] += 1
    top = max(counts)
    bars = "".join(
        f'<rect x="{30 + i * 14}" y="{130 - 110 * c / top:.1f}" width="12" height="{110 * c / top:.1f}" fill="#3b7dd8">'
        f"<title>{c}</title></rect>"
        for i, c in enumerate(counts)
    )
    fmt = (lambda v: f"{10 ** v:.3g}") if log_x else (lambda v: f"{v:.3g}")
    axis = (f'<text x="30" y="146" font-size="10">{fmt(lo)}</text>'
            f'<text x="{30 + bins * 14}" y="146" font-size="10" text-anchor="end">{fmt(hi)}</text>'
            f'<text x="2" y="22" font-size="10">{top}</text>')
    return (f'<figure><svg width="{60 + bins * 14}" height="150" role="img">{bars}{axis}</svg>'
            f"<figcaption>{html.escape(title)} (n={len(values)})</figcaption></figure>")


def _table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}"><figcaption>{html.escape(path.stem)}</figcaption></figure>'


def build_html(out: Path, facts: dict, rejects: list, gallery: list[Path], extra_sections: Sequence[str] = ()) -> str:
    esc = html.escape
    licence_rows = [
        (esc(lic), esc(", ".join(srcs)), "<b>non-commercial</b>" if is_non_commercial(lic) else "")
        for lic, srcs in facts["licences"].items()
    ]
    reject_rows = [(esc(src), esc(reason), n, esc("; ".join(locs))) for src, reason, n, locs in rejects]
    sections = [
        "<h2>Samples per source and task</h2>" + _table(["source", "task", "samples"], facts["per_source_task"]),
        "<h2>Licences</h2>" + _table(["licence", "sources", ""], licence_rows),
        "<h2>Rejects by reason</h2>" + (_table(["source", "reason", "count", "example locators"], reject_rows)
                                         if reject_rows else "<p>No rejects.</p>"),
        "<h2>Distributions</h2>"
        + svg_histogram(facts["region_area"], "region area in pixels (first frame, log scale)", log_x=True)
        + svg_histogram(facts["regions_per_sample"], "regions per sample")
        + svg_histogram(facts["frames_per_video_region"], "frames per video region")
        + svg_histogram(facts["tokens_per_sample"], "object tokens per sample (shards)")
        + svg_histogram(facts["saot_scale"], "SAOT scale factor per region frame (shards, log scale)", log_x=True),
        *extra_sections,
        "<h2>Gallery</h2>" + "".join(_img(p) for p in gallery),
    ]
    style = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}figure{display:inline-block;margin:8px}"
             "img{max-width:100%;border:1px solid #ddd}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>pixelrefer report: {esc(out.name)}</title>"
            f"<style>{style}</style></head><body><h1>pixelrefer dataset report</h1>"
            f"<p>Build folder: <code>{esc(str(out))}</code></p>{''.join(sections)}</body></html>\n")


def gallery_samples(out: Path, per_source: int, seed: int) -> list[Sample]:
    """A seeded pick of each source's samples from its first part, so memory stays at one part."""
    chosen = []
    for source_dir in sorted((out / "unified").iterdir()):
        first = next(iter(sorted(source_dir.glob("part-*.parquet"))), None)
        if first is not None:
            chosen += pick(read_parquet(first), count=per_source, seed=seed)
    return chosen


def write_report(out: Path, per_source: int = 2, seed: int = 0) -> Path:
    """Compute everything from the build folder and write OUT/report/index.html (+ gallery PNGs)."""
    report_dir = out / "report"
    gallery = inspect(out, gallery_samples(out, per_source, seed), report_dir)
    facts = {**dataset_facts(iter_unified(out)), **shard_facts(out)}
    page = build_html(out, facts, read_rejects(out), gallery, mixture_sections(out))
    path = report_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def run(args: argparse.Namespace) -> int:
    if not (args.out / "unified").is_dir():
        print(f"pixelrefer report: {args.out / 'unified'} does not exist; run `pixelrefer ingest` first", file=sys.stderr)
        return 2
    print(write_report(args.out, args.gallery, args.seed))
    return 0

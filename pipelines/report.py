"""`pixelrefer report OUT`: one self-contained HTML page describing a build, and what reached training.

    pixelrefer report out            # writes out/report/index.html, nothing else

Sections: samples per source and task, licences (non-commercial ones flagged), rejects by reason
with example locators, histograms (region area, regions per sample, frames per video region,
and from the shards object tokens per sample and SAOT scale factors), each mixed recipe's
requested vs achieved counts per entry (from `stats/mix-<recipe>.json`) with the samples of each
entry that reached the shards (the mix file records each sample's entry), the shard rejects by
reason, the mask origins of the regions in the shards (annotation, sam2, box; random-weight
`sam2_random` masks flagged), training (steps, tokens, the samples its loaders skipped and an SVG loss curve per
`train/<stage>/log.jsonl`) and a gallery of rendered samples. Everything is computed from the
build's own files; charts are inline SVG and gallery images are data URIs, so the page is one
file that opens anywhere without a server.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import sys
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.inspect import iter_unified
from pipelines.mix import dash
from pipelines.render import media_frame_loader, pick, render_sample
from pipelines.workspace import source_root, write_text_atomic
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


def shard_facts(out: Path) -> dict:
    """From the sample JSON of every shard: object tokens per sample, SAOT scale factors, and per
    `recipe/stage` the ids of the samples that reached the shards and their regions' mask origins."""
    tokens, scales = [], []
    reached: dict[str, set[str]] = defaultdict(set)
    origins: dict[str, Counter] = defaultdict(Counter)
    for tar_path in sorted((out / "shards").glob("*/*/[0-9]*.tar")):
        stage = f"{tar_path.parent.parent.name}/{tar_path.parent.name}"
        with tarfile.open(tar_path) as tar:
            for member in tar:
                if member.name.endswith(".json"):
                    header = json.load(tar.extractfile(member))
                    tokens.append(sum(o["token_count"] for o in header["objects"]))
                    scales += [o["scale"] for o in header["objects"]]
                    reached[stage].add(header["sample"]["id"])
                    origins[stage].update(r["mask_origin"] for r in header["sample"]["regions"])
    return {"tokens_per_sample": tokens, "saot_scale": scales, "reached": reached, "mask_origins": origins}


def _reached_per_entry(out: Path, recipe: str, stage: str, reached: dict[str, set[str]]) -> Counter | None:
    """Samples per entry of a mixed stage that are in its shards; None when the stage is not sharded."""
    mix_file = out / "mix" / recipe / f"{stage}.parquet"
    if not (out / "shards" / recipe / stage / "index.json").is_file() or not mix_file.is_file():
        return None
    chosen = pq.read_table(mix_file, columns=["id", "entry"]).to_pylist()
    return Counter(row["entry"] for row in chosen if row["id"] in reached[f"{recipe}/{stage}"])


def mixture_sections(out: Path, reached: dict[str, set[str]]) -> list[str]:
    """One table per mixed recipe: per stage and entry, requested vs available vs selected, the
    samples expected in the shards under the box/point policy, and those that reached them."""
    sections = []
    for path in sorted((out / "stats").glob("mix-*.json")):
        mix = json.loads(path.read_text(encoding="utf-8"))
        rows = []
        for stage, entries in mix["stages"].items():
            in_shards = _reached_per_entry(out, mix["recipe"], stage, reached)
            rows += [(html.escape(stage), html.escape(r["name"]), html.escape(r["reads"]), html.escape(r["status"]),
                      dash(r["requested"]), dash(r["available"]), r["duplicates"], r["selected"], dash(r["to_shards"]),
                      "-" if in_shards is None else in_shards[r["name"]]) for r in entries]
        sections.append(f"<h2>Mixture: recipe {html.escape(mix['recipe'])} (requested vs achieved)</h2>"
                        f"<p>Box/point regions: {html.escape(mix['box_regions'] or 'no policy')}.</p>"
                        + _table(["stage", "entry", "source", "status", "requested", "available", "duplicates", "selected",
                                  "expected in shards", "reached shards"], rows))
    return sections


def shard_reject_section(out: Path) -> str:
    """Per sharded recipe stage: records in, samples written, and the rejects by reason."""
    rows = []
    for index_path in sorted((out / "shards").glob("*/*/index.json")):
        index = json.loads(index_path.read_text(encoding="utf-8"))
        stage = html.escape(f"{index_path.parent.parent.name}/{index_path.parent.name}")
        reasons = "; ".join(f"{html.escape(r)} {n}" for r, n in index["rejected"].items()) or "none"
        rows.append((stage, index["records"], index["samples"], reasons))
    return "<h2>Shard rejects by reason</h2>" + (_table(["recipe/stage", "mixed", "in shards", "rejected by reason"], rows)
                                                 if rows else "<p>Nothing sharded yet.</p>")


# why a mask origin deserves a note: the others come from the release (annotation) or a real SAM 2
ORIGIN_NOTES = {"box": "the box rasterised as the mask (--box-regions box-mask)",
                "sam2_random": "<b>random SAM 2 weights: these masks are meaningless</b>"}


def mask_origin_section(origins: dict[str, Counter]) -> str:
    rows = [(html.escape(stage), html.escape(origin), n, ORIGIN_NOTES.get(origin, ""))
            for stage, counts in sorted(origins.items()) for origin, n in sorted(counts.items())]
    return "<h2>Mask origins in the shards</h2>" + (_table(["recipe/stage", "mask origin", "regions", ""], rows)
                                                    if rows else "<p>Nothing sharded yet.</p>")


def svg_curve(values: Sequence[float], title: str) -> str:
    """An inline SVG line chart of `values` against their index (a loss per logged step)."""
    lo, hi = min(values), max(values)
    span, last = (hi - lo) or 1.0, max(len(values) - 1, 1)
    points = " ".join(f"{30 + 300 * i / last:.1f},{130 - 110 * (v - lo) / span:.1f}" for i, v in enumerate(values))
    axis = (f'<text x="2" y="22" font-size="10">{hi:.4g}</text><text x="2" y="134" font-size="10">{lo:.4g}</text>')
    return (f'<figure><svg width="340" height="150" role="img"><polyline points="{points}" fill="none" stroke="#3b7dd8"/>'
            f"{axis}</svg><figcaption>{html.escape(title)}</figcaption></figure>")


def training_section(out: Path) -> str:
    """Per training run (`train/<stage>/log.jsonl`): steps, tokens, first and last loss, the samples
    its loaders skipped by reason (too long, ...: shards that never reached the model), the loss curve."""
    rows, curves = [], []
    for log in sorted((out / "train").glob("*/log.jsonl")):
        steps = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
        if not steps:
            continue
        stage = log.parent.name
        skipped = ", ".join(f"{html.escape(reason)} {n}" for reason, n in steps[-1].get("skipped", {}).items()) or "none"
        rows.append((html.escape(stage), steps[-1]["step"], steps[-1]["tokens"], f"{steps[0]['loss']:.4f}", f"{steps[-1]['loss']:.4f}", skipped))
        curves.append(svg_curve([s["loss"] for s in steps], f"{stage}: loss per logged step"))
    if not rows:
        return "<h2>Training</h2><p>No training run yet.</p>"
    return ("<h2>Training</h2>" + _table(["run", "steps", "tokens", "first loss", "last loss", "skipped samples"], rows) + "".join(curves))


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


def _img(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(name)}"><figcaption>{html.escape(name)}</figcaption></figure>'


def build_html(out: Path, facts: dict, rejects: list, gallery: dict[str, bytes], extra_sections: Sequence[str] = ()) -> str:
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
        "<h2>Gallery</h2>" + "".join(_img(name, png) for name, png in gallery.items()),
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


def render_gallery(out: Path, samples: list[Sample]) -> dict[str, bytes]:
    """Each sample rendered as PNG bytes, by key: embedded in the page, never written beside it."""
    loaders, pngs = {}, {}
    for sample in samples:
        if sample.source not in loaders:
            loaders[sample.source] = media_frame_loader(source_root(out, sample.source))
        buffer = io.BytesIO()
        render_sample(sample, loaders[sample.source]).save(buffer, format="PNG", optimize=False)
        pngs[sample.key] = buffer.getvalue()
    return pngs


def write_report(out: Path, per_source: int = 2, seed: int = 0) -> Path:
    """Compute everything from the build folder and write OUT/report/index.html, the only file."""
    gallery = render_gallery(out, gallery_samples(out, per_source, seed))
    facts = {**dataset_facts(iter_unified(out)), **shard_facts(out)}
    sections = [*mixture_sections(out, facts["reached"]), shard_reject_section(out),
                mask_origin_section(facts["mask_origins"]), training_section(out)]
    page = build_html(out, facts, read_rejects(out), gallery, sections)
    path = out / "report" / "index.html"
    write_text_atomic(path, page)
    return path


def run(args: argparse.Namespace) -> int:
    if not (args.out / "unified").is_dir():
        print(f"pixelrefer report: {args.out / 'unified'} does not exist; run `pixelrefer ingest` first", file=sys.stderr)
        return 2
    print(write_report(args.out, args.gallery, args.seed))
    return 0

"""Mix selection: the row-by-row algorithm the mix used before (kept here as the baseline) vs
`pipelines.mix` (column projection, one read per source, digests only of the rows an entry visits).

    .venv/bin/python tests/benchmarks/bench_mix.py [--rows 482000] [--workspace DIR]

Builds a synthetic workspace once (kept in `--workspace` for reruns): unified parts of six
sources written directly with `schemas.arrow.write_parquet` (1000 rows per part, 1-3 regions with masks of ~320 RLE
characters, two turns per region; VG's regions are boxes), `--rows` rows in all; 1% of LVIS's and
PACO's rows are one shared sample (same content and image), so dedup reads media, as it does for
the stage-1 samples that stage 2 re-samples after another entry took them.
The recipe has 16 entries in two stages, 7 of them over DAM subsets (as the 2.2M recipe does),
one re-sampling stage 1. Both algorithms select every stage in this process, one after the
other, with the box/point policy `box-mask`; their selections and reports are checked equal;
wall and CPU seconds, the ratios and each one's peak RSS above the process's RSS before it
(sampled every 20 ms) are printed.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import sys
import tempfile
import threading
import time
from dataclasses import replace
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipelines import mix, workspace  # noqa: E402
from pipelines.mix import Candidate, ContentHasher, _lost, entry_status, rank, reads  # noqa: E402
from schemas import Media, Provenance, Region, RegionFrame, Sample, Turn  # noqa: E402
from schemas.arrow import canonical_json, write_parquet  # noqa: E402
from schemas.recipe import Entry, Filters, Recipe  # noqa: E402
from sources.fixtures import write_image  # noqa: E402

# source -> (share of the rows, [(subset, task)], prompt)
SOURCES = {
    "lvis": (0.20, [("train", "recognition")], "mask"),
    "paco": (0.10, [("lvis_train", "recognition"), ("ego4d_train", "recognition")], "mask"),
    "vg": (0.22, [("region_descriptions", "phrase_caption")], "box"),
    "osprey": (0.10, [("detail_description", "detailed_caption"), ("conversation", "region_qa")], "mask"),
    "dam": (0.28, [(s, "detailed_caption") for s in ("SAM", "OpenImages", "LVIS", "COCOStuff", "Mapillary", "PACO")], "mask"),
    "mdvp": (0.10, [("detailed_caption:coco", "detailed_caption"), ("QA:coco", "region_qa")], "mask"),
}
RECIPE = {"name": "bench", "seed": 0, "box_regions": "box-mask", "stages": [
    {"name": "stage1", "entries": [
        {"name": "lvis", "source": "lvis", "tasks": ["recognition"], "fraction": 1.0},
        {"name": "paco", "source": "paco", "tasks": ["recognition"], "fraction": 1.0},
        {"name": "vg", "source": "vg", "tasks": ["phrase_caption"], "count": 60000, "filters": {"max_regions": 2}},
        {"name": "osprey-detailed", "source": "osprey", "subsets": ["detail_description"], "fraction": 1.0},
        *({"name": f"dam-{s.lower()}", "source": "dam", "subsets": [s], "tasks": ["detailed_caption"], "fraction": 0.9}
          for s in ("SAM", "OpenImages", "LVIS", "COCOStuff", "Mapillary", "PACO")),
        {"name": "mdvp-captions", "source": "mdvp", "subsets": ["detailed_caption:*"], "count": 20000},
    ]},
    {"name": "stage2", "entries": [
        {"name": "osprey-qa", "source": "osprey", "tasks": ["region_qa"], "fraction": 1.0},
        {"name": "mdvp-qa", "source": "mdvp", "tasks": ["region_qa"], "fraction": 1.0, "filters": {"prompts": ["mask"]}},
        {"name": "dam-all", "source": "dam", "count": 50000, "filters": {"media_kind": "image"}},
        {"name": "vg-single", "source": "vg", "count": 20000, "filters": {"max_regions": 1, "prompts": ["box"]}},
        {"name": "captions-again", "source": "stage1", "tasks": ["detailed_caption"], "count": 25000},
    ]},
]}
PART_ROWS = 1000


def make_sample(source: str, index: int, subset: str, task: str, prompt: str, shared: bool) -> Sample:
    """Row `index` of `source`: a few regions on a 640x480 image, each a distinct mask (or box);
    a `shared` row has the same content (one region, `shared.jpg`) in every source."""
    tag = "shared" if shared else f"{source} {index}"
    regions = []
    for k in range(1 if shared else 1 + index % 3):
        x0, y0 = (index * 7 + k * 53) % 600, (index * 13 + k * 31) % 440
        box = (float(x0), float(y0), float(x0 + 8 + index % 31), float(y0 + 6 + k))
        rle = {"size": [480, 640], "counts": hashlib.sha1(f"{tag}/{k}".encode()).hexdigest() * 8}
        frame = RegionFrame(frame=0, box=box) if prompt == "box" else RegionFrame(frame=0, mask=rle, box=box)
        regions.append(Region(label=f"thing {k}", prompt=prompt, mask_origin=None if prompt == "box" else "annotation",
                              frames=[frame]))
    turns = [Turn(role="user", text=f"Describe <obj{k}>.") if t == 0 else
             Turn(role="assistant", text=f"A {task} answer for {tag}, " + "with some words " * (3 + index % 9))
             for k in range(len(regions)) for t in range(2)]
    return Sample(id=f"{source}/{subset}/{index}", source=source, subset=subset, split="train", license="bench", task=task,
                  media=Media(kind="image", path="shared.jpg" if shared else f"images/{index % 64}.jpg", width=640, height=480),
                  regions=regions, conversation=turns, meta={},
                  provenance=Provenance(file="bench", locator=str(index), adapter=source, adapter_version="1"))


def make_workspace(out: Path, rows: int) -> None:
    """The unified parts of SOURCES (`rows` in all), with markers and source.json."""
    for source, (share, kinds, prompt) in SOURCES.items():
        root = out / "roots" / source
        for name in ("shared", *range(64)):  # the media files a dedup suspect's hash reads
            write_image(root / ("shared.jpg" if name == "shared" else f"images/{name}.jpg"), 16, 16, [(2, 2, 8, 8)], seed=1)
        workspace.write_json_atomic(workspace.unified_dir(out, source) / "source.json",
                                    {"source": source, "root": str(root), "media": [], "adapter_version": "1"})
        count = int(rows * share)
        for part, start in enumerate(range(0, count, PART_ROWS)):
            samples = []
            for index in range(start, min(start + PART_ROWS, count)):
                subset, task = kinds[index % len(kinds)]
                # 1% of PACO's rows copy LVIS's shared row: dedup suspects whose media match
                shared = source in ("lvis", "paco") and index % 100 == 0
                samples.append(make_sample(source, index, subset, task, prompt, shared))
            path = workspace.part_path(out, source, part)
            write_parquet(samples, path)
            workspace.write_json_atomic(workspace.marker_path(path), {"made_from": {}, "samples": len(samples)})


# --- the baseline: the mix's selection before the columnar one (pipelines/mix.py at MIX_VERSION 1) ---
_COLUMNS = ["id", "subset", "split", "task", "media", "regions", "conversation"]


def _keep(row: dict[str, Any], entry: Entry) -> bool:
    f: Filters = entry.filters
    prompts = {r["prompt"] for r in row["regions"]}
    kind = row["media"]["kind"] if row["media"] else "none"
    return ((entry.subsets is None or any(fnmatchcase(row["subset"], pattern) for pattern in entry.subsets))
            and (entry.tasks is None or row["task"] in entry.tasks)
            and (f.splits is None or row["split"] in f.splits)
            and (f.media_kind is None or kind == f.media_kind)
            and (f.prompts is None or prompts <= set(f.prompts))
            and (f.max_regions is None or len(row["regions"]) <= f.max_regions))


def _digest(row: dict[str, Any]) -> str:
    media = row["media"]
    regions = [{k: r[k] for k in ("prompt", "frames")} for r in row["regions"]]
    geometry = media and [media["kind"], media["width"], media["height"], len(media["frames"])]
    key = [geometry, regions, row["conversation"]]
    return hashlib.sha1(canonical_json(key).encode()).hexdigest()


def _gap(row: dict[str, Any]) -> str:
    missing = [f for r in row["regions"] for f in r["frames"] if f["mask"] is None]
    return "point" if any(f["box"] is None for f in missing) else "box" if missing else ""


def baseline_candidates(out: Path, entry: Entry, earlier: dict[str, list[Candidate]], source: str) -> list[Candidate]:
    if entry.source in earlier:
        by_part: dict[str, list[Candidate]] = {}
        for c in earlier[entry.source]:
            by_part.setdefault(c.part, []).append(c)
        kept = []
        for part, chosen in sorted(by_part.items()):
            rows = pq.read_table(out / part, columns=_COLUMNS).take([c.row for c in chosen]).to_pylist()
            kept += [c for c, row in zip(chosen, rows) if _keep(row, entry)]
        return kept
    found = []
    for path in workspace.complete_parts(out, source):
        part = str(path.relative_to(out))
        for i, row in enumerate(pq.read_table(path, columns=_COLUMNS).to_pylist()):
            if _keep(row, entry):
                native = row["id"].split("/", 1)[1]
                found.append(Candidate(row["id"], source, part, i, _digest(row), f"{entry.source}/{native}", _gap(row)))
    return found


class BaselineHasher(ContentHasher):
    """The media hasher as it was: 8 parts' media cached, the whole media struct through `to_pylist`."""

    def __init__(self, out: Path):
        super().__init__(out)
        self.media = functools.lru_cache(maxsize=8)(self._media_column)

    def __call__(self, c: Candidate) -> str:
        media = self.media(c.part)[c.row]
        if media is None:
            return ""
        paths = media["frames"] or [media["path"]]
        return hashlib.sha1("".join(self._file(c.source, p) for p in paths).encode()).hexdigest()

    def _media_column(self, part: str) -> list[dict[str, Any]]:
        return pq.read_table(self.out / part, columns=["media"])["media"].to_pylist()


def baseline_stage(out, recipe, stage, ingested, hasher, earlier, policy):
    selected, by_digest, report = [], {}, []
    for entry in stage.entries:
        status = entry_status(entry, ingested, recipe.stage_names)
        source = reads(entry.source, policy, ingested) if status == "covered" else entry.source
        row = {"name": entry.name, "source": entry.source, "reads": source, "status": status,
               "count": entry.count, "fraction": entry.fraction}
        report.append(row)
        found = baseline_candidates(out, entry, earlier, source)
        pool = sorted((c for c in found if not (policy == "drop" and c.gap)),
                      key=lambda c: rank(recipe.seed, stage.name, entry.name, c.ranked))
        requested = entry.count if entry.count is not None else round(entry.fraction * len(pool))
        taken, duplicates = [], 0
        for c in pool:
            if len(taken) == requested:
                break
            if any(hasher(c) == hasher(o) for o in by_digest.get(c.digest, [])):
                duplicates += 1
                continue
            taken.append(replace(c, entry=entry.name))
            by_digest.setdefault(c.digest, []).append(c)
        selected.extend(taken)
        lost = sum(_lost(c.gap, policy) for c in taken)
        row.update(requested=requested, available=len(found), duplicates=duplicates, selected=len(taken),
                   box_point=sum(bool(c.gap) for c in found), to_shards=len(taken) - lost, unsupported=lost)
    selected.sort(key=lambda c: rank(recipe.seed, stage.name, c.ranked))
    return selected, report


# --- timing and memory ---
def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def measured(fn) -> tuple[Any, float, float, int]:
    """(result, wall seconds, CPU seconds, peak RSS above the RSS at the start) of `fn()`."""
    start_rss, peak, done = rss(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    done.set()
    thread.join()
    return result, seconds, cpu, max(peak[0], rss()) - start_rss


def select(out: Path, recipe: Recipe, stage_fn, hasher: ContentHasher) -> dict[str, tuple[list[Candidate], list[dict]]]:
    ingested = set(workspace.ingested_sources(out))
    chosen = {}
    for stage in recipe.stages:
        chosen[stage.name] = stage_fn(out, recipe, stage, ingested, hasher, {k: v[0] for k, v in chosen.items()}, recipe.box_regions)
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=482_000)
    parser.add_argument("--workspace", type=Path, help="Where to build (or find) the workspace; default: a temp folder.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.workspace or Path(tmp) / "ws"
        if not (out / "unified").is_dir():
            t0 = time.perf_counter()
            make_workspace(out, args.rows)
            print(f"workspace: {args.rows} rows written in {time.perf_counter() - t0:.0f}s to {out}")
        recipe_path = Path(tmp) / "bench.yaml"
        recipe_path.write_text(yaml.safe_dump(RECIPE))
        recipe = mix.load_recipe(str(recipe_path))
        rows = sum(pq.ParquetFile(p).metadata.num_rows for s in SOURCES for p in workspace.complete_parts(out, s))
        # as `mix.mix` calls it: the columns and digests read for one stage serve the next
        columnar = partial(mix.mix_stage, columns={}, digests=mix.Digests(out))
        new, new_s, new_cpu, new_mem = measured(lambda: select(out, recipe, columnar, ContentHasher(out)))
        print(f"columnar: {new_s:.1f}s wall, {new_cpu:.1f} CPU-s; the baseline runs now", flush=True)
        old, old_s, old_cpu, old_mem = measured(lambda: select(out, recipe, baseline_stage, BaselineHasher(out)))
        # the same selection and report (digests are internal: the two algorithms compute them differently)
        assert {k: ([replace(c, digest="") for c in v[0]], v[1]) for k, v in new.items()} == \
               {k: ([replace(c, digest="") for c in v[0]], v[1]) for k, v in old.items()}, "the two algorithms selected differently"
        print(f"{rows} rows, {sum(len(s.entries) for s in recipe.stages)} entries, "
              f"{sum(len(v[0]) for v in new.values())} selected, "
              f"{sum(r['duplicates'] for v in new.values() for r in v[1])} duplicates removed")
        print(f"{'algorithm':<34} {'seconds':>8} {'CPU-s':>8} {'peak RSS added MB':>18}")
        print(f"{'baseline (row by row, per entry)':<34} {old_s:>8.1f} {old_cpu:>8.1f} {old_mem / 2**20:>18.0f}")
        print(f"{'columnar (pipelines.mix)':<34} {new_s:>8.1f} {new_cpu:>8.1f} {new_mem / 2**20:>18.0f}")
        print(f"speed-up: {old_s / new_s:.1f}x wall, {old_cpu / new_cpu:.1f}x CPU (CPU: fairer on a shared machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

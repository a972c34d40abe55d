"""`pixelrefer mix`: pick each stage's samples from the unified dataset by a recipe, deterministically.

    pixelrefer mix --recipe demo --out build                  # a bundled recipe (pipelines/recipes/)
    pixelrefer mix --recipe my.yaml --out build --allow-missing
    pixelrefer mix --recipe pixelrefer-2.2m --out build --dry-run

Per entry, the candidates are the complete parts' samples of its source that match its subsets,
tasks and filters. Each candidate is ranked by a keyed hash of (seed, stage, entry, id), so the
same seed picks the same ids in the same order however the data was ingested; an entry takes
its `count` (or `fraction`) of the best-ranked. A stage is written as
`mix/<recipe>/<stage>.parquet` (columns id, source, part, row), ordered by the hash of
(seed, stage, id), and `stats/mix-<recipe>.json` says per entry what was requested, available,
removed as duplicate and selected.

An entry whose source is an earlier stage of the recipe (`source: stage1`) re-samples that
stage: its candidates are the samples the stage selected (stages are mixed in recipe order) that
match its subsets, tasks and filters, ranked the same way. This is PixelRefer's procedure (paper
section 5.1: stage 2 re-uses 250k stage-1 region captions); which ids it took is not published,
so a re-sample reproduces the procedure, not the paper's ids.

Exact dedup within a stage: a candidate whose media content, regions (masks, boxes, points)
and conversation equal those of a sample already selected in the stage (PACO-LVIS vs LVIS, say)
is dropped and counted. Regions and text are compared by a digest of the row (`_digests`); the
media bytes are hashed only for candidates whose digest matches, so images are read only for suspected
duplicates. A re-sampled sample that an earlier entry of the same stage selected is such a
duplicate too: dropped, counted, and the entry takes its next-ranked candidate instead.

Reads: each source an entry reads is read once per mix, projected to the columns selection
needs (`SourceColumns`: id, subset, split, task, media kind, region prompts and whether each
frame has a mask and a box; no mask RLE or text), and every entry filters those arrays. Digests
are computed part by part when an entry first visits a row of the part (`Digests`), from the
columns they cover only, and kept for later entries and stages.

Nothing stale: `mix/<recipe>/mix.done` records what the mix was made from (`mix_fingerprint`:
the recipe's canonical JSON, the box/point policy, MIX_VERSION, the sha256 of every part of
every source an entry can read) and each stage file's sha256. A rerun reuses the mix only when
all of that matches (`mix_state`), else mixes again; mix files of stages the recipe no longer
has are deleted with their shards.

Box and point regions: shards need a mask on every region frame, so the recipe's `box_regions`
(or `--box-regions`) policy decides what happens to a sample with a region frame that has none.
`sam2` and `box-mask`: an entry reads the version of its source that `pixelrefer segment` wrote
(`vg` -> `vg_sam2`, with SAM 2 or box masks) once it exists, ranked by the ids of the source it was made from,
so it picks the same samples; `drop`: such samples leave the candidates, counted. Per entry the
report gives `box/pt` (candidates with a region frame without a mask), `to-shards` (selected
samples expected to reach the shards under the policy) and `unsupported` (requested samples no
adapter provides, or selected ones the policy cannot mask: all of them without a policy, the
point-only ones under `box-mask`).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError

from pipelines import workspace
from schemas import Reject
from schemas.arrow import SAMPLE_SCHEMA
from schemas.recipe import BoxRegions, Entry, Filters, Recipe, Stage
from sources import registry
from sources.media import read_media_bytes

RECIPES_DIR = Path(__file__).parent / "recipes"
MIX_VERSION = "1"  # bump when the selection rule changes, so that finished mixes are redone
_SELECTING = ("covered", "resample")  # the entry statuses that select samples; the others are shortfalls
# a mix file: MIX_SCHEMA's columns, which every reader takes, plus the entry that chose the sample (for the report)
SELECTION_SCHEMA = workspace.MIX_SCHEMA.append(pa.field("entry", pa.string()))


class MixError(Exception):
    """A recipe that cannot be mixed as asked: the message names the entry and the fix."""


@dataclass(frozen=True)
class Candidate:
    id: str
    source: str
    part: str  # relative to the workspace
    row: int
    digest: str  # regions + conversation + media geometry, without the media bytes
    ranked: str  # the id under the recipe's source name: a segmented source ranks like the one it was made from
    gap: str = ""  # the worst region frame without a mask: "point" (not even a box), "box", or "" (all masked)
    entry: str = ""  # the entry that selected it


def load_recipe(spec: str) -> Recipe:
    """A recipe by path, or by the name of a bundled one (`demo`, `pixelrefer-2.2m`)."""
    path = Path(spec)
    if not path.is_file():
        path = RECIPES_DIR / f"{spec.removesuffix('.yaml')}.yaml"
    if not path.is_file():
        bundled = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
        raise MixError(f"no recipe file {spec!r} and no bundled recipe of that name (bundled: {bundled})")
    try:
        return Recipe.from_yaml(path)
    except ValidationError as err:
        raise MixError(f"{path}: {err}") from None


def rank(*key: Any) -> bytes:
    return hashlib.blake2b("\x1f".join(map(str, key)).encode(), digest_size=16).digest()


@dataclass(frozen=True)
class Coded:
    """A string column as dictionary codes: a filter tests each distinct value once."""

    codes: np.ndarray
    values: list[str | None]

    @classmethod
    def of(cls, column: pa.Array | pa.ChunkedArray) -> Coded:
        encoded = pc.dictionary_encode(column)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        return cls(encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist())

    def matching(self, test: Any) -> np.ndarray:
        return np.isin(self.codes, [i for i, value in enumerate(self.values) if test(value)])


_FRAMES = "regions.list.element.frames.list.element"
# the leaves selection reads: a mask or box is only tested for null, so one small leaf of each stands for it
_SELECTED = ["id", "subset", "split", "task", "media.kind", "regions.list.element.prompt", f"{_FRAMES}.mask.size", f"{_FRAMES}.box"]
# the leaves `_digests` reads
_DIGESTED = ["media.kind", "media.width", "media.height", "media.frames", "regions.list.element.prompt",
             "regions.list.element.frames", "conversation"]
_GAPS = ("", "box", "point")


@functools.cache
def _no_rows() -> pa.Table:
    """An empty table of the projected columns (what a source without parts reads as)."""
    buffer = pa.BufferOutputStream()
    pq.write_table(SAMPLE_SCHEMA.empty_table(), buffer)
    return pq.ParquetFile(pa.BufferReader(buffer.getvalue())).read(columns=_SELECTED)


@dataclass(frozen=True)
class SourceColumns:
    """What selection needs of one source's complete parts, read once (column projection) for all
    the entries that read the source: per row its part, id, subset, split, task, media kind,
    region count, prompts and mask gap (`_GAPS`)."""

    parts: list[str]  # relative to the workspace
    starts: dict[str, int]  # part -> its first row here
    part_of: np.ndarray
    row: np.ndarray
    ids: list[str]
    subset: Coded
    split: Coded
    task: Coded
    kind: Coded  # "none" for text-only samples
    regions: np.ndarray
    prompt: Coded  # per region
    region_row: np.ndarray
    gap: np.ndarray

    @classmethod
    def read(cls, out: Path, source: str) -> SourceColumns:
        paths = workspace.complete_parts(out, source)
        tables = [pq.ParquetFile(path).read(columns=_SELECTED) for path in paths]
        table = pa.concat_tables([_no_rows(), *tables])
        sizes = np.array([t.num_rows for t in tables], dtype=np.int64)
        starts = np.cumsum(sizes) - sizes
        regions = table["regions"].combine_chunks()
        region_row = pc.list_parent_indices(regions).to_numpy()
        flat = pc.list_flatten(regions)
        frames = pc.struct_field(flat, "frames")
        frame_row = region_row[pc.list_parent_indices(frames).to_numpy()]
        frame = pc.list_flatten(frames)
        no_mask = pc.is_null(pc.struct_field(frame, "mask")).to_numpy(zero_copy_only=False)
        no_box = pc.is_null(pc.struct_field(frame, "box")).to_numpy(zero_copy_only=False)
        gap = np.zeros(table.num_rows, dtype=np.int8)
        gap[frame_row[no_mask]] = 1
        gap[frame_row[no_mask & no_box]] = 2
        parts = [str(path.relative_to(out)) for path in paths]
        return cls(parts, dict(zip(parts, starts.tolist())), np.repeat(np.arange(len(parts)), sizes),
                   np.arange(table.num_rows) - np.repeat(starts, sizes),
                   table["id"].to_pylist(), Coded.of(table["subset"]), Coded.of(table["split"]), Coded.of(table["task"]),
                   Coded.of(pc.fill_null(pc.struct_field(table["media"], "kind"), "none")),
                   pc.list_value_length(regions).to_numpy(zero_copy_only=False), Coded.of(pc.struct_field(flat, "prompt")),
                   region_row, gap)

    def keep(self, entry: Entry) -> np.ndarray:
        """Which rows match the entry's subsets, tasks and filters."""
        f: Filters = entry.filters
        keep = np.ones(len(self.ids), dtype=bool)
        if entry.subsets is not None:
            keep &= self.subset.matching(lambda v: any(fnmatchcase(v, pattern) for pattern in entry.subsets))
        if entry.tasks is not None:
            keep &= self.task.matching(lambda v: v in entry.tasks)
        if f.splits is not None:
            keep &= self.split.matching(lambda v: v in f.splits)
        if f.media_kind is not None:
            keep &= self.kind.matching(lambda v: v == f.media_kind)
        if f.prompts is not None:  # every region's prompt allowed
            other = ~self.prompt.matching(lambda v: v in f.prompts)
            keep &= np.bincount(self.region_row[other], minlength=len(self.ids)) == 0
        if f.max_regions is not None:
            keep &= self.regions <= f.max_regions
        return keep


def _text(values: pa.Array) -> pa.Array:
    """Each value as text `<length>:<text>`, a null as `~`: joined with any separator, such
    values never run together, so a joined key is equal only for equal values."""
    text = pc.cast(values, pa.string())
    return pc.fill_null(pc.binary_join_element_wise(pc.cast(pc.utf8_length(text), pa.string()), text, ":"), "~")


def _list_text(values: pa.Array) -> pa.Array:
    """A list column's elements as one `_text` each (list<number> values: their texts joined)."""
    return _text(pc.binary_join(pc.cast(values, pa.list_(pa.string())), ","))


def _grouped(keys: pa.Array, lists: pa.Array) -> pa.Array:
    """Per list of `lists`, the `_text` of its elements' `keys` (the flattened elements, in order) joined."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32())
    return _text(pc.binary_join(pa.ListArray.from_arrays(offsets, keys), ","))


def _digests(table: pa.Table) -> list[str]:
    """Per row of a part's `_DIGESTED` columns, a sha1 of its media geometry (kind, width, height,
    frame count), regions (prompt; per frame its index, mask, box, point) and conversation:
    equal digests make two samples dedup suspects. The key is built by pyarrow kernels, each
    value length-prefixed (`_text`), so equal keys mean equal values; only the sha1 is per row in
    Python (pyarrow's nested `to_pylist` costs ~0.5 ms a row)."""
    media, regions, turns = (table[name].combine_chunks() for name in ("media", "regions", "conversation"))
    field = pc.struct_field
    geometry = pc.if_else(media.is_valid(), pc.binary_join_element_wise(
        *(_text(field(media, f)) for f in ("kind", "width", "height")), _text(pc.list_value_length(field(media, "frames"))), ";"), "~")
    flat = pc.list_flatten(regions)
    frames = field(flat, "frames")
    frame = pc.list_flatten(frames)
    mask = field(frame, "mask")
    mask_key = pc.if_else(mask.is_valid(), pc.binary_join_element_wise(_list_text(field(mask, "size")), _text(field(mask, "counts")), ";"), "~")
    frame_key = pc.binary_join_element_wise(_text(field(frame, "frame")), _text(mask_key), _list_text(field(frame, "box")),
                                            _list_text(field(frame, "point")), ";")
    region_key = pc.binary_join_element_wise(_text(field(flat, "prompt")), _grouped(frame_key, frames), ";")
    turn = pc.list_flatten(turns)
    turn_key = pc.binary_join_element_wise(_text(field(turn, "role")), _text(field(turn, "text")), ";")
    keys = pc.binary_join_element_wise(_text(geometry), _grouped(region_key, regions), _grouped(turn_key, turns), "|")
    return [hashlib.sha1(key.encode()).hexdigest() for key in keys.to_pylist()]


def _lost(gap: str, policy: BoxRegions | None) -> bool:
    """Whether a selected sample with this gap misses the shards: without a policy every unmasked
    one does (a region_without_mask reject); box-mask cannot rasterise a point."""
    return bool(gap) and (policy is None or (policy == "box-mask" and gap == "point"))


def reads(source: str, policy: BoxRegions | None, ingested: set[str]) -> str:
    """The source an entry of `source` reads: under sam2/box-mask, the one `pixelrefer segment` writes
    from it with either segmentor (`vg_sam2`, its regions' mask_origin says which) once it exists."""
    segmented = workspace.sam2_source(source)
    return segmented if policy in ("sam2", "box-mask") and segmented in ingested else source


def candidates(columns: dict[str, SourceColumns], out: Path, entry: Entry, earlier: dict[str, list[Candidate]],
               source: str) -> list[Candidate]:
    """The entry's candidates: the samples of `source` (its source, or what the build segmented from
    it) in part/row order, or for a re-sample the ones the earlier stage `earlier[entry.source]`
    selected, that match its subsets, tasks and filters. `columns`: each source's columns, read
    on first use."""
    def of(name: str) -> SourceColumns:
        if name not in columns:
            columns[name] = SourceColumns.read(out, name)
        return columns[name]

    if entry.source in earlier:
        chosen = earlier[entry.source]
        keep = {name: of(name).keep(entry) for name in sorted({c.source for c in chosen})}
        return [c for c in chosen if keep[c.source][columns[c.source].starts[c.part] + c.row]]
    table = of(source)
    rows = np.flatnonzero(table.keep(entry))
    return [Candidate(sample_id, source, table.parts[part], row, "", f"{entry.source}/{sample_id.split('/', 1)[1]}", _GAPS[gap])
            for sample_id, part, row, gap in zip([table.ids[i] for i in rows.tolist()], table.part_of[rows].tolist(),
                                                 table.row[rows].tolist(), table.gap[rows].tolist())]


class Digests:
    """The digest (`_digests`) of a candidate, computed for all the rows of its part when the mix first visits
    one (reading only the columns the digest covers) and kept for the other entries."""

    def __init__(self, out: Path):
        self.out = out
        self.parts: dict[str, list[str]] = {}

    def __call__(self, c: Candidate) -> str:
        if c.part not in self.parts:
            self.parts[c.part] = _digests(pq.ParquetFile(self.out / c.part).read(columns=_DIGESTED))
        return self.parts[c.part][c.row]


class ContentHasher:
    """sha1 of a candidate's media bytes (every frame for frame folders), cached per file.

    Called only for candidates whose digest matches a selected sample's, so it reads the media
    paths of their parts (kept: suspects come in rank order, from any part) instead of every
    candidate carrying its frame list.
    """

    def __init__(self, out: Path):
        self.out = out
        self.files: dict[tuple[str, str], str] = {}
        self.media = functools.cache(self._media_column)

    def __call__(self, c: Candidate) -> str:
        paths = self.media(c.part)[c.row]
        if paths is None:  # text-only: equal digests already mean equal content
            return ""
        return hashlib.sha1("".join(self._file(c.source, p) for p in paths).encode()).hexdigest()

    def _media_column(self, part: str) -> list[list[str] | None]:
        """Per row the media files: its frames, else its path (None without media); flat leaves
        only (pyarrow's nested `to_pylist` is slow)."""
        media = pq.ParquetFile(self.out / part).read(columns=["media.path", "media.frames"])["media"].combine_chunks()
        return [(frames or [path]) if valid else None for valid, path, frames in zip(
            media.is_valid().to_pylist(), pc.struct_field(media, "path").to_pylist(), pc.struct_field(media, "frames").to_pylist())]

    def _file(self, source: str, relative: str) -> str:
        key = (source, relative)
        if key not in self.files:
            try:
                data = read_media_bytes(workspace.source_root(self.out, source), relative)
            except (FileNotFoundError, Reject) as err:
                raise MixError(f"cannot compare media for dedup: {err}; restore the file or re-ingest {source}") from None
            self.files[key] = hashlib.sha1(data).hexdigest()
        return self.files[key]


def entry_status(entry: Entry, ingested: set[str], stages: set[str]) -> str:
    if entry.source in stages:  # the recipe checks that it is an earlier stage
        return "resample"
    if entry.source in ingested:  # also the sources videoqa and segment write, which have no adapter
        return "covered"
    # a source videoqa writes from a registered one is there once videoqa ran (the build runs it before the mix)
    written = {workspace.videoqa_source(s) for s in registry.available()}
    return "not-ingested" if entry.source in registry.available() or entry.source in written else "no-adapter"


def mix_stage(out: Path, recipe: Recipe, stage: Stage, ingested: set[str], hasher: ContentHasher,
              earlier: dict[str, list[Candidate]], policy: BoxRegions | None = None,
              columns: dict[str, SourceColumns] | None = None, digests: Digests | None = None) -> tuple[list[Candidate], list[dict]]:
    """The stage's selection in output order, and one report row per entry; `earlier`: the selections
    of the stages before it, by name; `policy`: what becomes of box/point regions (module doc);
    `columns` and `digests`: what earlier stages read, shared so that each source is read once."""
    columns = {} if columns is None else columns
    digests = digests or Digests(out)
    selected: list[Candidate] = []
    by_digest: dict[str, list[Candidate]] = {}
    report = []
    for entry in stage.entries:
        status = entry_status(entry, ingested, recipe.stage_names)
        source = reads(entry.source, policy, ingested) if status == "covered" else entry.source
        row: dict[str, Any] = {"name": entry.name, "source": entry.source, "reads": source, "status": status,
                               "count": entry.count, "fraction": entry.fraction}
        report.append(row)
        if status not in _SELECTING:
            # what a source not ingested holds is unknown; one without an adapter supports none of it
            row.update(requested=entry.count, available=None, duplicates=0, selected=0, box_point=None, to_shards=None,
                       unsupported=entry.count if status == "no-adapter" else None)
            continue
        found = candidates(columns, out, entry, earlier, source)
        pool = sorted((c for c in found if not (policy == "drop" and c.gap)),
                      key=lambda c: rank(recipe.seed, stage.name, entry.name, c.ranked))
        requested = entry.count if entry.count is not None else round(entry.fraction * len(pool))
        taken, duplicates = [], 0
        for c in pool:
            if len(taken) == requested:
                break
            digest = digests(c)
            if any(hasher(c) == hasher(o) for o in by_digest.get(digest, [])):
                duplicates += 1
                continue
            taken.append(replace(c, digest=digest, entry=entry.name))
            by_digest.setdefault(digest, []).append(c)
        selected.extend(taken)
        lost = sum(_lost(c.gap, policy) for c in taken)
        row.update(requested=requested, available=len(found), duplicates=duplicates, selected=len(taken),
                   box_point=sum(bool(c.gap) for c in found), to_shards=len(taken) - lost, unsupported=lost)
    selected.sort(key=lambda c: rank(recipe.seed, stage.name, c.ranked))
    return selected, report


def write_selection(path: Path, selection: list[Candidate]) -> None:
    """The stage's mix file, written to a temp name and renamed."""
    table = pa.Table.from_pylist([{"id": c.id, "source": c.source, "part": c.part, "row": c.row, "entry": c.entry}
                                  for c in selection], schema=SELECTION_SCHEMA)
    with workspace.atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=False)


def _check_missing(recipe: Recipe, ingested: set[str]) -> None:
    status = functools.partial(entry_status, ingested=ingested, stages=recipe.stage_names)
    missing = [f"entry {e.name} of stage {stage.name} needs source {e.source} ({status(e)})"
               for stage in recipe.stages for e in stage.entries if status(e) in ("no-adapter", "not-ingested")]
    if missing:
        raise MixError("recipe " + recipe.name + ":\n  " + "\n  ".join(missing) +
                       "\nrun `pixelrefer ingest --source NAME ...` for them (`videoqa`/`segment` for the sources "
                       "they write), or pass --allow-missing")


POLICY_EFFECT = {
    None: "no policy: shards reject the selected ones (region_without_mask); set one with --box-regions "
          "sam2|box-mask|drop or the recipe's box_regions",
    "sam2": "the segment stage masks them with SAM 2",
    "box-mask": "the segment stage rasterises their boxes (mask_origin box); point-only ones are rejected",
    "drop": "dropped from the candidates",
}


def dash(value: int | None) -> str | int:
    """A count, or "-" when it is unknown (an entry whose source is not there)."""
    return "-" if value is None else value


def format_report(recipe: Recipe, report: dict[str, list[dict]], policy: BoxRegions | None = None) -> str:
    """The per-entry table (the source column names what an entry reads: `vg_sam2` once segmented)
    and the share of the requested samples in each status."""
    lines = [f"{'stage':<10} {'entry':<24} {'source':<18} {'status':<18} {'requested':>10} {'available':>10} "
             f"{'dupes':>7} {'selected':>9} {'box/pt':>7} {'to-shards':>9} {'unsupported':>11}"]
    for stage, rows in report.items():
        for r in rows:
            requested = r["requested"] if r["requested"] is not None else f"{r['fraction']:.0%}"
            lines.append(f"{stage:<10} {r['name']:<24} {r['reads']:<18} {r['status']:<18} {requested:>10} "
                         f"{dash(r['available']):>10} {r['duplicates']:>7} {r['selected']:>9} {dash(r['box_point']):>7} "
                         f"{dash(r['to_shards']):>9} {dash(r['unsupported']):>11}")
    published = sum(r["count"] or 0 for rows in report.values() for r in rows)
    by_status = {s: sum(r["count"] or 0 for rows in report.values() for r in rows if r["status"] == s)
                 for s in (*_SELECTING, "not-ingested", "no-adapter")}
    if published:
        lines.append(f"of {published:,} samples requested by count: " +
                     ", ".join(f"{s} {n:,} ({n / published:.1%})" for s, n in by_status.items()))
    boxed = [r for rows in report.values() for r in rows if r["box_point"]]
    if boxed:
        lines.append(f"box/point regions without a mask in {sum(r['box_point'] for r in boxed):,} candidates of "
                     f"{', '.join(r['name'] for r in boxed)}; {POLICY_EFFECT[policy]}")
    return "\n".join(lines)


def mix_marker(out: Path, recipe: Recipe) -> Path:
    """The mix's completion marker: what it was made from and each stage file's sha256."""
    return out / "mix" / recipe.name / "mix.done"


def mix_fingerprint(out: Path, recipe: Recipe, policy: BoxRegions | None) -> dict[str, Any]:
    """What a mix is made from: the recipe (canonical JSON), the box/point policy, MIX_VERSION and
    the sha256 of every complete part of every source an entry can read (its source and the one
    `segment` derives from it)."""
    ingested = set(workspace.ingested_sources(out))
    named = {e.source for stage in recipe.stages for e in stage.entries if e.source not in recipe.stage_names}
    sources = sorted(s for source in named for s in (source, workspace.sam2_source(source)) if s in ingested)
    hashes = workspace.FileHashes(out)
    parts = [hashes.part(out, path) for source in sources for path, _ in workspace.source_parts(out, source)]
    hashes.save()
    return {"stage": "mix", "version": MIX_VERSION, "recipe": workspace.canonical_sha256(recipe.model_dump(mode="json")),
            "box_regions": policy, "parts": parts}


def mix_state(out: Path, recipe: Recipe, box_regions: BoxRegions | None = None) -> str:
    """"" when the recipe's mix files are complete and made from the current inputs, else why not
    (the fingerprint keys that changed, or a missing file): for `build --plan` and for `mix` itself."""
    marker = mix_marker(out, recipe)
    if not marker.is_file():
        return "not mixed yet"
    recorded = json.loads(marker.read_text(encoding="utf-8"))
    changed = workspace.what_changed(recorded["made_from"], mix_fingerprint(out, recipe, box_regions or recipe.box_regions))
    if changed:
        return f"{changed} changed"
    for stage in recipe.stages:
        path = out / "mix" / recipe.name / f"{stage.name}.parquet"
        if not path.is_file() or workspace.sha256_file(path) != recorded["stages"].get(stage.name):
            return f"{path} is missing or was modified"
    return ""


def _remove_dropped_stages(out: Path, recipe: Recipe) -> None:
    """Delete the mix files (and their shards) of stages the recipe no longer has: nothing stale stays."""
    for path in sorted((out / "mix" / recipe.name).glob("*.parquet")):
        if path.stem not in recipe.stage_names:
            path.unlink()
            shards = out / "shards" / recipe.name / path.stem
            if shards.is_dir():
                shutil.rmtree(shards)
            print(f"mix {recipe.name}: stage {path.stem} is no longer in the recipe: removed {path} and {shards}")


def mix(recipe: Recipe, out: Path, dry_run: bool = False, allow_missing: bool = False,
        box_regions: BoxRegions | None = None) -> dict[str, Any]:
    """Select every stage; write the mix files and stats unless `dry_run`; return the stats.
    `box_regions` overrides the recipe's policy for box/point regions."""
    policy = box_regions or recipe.box_regions
    ingested = set(workspace.ingested_sources(out))
    clash = sorted(recipe.stage_names & (ingested | set(registry.available())))
    if clash:  # `source: NAME` would re-sample the stage and silently ignore the source
        raise MixError(f"recipe {recipe.name}: stages {clash} are named like sources; rename them")
    if not (dry_run or allow_missing):
        _check_missing(recipe, ingested)
    stats_file = out / "stats" / f"mix-{recipe.name}.json"
    if not dry_run and not mix_state(out, recipe, policy) and stats_file.is_file():
        print(f"mix {recipe.name}: complete, made from the same recipe and parts: reused ({mix_marker(out, recipe)})")
        return json.loads(stats_file.read_text(encoding="utf-8"))
    hasher, columns, digests = ContentHasher(out), {}, Digests(out)
    selections, report = {}, {}
    for stage in recipe.stages:  # in recipe order, so that a re-sample finds its earlier stage's selection
        selections[stage.name], report[stage.name] = mix_stage(out, recipe, stage, ingested, hasher, selections, policy,
                                                               columns, digests)
    stats = {"recipe": recipe.name, "seed": recipe.seed, "box_regions": policy, "stages": report,
             "duplicates_removed": sum(r["duplicates"] for rows in report.values() for r in rows)}
    if not dry_run:
        mix_marker(out, recipe).unlink(missing_ok=True)  # incomplete until every file is written
        _remove_dropped_stages(out, recipe)
        for stage, selection in selections.items():
            write_selection(out / "mix" / recipe.name / f"{stage}.parquet", selection)
        workspace.write_json_atomic(stats_file, stats)
        workspace.write_json_atomic(mix_marker(out, recipe), {
            "made_from": mix_fingerprint(out, recipe, policy),
            "stages": {stage: workspace.sha256_file(out / "mix" / recipe.name / f"{stage}.parquet") for stage in selections}})
    return stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", required=True, help="A recipe YAML path, or a bundled recipe name: "
                        + ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))) + ".")
    parser.add_argument("--out", type=Path, required=True, help="The workspace that `pixelrefer ingest --out` wrote; "
                        "writes mix/<recipe>/<stage>.parquet and stats/mix-<recipe>.json under it.")
    parser.add_argument("--dry-run", action="store_true", help="Print the plan (status, requested, available per entry) and write nothing.")
    parser.add_argument("--allow-missing", action="store_true",
                        help="Mix what is there when an entry's source has no adapter or is not ingested; the report shows the shortfall.")
    parser.add_argument("--box-regions", choices=get_args(BoxRegions),
                        help="Policy for box/point regions (default: the recipe's box_regions): read the sources `segment` "
                             "masked with SAM 2 or with the box (`vg` -> vg_sam2), or drop those samples.")


def run(args: argparse.Namespace) -> int:
    try:
        recipe = load_recipe(args.recipe)
        stats = mix(recipe, args.out, args.dry_run, args.allow_missing, args.box_regions)
    except MixError as err:
        print(f"pixelrefer mix: {err}", file=sys.stderr)
        return 1
    print(format_report(recipe, stats["stages"], stats["box_regions"]))
    short = [r["name"] for rows in stats["stages"].values() for r in rows
             if r["status"] in _SELECTING and r["selected"] < r["requested"]]
    if short:
        print(f"fewer samples than requested for: {', '.join(short)}")
    if args.dry_run:
        print("dry run: nothing written")
    else:
        print(f"{stats['duplicates_removed']} exact duplicates removed; mix files in {args.out / 'mix' / recipe.name}, "
              f"report in {args.out / 'stats' / ('mix-' + recipe.name + '.json')}")
    return 0

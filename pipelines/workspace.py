"""The workspace layout of a build (DESIGN.md section 4) and its atomic, resumable part writer.

    <out>/unified/<source>/part-NNNNN.parquet    samples (schemas.arrow.SAMPLE_SCHEMA)
    <out>/unified/<source>/part-NNNNN.rejects.jsonl  the part's rejects, written before the part
    <out>/unified/<source>/part-NNNNN.done       completion marker, written last: counts and `made_from` (the fingerprint)
    <out>/unified/<source>/source.json           {source, root, media, adapter_version}: the declared roots media paths resolve against
    <out>/rejects/<source>.jsonl                 {reason, locator, detail}
    <out>/stats/<source>.json                    `SourceStats` of ingest, segment and videoqa alike
    <out>/stats/file-hashes.json                 sha256 cache of input and part files, keyed by (path, size, mtime_ns)
    <out>/stats/summary.json                     `pixelrefer stats`: per source and task
    <out>/stats/mix-<recipe>.json                requested/available/selected per entry, duplicates removed
    <out>/mix/<recipe>/<stage>.parquet           chosen samples: columns id, source, part, row
    <out>/mix/<recipe>/mix.done                  the mix's marker: what it was made from, each stage file's sha256
    <out>/videoqa/...                            engine outputs, request cache, failed_requests.jsonl
    <out>/shards/<recipe>/<stage>/RRRRRRRRR.tar  WebDataset shards + RRRRRRRRR_stats.json per row block + index.json + config.json

Every stage writes a unit to a temporary name (`atomic_path`: unique per writer), renames it,
then writes its marker. The marker's `made_from` records what the unit was made from (input
files' size and sha256, upstream parts' sha256, parameters, code version); a rerun reuses a unit
only when its recorded `made_from` equals the one the rerun computes (DESIGN.md section 7).

Sources that stages derive from an ingested one are named by one rule each: `sam2_source`
(`<source>_sam2`, written by `segment`) and `videoqa_source` (`videoqa_<source>`).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import Sample
from schemas.arrow import SAMPLE_SCHEMA, from_row, write_parquet
from sources.roots import Roots

MIX_SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("part", pa.string()), ("row", pa.int64())])


def sam2_source(source: str) -> str:
    """The source `segment` writes from `source`."""
    return f"{source}_sam2"


def videoqa_source(source: str) -> str:
    """The source `videoqa` writes from `source`."""
    return f"videoqa_{source}"


def unified_dir(out: Path, source: str) -> Path:
    return out / "unified" / source


def part_path(out: Path, source: str, index: int) -> Path:
    return unified_dir(out, source) / f"part-{index:05d}.parquet"


def marker_path(data_path: Path) -> Path:
    """The completion marker of a part or shard: same stem, `.done` suffix."""
    return data_path.with_suffix(".done")


def temp_path(path: Path) -> Path:
    """A hidden temporary name beside `path`, unique per writer (pid and a random suffix)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def remove_dead_temps(folder: Path) -> None:
    """Delete temporary files in `folder` whose writer process is gone (a run killed mid-write);
    a live writer's files, another run's included, are left alone."""
    for tmp in folder.glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 3)[-3]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto it when the block succeeds, removed if it fails.

    The temporary name is unique per writer (pid and a random suffix), so two runs writing into
    one workspace never share a temporary file; the rename is atomic (same folder).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text to a temp name and rename it, so readers never see half a file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, value: Any) -> None:
    """Deterministic JSON (sorted keys, indent 1), written atomically."""
    write_text_atomic(path, json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False) + "\n")


def write_part(path: Path, samples: Iterable[Sample], marker: dict[str, Any]) -> None:
    """Write a Parquet part atomically, then its marker (so a crash never leaves a 'complete' half part)."""
    with atomic_path(path) as tmp:
        write_parquet(samples, tmp)
    write_json_atomic(marker_path(path), marker)


def rejects_sidecar(part: Path) -> Path:
    """The rejects of one part, `{reason, locator, detail}` per line, written before its marker."""
    return part.with_suffix(".rejects.jsonl")


def write_lines(path: Path, rows: Iterable[dict]) -> None:
    """JSON lines (sorted keys), written atomically."""
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows))


def write_source_part(path: Path, samples: list[Sample], rejects: list[dict], made_from: dict[str, Any],
                      written: int | None = None) -> dict[str, Any]:
    """The one writer of a source's part (ingest, segment, videoqa): the rejects sidecar, the Parquet
    file (none for a part without samples: `datasets` refuses zero-row files), the marker last.

    The marker counts records: `written` of them made the samples (default: one sample each;
    videoqa makes several per record), the rejects the rest. Returns the marker.
    """
    marker_path(path).unlink(missing_ok=True)  # a redone part is incomplete until its new marker
    write_lines(rejects_sidecar(path), rejects)
    written = len(samples) if written is None else written
    marker = {"made_from": made_from, "read": written + len(rejects), "written": written, "rejected": len(rejects),
              "by_reason": dict(sorted(Counter(r["reason"] for r in rejects).items())), "samples": len(samples)}
    if samples:
        write_part(path, samples, marker)
    else:
        path.unlink(missing_ok=True)
        write_json_atomic(marker_path(path), marker)
    return marker


def read_marker(path: Path) -> dict[str, Any] | None:
    """The marker of a complete part (its Parquet file present unless it wrote no sample), else None."""
    done = marker_path(path)
    if not done.is_file():
        return None
    marker = json.loads(done.read_text(encoding="utf-8"))
    return marker if path.is_file() or marker.get("samples") == 0 else None


def part_index(path: Path) -> int:
    return int(path.name[5:10])


def source_parts(out: Path, source: str) -> list[tuple[Path, dict[str, Any]]]:
    """(part, marker) of every complete part of `source`, empty ones included, in part order:
    the one listing every stage reads its input parts through."""
    names = {p.with_suffix(".parquet") for p in unified_dir(out, source).glob("part-*.done")}
    return [(p, m) for p in sorted(names) if (m := read_marker(p)) is not None]


def complete_parts(out: Path, source: str) -> list[Path]:
    """The complete parts of `source` that hold samples, in part order."""
    return [p for p, m in source_parts(out, source) if p.is_file()]


def remove_parts_except(out: Path, source: str, keep: set[int]) -> None:
    """Delete every part file of `source` whose index is not in `keep` (an input part that is gone,
    or an earlier plan's extra parts), so no stale part outlives its input."""
    for path in unified_dir(out, source).glob("part-*"):
        if part_index(path) not in keep:
            path.unlink()


@dataclass
class SourceStats:
    """`stats/<source>.json`: one schema for every stage that writes a source (ingest, segment, videoqa).

    A record is what the stage takes in: a native record (ingest), an input sample (segment), an
    input sample x branch (videoqa); each is written or rejected, so read = written + rejected.
    `samples` counts the samples in the parts (videoqa writes several per record).
    """

    source: str
    stage: str
    read: int = 0
    written: int = 0
    rejected: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    parts: int = 0
    timings: dict[str, Any] = field(default_factory=dict)
    failed_parts: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)  # stage-specific: adapter version, backend, ...

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def finish_source(out: Path, source: str, stage: str, parts: list[Path], **extra: Any) -> SourceStats:
    """Merge the complete parts' counts and rejects (in part order) into `rejects/<source>.jsonl` and
    `stats/<source>.json`; `extra` fills SourceStats' optional fields. Parts without a marker
    (failed) are left out of the counts."""
    stats, reasons, rejects = SourceStats(source, stage, **extra), Counter(), []
    for path in parts:
        marker = read_marker(path)
        if marker is None:
            continue
        stats.parts += 1
        stats.read += marker["read"]
        stats.written += marker["written"]
        stats.samples += marker["samples"]
        reasons.update(marker["by_reason"])
        rejects.append(rejects_sidecar(path).read_text(encoding="utf-8"))
    stats.rejected, stats.by_reason = sum(reasons.values()), dict(sorted(reasons.items()))
    write_text_atomic(out / "rejects" / f"{source}.jsonl", "".join(rejects))
    write_json_atomic(out / "stats" / f"{source}.json", stats.to_json())
    return stats


def read_source_stats(out: Path, source: str) -> dict[str, Any] | None:
    """`stats/<source>.json` (SourceStats as JSON), or None when the stage has not finished once."""
    path = out / "stats" / f"{source}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_sha256(value: Any) -> str:
    """sha256 of a JSON value in canonical form (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def what_changed(recorded: dict[str, Any] | None, current: dict[str, Any]) -> str:
    """The fingerprint keys whose values differ (files named where the value is a list of
    file identities), for messages; "" when nothing changed."""
    if recorded is None:
        return "not made yet"
    changed = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        if old == new:
            continue
        if isinstance(old, list) and isinstance(new, list) and all(isinstance(v, dict) for v in old + new):
            names = sorted({str(v.get("path", v.get("part"))) for v in old if v not in new}
                           | {str(v.get("path", v.get("part"))) for v in new if v not in old})
            changed.append(f"{key} ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
        else:
            changed.append(key)
    return ", ".join(changed)


class FileHashes:
    """sha256 of files, cached in `<out>/stats/file-hashes.json` by (path, size, mtime_ns), so a
    rerun re-reads only files whose size or mtime moved. The cache only saves work: a touched
    file is hashed again and, if its bytes did not change, fingerprints still match."""

    def __init__(self, out: Path):
        self.path = out / "stats" / "file-hashes.json"
        self.cache: dict[str, list] = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
        self.changed = False

    def sha256(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        if self.cache.get(key, [None, None, None])[:2] != [st.st_size, st.st_mtime_ns]:
            self.cache[key] = [st.st_size, st.st_mtime_ns, sha256_file(path)]
            self.changed = True
        return self.cache[key][2]

    def identity(self, path: Path, relative_to: Path) -> dict[str, Any]:
        """What a marker records of an input file: its path (relative), size and sha256 (both
        None for a missing file: the unit that reads it fails and names it)."""
        name = path.relative_to(relative_to).as_posix() if path.is_relative_to(relative_to) else str(path)
        if not path.is_file():
            return {"path": name, "size": None, "sha256": None}
        return {"path": name, "size": path.stat().st_size, "sha256": self.sha256(path)}

    def part(self, out: Path, path: Path) -> dict[str, Any]:
        """The identity of an upstream part: its workspace-relative name and sha256 (None: no samples)."""
        return {"part": path.relative_to(out).as_posix(), "sha256": self.sha256(path) if path.is_file() else None}

    def save(self) -> None:
        if self.changed:
            write_json_atomic(self.path, self.cache)
            self.changed = False


def changed_inputs(out: Path, source: str) -> list[str]:
    """The annotation files recorded by `source`'s ingested parts whose bytes no longer match
    (a plan-level check: it plans no units, so a file the release gained is not seen here)."""
    roots, hashes, changed = source_root(out, source), FileHashes(out), set()
    for _, marker in source_parts(out, source):
        for recorded in (marker.get("made_from") or {}).get("inputs", []):
            path = roots.annotations / recorded["path"]  # absolute recorded paths stay absolute
            if hashes.identity(path, roots.annotations) != recorded:
                changed.add(recorded["path"])
    hashes.save()
    return sorted(changed)


def source_root(out: Path, source: str) -> Roots:
    """The declared roots that `source`'s media paths resolve against (recorded by ingest)."""
    info = unified_dir(out, source) / "source.json"
    if not info.is_file():
        raise FileNotFoundError(f"{info} is missing: run `pixelrefer ingest --source {source}` first")
    return Roots.from_json(json.loads(info.read_text(encoding="utf-8")))


def ingested_sources(out: Path) -> list[str]:
    """Sources with a `source.json` under `<out>/unified`, sorted."""
    return sorted(p.parent.name for p in (out / "unified").glob("*/source.json"))


def iter_mixed_samples(out: Path, mix_file: Path, start: int = 0, stop: int | None = None,
                       block_rows: int = 16384) -> Iterator[tuple[Sample, Roots]]:
    """The samples of mix rows `[start, stop)` (default: all), in mix order, each with its source's
    declared roots.

    A mix is in shuffled order, so rows are fetched a block at a time: each part a block needs
    is read once and only its chosen rows are kept. Memory is one block of samples plus one
    part, whatever the size of the mix; each part is read once per block that uses it.
    """
    table = pq.read_table(mix_file, schema=MIX_SCHEMA)
    mix = table.slice(start, (table.num_rows if stop is None else stop) - start).to_pylist()
    roots = {source: source_root(out, source) for source in sorted({m["source"] for m in mix})}
    for first in range(0, len(mix), block_rows):
        block = mix[first : first + block_rows]
        by_part: dict[str, set[int]] = {}
        for m in block:
            by_part.setdefault(m["part"], set()).add(m["row"])
        rows = {}
        for part in sorted(by_part):
            wanted = sorted(by_part[part])
            table = pq.read_table(out / part, schema=SAMPLE_SCHEMA)
            if wanted[-1] >= table.num_rows:
                raise ValueError(f"{mix_file} names row {wanted[-1]} of {part}, which has {table.num_rows} rows; "
                                 "the unified data changed after mixing: rerun `pixelrefer mix`")
            rows.update(((part, i), r) for i, r in zip(wanted, table.take(wanted).to_pylist()))
        for m in block:
            sample = from_row(rows[(m["part"], m["row"])])
            if sample.id != m["id"]:
                raise ValueError(f"{mix_file}: row {m['row']} of {m['part']} is {sample.id}, expected {m['id']}; "
                                 "the unified data changed after mixing: rerun `pixelrefer mix`")
            yield sample, roots[m["source"]]

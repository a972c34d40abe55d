"""The workspace layout of a build (DESIGN.md section 4) and its atomic, resumable part writer.

    <out>/unified/<source>/part-NNNNN.parquet    samples (schemas.arrow.SAMPLE_SCHEMA)
    <out>/unified/<source>/part-NNNNN.rejects.jsonl  the part's rejects, written before the part
    <out>/unified/<source>/part-NNNNN.done       completion marker (JSON counts), written last
    <out>/unified/<source>/source.json           {source, root, media, adapter_version}: the declared roots media paths resolve against
    <out>/rejects/<source>.jsonl                 {reason, locator, detail}
    <out>/stats/<source>.json                    counts read/written/rejected by reason, timings
    <out>/stats/summary.json                     `pixelrefer stats`: per source and task
    <out>/stats/mix-<recipe>.json                requested/available/selected per entry, duplicates removed
    <out>/mix/<recipe>/<stage>.parquet           chosen samples: columns id, source, part, row
    <out>/videoqa/...                            engine outputs, request cache, failed_requests.jsonl
    <out>/shards/<recipe>/<stage>/NNNNNN.tar     WebDataset shards + NNNNNN_stats.json + index.json

Every stage writes a unit to a temporary name (`atomic_path`: unique per writer), renames it,
then writes its marker; a unit whose marker exists is complete and is skipped on rerun.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import Sample
from schemas.arrow import SAMPLE_SCHEMA, from_row, write_parquet
from sources.roots import Roots

MIX_SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("part", pa.string()), ("row", pa.int64())])


def unified_dir(out: Path, source: str) -> Path:
    return out / "unified" / source


def part_path(out: Path, source: str, index: int) -> Path:
    return unified_dir(out, source) / f"part-{index:05d}.parquet"


def marker_path(data_path: Path) -> Path:
    """The completion marker of a part or shard: same stem, `.done` suffix."""
    return data_path.with_suffix(".done")


def is_complete(data_path: Path) -> bool:
    return marker_path(data_path).is_file() and data_path.is_file()


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


def source_root(out: Path, source: str) -> Roots:
    """The declared roots that `source`'s media paths resolve against (recorded by ingest)."""
    info = unified_dir(out, source) / "source.json"
    if not info.is_file():
        raise FileNotFoundError(f"{info} is missing: run `pixelrefer ingest --source {source}` first")
    return Roots.from_json(json.loads(info.read_text(encoding="utf-8")))


def complete_parts(out: Path, source: str) -> list[Path]:
    """The complete parts of an ingested source, in part order."""
    return [p for p in sorted(unified_dir(out, source).glob("part-*.parquet")) if is_complete(p)]


def ingested_sources(out: Path) -> list[str]:
    """Sources with a `source.json` under `<out>/unified`, sorted."""
    return sorted(p.parent.name for p in (out / "unified").glob("*/source.json"))


def iter_mixed_samples(out: Path, mix_file: Path, block_rows: int = 16384) -> Iterator[tuple[Sample, Roots]]:
    """The samples a mix file chose, in its order, each with its source's declared roots.

    A mix is in shuffled order, so rows are fetched a block at a time: each part a block needs
    is read once and only its chosen rows are kept. Memory is one block of samples plus one
    part, whatever the size of the mix; each part is read once per block that uses it.
    """
    mix = pq.read_table(mix_file, schema=MIX_SCHEMA).to_pylist()
    roots = {source: source_root(out, source) for source in sorted({m["source"] for m in mix})}
    for start in range(0, len(mix), block_rows):
        block = mix[start : start + block_rows]
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

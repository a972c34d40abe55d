"""Arrow schema of `Sample`, lossless row conversion, and the Parquet/JSONL readers and writers.

The unified dataset is Parquet with `SAMPLE_SCHEMA`, so it loads with
`datasets.load_dataset("parquet", data_files=...)`. `meta` is free-form JSON and is stored as a
canonical JSON string (`meta_json`); every other field is a typed Arrow column.

Example:
    >>> write_parquet(samples, "part-00000.parquet")
    >>> read_parquet("part-00000.parquet") == samples
    True
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.sample import Sample

_RLE = pa.struct([("size", pa.list_(pa.int32())), ("counts", pa.string())])
_REGION_FRAME = pa.struct(
    [
        ("frame", pa.int32()),
        ("mask", _RLE),
        ("box", pa.list_(pa.float64())),
        ("point", pa.list_(pa.float64())),
    ]
)
SAMPLE_SCHEMA = pa.schema(
    [
        ("schema_version", pa.int16()),
        ("id", pa.string()),
        ("key", pa.string()),
        ("source", pa.string()),
        ("subset", pa.string()),
        ("split", pa.string()),
        ("license", pa.string()),
        ("task", pa.string()),
        (
            "media",
            pa.struct(
                [
                    ("kind", pa.string()),
                    ("path", pa.string()),
                    ("frames", pa.list_(pa.string())),
                    ("num_frames", pa.int32()),
                    ("fps", pa.float64()),
                    ("timestamps", pa.list_(pa.float64())),
                    ("width", pa.int32()),
                    ("height", pa.int32()),
                ]
            ),
        ),
        (
            "regions",
            pa.list_(
                pa.struct(
                    [
                        ("label", pa.string()),
                        ("prompt", pa.string()),
                        ("mask_origin", pa.string()),
                        ("frames", pa.list_(_REGION_FRAME)),
                    ]
                )
            ),
        ),
        ("conversation", pa.list_(pa.struct([("role", pa.string()), ("text", pa.string())]))),
        ("meta_json", pa.string()),
        (
            "provenance",
            pa.struct(
                [
                    ("file", pa.string()),
                    ("locator", pa.string()),
                    ("adapter", pa.string()),
                    ("adapter_version", pa.string()),
                ]
            ),
        ),
    ]
)

# Parquet settings fixed here so that equal samples give byte-identical files.
_PARQUET_OPTIONS = dict(compression="zstd", compression_level=3, write_statistics=False, use_dictionary=True)


def canonical_json(value: Any) -> str:
    """Deterministic compact JSON (sorted keys, UTF-8 kept)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_row(sample: Sample) -> dict[str, Any]:
    """Sample -> plain dict matching SAMPLE_SCHEMA."""
    row = sample.model_dump(mode="json", exclude={"meta"})
    row["meta_json"] = canonical_json(sample.meta)
    return row


def from_row(row: dict[str, Any]) -> Sample:
    """Row of SAMPLE_SCHEMA -> Sample (inverse of to_row)."""
    data = dict(row)
    data["meta"] = json.loads(data.pop("meta_json"))
    return Sample.model_validate(data)


def to_table(samples: Iterable[Sample]) -> pa.Table:
    return pa.Table.from_pylist([to_row(s) for s in samples], schema=SAMPLE_SCHEMA)


def write_parquet(samples: Iterable[Sample], path: str | Path) -> None:
    pq.write_table(to_table(samples), str(path), **_PARQUET_OPTIONS)


def iter_parquet_rows(path: str | Path, batch_size: int = 1024) -> Iterator[dict[str, Any]]:
    """Raw rows of a samples Parquet file, streamed by record batch."""
    for batch in pq.ParquetFile(str(path)).iter_batches(batch_size=batch_size):
        yield from batch.to_pylist()


def read_parquet(path: str | Path) -> list[Sample]:
    return [from_row(r) for r in iter_parquet_rows(path)]


def iter_records(path: str | Path) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
    """Raw sample dicts of a `.jsonl` or `.parquet` file as `(locator, record, error)`.

    A JSONL line that is not JSON yields `(locator, None, message)` so callers count it.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        for i, row in enumerate(iter_parquet_rows(path)):
            row["meta"] = json.loads(row.pop("meta_json"))
            yield f"{path.name}:row {i}", row, ""
        return
    if path.suffix != ".jsonl":
        raise ValueError(f"{path}: expected a .jsonl or .parquet file of samples")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            locator = f"{path.name}:{n}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                yield locator, None, f"not JSON: {err}"
                continue
            yield locator, record, ""

"""A COCO-style annotation file indexed on disk, so that no process holds the parsed file.

`open_index(path)` makes one streaming pass over the file (`jsonarray.members`: one window and
one record in memory at a time) and writes a compact index of byte spans to the cache folder:

    <cache>/<sha1 of the file's path>/<size>-<mtime_ns>.images.npy   per listed image, by ascending id:
                                                                      id, byte span, its annotations' rows
    <cache>/<sha1 of the file's path>/<size>-<mtime_ns>.anns.npy     per placed annotation, grouped by image
                                                                      (ascending annotation id): id, byte span
    <cache>/<sha1 of the file's path>/<size>-<mtime_ns>.json         categories' span, orphans' spans,
                                                                      malformed records, duplicated image ids

(the JSON last: it marks the index complete; an index of an earlier version of the file is
deleted when the new one is written). `<cache>` is `$PIXELREFER_CACHE`, else
`<tmp>/pixelrefer-<uid>`. The index costs ~24 bytes per annotation (~35 MB for LVIS v1 train).
`FileIndex.load(start, stop, last)` memory-maps the two arrays and parses only the byte spans of
images `start:stop` and their annotations (plus the orphans and the file's problems when
`last`), so a worker's memory follows its unit, not the file. The driver (`units()`) writes the
index; a process that finds none (another node of a cluster, with its own cache) writes its own,
one writer per cache folder at a time (`flock`).

The grouping rules (`_group`, the only place): images by ascending id; an image id listed twice is
used by neither record (its annotations are counted, not placed); annotations by ascending id (file
order among equal ids); an annotation whose image_id is not an int (a bool counts, as `isinstance`
has it) or names no listed image is an orphan; a record that is not an object with an integer id
is malformed. A file that lists a top-level key twice is an error (json would keep the last).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from array import array
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sources import jsonarray

_LISTS = ("images", "annotations", "categories")
_IMAGE = np.dtype([("id", "<i8"), ("start", "<i8"), ("end", "<i8"), ("first", "<i8"), ("stop", "<i8"), ("lead", "<i8")])
_ANN = np.dtype([("id", "<i8"), ("start", "<i8"), ("end", "<i8")])
_INT64 = (-(1 << 63), (1 << 63) - 1)


@dataclass(frozen=True)
class CocoIndex:
    """A COCO-style annotation file (or one unit's slice of it) indexed by image."""

    images: dict[int, dict[str, Any]]  # image id -> record, in ascending id order (ids listed once only)
    annotations: dict[int, list[dict[str, Any]]]  # image id -> its annotations, by ascending id
    categories: dict[int, dict[str, Any]]
    orphans: list[dict[str, Any]]  # annotations whose image_id is not in images[]
    duplicates: dict[int, int]  # image id listed more than once -> how many annotations name it
    malformed: list[str]  # `images[3]`, `annotations[7]`, ...: records without an integer id


def cache_root() -> Path:
    return Path(os.environ.get("PIXELREFER_CACHE") or Path(tempfile.gettempdir()) / f"pixelrefer-{os.getuid()}")


def _int(value: Any) -> bool:
    """An int numpy's int64 holds (bool counts, as `isinstance` has it)."""
    return isinstance(value, int) and _INT64[0] <= value <= _INT64[1]


def _record_id(value: Any) -> int | None:
    """The id of an object with an integer `id` (not a bool), else None: a malformed record."""
    key = value.get("id") if isinstance(value, dict) else None
    return key if _int(key) and not isinstance(key, bool) else None


@dataclass
class _Pass:
    """What the streaming pass keeps: per image and annotation its id and span, nothing else."""

    image_ids: array = field(default_factory=lambda: array("q"))
    image_spans: array = field(default_factory=lambda: array("q"))
    ann_ids: array = field(default_factory=lambda: array("q"))
    ann_spans: array = field(default_factory=lambda: array("q"))
    ann_images: array = field(default_factory=lambda: array("q"))  # image_id, 0 when not placeable
    ann_placeable: array = field(default_factory=lambda: array("b"))  # image_id is an int
    malformed: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in _LISTS})
    categories: list[int] | None = None  # the categories array's byte span, once seen
    lists: set[str] = field(default_factory=set)


def _scan(path: Path) -> _Pass:
    scan = _Pass()
    try:
        for key, index, start, end, value in jsonarray.members(path, frozenset(_LISTS[:2])):
            _note(scan, key, index, start, end, value)
    except jsonarray.NotAnObject:
        # no COCO file at all: parsed whole for the error a broken file gets (truncated, too deep, ...)
        jsonarray.load_json(path)
    missing = [k for k in _LISTS if k not in scan.lists]
    if missing:
        raise ValueError(f"{path.name}: not a COCO-style annotation file (no list {missing[0]!r} at the top level)")
    return scan


def _note(scan: _Pass, key: str, index: int | None, start: int, end: int, value: Any) -> None:
    """Keep what the index needs of one member (`index` None) or array element of the file."""
    if index is None:
        if value is jsonarray.STREAMED or isinstance(value, list):
            scan.lists.add(key)
            scan.categories = [start, end] if key == "categories" else scan.categories
        return
    record_id = _record_id(value)
    if record_id is None:
        scan.malformed[key].append(f"{key}[{index}]")
    elif key == "images":
        scan.image_ids.append(record_id)
        scan.image_spans.extend((start, end))
    else:
        image_id = value.get("image_id")
        scan.ann_ids.append(record_id)
        scan.ann_spans.extend((start, end))
        scan.ann_images.append(int(image_id) if _int(image_id) else 0)
        scan.ann_placeable.append(_int(image_id))


def _group(scan: _Pass) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[int]]]:
    """(images listed once, by id; their annotations, grouped by image, by id within; the orphans,
    by id; the duplicated image ids [[id, annotations naming it]], by id)."""
    image_ids = np.frombuffer(scan.image_ids, dtype="<i8")
    image_spans = np.frombuffer(scan.image_spans, dtype="<i8").reshape(-1, 2)
    ids, counts = np.unique(image_ids, return_counts=True)
    unique, duplicated = ids[counts == 1], ids[counts > 1]
    by_image_id = np.argsort(image_ids, kind="stable")
    rows = by_image_id[np.searchsorted(image_ids[by_image_id], unique)]
    by_id = np.argsort(np.frombuffer(scan.ann_ids, dtype="<i8"), kind="stable")  # equal ids keep file order
    anns = np.zeros(len(by_id), dtype=_ANN)
    anns["id"] = np.frombuffer(scan.ann_ids, dtype="<i8")[by_id]
    spans = np.frombuffer(scan.ann_spans, dtype="<i8").reshape(-1, 2)[by_id]
    anns["start"], anns["end"] = spans[:, 0], spans[:, 1]
    targets = np.frombuffer(scan.ann_images, dtype="<i8")[by_id]
    placeable = np.frombuffer(scan.ann_placeable, dtype="b")[by_id].astype(bool)
    rank = np.searchsorted(unique, targets)
    hit = np.zeros(len(anns), dtype=bool)
    inside = rank < len(unique)
    hit[inside] = unique[rank[inside]] == targets[inside]
    placed = placeable & hit
    on_duplicate = placeable & np.isin(targets, duplicated)
    grouped = np.flatnonzero(placed)[np.argsort(rank[placed], kind="stable")]
    bounds = np.searchsorted(rank[grouped], np.arange(len(unique) + 1))
    images = np.zeros(len(unique), dtype=_IMAGE)
    images["id"], images["start"], images["end"] = unique, image_spans[rows, 0], image_spans[rows, 1]
    images["first"], images["stop"] = bounds[:-1], bounds[1:]
    # per image, the id-order row of its first annotation (-1: none), to order CocoIndex.annotations
    images["lead"] = np.where(bounds[1:] > bounds[:-1], np.append(grouped, -1)[bounds[:-1]], -1)
    duplicates = [[int(i), int(np.count_nonzero(targets[on_duplicate] == i))] for i in duplicated]
    return images, anns[grouped], anns[~placed & ~on_duplicate], duplicates


def _write(folder: Path, key: str, scan: _Pass) -> None:
    """The index files of `key` (temp names, renamed; the JSON last); then the other keys' deleted."""
    images, anns, orphans, duplicates = _group(scan)
    meta = {"categories": scan.categories, "orphans": orphans.tolist(),
            "malformed": [m for k in _LISTS for m in scan.malformed[k]], "duplicates": duplicates}
    for suffix, write in ((".images.npy", lambda f: np.save(f, images)), (".anns.npy", lambda f: np.save(f, anns)),
                          (".json", lambda f: f.write(json.dumps(meta).encode()))):
        tmp = folder / f".{key}{suffix}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            write(f)
        tmp.rename(folder / f"{key}{suffix}")
    for other in folder.iterdir():
        if not other.name.startswith((f"{key}.", ".")):
            other.unlink(missing_ok=True)


def _with_ids(records: list[Any], kind: str, malformed: list[str]) -> list[dict[str, Any]]:
    """The records that are objects with an integer `id`; the others' places go to `malformed`."""
    kept = []
    for i, record in enumerate(records):
        if _record_id(record) is None:
            malformed.append(f"{kind}[{i}]")
        else:
            kept.append(record)
    return kept


def _spans(table: np.ndarray) -> np.ndarray:
    return np.stack([table["start"], table["end"]], axis=1).reshape(-1, 2)


class FileIndex:
    """The on-disk index of one COCO-style file (see the module doc)."""

    def __init__(self, path: Path, folder: Path, key: str):
        self.path = path
        self.images = np.load(folder / f"{key}.images.npy", mmap_mode="r")
        self.anns = np.load(folder / f"{key}.anns.npy", mmap_mode="r")
        self.meta = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))

    @property
    def count(self) -> int:
        """How many images are listed once (the ones units slice)."""
        return len(self.images)

    def load(self, start: int = 0, stop: int | None = None, last: bool = True) -> CocoIndex:
        """The index of images `start:stop` and their annotations, and all categories; the
        orphans, malformed records and duplicated image ids only when `last` (the file's last
        unit). The whole file by default."""
        images = np.array(self.images[start:stop])
        lo = int(images["first"][0]) if len(images) else 0
        anns = np.array(self.anns[lo : int(images["stop"][-1]) if len(images) else 0])
        orphans = np.array([tuple(o) for o in self.meta["orphans"]] if last else [], dtype=_ANN)
        values = self._parse(np.concatenate([_spans(images), _spans(anns), _spans(orphans)]),
                             [*images["id"].tolist(), *anns["id"].tolist(), *orphans["id"].tolist()])
        records, grouped = values[: len(images)], values[len(images) : len(images) + len(anns)]
        # in the order of each image's first annotation by id, as grouping the parsed file gives
        order = [i for i in np.argsort(images["lead"], kind="stable").tolist() if images["lead"][i] >= 0]
        malformed = list(self.meta["malformed"])
        found = self._parse(np.array([self.meta["categories"]]))[0]
        categories = {c["id"]: c for c in _with_ids(found, "categories", malformed)}
        return CocoIndex(
            images={r["id"]: r for r in records},
            annotations={records[i]["id"]: grouped[images["first"][i] - lo : images["stop"][i] - lo] for i in order},
            categories=categories, orphans=values[len(images) + len(anns) :],
            duplicates=dict(self.meta["duplicates"]) if last else {}, malformed=malformed if last else [])

    def _parse(self, spans: np.ndarray, ids: list[int] | None = None) -> list[Any]:
        """The JSON values at byte `spans` (parsed as UTF-8, as json parses the whole file),
        checked against the `ids` the index recorded for them."""
        with open(self.path, "rb") as f:
            chunks = [os.pread(f.fileno(), int(end - start), int(start)) for start, end in spans]
        changed = f"{self.path}: the file changed after it was indexed; plan again"
        try:
            values = json.loads(b"[" + b",".join(chunks) + b"]")
        except (ValueError, RecursionError) as err:
            raise jsonarray.JsonFileError(f"{changed} ({type(err).__name__})") from None
        if ids is not None and [_record_id(v) for v in values] != ids:
            raise jsonarray.JsonFileError(changed)
        return values


@lru_cache(maxsize=4)
def _opened(path: str, size: int, mtime_ns: int) -> FileIndex:
    folder = cache_root() / hashlib.sha1(path.encode()).hexdigest()[:20]
    key = f"{size}-{mtime_ns}"
    if not (folder / f"{key}.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer per cache folder; the others then read its index
            if not (folder / f"{key}.json").is_file():
                _write(folder, key, _scan(Path(path)))
    return FileIndex(Path(path), folder, key)


def open_index(path: Path) -> FileIndex:
    """The index of a COCO-style file, written on first use while the file is unchanged."""
    path = Path(path).resolve()
    stat = path.stat()
    return _opened(str(path), stat.st_size, stat.st_mtime_ns)

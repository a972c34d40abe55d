"""`pixelrefer export`: write a mixed stage as an official PixelRefer (or VideoRefer-700K) training JSON.

    pixelrefer export --mix build/mix/demo/stage1.parquet --out-file stage1.json --media-root /data
    pixelrefer export --out build --recipe demo --stage stage2 --out-file stage2.json --media-root /data --dialect videorefer

The file is what the official trainers take as `--data_path`, with `--data_folder` the media
root (format: docs/release_format.md; pixelrefer_official.md 1a/1b). Records follow the mix
order, one per line, written to a temporary name and renamed; the same mix gives the same bytes.

* Media paths are made relative to `--media-root`: each sample's path is looked up in its
  source's declared roots (symlinks followed), then expressed under the media root. A media file
  outside it, or missing, is an error that names how many and the first few; nothing is written.
* Regions are renumbered in order of first mention, and `masks` re-ordered to match (the official
  loader binds the k-th `<region>` to the k-th mask). The first mention of region k becomes
  `<region{k}><region>` (images) or `<object{k}><region>` (videos), later mentions the bare name,
  as the official prompts write them; `<image>\\n` / `<video>\\n` opens the first human turn. A
  system turn opens the first human turn, as Osprey's data writes it (the official loader drops
  leading non-human turns).
* Dialect `pixelrefer`: `image: path` or `video: [path]` (a video file or a frame folder),
  `masks: [rle]` / `[{"<frame>": rle}]`, compressed RLE, plus `height`/`width` and our `id`.
  One `<region>` per object, which PixelRefer-Lite reads for objects on several frames; PixelRefer
  (non-Lite) binds one mask per `<region>`, so such records are counted in a note.
* Dialect `videorefer` (VideoRefer-700K / v1): `video: path`, `annotation: [{"<frame>":
  {"segmentation": rle}}]`, same placeholders (`<object0><region>`, then `<object0>`). Video only.

What the format cannot hold is skipped and counted by reason (printed): `not_mask_prompt` (box
or point regions: the official trainers read masks only, and a mask is never faked),
`media_in_archive` (a tar member), `frames_not_folder_listing` (a frame list that is not its
folder's sorted listing, which is how the official loader indexes frames), `image_not_in_dialect`
(images in the videorefer dialect). The official loader reads a frame folder at 3 fps: videos
with other timing are noted.

`check_official(records)` applies the official loader's parsing rules to records (the tests run it
on every export).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipelines.workspace import atomic_path, iter_mixed_samples
from schemas import Sample, masks
from schemas.placeholders import referenced, render
from sources.common import FRAME_FOLDER_FPS
from sources.roots import Roots

DIALECTS = ("pixelrefer", "videorefer")
MEDIA_TAGS = {"image": "<image>", "video": "<video>"}
_FRAME_KEY = re.compile(r"[0-9]+")


class ExportError(Exception):
    """The export cannot be written as asked: the message says what and how to fix it."""


class Skip(Exception):
    """A sample the official format cannot hold; `reason` is its counted name."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def native_text(text: str, order: dict[int, int], prefix: str, named: set[int]) -> str:
    """Canonical text -> official: region i is `<{prefix}{k}><region>` at its first mention
    (tracked in `named` across turns), `<{prefix}{k}>` after, with k = order[i]."""

    def token(i: int) -> str:
        k = order[i]
        if k in named:
            return f"<{prefix}{k}>"
        named.add(k)
        return f"<{prefix}{k}><region>"

    return render(text, token)


def _media_file(roots: Roots, relative: str, media_root: Path, problems: dict[str, list[str]], sample_id: str) -> str:
    """`relative` (in the sample's roots) as a path under the media root; a problem is recorded
    under "outside" or "missing" and an empty string returned."""
    path = roots.media_path(relative)
    if not path.exists():
        problems["missing"].append(f"{sample_id}: {path}")
        return ""
    if not path.is_relative_to(media_root):
        problems["outside"].append(f"{sample_id}: {path}")
        return ""
    return path.relative_to(media_root).as_posix()


def official_record(sample: Sample, roots: Roots, media_root: Path, dialect: str,
                    problems: dict[str, list[str]], notes: Counter) -> dict[str, Any] | None:
    """One sample as an official record (None when its media is in `problems`); raises Skip."""
    media = sample.media
    if media is None:  # a text-only general_qa sample: the official loader needs media
        raise Skip("no_media")
    if any(r.prompt != "mask" for r in sample.regions):
        raise Skip("not_mask_prompt")
    if any(part.endswith(".tar") for part in Path(media.path).parts[:-1]):
        raise Skip("media_in_archive")
    if dialect == "videorefer" and media.kind == "image":
        raise Skip("image_not_in_dialect")
    if media.frames:
        folder = roots.media_path(media.path)
        listing = sorted(os.listdir(folder)) if folder.is_dir() else []
        if [f"{media.path}/{name}" for name in listing] != media.frames:
            raise Skip("frames_not_folder_listing")
        if media.timestamps or media.fps != FRAME_FOLDER_FPS:
            notes["timing_read_at_3fps"] += 1
    path = _media_file(roots, media.path, media_root, problems, sample.id)
    if not path:
        return None

    turns = [(t.role, t.text) for t in sample.conversation]
    if turns[0][0] == "system":  # Osprey's convention: the system text opens the first question
        (_, system), (_, first) = turns[:2]
        turns = [("user", f"{system}\n{first}"), *turns[2:]]
    order = {i: k for k, i in enumerate(dict.fromkeys(i for _, text in turns for i in referenced(text)))}
    regions = [sample.regions[i] for i in order]  # by first mention
    prefix = "region" if media.kind == "image" else "object"
    named: set[int] = set()
    conversations = []
    for n, (role, text) in enumerate(turns):
        text = native_text(text, order, prefix, named)
        conversations.append({"from": "human" if role == "user" else "gpt",
                              "value": f"{MEDIA_TAGS[media.kind]}\n{text}" if n == 0 else text})
    if media.kind == "video" and any(len(r.frames) > 1 for r in regions) and dialect == "pixelrefer":
        notes["multi_frame_objects"] += 1

    rles = [[(str(f.frame), f.mask.model_dump(mode="json")) for f in r.frames] for r in regions]
    record: dict[str, Any] = {"id": sample.id, media.kind: [path] if media.kind == "video" and dialect == "pixelrefer" else path,
                              "conversations": conversations}
    if media.kind == "image":
        record["masks"] = [frames[0][1] for frames in rles]
    elif dialect == "pixelrefer":
        record["masks"] = [dict(frames) for frames in rles]
    else:
        record["annotation"] = [{frame: {"segmentation": rle} for frame, rle in frames} for frames in rles]
    record["height"], record["width"] = media.height, media.width
    return record


def export(out: Path, mix_file: Path, out_file: Path, media_root: Path, dialect: str = "pixelrefer") -> dict[str, Any]:
    """Write the mix's samples to `out_file`; return {written, skipped, notes} (raises ExportError)."""
    if dialect not in DIALECTS:
        raise ExportError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    if not mix_file.is_file():
        raise ExportError(f"no mix file {mix_file}: run `pixelrefer mix --recipe RECIPE --out {out}` first")
    media_root = media_root.resolve()
    problems: dict[str, list[str]] = {"outside": [], "missing": []}
    skipped, notes, written = Counter(), Counter(), 0
    with atomic_path(out_file) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("[")
        for sample, roots in iter_mixed_samples(out, mix_file):
            try:
                record = official_record(sample, roots, media_root, dialect, problems, notes)
            except Skip as skip:
                skipped[skip.reason] += 1
                continue
            if record is not None:
                f.write(("," if written else "") + "\n" + json.dumps(record, ensure_ascii=False, separators=(",", ":")))
                written += 1
        f.write("\n]\n")
        if problems["outside"] or problems["missing"]:  # raising here leaves no file behind
            raise ExportError(_media_report(problems, media_root))
    return {"written": written, "skipped": dict(sorted(skipped.items())), "notes": dict(sorted(notes.items()))}


def _media_report(problems: dict[str, list[str]], media_root: Path) -> str:
    lines = []
    if problems["outside"]:
        lines.append(f"{len(problems['outside'])} sample(s) have media outside --media-root {media_root} "
                     "(give a media root that holds every source's media), e.g.:")
        lines += [f"  {p}" for p in problems["outside"][:5]]
    if problems["missing"]:
        lines.append(f"{len(problems['missing'])} sample(s) have missing media (restore the files or re-ingest), e.g.:")
        lines += [f"  {p}" for p in problems["missing"][:5]]
    return "\n".join(lines)


# ---- the official loader's parsing rules, applied to records (pixelrefer_official.md 1a-1c, 2a) ----


def check_official(records: Iterable[dict[str, Any]], dialect: str = "pixelrefer", lite: bool = False) -> list[str]:
    """Problems the official loader would hit, as "record N: ..." (empty when every record loads).

    `lite`: PixelRefer-Lite's reading, one `<region>` per object; PixelRefer's binds one mask per
    `<region>`, counting every (object, frame) of a video. The videorefer dialect is per object.
    """
    return [f"record {n}: {p}" for n, record in enumerate(records) for p in _problems(record, dialect, lite)]


def _problems(record: dict[str, Any], dialect: str, lite: bool) -> list[str]:
    kinds = [k for k in ("image", "video") if k in record]
    if len(kinds) != 1:
        return ["needs exactly one of image and video"]
    kind, media = kinds[0], record[kinds[0]]
    if dialect == "videorefer" and not (kind == "video" and isinstance(media, str)):
        return ["VideoRefer reads `video` as one path"]
    if dialect == "pixelrefer" and kind == "video" and not isinstance(media, list) and not lite:
        return ["PixelRefer reads `video` only as a list (Unsupported video format)"]
    if isinstance(media, list) and kind == "video" and len(media) > 1 and not {"timestamps", "masked_video"} <= set(record):
        return ["a list of frames needs timestamps and masked_video"]
    turns = record.get("conversations") or []
    turns = turns[next((i for i, t in enumerate(turns) if t.get("from") == "human"), len(turns)):]
    if not turns:
        return ["no human turn"]
    problems = []
    texts = [t["value"] for t in turns]
    other = MEDIA_TAGS["video" if kind == "image" else "image"]
    if any(other in text for text in texts) or sum(text.count(MEDIA_TAGS[kind]) for text in texts) > 1:
        problems.append(f"media tags do not match one {kind}")
    objects = record.get("annotation" if dialect == "videorefer" else "masks")
    if not isinstance(objects, list) or not objects:
        return [*problems, "no list of masks"]
    per_object = []
    for i, entry in enumerate(objects):
        if kind == "image":
            per_object.append([entry])
        elif not (isinstance(entry, dict) and entry and all(_FRAME_KEY.fullmatch(k) for k in entry)):
            problems.append(f"object {i}: video masks must be a non-empty dict keyed by frame index")
            per_object.append([])
        elif dialect == "pixelrefer":
            per_object.append(list(entry.values()))
        elif all(isinstance(v, dict) and "segmentation" in v for v in entry.values()):
            # v1 reads a null segmentation as an empty mask (issue #15: a missing key fails)
            per_object.append([v["segmentation"] for v in entry.values() if v["segmentation"] is not None])
        else:
            problems.append(f"object {i}: every frame needs a `segmentation`")
            per_object.append([])
    tokens = sum(text.count("<region>") for text in texts)
    bound = sum(len(m) for m in per_object) if kind == "video" and dialect == "pixelrefer" and not lite else len(objects)
    if tokens != bound:
        problems.append(f"{tokens} <region> tokens for {bound} masks")
    size = [record.get("height"), record.get("width")]
    for i, frames in enumerate(per_object):
        for mask in frames:
            if not isinstance(mask, (list, dict)):
                problems.append(f"object {i}: a mask must be a polygon list or an RLE, got {str(mask)[:40]}")
                continue
            if isinstance(mask, list) or isinstance(mask.get("counts"), list):
                if None in size:
                    problems.append(f"object {i}: a polygon or uncompressed RLE needs the record's height and width")
                    continue
                shape = size
            else:
                shape = list(mask.get("size") or [])
                if len(shape) != 2 or (None not in size and shape != size):
                    problems.append(f"object {i}: mask size {shape} is not the record's height/width {size}")
                    continue
            try:
                masks.to_rle(mask, *shape)
            except masks.MaskError as err:
                problems.append(f"object {i}: {err}")
    return problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mix", type=Path, help="A mix file, OUT/mix/<recipe>/<stage>.parquet (or give --out, --recipe and --stage).")
    parser.add_argument("--out", type=Path, help="The workspace (default: the one holding --mix).")
    parser.add_argument("--recipe", help="Recipe name, with --out and --stage instead of --mix.")
    parser.add_argument("--stage", help="Stage name, with --out and --recipe instead of --mix.")
    parser.add_argument("--out-file", type=Path, required=True, help="The JSON file to write (a JSON array, one record per line).")
    parser.add_argument("--media-root", type=Path, required=True,
                        help="The folder the trainer's --data_folder will be: every media path is written relative to it.")
    parser.add_argument("--dialect", choices=DIALECTS, default="pixelrefer",
                        help="pixelrefer: PixelRefer / PixelRefer-Lite `masks` records (default); videorefer: VideoRefer-700K `annotation` records.")


def run(args: argparse.Namespace) -> int:
    if args.mix is None and None in (args.out, args.recipe, args.stage):
        print("pixelrefer export: give --mix FILE, or --out OUT --recipe NAME --stage NAME", file=sys.stderr)
        return 2
    mix_file = args.mix or args.out / "mix" / args.recipe / f"{args.stage}.parquet"
    out = args.out or mix_file.parents[2]
    try:
        stats = export(out, mix_file, args.out_file, args.media_root, args.dialect)
    except ExportError as err:
        print(f"pixelrefer export: {err}", file=sys.stderr)
        return 1
    skipped = ", ".join(f"{reason} {n}" for reason, n in stats["skipped"].items()) or "none"
    print(f"export: wrote {stats['written']} records ({args.dialect}) to {args.out_file}; "
          f"skipped {sum(stats['skipped'].values())}: {skipped}")
    if stats["notes"].get("multi_frame_objects"):
        print(f"note: {stats['notes']['multi_frame_objects']} record(s) have objects masked on several frames: "
              "PixelRefer-Lite reads them; PixelRefer (non-Lite) binds one mask per <region>")
    if stats["notes"].get("timing_read_at_3fps"):
        print(f"note: {stats['notes']['timing_read_at_3fps']} frame-folder video(s) will be read at the official "
              "loader's 3 fps instead of their own timestamps or frame rate")
    return 0

"""`pixelrefer shard`: precompute SAOT object crops and write deterministic WebDataset shards.

    pixelrefer shard --mix OUT/mix/<recipe>/<stage>.parquet --out OUT [--mode official|paper] [--lite]
                     [--max-samples-per-shard N] [--max-shard-bytes B] [--workers K] [--ray-address ADDR]

Reads the mix's samples in order (`pipelines.workspace.iter_mixed_samples`), runs SAOT
(`tokenization.saot`, batched pixels in `tokenization.saot_torch`, CUDA when present) for every
region on every annotated frame, and writes

    OUT/shards/<recipe>/<stage>/NNNNNN.tar          samples; member layout in docs/shards.md
    OUT/shards/<recipe>/<stage>/NNNNNN_stats.json   mix rows covered, counts, rejects, sha256 (written last)
    OUT/shards/<recipe>/<stage>/index.json          shard list, sample counts, bytes, sha256
    OUT/shards/<recipe>/<stage>/sizes.json          shard name -> sample count
    OUT/shards/<recipe>/<stage>/rejects.jsonl       {reason, locator, detail} of rejected samples
    OUT/shards/<recipe>/<stage>/config.json         what the shards are made from (see below)

Nothing stale: config.json (and index.json's `made_from`) records the mix file and its sha256,
the sha256 of every unified part the mix reads, the SAOT/limits/view settings, SHARD_VERSION and
the shard format. A rerun whose data changed (a re-mix over other entries, or a re-ingested part:
a part can change under an unchanged mix file) deletes the stage's shards and redoes them all,
saying so; a rerun with other settings is refused with the settings that differ (rerun with the
same flags, or delete the folder), since it would silently replace shards made on purpose with
other flags.

Deterministic: a shard closes by sample count or byte size in mix order, tar members carry fixed
mtime/uid/gid/mode, PNG settings are fixed. Resumable: a shard whose stats file exists is kept and
the rerun restarts at the next mix row; anything after it is rewritten byte-identically.
Videos are sampled as the official loader does (1 fps, at most 180 frames; frame folders are 3 fps
unless media.fps says otherwise) and annotated frames are always stored at full size; frames of
video files are decoded with PyAV and stored as lossless PNG. Every stored image is decoded
(`sources.imagedecode`): one that is truncated, corrupt or a decompression bomb rejects its sample
(`image_unreadable`, `image_too_large`); 16-bit, CMYK, palette and alpha images are stored as
PNGs of their RGB pixels.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image
from tqdm import tqdm

from pipelines import raypool, workspace
from schemas import Reject, Sample, masks
from sources import imagedecode
from sources.media import MissingFrame, load_frames, read_media_bytes
from sources.roots import Roots
from tokenization import saot, saot_torch
from tokenization.saot import SaotConfig
from train.shards import FORMAT, global_view

SAMPLE_FPS = 1.0  # official --fps 1
MAX_FRAMES = 180  # official --max_frames 180
FOLDER_FPS = 3.0  # the official loader's assumption for frame folders
ORIGINAL_IMAGE_TYPES = ("jpg", "jpeg", "png")  # stored as-is when 8-bit grey/RGB; anything else is re-encoded as PNG
PNG_LEVEL = 1  # fixed zlib level: fast, and part of the byte-identity contract
CHUNK = 8  # samples per Ray task
VIEW_SIZE = 384  # stored global view of images: SigLIP-so400m-patch14-384, the PixelRefer 2B/7B vision input
SHARD_VERSION = "1"  # bump when the encoding changes, so that finished shards are redone


@dataclass(frozen=True)
class ShardLimits:
    """When a shard closes (whichever comes first)."""

    max_samples: int = 5000
    max_bytes: int = 1_000_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mix", required=True, type=Path, help="Mix file OUT/mix/<recipe>/<stage>.parquet to shard.")
    parser.add_argument("--out", required=True, type=Path, help="Workspace root (holds unified/ and receives shards/).")
    parser.add_argument("--mode", choices=saot.MODES, default="official",
                        help="SAOT geometry: 'official' reproduces the released code (checkpoint parity); 'paper' follows the paper.")
    parser.add_argument("--lite", action="store_true",
                        help="PixelRefer-Lite: 50-patch large-object target, n tokens always, plus 336x336 and 224x224 views.")
    parser.add_argument("--view-size", type=int, default=VIEW_SIZE,
                        help="Also store each image's global view squashed to SxS (raw uint8, about 3*S*S bytes), so the trainer "
                             "skips decoding and resizing when its data.image_size is S; 0: store none (default %(default)s).")
    parser.add_argument("--max-samples-per-shard", type=int, default=ShardLimits.max_samples,
                        help="Close a shard after this many samples (default %(default)s).")
    parser.add_argument("--max-shard-bytes", type=int, default=ShardLimits.max_bytes,
                        help="Close a shard before it would exceed this many bytes (default %(default)s).")
    raypool.add_ray_arguments(parser, what="Each is an encoder actor, on a GPU when the cluster has one. ")


# ---------------------------------------------------------------- one sample -> tar members


def video_frames(num_frames: int, fps: float | None) -> tuple[list[int], float]:
    """Frame indices of the global sequence (official load_video_from_ids) and the rate used."""
    rate = fps or FOLDER_FPS
    if num_frames / rate * SAMPLE_FPS <= MAX_FRAMES:
        step = max(1, int(rate // SAMPLE_FPS))
        return list(range(0, num_frames, step)), rate
    return sorted({int(round(v)) for v in np.linspace(0, num_frames - 1, MAX_FRAMES)}), rate


def _png(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _stored_image(data: bytes, path: str, name: str, sample_id: str) -> tuple[str, bytes, torch.Tensor]:
    """(member suffix, bytes, uint8 (3, H, W) frame): the original file when every decoder reads it
    as the same 8-bit RGB, else a PNG of the RGB frame. An image that does not decode (truncated,
    corrupt, or declaring more than MAX_PIXELS) rejects the sample."""
    try:
        rgb = imagedecode.decode_rgb(data, imagedecode.MAX_PIXELS)
    except imagedecode.ImageDecodeError as err:
        raise Reject(err.reason, f"{path}: {err}", sample_id) from None
    frame = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    ext = Path(path).suffix.lower().lstrip(".")
    if ext in ORIGINAL_IMAGE_TYPES and imagedecode.portable(data):
        return f"{name}.{ext}", data, frame
    return f"{name}.png", _png(frame), frame


def _local_views(where: list[tuple[int, int]], cfg: SaotConfig) -> list[int]:
    """Which object's 224x224 local view each object uses: its own, except in official Lite mode,
    where the released cache (keyed by frame) gives every object the first object's view of its frame."""
    if cfg.mode != "official":
        return list(range(len(where)))
    first: dict[int, int] = {}
    return [first.setdefault(frame, i) for i, (_, frame) in enumerate(where)]


def _frame_files(sample: Sample, root: Roots, annotated: list[int]) -> tuple[dict[int, tuple[str, bytes]], list[int], dict]:
    """(frame -> (path, bytes)) of the frames to store, the sampled frames and their timestamps."""
    media = sample.media
    if media is None:  # a text-only general_qa sample: its KEY.json is the whole sample
        return {}, [], {}
    if media.kind == "image":
        return {0: (media.path, read_media_bytes(root, media.path))}, [0], {0: None}
    count = len(media.frames) or media.num_frames
    if not count:
        raise Reject("video_frame_count_unknown", f"{media.path}: no frame list and no num_frames", sample.id)
    sampled, rate = video_frames(count, media.fps)
    timestamps = {i: (media.timestamps[i] if media.timestamps else i / rate) for i in range(count)}
    wanted = sorted(set(sampled) | set(annotated))
    if media.frames:
        files = {f: (media.frames[f], read_media_bytes(root, media.frames[f])) for f in wanted}
    else:  # a video file: stored frames are lossless PNGs of the decoded frames
        try:
            decoded = load_frames(sample, root, wanted)
        except MissingFrame as err:
            raise Reject("frame_out_of_range", str(err), sample.id) from None
        files = {f: ("frame.png", _png(torch.from_numpy(rgb).permute(2, 0, 1))) for f, rgb in decoded.items()}
    return files, sampled, timestamps


def _store_frames(sample: Sample, root: Roots, annotated: list[int], device: torch.device,
                  view_size: int) -> tuple[list, list[dict], dict]:
    """Members and metadata of the stored frames, and the annotated frames decoded on `device`.

    Images also get their `view_size` global view (raw uint8); video frames do not, since a
    clip's views would cost frames x S x S x 3 bytes (the trainer resizes those while loading)."""
    media, key = sample.media, sample.key
    files, sampled, timestamps = _frame_files(sample, root, annotated)
    members, frame_meta, decoded = [], [], {}
    for f, (path, data) in sorted(files.items()):
        suffix, payload, frame = _stored_image(data, path, "image" if media.kind == "image" else f"frame_{f:06d}", sample.id)
        members.append((f"{key}.{suffix}", payload))
        if f in annotated:
            decoded[f] = frame.to(device)
            if tuple(decoded[f].shape[1:]) != (media.height, media.width):
                raise Reject("frame_size_mismatch", f"{path} is {tuple(decoded[f].shape[1:])}, masks are {(media.height, media.width)}", sample.id)
        view = "view.npy" if media.kind == "image" and view_size else None
        if view:
            members.append((f"{key}.{view}", _npy(global_view(payload, view_size).numpy())))
        frame_meta.append({"frame": f, "timestamp": timestamps[f], "sampled": f in sampled, "annotated": f in annotated,
                           "member": suffix, "view": view, "lite_global": None})
    return members, frame_meta, decoded


def _crop_jobs(sample: Sample, annotated: list[int], cfg: SaotConfig) -> tuple[list[saot_torch.CropJob], list[tuple[int, int]]]:
    """One crop job per (region, frame), region-major, with its geometry taken from the RLE."""
    media, order = sample.media, {f: i for i, f in enumerate(annotated)}
    jobs, where = [], []
    for ri, region in enumerate(sample.regions):
        for rf in region.frames:
            if rf.mask is None:
                raise Reject("region_without_mask", f"region {ri} frame {rf.frame} has a {region.prompt} but no mask (run `pixelrefer segment`)", sample.id)
            rle = rf.mask.model_dump()
            x0, y0, x1, y1 = masks.bbox(rle) or (0, 0, 0, 0)
            box = (int(y0), int(x0), int(y1) - 1, int(x1) - 1)  # pixel-edge box -> inclusive (r0, c0, r1, c1)
            geom = saot.geometry(masks.area(rle), box, (media.height, media.width), cfg, f"{sample.id} region {ri} frame {rf.frame}")
            jobs.append(saot_torch.CropJob(order[rf.frame], masks.decode(rle), geom))
            where.append((ri, rf.frame))
    return jobs, where


def native_crop(g: saot.Geometry) -> bool:
    """Store this crop at its native size (the model resizes it on its device): an enlarged crop,
    whose resized pixels would cost up to (resize / crop)^2 times more bytes (an 8-px object: 100x)."""
    return g.upscale and g.crop_hw[0] * g.crop_hw[1] < g.resize_hw[0] * g.resize_hw[1]


def encode_sample(sample: Sample, root: Roots, cfg: SaotConfig, device: torch.device, view_size: int = 0) -> list[tuple[str, bytes]]:
    """The tar members `(name, bytes)` of one sample, in writing order; raises Reject."""
    key = sample.key
    annotated = sorted({rf.frame for r in sample.regions for rf in r.frames})
    jobs, where = _crop_jobs(sample, annotated, cfg)
    members, frame_meta, decoded = _store_frames(sample, root, annotated, device, view_size)
    outs = saot_torch.tokenize_batch([decoded[f] for f in annotated], jobs, cfg)
    local_of = _local_views(where, cfg)
    local_index = {v: k for k, v in enumerate(sorted(set(local_of)))}  # stored local view of each object
    objects, crops, grids, positions, pixels, cells = [], [], [], [], 0, 0
    for i, ((ri, f), job, out) in enumerate(zip(where, jobs, outs)):
        if out.token_count == 0:
            raise Reject("no_object_tokens", f"region {ri} frame {f}: the grid mask sums below 1", sample.id)
        g = job.geom
        stored = decoded[f][(slice(None), *g.crop_slice)] if native_crop(g) else out.crop
        crops.append(stored.cpu().numpy().ravel())
        grids.append(out.grid.numpy().ravel())
        positions.append(saot.position_grid(g).reshape(-1, 2))
        size, crop_size = g.grid_hw[0] * g.grid_hw[1], crops[-1].size
        objects.append({"region": ri, "frame": f, "box": list(g.box), "frame_hw": list(g.frame_hw), "area": g.area,
                        "scale": g.scale, "crop_hw": list(g.crop_hw), "resize_hw": list(g.resize_hw),
                        "grid_hw": list(g.grid_hw), "token_count": out.token_count, "stored_hw": list(stored.shape[1:]),
                        "pixels": [pixels, pixels + crop_size],
                        "cells": [cells, cells + size], "lite_local": local_index[local_of[i]] if cfg.lite else None})
        cells, pixels = cells + size, pixels + crop_size
    if objects:
        members.append((f"{key}.crops.npy", _npy(np.concatenate(crops))))
        members.append((f"{key}.grid.npy", _npy(np.concatenate(grids).astype(np.float32))))
        members.append((f"{key}.pos.npy", _npy(np.concatenate(positions).astype(np.float32))))
    if cfg.lite and objects:
        annotated_meta = [m for m in frame_meta if m["annotated"]]
        for k, meta in enumerate(annotated_meta):
            meta["lite_global"] = k
        views = saot_torch.global_views([decoded[f] for f in annotated])
        members.append((f"{key}.lite_global.npy", _npy(torch.stack(views).cpu().numpy())))
        members.append((f"{key}.lite_local.npy", _npy(torch.stack([outs[i].local for i in local_index]).cpu().numpy())))
    header = {"format": FORMAT, "sample": sample.model_dump(mode="json"), "saot": asdict(cfg), "view_size": view_size,
              "frames": frame_meta, "objects": objects}
    text = json.dumps(header, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return [(f"{key}.json", text), *members]


Outcome = tuple[int, str, list[tuple[str, bytes]] | dict[str, str]]  # (mix row, key, members | reject row)


def _outcome(row: int, sample: Sample, root: Roots, cfg: SaotConfig, view_size: int, device: torch.device) -> Outcome:
    try:
        return row, sample.key, encode_sample(sample, root, cfg, device, view_size)
    except (Reject, FileNotFoundError, masks.MaskError, av.error.FFmpegError) as err:
        reject = err if isinstance(err, Reject) else Reject("media_unreadable", str(err), sample.id)
        return row, sample.key, reject.to_dict()


class _Encoder:
    """A Ray actor: encodes chunks of (row, sample JSON, root) on its own device."""

    def __init__(self, cfg: SaotConfig, view_size: int):
        self.cfg, self.view_size, self.device = cfg, view_size, saot_torch.default_device()

    def encode(self, chunk: list[tuple[int, str, Roots]]) -> list[Outcome]:
        return [_outcome(row, Sample.model_validate_json(s), roots, self.cfg, self.view_size, self.device) for row, s, roots in chunk]


def _chunks(rows: Iterable[tuple[int, tuple[Sample, Roots]]]) -> Iterator[list[tuple[int, str, Roots]]]:
    chunk = []
    for row, (sample, root) in rows:
        chunk.append((row, sample.model_dump_json(), root))
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def encoded(rows: Iterable[tuple[int, tuple[Sample, Roots]]], cfg: SaotConfig, view_size: int, workers: int,
            ray_address: str | None) -> Iterator[Outcome]:
    """Outcomes in mix order: in this process, or on `workers` Ray actors (chunks, in order)."""
    if not workers:
        device = saot_torch.default_device()
        for row, (sample, root) in rows:
            yield _outcome(row, sample, root, cfg, view_size, device)
        return
    import ray

    with raypool.ray_session(ray_address, workers):
        actor = ray.remote(num_gpus=raypool.gpus_per_actor())(_Encoder)
        actors = [actor.remote(cfg, view_size) for _ in range(workers)]
        for _, results in raypool.fan_out(actors, ((i, (c,)) for i, c in enumerate(_chunks(rows))), workers,
                                          method="encode", ordered=True):
            yield from results


# ---------------------------------------------------------------- shard files


def shard_path(dest: Path, index: int) -> Path:
    return dest / f"{index:06d}.tar"


def stats_path(dest: Path, index: int) -> Path:
    return dest / f"{index:06d}_stats.json"


def _tar_size(members: list[tuple[str, bytes]]) -> int:
    """Tar bytes of a sample, for rolling: per member a header, room for a long-name block, padded data."""
    return sum(1024 + -(-len(data) // 512) * 512 for _, data in members)


class _ShardFile:
    """One shard being written: a temp tar, renamed on close, then its stats file (the marker)."""

    def __init__(self, dest: Path, index: int, first_row: int):
        self.dest, self.index, self.first_row = dest, index, first_row
        self.tmp = workspace.temp_path(shard_path(dest, index))
        self.tar = tarfile.open(self.tmp, "w", format=tarfile.GNU_FORMAT)
        self.samples, self.size, self.rejects = 0, 0, []

    def add(self, members: list[tuple[str, bytes]]) -> None:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
            self.tar.addfile(info, io.BytesIO(data))
        self.samples += 1
        self.size += _tar_size(members)

    def close(self, end_row: int) -> dict:
        self.tar.close()
        path = shard_path(self.dest, self.index)
        os.replace(self.tmp, path)
        stats = {"shard": path.name, "rows": [self.first_row, end_row], "samples": self.samples,
                 "bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                 "rejected": dict(sorted(Counter(r["reason"] for r in self.rejects).items())), "rejects": self.rejects}
        workspace.write_json_atomic(stats_path(self.dest, self.index), stats)
        return stats


def completed(dest: Path) -> list[dict]:
    """Stats of the complete shards 0, 1, ... (stops at the first shard without its stats file)."""
    done = []
    while stats_path(dest, len(done)).is_file() and shard_path(dest, len(done)).is_file():
        done.append(json.loads(stats_path(dest, len(done)).read_text(encoding="utf-8")))
    return done


def _clear_after(dest: Path, first: int) -> None:
    """Remove partial or stale outputs from shard `first` on (a crash may have left them)."""
    for path in sorted(dest.glob("*")):
        stem = path.name.split(".")[0].split("_")[0]
        if stem.isdigit() and int(stem) >= first:
            path.unlink()
    for name in ("index.json", "sizes.json", "rejects.jsonl"):
        (dest / name).unlink(missing_ok=True)


def write_shards(outcomes: Iterable[Outcome], dest: Path, start: int, first_row: int, total_rows: int, limits: ShardLimits) -> list[dict]:
    """Roll outcomes (from mix row `first_row`) into shards `start`, `start+1`, ...; return their stats."""
    written, shard, pending = [], None, []
    for row, _key, result in outcomes:
        if isinstance(result, dict):
            (shard.rejects if shard else pending).append(result)
            continue
        if shard and (shard.samples >= limits.max_samples or shard.size + _tar_size(result) > limits.max_bytes):
            written.append(shard.close(end_row=row))
            shard = None
        if shard is None:
            shard = _ShardFile(dest, start + len(written), written[-1]["rows"][1] if written else first_row)
            shard.rejects, pending = pending, []
        shard.add(result)
    if shard:
        written.append(shard.close(end_row=total_rows))
    elif pending:
        shard = _ShardFile(dest, start + len(written), written[-1]["rows"][1] if written else first_row)
        shard.rejects = pending
        written.append(shard.close(end_row=total_rows))
    return written


def write_index(dest: Path, stats: list[dict], made_from: dict) -> None:
    """index.json, sizes.json and rejects.jsonl of a stage, from its shards' stats files."""
    rejected = Counter()
    for s in stats:
        rejected.update(s["rejected"])
    index = {"format": FORMAT, "mix": made_from["mix"], "saot": made_from["saot"], "view_size": made_from["view_size"],
             "made_from": made_from,
             "shards": [{k: s[k] for k in ("shard", "samples", "bytes", "sha256", "rows")} for s in stats],
             "samples": sum(s["samples"] for s in stats), "records": stats[-1]["rows"][1] if stats else 0,
             "rejected": dict(sorted(rejected.items()))}
    rows = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for s in stats for r in s["rejects"])
    (dest / "rejects.jsonl").write_text(rows, encoding="utf-8")
    workspace.write_json_atomic(dest / "sizes.json", {s["shard"]: s["samples"] for s in stats})
    workspace.write_json_atomic(dest / "index.json", index)


def shard_stage(out: Path, mix: Path, cfg: SaotConfig, limits: ShardLimits, view_size: int = VIEW_SIZE, workers: int = 0,
                ray_address: str | None = None) -> Path:
    """Shard one mix file resumably; returns the stage's shard folder. Shards made from another
    mix file are redone; other settings are refused (ValueError naming them)."""
    recipe, stage = mix.parent.name, mix.stem
    dest = out / "shards" / recipe / stage
    dest.mkdir(parents=True, exist_ok=True)
    hashes = workspace.FileHashes(out)
    used = sorted(set(pq.read_table(mix, columns=["part"]).column("part").to_pylist()))
    data = {"mix_sha256": hashes.sha256(mix), "parts": [hashes.part(out, out / part) for part in used]}
    hashes.save()
    made_from = {"stage": "shard", "version": SHARD_VERSION, "format": FORMAT, "mix": f"mix/{recipe}/{stage}.parquet",
                 "saot": asdict(cfg), "view_size": view_size, "limits": asdict(limits), **data}
    recorded_path = dest / "config.json"
    recorded = json.loads(recorded_path.read_text(encoding="utf-8")) if recorded_path.is_file() else None
    settings = {k: v for k, v in made_from.items() if k not in data}
    if recorded is not None and {k: v for k, v in recorded.items() if k not in data} != settings:
        raise ValueError(f"{dest} holds shards made with other settings ({workspace.what_changed(recorded, made_from)} "
                         f"differ from {recorded_path}); rerun with the same flags, or delete that folder to rebuild")
    first = 0
    if recorded is not None and {k: recorded.get(k) for k in data} != data:
        print(f"shard {recipe}/{stage}: the data changed since these shards were made "
              f"({workspace.what_changed({k: recorded.get(k) for k in data}, data)}; mix sha256 "
              f"{str(recorded.get('mix_sha256'))[:12]} -> {data['mix_sha256'][:12]}): redoing every shard", flush=True)
    else:
        first = len(completed(dest))
    _clear_after(dest, first)
    workspace.write_json_atomic(recorded_path, made_from)
    workspace.remove_dead_temps(dest)
    done = completed(dest)
    first_row = done[-1]["rows"][1] if done else 0
    total = pq.read_metadata(mix).num_rows
    rows = ((r, item) for r, item in enumerate(workspace.iter_mixed_samples(out, mix)) if r >= first_row)
    progress = tqdm(rows, total=total, initial=first_row, desc=f"shard {recipe}/{stage}", unit="sample")
    new = write_shards(encoded(progress, cfg, view_size, workers, ray_address), dest, len(done), first_row, total, limits)
    write_index(dest, done + new, made_from)
    return dest


def run(args: argparse.Namespace) -> int:
    if not args.mix.is_file():
        print(f"pixelrefer shard: mix file {args.mix} does not exist; run `pixelrefer mix` first", flush=True)
        return 2
    cfg = SaotConfig(mode=args.mode, lite=args.lite)
    limits = ShardLimits(args.max_samples_per_shard, args.max_shard_bytes)
    try:
        dest = shard_stage(args.out, args.mix, cfg, limits, args.view_size, raypool.stage_workers(args.workers, args.ray_address),
                           args.ray_address)
    except ValueError as err:
        print(f"pixelrefer shard: {err}", flush=True)
        return 2
    index = json.loads((dest / "index.json").read_text(encoding="utf-8"))
    print(f"wrote {index['samples']} samples in {len(index['shards'])} shards to {dest} "
          f"({index['records'] - index['samples']} rejected: {dest / 'rejects.jsonl'}); index: {dest / 'index.json'}")
    return 0

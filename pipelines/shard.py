"""`pixelrefer shard`: precompute SAOT object crops and write deterministic WebDataset shards.

    pixelrefer shard --mix OUT/mix/<recipe>/<stage>.parquet --out OUT [--mode official|paper] [--lite]
                     [--max-samples-per-shard N] [--max-shard-bytes B] [--workers K] [--ray-address ADDR]

The mix's rows are cut into fixed blocks of `--max-samples-per-shard` rows (`plan_blocks`). Each
block is one unit of work: a worker (this process, or one of K Ray actors) reads the block's
samples (`pipelines.workspace.iter_mixed_samples` over its row range), runs SAOT
(`tokenization.saot`, batched pixels in `tokenization.saot_torch`, CUDA when present) for every
region on every annotated frame, and writes

    OUT/shards/<recipe>/<stage>/RRRRRRRRR.tar        samples from mix row R on (format: tokenization.shardformat)
    OUT/shards/<recipe>/<stage>/RRRRRRRRR_stats.json the block starting at row R: its shards, counts, rejects (written last)

The driver only plans blocks and collects their stats, then writes

    OUT/shards/<recipe>/<stage>/index.json          shard list, sample counts, bytes, sha256
    OUT/shards/<recipe>/<stage>/sizes.json          shard name -> sample count
    OUT/shards/<recipe>/<stage>/rejects.jsonl       {reason, locator, detail} of rejected samples
    OUT/shards/<recipe>/<stage>/config.json         what the shards are made from (see below)

Nothing stale: config.json (and index.json's `made_from`) records the mix file and its sha256,
the sha256 of every unified part the mix reads, the SAOT/limits/view settings, SHARD_VERSION and
the shard format. A rerun whose data changed (a re-mix over other entries, or a re-ingested part:
a part can change under an unchanged mix file), or under a new SHARD_VERSION, deletes the stage's
shards and redoes them all, saying so; a rerun with other settings is refused with the settings that differ (rerun with the
same flags, or delete the folder), since it would silently replace shards made on purpose with
other flags.

Deterministic: blocks depend only on the mix size and the sample limit, shards are named by
their first mix row and close by sample count or byte size in row order, tar members carry fixed
mtime/uid/gid/mode, JPEG/PNG settings are fixed: any worker count writes the same bytes.
Resumable: a block whose stats file exists (with its shards) is kept; every other block is redone.
Videos are sampled as the official loader does (1 fps, at most 180 frames; frame folders are 3 fps
unless media.fps says otherwise) and annotated frames are always stored at full size; frames of
video files are decoded with PyAV and stored as JPEG (shardformat.FRAME_QUALITY). Every stored
image is decoded (`sources.imagedecode`): one that is truncated, corrupt or a decompression bomb
rejects its sample (`image_unreadable`, `image_too_large`); 16-bit, CMYK, palette and alpha
images are stored as PNGs of their RGB pixels.
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from pipelines import raypool, workspace
from schemas import Reject, Sample, masks
from sources import imagedecode
from sources.media import MissingFrame, load_frames, read_media_bytes
from sources.roots import Roots
from tokenization import saot, saot_torch, shardformat
from tokenization.saot import SaotConfig

SAMPLE_FPS = 1.0  # official --fps 1
MAX_FRAMES = 180  # official --max_frames 180
FOLDER_FPS = 3.0  # the official loader's assumption for frame folders
ORIGINAL_IMAGE_TYPES = ("jpg", "jpeg", "png")  # stored as-is when 8-bit grey/RGB; anything else is re-encoded as PNG
VIEW_SIZE = 384  # stored global view of images: SigLIP-so400m-patch14-384, the PixelRefer 2B/7B vision input
SHARD_VERSION = "3"  # bump when the encoding changes, so that finished shards are redone


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


def _stored_image(data: bytes, path: str, frame: int | None, sample_id: str) -> tuple[str, bytes, torch.Tensor]:
    """(member suffix, bytes, uint8 (3, H, W) frame) of an image (`frame` None) or a video frame:
    the original file when every decoder reads it as the same 8-bit RGB, else a PNG of the RGB
    frame. An image that does not decode (truncated, corrupt, or declaring more than MAX_PIXELS)
    rejects the sample."""
    try:
        rgb = imagedecode.decode_rgb(data, imagedecode.MAX_PIXELS)
    except imagedecode.ImageDecodeError as err:
        raise Reject(err.reason, f"{path}: {err}", sample_id) from None
    pixels = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    ext = Path(path).suffix.lower().lstrip(".")
    if ext in ORIGINAL_IMAGE_TYPES and imagedecode.portable(data):
        return shardformat.frame_member(frame, ext), data, pixels
    return shardformat.frame_member(frame, "png"), shardformat.png(pixels), pixels


def _frame_plan(sample: Sample, annotated: list[int]) -> tuple[list[int], list[int], dict]:
    """The frames to store, the sampled frames and their timestamps."""
    media = sample.media
    if media is None:  # a text-only general_qa sample: its KEY.json is the whole sample
        return [], [], {}
    if media.kind == "image":
        return [0], [0], {0: None}
    count = len(media.frames) or media.num_frames
    if not count:
        raise Reject("video_frame_count_unknown", f"{media.path}: no frame list and no num_frames", sample.id)
    sampled, rate = video_frames(count, media.fps)
    timestamps = {i: (media.timestamps[i] if media.timestamps else i / rate) for i in range(count)}
    return sorted(set(sampled) | set(annotated)), sampled, timestamps


def _store_clip(sample: Sample, root: Roots, frames: list[int], annotated: list[int], device: torch.device,
                sampled: list[int], timestamps: dict) -> tuple[list, list[shardformat.FrameEntry], dict]:
    """`_store_frames` of a video file: the file itself is the one member of all its `frames`
    (their JPEGs would be ~7x an H.264 clip); its frames are decoded here and again when read."""
    media = sample.media
    try:
        rgb = load_frames(sample, root, frames)
    except MissingFrame as err:
        raise Reject("frame_out_of_range", str(err), sample.id) from None
    member = shardformat.clip_member(Path(media.path).suffix.lower().lstrip(".") or "video")
    entries = [shardformat.FrameEntry(f, timestamps[f], f in sampled, f in annotated, member, None, None) for f in frames]
    decoded = {f: torch.from_numpy(rgb[f]).permute(2, 0, 1).contiguous().to(device) for f in annotated}
    return [(f"{sample.key}.{member}", read_media_bytes(root, media.path))], entries, decoded


def _store_frames(sample: Sample, root: Roots, annotated: list[int], device: torch.device,
                  view_size: int) -> tuple[list, list[shardformat.FrameEntry], dict]:
    """Members and entries of the stored frames, and the annotated frames decoded on `device`.

    Images also get their `view_size` global view (JPEG); video frames do not (the trainer
    resizes those while loading, and a clip's views would cost as much as its frames)."""
    media, key = sample.media, sample.key
    wanted, sampled, timestamps = _frame_plan(sample, annotated)
    if media is not None and media.kind == "video" and not media.frames:
        return _store_clip(sample, root, wanted, annotated, device, sampled, timestamps)
    members, entries, decoded = [], [], {}
    for f in wanted:
        path = media.path if media.kind == "image" else media.frames[f]
        data = read_media_bytes(root, path)
        suffix, payload, frame = _stored_image(data, path, None if media.kind == "image" else f, sample.id)
        members.append((f"{key}.{suffix}", payload))
        if f in annotated:
            decoded[f] = frame.to(device)
            if tuple(decoded[f].shape[1:]) != (media.height, media.width):
                raise Reject("frame_size_mismatch", f"{path} is {tuple(decoded[f].shape[1:])}, masks are {(media.height, media.width)}", sample.id)
        view = shardformat.VIEW if media.kind == "image" and view_size else None
        if view:
            members.append((f"{key}.{view}", shardformat.jpeg(shardformat.global_view(payload, view_size), shardformat.VIEW_QUALITY)))
        entries.append(shardformat.FrameEntry(f, timestamps[f], f in sampled, f in annotated, suffix, view, None))
    return members, entries, decoded


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
            jobs.append(saot_torch.CropJob(order[rf.frame], masks.decode_window(rle, *geom.crop_slice), geom))
            where.append((ri, rf.frame))
    return jobs, where


def native_crop(g: saot.Geometry) -> bool:
    """Store this crop at its native size (the model resizes it on its device): a crop SAOT enlarges
    to more than twice its pixels, whose resized pixels would cost up to (resize / crop)^2 times more
    bytes (an 8-px object: 100x). A crop enlarged less is stored resized: a few more bytes, and no
    resize when it is loaded (bench_loader: 0.3 ms a sample on CPU when every enlarged crop was native)."""
    return g.upscale and 2 * g.crop_hw[0] * g.crop_hw[1] < g.resize_hw[0] * g.resize_hw[1]


def encode_sample(sample: Sample, root: Roots, cfg: SaotConfig, device: torch.device, view_size: int = 0) -> list[tuple[str, bytes]]:
    """The tar members `(name, bytes)` of one sample, in writing order; raises Reject."""
    key = sample.key
    annotated = sorted({rf.frame for r in sample.regions for rf in r.frames})
    jobs, where = _crop_jobs(sample, annotated, cfg)
    members, frames, decoded = _store_frames(sample, root, annotated, device, view_size)
    local_of = saot_torch.local_owners(jobs, cfg)
    outs = saot_torch.tokenize_batch([decoded[f] for f in annotated], jobs, cfg, local_of)
    local_index = {v: k for k, v in enumerate(sorted(set(local_of)))}  # stored local view of each object
    objects, crops, grids, positions, cells = [], [], [], [], 0
    for i, ((ri, f), job, out) in enumerate(zip(where, jobs, outs)):
        if out.token_count == 0:
            raise Reject("no_object_tokens", f"region {ri} frame {f}: the grid mask sums below 1", sample.id)
        g = job.geom
        stored = decoded[f][(slice(None), *g.crop_slice)] if native_crop(g) else out.crop
        crops.append((f"{key}.{shardformat.crop_member(i)}", shardformat.jpeg(stored, shardformat.CROP_QUALITY)))
        grids.append(out.grid.numpy().ravel())
        positions.append(saot.position_grid(g).reshape(-1, 2))
        size = g.grid_hw[0] * g.grid_hw[1]
        objects.append(shardformat.ObjectEntry(
            ri, f, g.box, g.frame_hw, g.area, g.scale, g.crop_hw, g.resize_hw, g.grid_hw, out.token_count,
            shardformat.crop_member(i), (cells, cells + size), shardformat.lite_local_member(local_index[local_of[i]]) if cfg.lite else None))
        cells += size
    members += crops
    if objects:
        members.append((f"{key}.{shardformat.GRID}", shardformat.npy(np.concatenate(grids).astype(np.float32))))
        members.append((f"{key}.{shardformat.POS}", shardformat.npy(np.concatenate(positions).astype(np.float32))))
    if cfg.lite and objects:
        views = iter(saot_torch.global_views([decoded[f] for f in annotated]))
        for k, f in enumerate(annotated):
            members.append((f"{key}.{shardformat.lite_global_member(k)}", shardformat.jpeg(next(views), shardformat.VIEW_QUALITY)))
        position = {f: k for k, f in enumerate(annotated)}
        frames = [replace(e, lite_global=shardformat.lite_global_member(position[e.frame])) if e.annotated else e for e in frames]
        members += [(f"{key}.{shardformat.lite_local_member(k)}", shardformat.jpeg(outs[i].local, shardformat.CROP_QUALITY))
                    for i, k in local_index.items()]
    header = shardformat.Header(sample.model_dump(mode="json"), asdict(cfg), view_size, frames, objects)
    return [(f"{key}.json", header.encode()), *members]


Outcome = tuple[int, str, list[tuple[str, bytes]] | dict[str, str]]  # (mix row, key, members | reject row)


def _outcome(row: int, sample: Sample, root: Roots, cfg: SaotConfig, view_size: int, device: torch.device) -> Outcome:
    try:
        return row, sample.key, encode_sample(sample, root, cfg, device, view_size)
    except (Reject, FileNotFoundError, masks.MaskError, av.error.FFmpegError) as err:
        reject = err if isinstance(err, Reject) else Reject("media_unreadable", str(err), sample.id)
        return row, sample.key, reject.to_dict()


# ---------------------------------------------------------------- shard files


def shard_path(dest: Path, row: int) -> Path:
    """A shard is named by the first mix row of its range, so names never depend on the workers."""
    return dest / f"{row:09d}.tar"


def marker_path(dest: Path, start: int) -> Path:
    """The stats of the block of mix rows starting at `start`: its completion marker."""
    return dest / f"{start:09d}_stats.json"


def plan_blocks(total: int, limits: ShardLimits) -> list[tuple[int, int]]:
    """The mix row ranges `[start, stop)` that are units of work, fixed by the mix size and the
    sample limit only (a block never holds more samples than rows): any worker count, any resume,
    gives the same blocks, hence the same shard files."""
    return [(start, min(start + limits.max_samples, total)) for start in range(0, total, limits.max_samples)]


def _tar_size(members: list[tuple[str, bytes]]) -> int:
    """Tar bytes of a sample, for rolling: per member a header, room for a long-name block, padded data."""
    return sum(1024 + -(-len(data) // 512) * 512 for _, data in members)


class _ShardFile:
    """One shard being written: a temp tar, renamed on close."""

    def __init__(self, dest: Path, first_row: int):
        self.path, self.first_row = shard_path(dest, first_row), first_row
        self.tmp = workspace.temp_path(self.path)
        self.tar = tarfile.open(self.tmp, "w", format=tarfile.GNU_FORMAT)
        self.samples, self.size = 0, 0

    def add(self, members: list[tuple[str, bytes]]) -> None:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
            self.tar.addfile(info, io.BytesIO(data))
        self.samples += 1
        self.size += _tar_size(members)

    def close(self, end_row: int) -> dict:
        self.tar.close()
        data = self.tmp.read_bytes()
        os.replace(self.tmp, self.path)
        return {"shard": self.path.name, "rows": [self.first_row, end_row], "samples": self.samples, "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}


def write_block(outcomes: Iterable[Outcome], dest: Path, start: int, stop: int, limits: ShardLimits) -> dict:
    """Roll the outcomes of mix rows `[start, stop)` into shards (closing at either limit, in row
    order), then write the block's stats file last; returns the stats. A block of rejects only
    has no shard; its rejects are still in its stats."""
    shards, shard, rejects = [], None, []
    for row, _key, result in outcomes:
        if isinstance(result, dict):
            rejects.append(result)
            continue
        if shard and (shard.samples >= limits.max_samples or shard.size + _tar_size(result) > limits.max_bytes):
            shards.append(shard.close(end_row=row))
            shard = None
        if shard is None:
            shard = _ShardFile(dest, row if shards else start)
        shard.add(result)
    if shard:
        shards.append(shard.close(end_row=stop))
    stats = {"rows": [start, stop], "shards": shards, "samples": sum(s["samples"] for s in shards),
             "rejected": dict(sorted(Counter(r["reason"] for r in rejects).items())), "rejects": rejects}
    workspace.write_json_atomic(marker_path(dest, start), stats)
    return stats


class _Writer:
    """Encodes and writes blocks of mix rows: in this process, or as a Ray actor (one per worker)."""

    def __init__(self, out: Path, mix: Path, dest: Path, cfg: SaotConfig, view_size: int, limits: ShardLimits):
        self.out, self.mix, self.dest, self.cfg, self.view_size, self.limits = out, mix, dest, cfg, view_size, limits
        self.device = saot_torch.default_device()

    def limit_threads(self) -> None:
        """Torch and OpenCV threads = the CPUs Ray gave this actor (Ray workers otherwise see every core)."""
        import cv2
        import ray

        cpus = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
        torch.set_num_threads(cpus)
        cv2.setNumThreads(cpus)

    def write(self, start: int, stop: int) -> dict:
        rows = enumerate(workspace.iter_mixed_samples(self.out, self.mix, start, stop), start)
        outcomes = (_outcome(row, sample, root, self.cfg, self.view_size, self.device) for row, (sample, root) in rows)
        return write_block(outcomes, self.dest, start, stop, self.limits)


def write_blocks(writer: _Writer, blocks: list[tuple[int, int]], workers: int, ray_address: str | None) -> Iterator[dict]:
    """Each block's stats as it finishes: in this process, or on `workers` Ray actors that read
    their own rows and write their own files (the driver only hands out row ranges)."""
    jobs = ((start, (start, stop)) for start, stop in blocks)
    if not workers:
        for _, stats in raypool.fan_out(writer.write, jobs, 0):
            yield stats
        return
    import ray

    with raypool.ray_session(ray_address, workers):
        actor = ray.remote(num_cpus=1, num_gpus=raypool.gpus_per_actor())(_Writer)
        actors = [actor.remote(writer.out, writer.mix, writer.dest, writer.cfg, writer.view_size, writer.limits) for _ in range(workers)]
        try:
            ray.get([a.limit_threads.remote() for a in actors])
            for _, stats in raypool.fan_out(actors, jobs, workers, method="write"):
                yield stats
        finally:  # free their CPUs now, not when Ray collects the handles (a next stage may need them)
            for a in actors:
                ray.kill(a)


def completed(dest: Path, blocks: list[tuple[int, int]]) -> dict[int, dict]:
    """Stats of the complete blocks (stats file and every shard it lists present), by first row."""
    done = {}
    for start, stop in blocks:
        path = marker_path(dest, start)
        if path.is_file():
            stats = json.loads(path.read_text(encoding="utf-8"))
            if stats["rows"] == [start, stop] and all((dest / s["shard"]).is_file() for s in stats["shards"]):
                done[start] = stats
    return done


def _clear_except(dest: Path, keep: dict[int, dict]) -> None:
    """Remove every shard or stats file not of a kept block (a crash may have left partial ones),
    and the stage-level files (rewritten at the end)."""
    names = {marker_path(dest, start).name for start in keep} | {s["shard"] for b in keep.values() for s in b["shards"]}
    for path in sorted(dest.glob("*")):
        if path.name.split(".")[0].split("_")[0].isdigit() and path.name not in names:
            path.unlink()
    for name in ("index.json", "sizes.json", "rejects.jsonl"):
        (dest / name).unlink(missing_ok=True)


def write_index(dest: Path, blocks: list[dict], made_from: dict) -> None:
    """index.json, sizes.json and rejects.jsonl of a stage, from its blocks' stats (in row order)."""
    rejected = Counter()
    for b in blocks:
        rejected.update(b["rejected"])
    shards = [s for b in blocks for s in b["shards"]]
    index = {"format": shardformat.FORMAT, "mix": made_from["mix"], "saot": made_from["saot"], "view_size": made_from["view_size"],
             "made_from": made_from, "shards": shards,
             "samples": sum(s["samples"] for s in shards), "records": blocks[-1]["rows"][1] if blocks else 0,
             "rejected": dict(sorted(rejected.items()))}
    rows = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for b in blocks for r in b["rejects"])
    (dest / "rejects.jsonl").write_text(rows, encoding="utf-8")
    workspace.write_json_atomic(dest / "sizes.json", {s["shard"]: s["samples"] for s in shards})
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
    # what the shards are made of (a change redoes them all): the data, and the encoder's version
    data = {"version": SHARD_VERSION, "mix_sha256": hashes.sha256(mix), "parts": [hashes.part(out, out / part) for part in used]}
    hashes.save()
    made_from = {"stage": "shard", "format": shardformat.FORMAT, "mix": f"mix/{recipe}/{stage}.parquet",
                 "saot": asdict(cfg), "view_size": view_size, "limits": asdict(limits), **data}
    recorded_path = dest / "config.json"
    recorded = json.loads(recorded_path.read_text(encoding="utf-8")) if recorded_path.is_file() else None
    settings = {k: v for k, v in made_from.items() if k not in data}
    if recorded is not None and {k: v for k, v in recorded.items() if k not in data} != settings:
        raise ValueError(f"{dest} holds shards made with other settings ({workspace.what_changed(recorded, made_from)} "
                         f"differ from {recorded_path}); rerun with the same flags, or delete that folder to rebuild")
    blocks = plan_blocks(pq.read_metadata(mix).num_rows, limits)
    done = {}
    if recorded is not None and {k: recorded.get(k) for k in data} != data:
        print(f"shard {recipe}/{stage}: the data or the encoder changed since these shards were made "
              f"({workspace.what_changed({k: recorded.get(k) for k in data}, data)}; mix sha256 "
              f"{str(recorded.get('mix_sha256'))[:12]} -> {data['mix_sha256'][:12]}): redoing every shard", flush=True)
    else:
        done = completed(dest, blocks)
    _clear_except(dest, done)
    workspace.write_json_atomic(recorded_path, made_from)
    workspace.remove_dead_temps(dest)
    todo = [b for b in blocks if b[0] not in done]
    writer = _Writer(out, mix, dest, cfg, view_size, limits)
    with tqdm(total=blocks[-1][1] if blocks else 0, initial=sum(b - a for a, b in blocks if a in done),
              desc=f"shard {recipe}/{stage}", unit="sample") as progress:
        for stats in write_blocks(writer, todo, workers, ray_address):
            done[stats["rows"][0]] = stats
            progress.update(stats["rows"][1] - stats["rows"][0])
    write_index(dest, [done[start] for start, _ in blocks], made_from)
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

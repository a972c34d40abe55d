"""`pixelrefer segment`: box/point prompts to masks with SAM 2, as a new unified source.

    pixelrefer segment --source vg --out OUT --sam2-config configs/sam2.1/sam2.1_hiera_l.yaml \
        --sam2-checkpoint ckpt/sam2.1_hiera_large.pt

Reads OUT/unified/<source>/part-*.parquet, writes OUT/unified/<source>_sam2/ (same part layout,
same media root in source.json), OUT/rejects/<source>_sam2.jsonl and OUT/stats/<source>_sam2.json.

* Image samples: every box- or point-prompt region gets a SAM 2 image-predictor mask per frame.
* Videos (frame folders, or files decoded with PyAV): a region annotated on a single frame (the keyframe: a mask, box or point)
  is propagated through all frames with the SAM 2 video predictor, forward and backward.
* Everything else (mask regions, multi-frame mask tracks) is copied unchanged.

How the original prompt is kept: a converted region becomes `prompt="mask"`,
`mask_origin="sam2"`; its frames keep their original `box`/`point` beside the new `mask`; and
`meta["sam2"]` records, per converted region index, the original prompt kind and origin, the
keyframe, the model config and the checkpoint file name. Frames where SAM 2 predicts an empty
mask are left out of the region; a region with no mask left is a `sam2_empty_mask` reject.

`--sam2-config` is a config name inside the sam2 package (e.g. configs/sam2.1/sam2.1_hiera_t.yaml).
`--sam2-checkpoint none` builds random weights (seeded, the same in every process): for wiring
tests only, the masks mean nothing.

Where it runs: by default in this process, on CUDA when present (`--device auto`), else CPU.
`--workers K` (or `--ray-address ADDR`, at least one) converts parts on K Ray actors, each
holding one model and taking a GPU when the cluster has GPUs (else running on CPU); parts are
independent, so the output is the same as in-process. The GPU paths are untested on GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from pipelines import raypool, workspace
from sources.media import load_frames
from sources.roots import Roots
from schemas import Reject, Sample, masks, validate
from schemas.arrow import read_parquet

SEGMENT_VERSION = "1"


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _seeded(build, *args, **kwargs):
    """build(...) under a fixed torch seed, so that random-init weights are the same in every process."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build(*args, **kwargs)


class Sam2:
    """SAM 2 image and video predictors built from a sam2 config (checkpoint optional), each on
    first use: an image-only source never builds the video predictor, and vice versa."""

    def __init__(self, config: str, checkpoint: str | None, device: str = "cpu", image_size: int | None = None):
        self.config, self.checkpoint, self.device = config, checkpoint, pick_device(device)
        self._overrides = [f"++model.image_size={image_size}"] if image_size else []

    @cached_property
    def image(self):
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        model = _seeded(build_sam2, self.config, self.checkpoint, device=self.device, hydra_overrides_extra=self._overrides)
        predictor = SAM2ImagePredictor(model)
        # The image predictor hard-codes the feature sizes of a 1024-px model; derive them instead.
        s = model.image_size
        predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
        return predictor

    @cached_property
    def video(self):
        from sam2.build_sam import build_sam2_video_predictor

        return _seeded(build_sam2_video_predictor, self.config, self.checkpoint, device=self.device, hydra_overrides_extra=self._overrides)

    def mask_from_prompt(self, image: np.ndarray, box: Sequence[float] | None, point: Sequence[float] | None) -> np.ndarray:
        """One (h, w) bool mask from a box and/or a positive point on an RGB image."""
        import torch

        with torch.inference_mode():
            self.image.set_image(image)
            result, _, _ = self.image.predict(
                box=None if box is None else np.asarray(box, dtype=np.float32),
                point_coords=None if point is None else np.asarray([point], dtype=np.float32),
                point_labels=None if point is None else np.array([1]),
                multimask_output=False,
            )
        return result[0] > 0

    def propagate(self, frames: Sequence[np.ndarray], keyframe: int, prompt: dict) -> dict[int, np.ndarray]:
        """Masks on every frame from one keyframe prompt {'mask'|'box'|'point': value}."""
        import torch

        with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
            for i, frame in enumerate(frames):  # the predictor reads a folder of <int>.jpg frames
                Image.fromarray(frame).save(Path(tmp) / f"{i:05d}.jpg", quality=95)
            state = self.video.init_state(tmp, offload_video_to_cpu=True)
            if "mask" in prompt:
                self.video.add_new_mask(state, frame_idx=keyframe, obj_id=0, mask=prompt["mask"])
            else:
                point = prompt.get("point")
                self.video.add_new_points_or_box(
                    state,
                    frame_idx=keyframe,
                    obj_id=0,
                    box=None if prompt.get("box") is None else np.asarray(prompt["box"], dtype=np.float32),
                    points=None if point is None else np.asarray([point], dtype=np.float32),
                    labels=None if point is None else np.array([1], dtype=np.int32),
                )
            out: dict[int, np.ndarray] = {}
            for reverse in (False, True):
                for idx, _, logits in self.video.propagate_in_video(state, start_frame_idx=keyframe, reverse=reverse):
                    out[idx] = (logits[0, 0] > 0).cpu().numpy()
        return out


def _renamed(sample: Sample, source: str, regions: list[dict], meta: dict) -> Sample:
    data = sample.model_dump()
    native = sample.id[len(sample.source) + 1 :]
    data.update(id=f"{source}/{native}", key="", source=source, regions=regions, meta=meta)
    return Sample.model_validate(data)


def _image_region(sample: Sample, root: Roots, region: dict, sam: Sam2) -> dict:
    images = load_frames(sample, root, [rf["frame"] for rf in region["frames"]])
    frames = []
    for rf in region["frames"]:
        m = sam.mask_from_prompt(images[rf["frame"]], rf["box"], rf["point"])
        if m.any():
            frames.append({**rf, "mask": masks.encode(m)})
    return {**region, "frames": frames}


def _video_region(sample: Sample, root: Roots, region: dict, sam: Sam2) -> dict:
    key = region["frames"][0]
    prompt = {"mask": masks.decode(key["mask"])} if key["mask"] is not None else {"box": key["box"], "point": key["point"]}
    video = load_frames(sample, root, range(sample.media.frame_count))
    predicted = sam.propagate([video[f] for f in sorted(video)], key["frame"], prompt)
    frames = []
    for idx in sorted(predicted):
        keep = key if idx == key["frame"] else {"frame": idx, "mask": None, "box": None, "point": None}
        if predicted[idx].any():
            frames.append({**keep, "mask": masks.encode(predicted[idx])})
    return {**region, "frames": frames}


def convert(sample: Sample, root: Roots, sam: Sam2, source: str) -> Sample:
    """The sample under `source` with its prompt regions turned into SAM 2 masks (see module doc)."""
    regions = [r.model_dump() for r in sample.regions]
    converted: dict[str, dict] = {}
    is_video = sample.media.kind == "video"
    for i, region in enumerate(regions):
        single = len(region["frames"]) == 1
        if is_video and single and (sample.media.frame_count or 1) > 1:
            new = _video_region(sample, root, region, sam)
        elif region["prompt"] in ("box", "point"):
            new = _image_region(sample, root, region, sam)
        else:
            continue
        if not new["frames"]:
            raise Reject("sam2_empty_mask", f"region {i}: SAM 2 predicted an empty mask on every frame", sample.id)
        converted[str(i)] = {"prompt": region["prompt"], "mask_origin": region["mask_origin"], "keyframe": region["frames"][0]["frame"]}
        regions[i] = {**new, "prompt": "mask", "mask_origin": "sam2"}
    meta = dict(sample.meta)
    if converted:
        meta["sam2"] = {
            "regions": converted,
            "config": sam.config,
            "checkpoint": Path(sam.checkpoint).name if sam.checkpoint else "random-init",
            "version": SEGMENT_VERSION,
        }
    return validate(_renamed(sample, source, regions, meta))


def _segment_part(part: Path, dest: Path, root: Roots, sam: Sam2, target: str) -> dict:
    samples = read_parquet(part)
    kept, rejected = [], []
    for sample in samples:
        try:
            kept.append(convert(sample, root, sam, target))
        except Reject as err:
            rejected.append(err.to_dict())
        except FileNotFoundError as err:  # a frame the sample names is missing under the media root
            rejected.append({"reason": "media_missing", "locator": sample.id, "detail": str(err)})
    marker = {"read": len(samples), "written": len(kept), "rejects": rejected}
    workspace.write_part(dest, kept, marker)
    return marker


class Sam2Worker(Sam2):
    """The Ray actor form of Sam2: also converts whole parts (`segment --workers`)."""

    def segment_part(self, part: Path, dest: Path, root: Roots, target: str) -> dict:
        return _segment_part(part, dest, root, self, target)


def sam2_actors(count: int, config: str, checkpoint: str | None, device: str, image_size: int | None, num_cpus: float = 1) -> list:
    """`count` Sam2Worker actors, each taking a GPU when the cluster has one (unless device is cpu), else on CPU."""
    import ray

    gpus = raypool.gpus_per_actor() if device != "cpu" else 0
    actor = ray.remote(num_cpus=num_cpus, num_gpus=gpus)(Sam2Worker)
    return [actor.remote(config, checkpoint, "cuda" if gpus else "cpu", image_size) for _ in range(count)]


class Sam2OnRay:
    """Sam2's interface served by one Sam2Worker actor, shared by every Ray worker of a videoqa run
    (one model in memory; the actor runs one call at a time, so set_image/predict never interleave)."""

    def __init__(self, actor, config: str, checkpoint: str | None):
        self._actor, self.config, self.checkpoint = actor, config, checkpoint

    def mask_from_prompt(self, image: np.ndarray, box: Sequence[float] | None, point: Sequence[float] | None) -> np.ndarray:
        import ray

        return ray.get(self._actor.mask_from_prompt.remote(image, box, point))

    def propagate(self, frames: Sequence[np.ndarray], keyframe: int, prompt: dict) -> dict[int, np.ndarray]:
        import ray

        return ray.get(self._actor.propagate.remote(frames, keyframe, prompt))


def _convert_parts(todo: list[tuple[Path, Path]], root: Roots, target: str, segmenter: Sam2 | list) -> Iterator[dict]:
    """The markers of the converted parts: in this process, or spread over Sam2Worker actors."""
    if isinstance(segmenter, Sam2):
        return (_segment_part(part, dest, root, segmenter, target) for part, dest in todo)
    from ray.util import ActorPool

    return ActorPool(segmenter).map_unordered(lambda actor, job: actor.segment_part.remote(*job, root, target), todo)


def segment_source(out: Path, source: str, segmenter: Sam2 | list) -> dict:
    """Convert every complete part of `source` on `segmenter` (a Sam2, or Sam2Worker actors);
    returns the stats (also written to OUT/stats)."""
    target = f"{source}_sam2"
    root = workspace.source_root(out, source)
    workspace.write_json_atomic(workspace.unified_dir(out, target) / "source.json", {"source": target, **root.to_json(), "adapter_version": SEGMENT_VERSION})
    parts = sorted(p for p in workspace.unified_dir(out, source).glob("part-*.parquet") if workspace.is_complete(p))
    if not parts:
        raise FileNotFoundError(f"{workspace.unified_dir(out, source)} holds no complete parts: run `pixelrefer ingest --source {source}` first")
    pairs = [(part, workspace.part_path(out, target, int(part.stem.split("-")[1]))) for part in parts]
    todo = [(part, dest) for part, dest in pairs if not workspace.is_complete(dest)]  # complete parts are kept (resume)
    started = time.perf_counter()
    for _ in tqdm(_convert_parts(todo, root, target, segmenter), total=len(pairs), initial=len(pairs) - len(todo),
                  desc=f"segment {source}", unit="part"):
        pass
    reasons: Counter[str] = Counter()
    read = written = 0
    rejects_path = out / "rejects" / f"{target}.jsonl"
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    with rejects_path.open("w", encoding="utf-8") as rejects:
        for _, dest in pairs:  # every part's marker holds its counts and rejects
            marker = json.loads(workspace.marker_path(dest).read_text(encoding="utf-8"))
            read += marker["read"]
            written += marker["written"]
            for row in marker["rejects"]:
                reasons[row["reason"]] += 1
                rejects.write(json.dumps(row, sort_keys=True) + "\n")
    stats = {"source": target, "read": read, "written": written, "rejected": sum(reasons.values()),
             "by_reason": dict(sorted(reasons.items())), "seconds": round(time.perf_counter() - started, 3)}
    workspace.write_json_atomic(out / "stats" / f"{target}.json", stats)
    return stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="Unified source to convert (OUT/unified/<source>/).")
    parser.add_argument("--out", required=True, type=Path, help="Workspace folder (the --out of ingest).")
    parser.add_argument("--sam2-config", required=True, help="Config name inside the sam2 package, e.g. configs/sam2.1/sam2.1_hiera_l.yaml.")
    parser.add_argument("--sam2-checkpoint", required=True, help="SAM 2 checkpoint file (.pt); 'none' = random weights, for wiring tests only.")
    parser.add_argument("--device", default="auto",
                        help="cuda, cpu or auto (CUDA when present). Default: auto. On Ray, cpu keeps the actors off GPUs.")
    parser.add_argument("--image-size", type=int, default=None, help="Override the model input size (multiple of 16; default: the config's).")
    parser.add_argument("--workers", type=int, default=0,
                        help="Ray SAM 2 actors converting parts (0: convert in this process; each actor takes a GPU when the cluster has one).")
    parser.add_argument("--ray-address", default=None,
                        help="Ray cluster address (implies at least one actor; default: no Ray, or local Ray with --workers).")


def checkpoint_arg(value: str | None) -> str | None:
    """The checkpoint path of a --sam2-checkpoint value; None for 'none' (random weights)."""
    return None if value is None or value.lower() == "none" else value


def model_args_error(config: str, checkpoint: str | None) -> str | None:
    """Why SAM 2 cannot be built from these arguments, with the fix; None when it can.

    Checked before any work starts, since the model itself is only built on first use."""
    from importlib.resources import files

    if checkpoint is not None and not Path(checkpoint).is_file():
        return f"checkpoint {checkpoint} not found: pass the path of a SAM 2 .pt file"
    package = files("sam2")  # build_sam2 looks the config up inside the package
    if not (package.joinpath(config).is_file() or package.joinpath(f"{config}.yaml").is_file()):
        return f"no sam2 config {config!r}: name one inside the sam2 package, e.g. configs/sam2.1/sam2.1_hiera_l.yaml"
    return None


def run(args: argparse.Namespace) -> int:
    checkpoint = checkpoint_arg(args.sam2_checkpoint)
    if checkpoint is None:
        print("segment: --sam2-checkpoint none: random SAM 2 weights, the masks are meaningless", file=sys.stderr)
    error = model_args_error(args.sam2_config, checkpoint)
    if error:
        print(f"segment: {error}", file=sys.stderr)
        return 2
    if args.workers < 0:
        print("segment: --workers must be 0 (no Ray) or more", file=sys.stderr)
        return 2
    workers = max(1, args.workers) if args.workers or args.ray_address else 0
    try:
        if not workers:
            stats = segment_source(args.out, args.source, Sam2(args.sam2_config, checkpoint, args.device, args.image_size))
        else:
            with raypool.ray_session(args.ray_address, workers):
                actors = sam2_actors(workers, args.sam2_config, checkpoint, args.device, args.image_size)
                stats = segment_source(args.out, args.source, actors)
    except FileNotFoundError as err:
        print(f"segment: {err}", file=sys.stderr)
        return 2
    target = stats["source"]
    print(f"segment: {stats['written']} of {stats['read']} samples written to {workspace.unified_dir(args.out, target)}; "
          f"{stats['rejected']} rejected ({args.out / 'rejects' / (target + '.jsonl')}); stats in {args.out / 'stats' / (target + '.json')}")
    return 0

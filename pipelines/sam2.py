"""Masks for box- and point-prompted regions: the `Segmentor` interface, SAM 2 and the box rasteriser.

    segmentor = segmentor_from_args(args)              # after add_sam2_arguments(parser)
    sample = convert(sample, roots, segmentor, "vg_sam2")

A `Segmentor` turns prompts into masks: `segment_image(frame, hw, box, point)` gives one mask,
`segment_video(frames, keyframe, prompt)` propagates one keyframe prompt through a clip. Two exist:

* `Sam2`: the SAM 2 image and video predictors. Its masks are `mask_origin: "sam2"`; built with
  random weights (`--sam2-checkpoint none`, allowed only with `--sam2-random-weights-for-tests`)
  they are `mask_origin: "sam2_random"`, so that reports and filters can tell them apart.
* `BoxMask`: the box itself, rasterised (`schemas.masks.box_to_rle`), `mask_origin: "box"`; it
  needs no pixels and propagates nothing. A point cannot be rasterised: such a region is a
  `point_needs_sam2` reject.

`convert` is the one sample conversion both `pixelrefer segment` and the videoqa description
branch use. On Ray, `Sam2Worker` actors hold one model each (`sam2_actors`); `Sam2OnRay` is the
Segmentor interface served by one such actor, shared by many Ray tasks.
"""

from __future__ import annotations

import argparse
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipelines import raypool
from schemas import Reject, Sample, masks, validate
from sources.media import load_frames
from sources.roots import Roots

SEGMENT_VERSION = "2"  # 2: BoxMask, mask_origin sam2_random, meta["segment"]
POINT_NEEDS_SAM2 = "point_needs_sam2"


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


class Segmentor(ABC):
    """What turns box/point prompts into masks. `origin` is the regions' new `mask_origin`;
    `needs_pixels`: whether `segment_image` reads the frame; `propagates`: whether a single
    keyframe prompt of a video is carried through every frame (`segment_video`)."""

    origin = ""
    needs_pixels = True
    propagates = True

    @abstractmethod
    def segment_image(self, frame: np.ndarray | None, hw: tuple[int, int], box: Sequence[float] | None,
                      point: Sequence[float] | None) -> np.ndarray:
        """One (h, w) bool mask from a box and/or a positive point on an RGB frame of size `hw`."""

    def segment_video(self, frames: Sequence[np.ndarray], keyframe: int, prompt: dict) -> dict[int, np.ndarray]:
        """Masks on every frame from one keyframe prompt {'mask'|'box'|'point': value}."""
        raise NotImplementedError(f"{type(self).__name__} does not propagate (propagates = False)")

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What made the masks, for the samples' meta and the stage fingerprints."""


class BoxMask(Segmentor):
    """The box as the mask (`--segmentor box-mask`): visible as `mask_origin: "box"`, never a fake
    annotation. A point-only prompt is a `point_needs_sam2` reject."""

    origin = "box"
    needs_pixels = False
    propagates = False

    def segment_image(self, frame, hw, box, point):
        if box is None:
            raise Reject(POINT_NEEDS_SAM2, "a point prompt cannot be rasterised: segment it with SAM 2 (--segmentor sam2)")
        return masks.decode(masks.box_to_rle(box, *hw)).astype(bool)

    def describe(self) -> dict[str, Any]:
        return {"segmentor": "box-mask"}


class Sam2(Segmentor):
    """SAM 2 image and video predictors built from a sam2 config (checkpoint None: random weights),
    each on first use: an image-only source never builds the video predictor, and vice versa."""

    def __init__(self, config: str, checkpoint: str | None, device: str = "cpu", image_size: int | None = None):
        self.config, self.checkpoint, self.device, self.image_size = config, checkpoint, pick_device(device), image_size
        self._overrides = [f"++model.image_size={image_size}"] if image_size else []
        self.origin = "sam2" if checkpoint else "sam2_random"

    def describe(self) -> dict[str, Any]:
        return {"segmentor": "sam2", "config": self.config, "image_size": self.image_size,
                "checkpoint": Path(self.checkpoint).name if self.checkpoint else "random-init"}

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

    def segment_image(self, frame, hw, box, point):
        import torch

        with torch.inference_mode():
            self.image.set_image(frame)
            result, _, _ = self.image.predict(
                box=None if box is None else np.asarray(box, dtype=np.float32),
                point_coords=None if point is None else np.asarray([point], dtype=np.float32),
                point_labels=None if point is None else np.array([1]),
                multimask_output=False,
            )
        return result[0] > 0

    def segment_video(self, frames, keyframe, prompt):
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


class Sam2Worker(Sam2):
    """The Ray actor form of Sam2: also converts whole parts (`segment --workers`)."""

    def segment_part(self, *args: Any) -> dict:
        from pipelines.segment import segment_part

        return segment_part(*args, self)


def sam2_actors(count: int, config: str, checkpoint: str | None, device: str, image_size: int | None, num_cpus: float = 1) -> list:
    """`count` Sam2Worker actors, each taking a GPU when the cluster has one (unless device is cpu), else on CPU."""
    import ray

    gpus = raypool.gpus_per_actor() if device != "cpu" else 0
    actor = ray.remote(num_cpus=num_cpus, num_gpus=gpus)(Sam2Worker)
    return [actor.remote(config, checkpoint, "cuda" if gpus else "cpu", image_size) for _ in range(count)]


class Sam2OnRay(Sam2):
    """Sam2's interface served by one Sam2Worker actor, shared by every Ray worker of a videoqa run
    (one model in memory; the actor runs one call at a time, so set_image/predict never interleave)."""

    def __init__(self, actor, config: str, checkpoint: str | None, image_size: int | None = None):
        super().__init__(config, checkpoint, "cpu", image_size)
        self._actor = actor

    def segment_image(self, frame, hw, box, point):
        import ray

        return ray.get(self._actor.segment_image.remote(frame, hw, box, point))

    def segment_video(self, frames, keyframe, prompt):
        import ray

        return ray.get(self._actor.segment_video.remote(frames, keyframe, prompt))


# ---------------------------------------------------------------- one sample


def _image_region(sample: Sample, root: Roots, region: dict, segmentor: Segmentor) -> dict:
    hw = (sample.media.height, sample.media.width)
    wanted = [rf["frame"] for rf in region["frames"]]
    images = load_frames(sample, root, wanted) if segmentor.needs_pixels else dict.fromkeys(wanted)
    frames = []
    for rf in region["frames"]:
        if rf["mask"] is not None:  # a frame that already has a mask keeps it
            frames.append(rf)
            continue
        m = segmentor.segment_image(images[rf["frame"]], hw, rf["box"], rf["point"])
        if m.any():
            frames.append({**rf, "mask": masks.encode(m)})
    return {**region, "frames": frames}


def _video_region(sample: Sample, root: Roots, region: dict, segmentor: Segmentor) -> dict:
    key = region["frames"][0]
    prompt = {"mask": masks.decode(key["mask"])} if key["mask"] is not None else {"box": key["box"], "point": key["point"]}
    video = load_frames(sample, root, range(sample.media.frame_count))
    predicted = segmentor.segment_video([video[f] for f in sorted(video)], key["frame"], prompt)
    frames = []
    for idx in sorted(predicted):
        keep = key if idx == key["frame"] else {"frame": idx, "mask": None, "box": None, "point": None}
        if predicted[idx].any():
            frames.append({**keep, "mask": masks.encode(predicted[idx])})
    return {**region, "frames": frames}


def convert(sample: Sample, root: Roots, segmentor: Segmentor, source: str) -> Sample:
    """The sample under `source` with its box/point regions turned into masks (and, with a
    propagating Segmentor, every single-keyframe video region carried through the clip).

    A converted region becomes `prompt="mask"`, `mask_origin=segmentor.origin`; its frames keep
    their original `box`/`point` beside the new `mask`; `meta["segment"]` records the Segmentor
    and, per converted region index, the original prompt kind and origin and the keyframe. Frames
    with an empty mask are left out; a region with no mask left is a `segment_empty_mask` reject.
    Mask regions and multi-frame mask tracks are copied unchanged.
    """
    regions = [r.model_dump() for r in sample.regions]
    converted: dict[str, dict] = {}
    is_video = sample.media is not None and sample.media.kind == "video"
    for i, region in enumerate(regions):
        single = len(region["frames"]) == 1
        if segmentor.propagates and is_video and single and (sample.media.frame_count or 1) > 1:
            new = _video_region(sample, root, region, segmentor)
        elif region["prompt"] in ("box", "point"):
            try:
                new = _image_region(sample, root, region, segmentor)
            except Reject as err:
                raise Reject(err.reason, f"region {i}: {err.message}", sample.id) from None
        else:
            continue
        if not new["frames"]:
            raise Reject("segment_empty_mask", f"region {i}: the {segmentor.describe()['segmentor']} mask is empty on every frame", sample.id)
        converted[str(i)] = {"prompt": region["prompt"], "mask_origin": region["mask_origin"], "keyframe": region["frames"][0]["frame"]}
        regions[i] = {**new, "prompt": "mask", "mask_origin": segmentor.origin}
    meta = dict(sample.meta)
    if converted:
        meta["segment"] = {"regions": converted, **segmentor.describe(), "version": SEGMENT_VERSION}
    data = sample.model_dump()
    data.update(id=f"{source}/{sample.id[len(sample.source) + 1 :]}", key="", source=source, regions=regions, meta=meta)
    return validate(Sample.model_validate(data))


# ---------------------------------------------------------------- the flags of segment and videoqa


def add_sam2_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """The Segmentor flags, the same in `segment` and `videoqa`."""
    parser.add_argument("--segmentor", choices=("sam2", "box-mask"), default="sam2" if required else None,
                        help="sam2: SAM 2 masks (needs --sam2-config and --sam2-checkpoint); box-mask: the box itself as the "
                             "mask (mask_origin box; point prompts are point_needs_sam2 rejects)."
                             + (" Default: sam2." if required else " Default: sam2 when --sam2-config is given, else none."))
    parser.add_argument("--sam2-config", help="Config name inside the sam2 package, e.g. configs/sam2.1/sam2.1_hiera_l.yaml.")
    parser.add_argument("--sam2-checkpoint", help="SAM 2 checkpoint file (.pt). 'none' builds random weights, "
                        "only together with --sam2-random-weights-for-tests.")
    parser.add_argument("--sam2-random-weights-for-tests", action="store_true",
                        help="Allow --sam2-checkpoint none: meaningless masks, marked mask_origin sam2_random, for wiring tests.")
    parser.add_argument("--sam2-image-size", type=int, help="Override the SAM 2 input size (multiple of 16; default: the config's).")
    parser.add_argument("--device", default="auto",
                        help="SAM 2 device: cuda, cpu or auto (CUDA when present). Default: auto. On Ray, cpu keeps the actors off GPUs.")


def segmentor_kind(args: argparse.Namespace) -> str | None:
    """'sam2', 'box-mask', or None (no Segmentor: videoqa keeps the given masks)."""
    return args.segmentor or ("sam2" if args.sam2_config else None)


def checkpoint_arg(value: str | None) -> str | None:
    """The checkpoint path of a --sam2-checkpoint value; None for 'none' (random weights)."""
    return None if value is None or value.lower() == "none" else value


def sam2_args_error(args: argparse.Namespace) -> str | None:
    """Why the Segmentor cannot be built from these flags, with the fix; None when it can.

    Checked before any work starts, since the model itself is only built on first use."""
    from importlib.resources import files

    if segmentor_kind(args) != "sam2":
        return None
    if not args.sam2_config or not args.sam2_checkpoint:
        return "--segmentor sam2 needs --sam2-config and --sam2-checkpoint (or use --segmentor box-mask)"
    checkpoint = checkpoint_arg(args.sam2_checkpoint)
    if checkpoint is None and not args.sam2_random_weights_for_tests:
        return ("--sam2-checkpoint none builds random SAM 2 weights, whose masks mean nothing: pass a checkpoint .pt file "
                "(or --sam2-random-weights-for-tests in wiring tests)")
    if checkpoint is not None and not Path(checkpoint).is_file():
        return f"checkpoint {checkpoint} not found: pass the path of a SAM 2 .pt file"
    package = files("sam2")  # build_sam2 looks the config up inside the package
    if not (package.joinpath(args.sam2_config).is_file() or package.joinpath(f"{args.sam2_config}.yaml").is_file()):
        return f"no sam2 config {args.sam2_config!r}: name one inside the sam2 package, e.g. configs/sam2.1/sam2.1_hiera_l.yaml"
    return None


def segmentor_from_args(args: argparse.Namespace, actors: int = 0, actor_cpus: float = 1) -> Segmentor | list | None:
    """The Segmentor the flags ask for (check `sam2_args_error` first): in this process, or with
    `actors` > 0 that many Sam2Worker actors (BoxMask needs no model and always runs here)."""
    kind = segmentor_kind(args)
    if kind == "box-mask":
        return BoxMask()
    if kind is None:
        return None
    checkpoint = checkpoint_arg(args.sam2_checkpoint)
    if not actors:
        return Sam2(args.sam2_config, checkpoint, args.device, args.sam2_image_size)
    return sam2_actors(actors, args.sam2_config, checkpoint, args.device, args.sam2_image_size, actor_cpus)

"""Loaders of the video benchmarks: VideoRefer-Bench-D and -Q, HC-STVG val.

Their records are VideoRefer's own dialect (`annotation: [{"<frame>": {"segmentation": rle}}]`,
one dict per object, `<objectN><region>` placeholders), so each loader builds the native record
of one question and lets `sources.videorefer.VideoReferAdapter.to_sample` read it: the same
video probing, frame-range checks and placeholder binding as training data gets.

Frame modes: VideoRefer-Bench records carry masks on 32 sampled frames and a `frame_idx`;
`single` keeps only the mask on `frame_idx` (the paper's "S" mode, PixelRefer's default for
Bench-D), `multi` keeps them all. HC-STVG val has one mask per record (on `frame_idx`).

Sources of the formats: `VideoRefer/benchmark/README.md` (Bench-D and -Q, in
`alibaba-damo-academy/PixelRefer`), PixelRefer `evaluation/pixelrefer/infer_hc_stvg.py`
(`hc_stvg_val.json`: `{video, caption, frame_idx, mask}`).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from pipelines.evaluate.loader import BenchmarkLoader, text_field
from schemas import Reject, Sample, masks
from sources import fixtures
from sources.common import find_media
from sources.roots import Roots
from sources.videorefer import FIXTURE_SIZE, VideoReferAdapter, fixture_rect, write_clip

FRAME_MODES = ("single", "multi")


def fixture_segmentation(frame: int) -> dict:
    """The RLE of the fixture clips' block on `frame` (`sources.videorefer.fixture_rect`)."""
    return {"segmentation": masks.encode(fixtures.rect_mask(*FIXTURE_SIZE, fixture_rect(frame)))}


class VideoBenchmarkLoader(BenchmarkLoader, VideoReferAdapter):
    """A VideoRefer-dialect benchmark: `question()` and `answer()` of a record become one sample."""

    VIDEO_FOLDER: ClassVar[str] = ""  # where the release unpacks its videos, tried before the root itself
    license = "Apache-2.0 (annotations); videos keep the terms of their origin"

    def __init__(self, frame_mode: str = "single"):
        if frame_mode not in FRAME_MODES:
            raise ValueError(f"frame mode {frame_mode!r}: expected one of {FRAME_MODES}")
        self.frame_mode = frame_mode

    @abstractmethod
    def question(self, record: dict, locator: str) -> str:
        """The evaluation prompt, in VideoRefer's dialect (`<region>`, `<objectN><region>`)."""

    @abstractmethod
    def answer(self, record: dict, locator: str) -> str:
        """The reference answer."""

    def objects(self, record: dict, locator: str) -> list:
        """The per-object `{frame: {segmentation}}` dicts, cut to `frame_idx` in single-frame mode."""
        objects = record.get("annotation")
        if not isinstance(objects, list) or not objects:
            raise Reject("no_masks", "no `annotation` list of objects", locator)
        if self.frame_mode == "multi":
            return objects
        frame = str(record.get("frame_idx"))
        if not all(isinstance(o, dict) and isinstance(o.get(frame), dict) and o[frame].get("segmentation") for o in objects):
            raise Reject("no_mask_at_frame_idx", f"an object has no mask on frame_idx {frame} (use --frame-mode multi)", locator)
        return [{frame: o[frame]} for o in objects]

    def meta(self, record: dict) -> dict:
        """What scoring needs besides the reference answer."""
        return {}

    def outcomes(self, roots: Roots, record: tuple[int, Any], locator: str) -> Sample:
        index, value = record
        if not isinstance(value, dict) or not isinstance(value.get("video"), str):
            raise Reject("bad_record", "expected an object with a `video` path", locator)
        video = find_media(roots, [(self.VIDEO_FOLDER, value["video"]), ("", value["video"])], locator)
        native = {"id": value.get("id", index), "video": video, "annotation": self.objects(value, locator),
                  "conversations": [{"from": "human", "value": self.question(value, locator)},
                                    {"from": "gpt", "value": self.answer(value, locator)}]}
        if "frame_idx" in value:
            native["frame_idx"] = value["frame_idx"]
        sample = self.to_sample(roots, native, self.FILE, self.subset, self.TASK, index)
        sample.meta.update(self.meta(value), frame_mode=self.frame_mode)
        return sample


class VideoReferDLoader(VideoBenchmarkLoader):
    name = "videorefer-bench-d"
    FILE, VIDEO_FOLDER, TASK = "VideoRefer-Bench-D.json", "Panda-70M-part", "video_caption"
    LAYOUT = """\
VideoRefer-Bench-D.json   [{id, video, caption, frame_idx, annotation: [{"<frame>": {segmentation: rle}}]}], 400 items
Panda-70M-part/           the clips (Panda-70M-part.zip unpacked here or in a --media folder)
"""

    def question(self, record: dict, locator: str) -> str:
        return "There is one object in the video: <region>.\nPlease describe in detail the marked object in the video."

    def answer(self, record: dict, locator: str) -> str:
        return text_field(record, "caption", locator)

    def write_fixture(self, root: Path) -> None:
        write_clip(root / self.VIDEO_FOLDER / "clip_0:00:01.000_0:00:02.000.mp4")
        record = {"video": "clip_0:00:01.000_0:00:02.000.mp4", "frame_idx": "1",
                  "annotation": [{str(f): fixture_segmentation(f) for f in range(3)}]}
        fixtures.write_json(root / self.FILE, [
            {"id": 0, **record, "caption": "A red block slides to the right across a grey floor."},
            {"id": 1, **record, "caption": "The block moves right."},
            {"id": 2, **record, "frame_idx": "5", "caption": "A block."},  # trap: no mask on frame_idx
        ])


class VideoReferQLoader(VideoBenchmarkLoader):
    name = "videorefer-bench-q"
    FILE, TASK = "VideoRefer-Bench-Q.json", "multiple_choice"
    SUFFIX = ". Answer with the option's letter from the given choices directly."
    LAYOUT = """\
VideoRefer-Bench-Q.json   [{id, video, Question, type, options: ["(A) ..", ..], Answer, frame_idx, annotation}], 1,000 questions
DAVIS/JPEGImages/480p/    frame folders (and MeViS/valid_u/JPEGImages/), here or in a --media folder
"""

    def question(self, record: dict, locator: str) -> str:
        options = record.get("options")
        if not (isinstance(options, list) and options and all(isinstance(o, str) for o in options)):
            raise Reject("bad_record", "`options` must be a non-empty list of strings", locator)
        return text_field(record, "Question", locator) + " " + " ".join(options) + self.SUFFIX

    def answer(self, record: dict, locator: str) -> str:
        return text_field(record, "Answer", locator)

    def meta(self, record: dict) -> dict:
        return {"type": record.get("type", "unknown"), "options": record["options"]}

    def write_fixture(self, root: Path) -> None:
        folder = "DAVIS/JPEGImages/480p/blocks"
        for i in range(3):
            fixtures.write_image(root / folder / f"{i:05d}.jpg", *FIXTURE_SIZE, [fixture_rect(i)], seed=i)
        one = [{"0": fixture_segmentation(0), "2": fixture_segmentation(2)}]
        options = ["(A) Left", "(B) Right", "(C) Up", "(D) Down"]
        fixtures.write_json(root / self.FILE, [
            {"id": 0, "video": folder, "Question": "Where does <object0><region> move?", "type": "Basic Questions",
             "options": options, "Answer": "(B) Right", "frame_idx": "0", "annotation": one},
            {"id": 1, "video": folder, "Question": "What colour is <object0><region>?", "type": "Basic Questions",
             "options": ["(A) Red", "(B) Blue", "(C) Green", "(D) Grey"], "Answer": "(A) Red", "frame_idx": "2", "annotation": one},
            {"id": 2, "video": folder, "Question": "Will <object0><region> stop?", "type": "Future Predictions",
             "options": ["(A) Yes", "(B) No"], "Answer": "(B) No", "frame_idx": "0", "annotation": one},
            {"id": 3, "video": folder, "Question": "Where does <object0><region> go?", "type": "Sequential Questions",
             "options": options, "Answer": "(B) Right", "frame_idx": "0", "annotation": one},
            {"id": 4, "video": folder, "Question": "Is <object0><region> above <object1><region>?", "type": "Relationship Questions",
             "options": ["(A) Yes", "(B) No"], "Answer": "(B) No", "frame_idx": "0", "annotation": one},  # trap: 2 placeholders, 1 object
        ])


class HcstvgLoader(VideoBenchmarkLoader):
    name = "hc-stvg-val"
    FILE, VIDEO_FOLDER, TASK = "hc_stvg_val.json", "video_parts", "video_caption"
    license = "HC-STVG: research use (see its release); videos from movies"
    LAYOUT = """\
hc_stvg_val.json   PixelRefer's file: [{video, caption, frame_idx, mask: rle}], one masked person per record
video_parts/       the HC-STVG videos (here or in a --media folder)
"""

    def objects(self, record: dict, locator: str) -> list:
        if not isinstance(record.get("mask"), dict):
            raise Reject("no_masks", "`mask` must be one RLE", locator)
        return [{str(record.get("frame_idx")): {"segmentation": record["mask"]}}]

    def question(self, record: dict, locator: str) -> str:
        return "Please describe the object <region> in brief in the video."

    def answer(self, record: dict, locator: str) -> str:
        return text_field(record, "caption", locator)

    def write_fixture(self, root: Path) -> None:
        write_clip(root / self.VIDEO_FOLDER / "movie_1.mp4")
        fixtures.write_json(root / self.FILE, [
            {"video": "movie_1.mp4", "frame_idx": 0, "caption": "the red block moves right", "mask": fixture_segmentation(0)["segmentation"]},
            {"video": "movie_1.mp4", "frame_idx": 2, "caption": "a small red block", "mask": fixture_segmentation(2)["segmentation"]},
            {"video": "movie_1.mp4", "frame_idx": 9, "caption": "gone", "mask": fixture_segmentation(0)["segmentation"]},  # trap: past the clip
        ])

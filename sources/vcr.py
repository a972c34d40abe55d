"""VCR (Visual Commonsense Reasoning) -> region QA: the question, its answer, then the rationale.

Origin: Zellers et al., "From Recognition to Cognition: Visual Commonsense Reasoning" (CVPR 2019),
visualcommonsense.com; the format as the authors' loader reads it (rowanz/r2c
`dataloaders/vcr.py`). `train.jsonl` / `val.jsonl` (vcr1annots.zip) hold one question per line:
`annot_id`, `img_fn`, `metadata_fn`, `objects` (a class name per detected object), `question`,
`answer_choices` (4), `answer_label`, `rationale_choices` (4), `rationale_label`, and `movie`,
`question_number`, ... Texts are token lists; a token is a word or a list of 0-based indices into
`objects` (`[1, 2]`: objects 1 and 2). The per-image `metadata_fn` JSON (vcr1images.zip) has
`width`, `height`, `boxes` (`[x0, y0, x1, y1, score]` per object) and `segms` (per object a list
of polygons, each a list of `[x, y]` image points). `test.jsonl` has no labels and is not read.

Prompt format: the two VCR subtasks as two rounds, Q->A then QA->R, as GPT4RoI and Osprey train on
VCR (CircleRadon/Osprey `osprey/datasets/vcr.py`): user the question, assistant the correct answer,
user a why-question (`WHY`, picked per sample), assistant the correct rationale. Unlike those
loaders, which list every detected object up front, only the objects the three texts mention
become regions, numbered `<obj0>`, `<obj1>`, ... in order of first mention (question, answer,
rationale); a mention of several objects reads `<obj0> and <obj1>` (`<obj0>, <obj1> and <obj2>`).
Words are joined by spaces, with none before punctuation and contractions (`is n't` -> `isn't`).
A region is the object's polygon mask; an object with no polygon keeps its box as a box prompt.

    pixelrefer ingest --source vcr --root /data/vcr --out out/
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas import Media, Reject, Region, RegionFrame, Sample, masks
from schemas.placeholders import obj
from sources import fixtures
from sources.base import Adapter, Unit
from sources.common import image_size, is_int, is_number, line_spans, normalize_text, read_lines, release_files, segmentation_rle
from sources.roots import Roots
from sources.templates import pick

FILES = ("train.jsonl", "val.jsonl")  # test.jsonl has no answer or rationale labels
IMAGES = "vcr1images"
UNIT_BYTES = 8 << 20  # ~6k questions, each one metadata JSON and one image header
WHY = (
    "Why?",
    "Why do you think so?",
    "What makes you say that?",
    "What is the rationale for that answer?",
)
_ATTACHED = re.compile(r"^(?:[.,!?;:%)\]}]+|n't|'[A-Za-z]*)$")  # tokens written without a space before them


class _Mentions:
    """Token lists -> text, numbering the mentioned objects in order of first mention."""

    def __init__(self, objects: list[str], locator: str):
        self.objects, self.locator, self.order = objects, locator, {}

    def text(self, tokens: Any, what: str) -> str:
        if not isinstance(tokens, list) or not tokens:
            raise Reject("bad_record", f"{what} is not a non-empty token list", self.locator)
        out = ""
        for token in tokens:
            piece = self._mention(token) if isinstance(token, list) else token
            if not isinstance(piece, str):
                raise Reject("bad_token", f"{what}: token {str(token)[:40]} is neither a word nor an index list", self.locator)
            out += piece if not out or _ATTACHED.match(piece) or out.endswith(("(", "[")) else " " + piece
        return normalize_text(out)

    def _mention(self, indices: list) -> str:
        if not indices or not all(is_int(i) and 0 <= i < len(self.objects) for i in indices):
            raise Reject("bad_object_ref", f"object reference {indices} outside the {len(self.objects)} objects", self.locator)
        names = [obj(self.order.setdefault(i, len(self.order))) for i in indices]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class VcrAdapter(Adapter):
    name = "vcr"
    version = "1"
    license = "VCR licence (non-commercial research; images from movies)"
    LAYOUT = """\
train.jsonl  val.jsonl                       (vcr1annots.zip; here or in a subfolder)
vcr1images/<movie>/<image>.jpg + .json       (vcr1images.zip; here or in a declared media root)
"""

    def units(self, roots: Roots) -> list[Unit]:
        files = release_files(roots.annotations, FILES)
        if not files:
            raise FileNotFoundError(f"{roots.annotations}: none of {', '.join(FILES)} found (expected layout:\n{self.LAYOUT})")
        return [Unit(self.name, f"{Path(f).stem}-{span['first']:08d}", {"file": f, **span})
                for f in files for span in line_spans(roots.annotations / f, UNIT_BYTES)]

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        file = unit.spec["file"]
        for index, record in read_lines(roots.annotations / file, unit.spec, file):
            yield f"{file}[{index}]", record if isinstance(record, Reject) else (file, record)

    def outcomes(self, roots: Roots, record: tuple[str, Any], locator: str) -> Sample:
        file, line = record
        if not isinstance(line, dict) or not isinstance(line.get("annot_id"), str) or not isinstance(line.get("objects"), list):
            raise Reject("bad_record", "a VCR line is an object with `annot_id` and `objects`", locator)
        answer = _chosen(line, "answer", locator)
        rationale = _chosen(line, "rationale", locator)
        mentions = _Mentions(line["objects"], locator)
        texts = [mentions.text(line.get("question"), "question"), mentions.text(answer, "answer"),
                 mentions.text(rationale, "rationale")]
        meta = _metadata(roots, line, locator)
        width, height = image_size(roots, str(line.get("img_fn")), locator, IMAGES)
        if (width, height) != (meta["width"], meta["height"]):
            raise Reject("image_size_mismatch", f"{line['img_fn']} is {width}x{height} but its metadata says "
                         f"{meta['width']}x{meta['height']}", locator)
        regions = [_region(meta, i, line["objects"][i], width, height, f"{locator} object {i}") for i in mentions.order]
        split = Path(file).stem
        return self.sample(
            subset=split, native_id=line["annot_id"], file=file, locator=locator, split=split, task="region_qa",
            media=Media(kind="image", path=f"{IMAGES}/{line['img_fn']}", width=width, height=height),
            regions=regions,
            conversation=[{"role": "user", "text": texts[0]}, {"role": "assistant", "text": texts[1]},
                          {"role": "user", "text": pick(WHY, line["annot_id"])}, {"role": "assistant", "text": texts[2]}],
            meta={"annot_id": line["annot_id"], "movie": line.get("movie"), "question_number": line.get("question_number"),
                  "objects": list(mentions.order)},
        )

    def write_fixture(self, root: Path) -> None:
        write_fixture(root)


def _chosen(line: dict, kind: str, locator: str) -> Any:
    """The correct one of `{kind}_choices` (reject bad_label)."""
    choices, label = line.get(f"{kind}_choices"), line.get(f"{kind}_label")
    if not isinstance(choices, list) or not is_int(label) or not 0 <= label < len(choices):
        raise Reject("bad_label", f"{kind}_label {label!r} does not pick one of the {kind}_choices", locator)
    return choices[label]


def _metadata(roots: Roots, line: dict, locator: str) -> dict:
    """The image's metadata JSON, checked: int width/height, boxes and segms for every object."""
    name = line.get("metadata_fn")
    path = roots.media_path(name if isinstance(name, str) else "", locator, IMAGES)
    if not path.is_file():
        raise Reject("metadata_missing", f"no metadata file at {name}", locator)
    try:
        meta = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, > 4300 digits, too deep
        raise Reject("bad_metadata", f"{name}: {type(err).__name__}: {str(err)[:200]}", locator) from None
    n = len(line["objects"])
    if not (isinstance(meta, dict) and is_int(meta.get("width")) and is_int(meta.get("height"))
            and isinstance(meta.get("boxes"), list) and isinstance(meta.get("segms"), list)):
        raise Reject("bad_metadata", f"{name} lacks int width/height or boxes/segms lists", locator)
    if len(meta["boxes"]) != n or len(meta["segms"]) != n:
        raise Reject("object_count_mismatch", f"{name} has {len(meta['boxes'])} boxes and {len(meta['segms'])} segms "
                     f"for {n} objects", locator)
    return meta


def _region(meta: dict, index: int, label: Any, width: int, height: int, locator: str) -> Region:
    """Object `index`: its polygons as a mask, or its box as a box prompt when it has none."""
    polygons = meta["segms"][index]
    if polygons:
        if not (isinstance(polygons, list)
                and all(isinstance(p, list) and all(isinstance(xy, list) for xy in p) for p in polygons)):
            raise Reject("bad_mask", "segms entry is not a list of polygons of [x, y] points", locator)
        rle = segmentation_rle([[v for xy in p for v in xy] for p in polygons], height, width, locator)
        box = masks.bbox(rle)
        if box is None:
            raise Reject("empty_mask", "the polygons cover no pixel", locator)
        return Region(label=str(label), prompt="mask", mask_origin="annotation",
                      frames=[RegionFrame(frame=0, mask=rle, box=box)])
    raw = meta["boxes"][index]
    usable = isinstance(raw, list) and len(raw) >= 4 and all(is_number(v) for v in raw[:4])
    box = masks.clip_box(raw[:4], width, height) if usable else None
    if box is None:
        raise Reject("degenerate_box", f"box {str(raw)[:80]} has no area inside the {width}x{height} image", locator)
    return Region(label=str(label), prompt="box", frames=[RegionFrame(frame=0, box=box)])


# ---- fixture: two 64x48 shots with three and two objects ----

PERSON_A, PERSON_B, CAR = (4, 8, 20, 44), (24, 8, 36, 44), (40, 20, 62, 40)
DOG, DOG_TAIL = (6, 10, 30, 30), (30, 14, 40, 18)


def _points(rect: fixtures.Rect) -> list[list[float]]:
    ring = fixtures.rect_polygon(rect)
    return [ring[i : i + 2] for i in range(0, len(ring), 2)]


def _line(annot_id: str, img: str, objects: list[str], question: list, answer: list, rationale: list, **changes: Any) -> dict:
    fill = [["Nothing", "."]] * 3
    return {"movie": "1054_Harry_Potter", "objects": objects, "interesting_scores": [0], "answer_likelihood": "likely",
            "img_fn": f"{img}.jpg", "metadata_fn": f"{img}.json", "question": question,
            "answer_choices": [fill[0], answer, *fill[1:]], "answer_label": 1,
            "rationale_choices": [rationale, *fill], "rationale_label": 0,
            "annot_id": annot_id, "question_number": 0, **changes}


def write_fixture(root: Path) -> None:
    """train.jsonl (a good question, then traps: an object index out of range, a bad label, a
    missing metadata file, a missing image, a 4-number polygon, a broken line) and val.jsonl."""
    shot_a, shot_b = "1054_Harry_Potter/shot_a@0", "1054_Harry_Potter/shot_b@1"
    fixtures.write_image(root / IMAGES / f"{shot_a}.jpg", 64, 48, [PERSON_A, PERSON_B, CAR], seed=1)
    fixtures.write_json(root / IMAGES / f"{shot_a}.json", {
        "boxes": [[*PERSON_A, 0.99], [*PERSON_B, 0.98], [*CAR, 0.9]],
        "segms": [[_points(PERSON_A)], [], [_points((40, 20, 51, 40)), _points((51, 20, 62, 40))]],
        "names": ["person", "person", "car"], "width": 64, "height": 48})
    fixtures.write_image(root / IMAGES / f"{shot_b}.jpg", 48, 32, [DOG, DOG_TAIL], seed=2)
    fixtures.write_json(root / IMAGES / f"{shot_b}.json", {
        "boxes": [[*DOG, 0.9], [*DOG_TAIL, 0.5]], "segms": [[_points(DOG)], [[[30, 14], [40, 18]]]],
        "names": ["dog", "dog"], "width": 48, "height": 32})
    people = ["person", "person", "car"]
    good = _line("train-0", shot_a, people, ["What", "is", [0], "doing", "?"],
                 [[0], "is", "waiting", "for", [2], "."],
                 [[0], "is", "looking", "at", [2], ",", "and", [1, 2], "are", "n't", "moving", "."])
    lines = [
        json.dumps(good), "",
        json.dumps(_line("train-1", shot_a, people, ["Why", "is", [5], "here", "?"], ["To", "wait", "."], ["Because", "."])),
        json.dumps({**_line("train-2", shot_a, people, ["Why", "?"], ["No", "."], ["Because", "."]), "answer_label": 7}),
        json.dumps(_line("train-3", "1054_Harry_Potter/shot_c@2", people, ["Who", "?"], ["Nobody", "."], ["Because", "."])),
        json.dumps({**_line("train-4", shot_b, ["dog", "dog"], ["Who", "?"], ["Nobody", "."], ["Because", "."]),
                    "img_fn": "1054_Harry_Potter/shot_d@3.jpg"}),
        json.dumps(_line("train-5", shot_b, ["dog", "dog"], ["Is", [1], "wagging", "?"], ["Yes", "."], ["It", "moves", "."])),
        "{not json",
    ]
    (root / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    val = _line("val-0", shot_b, ["dog", "dog"], ["What", "does", [0], "want", "?"], [[0], "wants", "food", "."],
                ["Dogs", "beg", "(", "often", ")", "."])
    (root / "val.jsonl").write_text(json.dumps(val) + "\n", encoding="utf-8")
    (root / "test.jsonl").write_text(json.dumps({k: v for k, v in val.items() if not k.endswith("_label")}) + "\n", encoding="utf-8")

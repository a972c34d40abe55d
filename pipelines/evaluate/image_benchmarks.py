"""Loaders of the image benchmarks: Osprey-ValData LVIS and PACO, VG val, Ferret-Bench referring
reasoning, DLC-Bench. Each reads the file as its authors released it (`LAYOUT`) and writes a
fixture in that format (`write_fixture`); prompts are the ones the official scripts send.

Sources of the formats: `CircleRadon/Osprey` `osprey/eval/lvis_paco_eval.py` and
`sunshine-lwt/Osprey-ValData` (LVIS/PACO); PixelRefer `evaluation/pixelrefer/infer_vg.py`
(VG); Osprey `osprey/eval/ferret-bench/box_refer_reason.json` and `apple/ml-ferret`
`ferret/eval/ferret_gpt4_data/refer_reason/` (Ferret); `nvidia/DLC-Bench` as read by DAM's
`evaluation/get_model_outputs.py` and `eval_model_outputs.py`, prompt from PixelRefer's
`evaluation/pixelrefer/infer_dam.py` (DLC-Bench).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.evaluate.loader import BenchmarkLoader, box_region, coco_image, mask_region, text_field
from schemas import Reject, masks
from schemas.placeholders import obj
from sources import fixtures
from sources.base import Outcome, Unit, isolated
from sources.common import find_media, image_size
from sources.roots import Roots

RECT_A, RECT_B, RECT_C = (8, 8, 24, 20), (30, 20, 50, 40), (2, 30, 12, 44)  # fixture objects on 64x48 images


def _poly(rect: fixtures.Rect) -> list[list[float]]:
    return [fixtures.rect_polygon(rect)]


class OspreyCategoryLoader(BenchmarkLoader):
    """Osprey-ValData category files: one record per image, `categories[i]` names `annotations[i]`."""

    license = "LVIS / PACO annotation terms (CC BY 4.0 / MIT); COCO images"
    QUESTION = ""

    def outcomes(self, roots: Roots, record: tuple[int, Any], locator: str) -> Iterator[Outcome]:
        index, value = record
        if not isinstance(value, dict) or not isinstance(value.get("categories"), list) \
                or not isinstance(value.get("annotations"), list) or len(value["categories"]) != len(value["annotations"]):
            raise Reject("bad_record", "expected `categories` and `annotations` lists of the same length", locator)
        media = coco_image(roots, value.get("file_name"), locator)
        for j, (category, annotation) in enumerate(zip(value["categories"], value["annotations"])):
            yield from isolated(f"{locator} object {j}", self._object, index, j, category, annotation, media)

    def _object(self, index: int, j: int, category: Any, annotation: Any, media: dict):
        where = f"{self.FILE}[{index}] object {j}"
        if not isinstance(category, str) or not category.strip():
            raise Reject("bad_record", "the category is not a non-empty string", where)
        segmentation = annotation.get("segmentation") if isinstance(annotation, dict) else None
        region = mask_region(segmentation, media, where, label=category)
        return self.item_sample(native_id=f"{index}_{j}", locator=where, task="recognition", media=media,
                                regions=[region], question=self.QUESTION.format(region=obj(0)), answer=category)

    def write_fixture(self, root: Path) -> None:
        """Two COCO images under val2017/ and train2017/ (as PixelRefer looks them up), three
        objects, and one record whose lists disagree (a `bad_record` reject)."""
        fixtures.write_image(root / "val2017/000000000201.jpg", 64, 48, [RECT_A, RECT_B], seed=201)
        fixtures.write_image(root / "train2017/000000000202.jpg", 64, 48, [RECT_C], seed=202)
        image = {"height": 48, "width": 64}
        fixtures.write_json(root / self.FILE, [
            {"file_name": "000000000201.jpg", **image, "categories": list(self.FIXTURE_CATEGORIES[:2]),
             "annotations": [{"segmentation": _poly(RECT_A)}, {"segmentation": masks.encode(fixtures.rect_mask(64, 48, RECT_B))}]},
            {"file_name": "000000000202.jpg", **image, "categories": list(self.FIXTURE_CATEGORIES[2:]),
             "annotations": [{"segmentation": _poly(RECT_C)}]},
            {"file_name": "000000000202.jpg", **image, "categories": ["cup", "mug"], "annotations": [{"segmentation": _poly(RECT_C)}]},
        ])


class LvisLoader(OspreyCategoryLoader):
    name = "osprey-lvis"
    FILE = "lvis_val_1k_category.json"
    QUESTION = "What is the category of {region}? Using only one word or phrase."
    FIXTURE_CATEGORIES = ("mug", "baseball_bat", "teddy_bear")
    LAYOUT = """\
lvis_val_1k_category.json   Osprey-ValData (1,000 images, 4,004 objects): {file_name, height, width, categories, annotations}
val2017/ train2017/         COCO images (here or in a --media folder)
"""


class PacoLoader(OspreyCategoryLoader):
    name = "osprey-paco"
    FILE = "paco_val_1k_category.json"
    QUESTION = ("What is the category of {region}? It maybe a subpart of an object. If it is a subpart, output in the "
                "format of 'category:subcategory', else just output the category.")
    FIXTURE_CATEGORIES = ("mug:handle", "bottle:cap", "chair")
    LAYOUT = """\
paco_val_1k_category.json   Osprey-ValData (1,000 images, 4,263 objects): categories like "handbag:zip"
val2017/ train2017/         COCO images (here or in a --media folder)
"""


class VgLoader(BenchmarkLoader):
    """PixelRefer's VG val file: one box per record, described by a short phrase."""

    name = "vg-val"
    FILE = "vg_val_5000.json"
    license = "CC BY 4.0 (Visual Genome)"
    LAYOUT = """\
vg_val_5000.json   [{image: [path], height, width, caption, boxes: [[x, y, w, h]]}], 5,000 regions
<image paths>      the VG images the records name (here or in a --media folder)
"""

    def outcomes(self, roots: Roots, record: tuple[int, Any], locator: str) -> Outcome:
        index, value = record
        images, boxes = (value.get("image"), value.get("boxes")) if isinstance(value, dict) else (None, None)
        if not (isinstance(images, list) and images and isinstance(boxes, list) and boxes):
            raise Reject("bad_record", "expected non-empty `image` and `boxes` lists", locator)
        width, height = image_size(roots, images[0], locator)
        media = {"kind": "image", "path": images[0], "width": width, "height": height}
        return self.item_sample(native_id=index, locator=locator, task="phrase_caption", media=media,
                                regions=[box_region(boxes[0], media, locator)],
                                question=f"Please describe {obj(0)} briefly.", answer=text_field(value, "caption", locator))

    def write_fixture(self, root: Path) -> None:
        fixtures.write_image(root / "VG_100K/1.jpg", 64, 48, [RECT_A, RECT_B], seed=1)
        record = {"image": ["VG_100K/1.jpg"], "height": 48, "width": 64}
        fixtures.write_json(root / self.FILE, [
            {**record, "caption": "a small red box on the left", "boxes": [[8, 8, 16, 12]]},
            {**record, "caption": "a blue square on the right side", "boxes": [[30, 20, 20, 20]]},
            {**record, "caption": "nothing", "boxes": [[70, 50, 5, 5]]},  # trap: outside the image
        ])


class FerretLoader(BenchmarkLoader):
    """Ferret-Bench referring reasoning as Osprey released it (a box and its polygon per question),
    joined with Ferret's GPT-4 reference answers and image contexts by `question_id`."""

    name = "ferret-reason"
    FILE = "box_refer_reason.json"
    ANSWERS, CONTEXT = "refer_reason/answer.jsonl", "refer_reason/context.jsonl"
    license = "Ferret-Bench: CC BY-NC 4.0 (Apple); COCO images"
    LAYOUT = """\
box_refer_reason.json        Osprey's copy: [{question_id, image, category, text with <region>, annotation: {bbox, segmentation}}]
refer_reason/answer.jsonl    Ferret's GPT-4 answers {question_id, text} (the judge's reference, assistant 1)
refer_reason/context.jsonl   Ferret's image contexts {question_id, text} (objects, relations, captions for the judge)
val2017/                     COCO images (here or in a --media folder)
"""

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        answers, context = (self._by_question(roots.annotations / f) for f in (self.ANSWERS, self.CONTEXT))
        for locator, (_, value) in super().records(roots, unit):
            yield locator, (value, answers, context)

    @staticmethod
    def _by_question(path: Path) -> dict[Any, str]:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: Ferret-Bench's refer_reason file is missing (from apple/ml-ferret ferret/eval/ferret_gpt4_data)")
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return {row["question_id"]: row["text"] for row in rows}

    def outcomes(self, roots: Roots, record: tuple, locator: str) -> Outcome:
        value, answers, context = record
        question = text_field(value, "text", locator)
        qid = value.get("question_id")
        if qid not in answers or qid not in context:
            raise Reject("no_reference_answer", f"question_id {qid!r} has no GPT-4 answer or context in refer_reason/", locator)
        if question.count("<region>") != 1:
            raise Reject("placeholder_count_mismatch", "expected one <region> in the question", locator)
        annotation = value.get("annotation") if isinstance(value.get("annotation"), dict) else {}
        media = coco_image(roots, value.get("image"), locator)
        region = box_region(annotation.get("bbox"), media, locator, polygon=annotation.get("segmentation"))
        return self.item_sample(native_id=qid, locator=locator, task="region_qa", media=media, regions=[region],
                                question=question.replace("<region>", obj(0)), answer=answers[qid],
                                meta={"question_id": qid, "context": context[qid], "category": "refer_reason"})

    def write_fixture(self, root: Path) -> None:
        fixtures.write_image(root / "val2017/000000000301.jpg", 64, 48, [RECT_A, RECT_B], seed=301)
        box = {"bbox": [8.0, 8.0, 16.0, 12.0], "segmentation": _poly(RECT_A)}
        questions = [
            {"question_id": 0, "image": "000000000301.jpg", "category": "reason", "text": "What is the purpose of the object <region>?", "annotation": box},
            {"question_id": 1, "image": "000000000301.jpg", "category": "reason", "text": "What might the object <region> be used for?", "annotation": box},
            {"question_id": 2, "image": "000000000301.jpg", "category": "reason", "text": "Why is <region> here?", "annotation": box},  # trap: no reference
        ]
        fixtures.write_json(root / self.FILE, questions)
        for path, texts in ((self.ANSWERS, ["It holds tools.", "It is used for storage."]),
                            (self.CONTEXT, ["Objects:\nObject 0 : box at [0.125, 0.167, 0.375, 0.417].", "Objects:\nObject 0 : box."])):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text("".join(json.dumps({"question_id": i, "text": t}) + "\n" for i, t in enumerate(texts)))


class DlcLoader(BenchmarkLoader):
    """DLC-Bench: COCO-format masks of an Objects365 subset; each annotation id keys its class name
    and its positive/negative attribute questions (`qa.json`)."""

    name = "dlc-bench"
    FILE = "annotations.json"
    license = "DLC-Bench: CC BY-NC 4.0 (NVIDIA); Objects365 images"
    LAYOUT = """\
annotations.json    COCO format: images [{id, file_name, height, width}], annotations [{id, image_id, segmentation}]
qa.json             {annotation id: [{question, choices: [[text, score], ...], type: positive|negative}]}
class_names.json    {annotation id: class name}
images/             the images
"""

    def items(self, data: Any) -> list[Any]:
        if not isinstance(data, dict) or not isinstance(data.get("annotations"), list) or not isinstance(data.get("images"), list):
            raise UserError(f"{self.FILE} is not a COCO annotation file (no `images` and `annotations` lists)", self.FILE,
                            "download DLC-Bench again")
        images = {image.get("id"): image for image in data["images"] if isinstance(image, dict)}
        return [(annotation, images.get(annotation.get("image_id"))) for annotation in data["annotations"] if isinstance(annotation, dict)]

    def records(self, roots: Roots, unit: Unit) -> Iterator[tuple[str, Any]]:
        qa, names = (json.loads((roots.annotations / f).read_text(encoding="utf-8")) for f in ("qa.json", "class_names.json"))
        for locator, (index, (annotation, image)) in super().records(roots, unit):
            yield locator, (annotation, image, qa, names)

    def outcomes(self, roots: Roots, record: tuple, locator: str) -> Outcome:
        annotation, image, qa, names = record
        key = str(annotation.get("id"))
        if key not in qa or key not in names:
            raise Reject("no_questions", f"annotation {key} has no entry in qa.json or class_names.json", locator)
        if image is None:
            raise Reject("image_missing", f"annotation {key} names an image id that `images` lacks", locator)
        path = find_media(roots, [("images", str(image.get("file_name")))], locator)
        width, height = image_size(roots, path, locator)
        media = {"kind": "image", "path": path, "width": width, "height": height}
        region = mask_region(annotation.get("segmentation"), media, locator, label=names[key])
        return self.item_sample(native_id=key, locator=locator, task="detailed_caption", media=media, regions=[region],
                                question=f"Please describe the region {obj(0)} in the image in detail. Do not describe anything else.",
                                answer=names[key],
                                meta={"class_name": names[key], "questions": qa[key],
                                      "reference": "the class name only: DLC-Bench scores descriptions by questions"})

    def write_fixture(self, root: Path) -> None:
        fixtures.write_image(root / "images/o365_1.jpg", 64, 48, [RECT_A, RECT_B], seed=365)
        fixtures.write_json(root / self.FILE, {
            "images": [{"id": 1, "file_name": "o365_1.jpg", "height": 48, "width": 64}],
            "annotations": [{"id": 11, "image_id": 1, "segmentation": _poly(RECT_A)},
                            {"id": 12, "image_id": 1, "segmentation": masks.encode(fixtures.rect_mask(64, 48, RECT_B))},
                            {"id": 13, "image_id": 1, "segmentation": _poly(RECT_B)}],  # trap: no questions
        })
        fixtures.write_json(root / "qa.json", {
            "11": [_colour_question("red"), {"question": "Does it have a handle?", "type": "negative",
                                   "choices": [["has a handle", -1], ["no handle", 1], ["not mentioned", 1]]}],
            "12": [_colour_question("blue")],
        })
        fixtures.write_json(root / "class_names.json", {"11": "box", "12": "tiles"})


def _colour_question(right: str) -> dict:
    """A DLC-Bench positive question: the right colour scores 1, a wrong one -1, no mention 0."""
    return {"question": "What colour is the object?", "type": "positive",
            "choices": [[right, 1], ["green", -1], ["not mentioned", 0]]}

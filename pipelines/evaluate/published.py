"""The numbers the PixelRefer paper publishes for its own models, beside which our results are shown.

Source: Yuan et al., "PixelRefer: A Unified Framework for Spatio-Temporal Object Referring with
Arbitrary Granularity", arXiv 2510.23603v2, Tables 1-4, copied by hand. Only what the paper
prints: a metric it does not report for a model is absent here and shows as "not reported",
never a guess. Scales are the paper's (percent; VideoRefer-Bench-D 0-5).

Known oddities kept as printed: Table 2 gives PixelRefer-Lite-7B TD 2.28 with Avg 3.64 (the
other three dimensions and 3.28 would average 3.65, so 2.28 is likely a typo for 3.28); the
Lite models are scored with multi-frame masks (M) there, the others with one frame (S).
"""

from __future__ import annotations

MODELS = ("PixelRefer-2B", "PixelRefer-7B", "PixelRefer-Lite-2B", "PixelRefer-Lite-7B")
CITATION = "PixelRefer, arXiv 2510.23603v2"


def _columns(metrics: tuple[str, ...], rows: dict[str, tuple[float, ...]]) -> dict[str, dict[str, float]]:
    """{metric: {model: value}} from one table's rows, as printed."""
    return {metric: {model: values[i] for model, values in rows.items()} for i, metric in enumerate(metrics)}


# Table 1 columns, per benchmark: LVIS (SSim, SIoU), PACO (SSim, SIoU), DLC-Bench (Pos, Neg, Avg),
# VG (METEOR, CIDEr), Ferret (Reasoning). Ref-L4 is not one of our benchmarks.
_TABLE1 = {
    "PixelRefer-Lite-2B": (89.4, 82.0, 89.3, 81.9, 41.1, 80.2, 60.7, 18.6, 155.0, 74.5),
    "PixelRefer-Lite-7B": (89.6, 82.5, 90.3, 83.1, 48.2, 72.4, 60.3, 19.0, 161.4, 78.1),
    "PixelRefer-2B": (89.8, 82.5, 90.1, 82.7, 46.8, 85.4, 66.1, 19.7, 161.2, 78.5),
    "PixelRefer-7B": (90.5, 82.7, 91.7, 85.3, 49.6, 87.0, 68.3, 19.7, 168.2, 83.1),
}


def _table1(first: int, metrics: tuple[str, ...]) -> dict[str, dict[str, float]]:
    return _columns(metrics, {model: values[first:first + len(metrics)] for model, values in _TABLE1.items()})


PUBLISHED: dict[str, dict] = {
    "osprey-lvis": {"table": "Table 1", "metrics": _table1(0, ("SSim", "SIoU"))},
    "osprey-paco": {"table": "Table 1", "metrics": _table1(2, ("SSim", "SIoU"))},
    "dlc-bench": {"table": "Table 1", "metrics": _table1(4, ("Pos", "Neg", "Avg"))},
    "vg-val": {"table": "Table 1", "metrics": _table1(7, ("METEOR", "CIDEr"))},
    "ferret-reason": {"table": "Table 1", "metrics": _table1(9, ("Reasoning",))},
    "videorefer-bench-d": {"table": "Table 2", "metrics": _columns(("SC", "AD", "TD", "HD", "Avg"), {
        "PixelRefer-Lite-2B": (4.56, 3.41, 3.08, 3.12, 3.53),
        "PixelRefer-Lite-7B": (4.69, 3.56, 2.28, 3.06, 3.64),
        "PixelRefer-2B": (4.59, 3.40, 3.25, 3.09, 3.58),
        "PixelRefer-7B": (4.70, 3.59, 3.39, 3.13, 3.70),
    })},
    "videorefer-bench-q": {"table": "Table 3", "metrics": _columns((
        "Accuracy Basic Questions", "Accuracy Sequential Questions", "Accuracy Relationship Questions",
        "Accuracy Reasoning Questions", "Accuracy Future Predictions", "Accuracy"), {
        "PixelRefer-Lite-2B": (70.3, 58.8, 56.4, 80.7, 73.7, 65.7),
        "PixelRefer-Lite-7B": (81.2, 72.7, 68.5, 88.4, 81.6, 76.9),
        "PixelRefer-2B": (82.1, 73.0, 64.7, 90.2, 81.6, 76.5),
        "PixelRefer-7B": (84.5, 76.9, 71.5, 89.5, 79.7, 79.4),
    })},
    "hc-stvg-val": {"table": "Table 4", "metrics": _columns(("METEOR", "CIDEr", "BLEU-4", "ROUGE-L"), {
        "PixelRefer-Lite-2B": (21.1, 91.3, 19.0, 45.8),
        "PixelRefer-Lite-7B": (21.9, 92.7, 20.7, 46.5),
        "PixelRefer-2B": (19.5, 78.9, 17.2, 43.8),
        "PixelRefer-7B": (21.1, 97.4, 20.1, 46.1),
    })},
}


def published(benchmark: str, metric: str, model: str) -> float | None:
    """The paper's value, or None where it reports none."""
    return PUBLISHED.get(benchmark, {}).get("metrics", {}).get(metric, {}).get(model)

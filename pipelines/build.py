"""`pixelrefer build`: every stage of a recipe, from native releases to shards, a trained model and a report.

    pixelrefer build --recipe pixelrefer-2.2m --roots roots.yaml --out build --allow-missing
    pixelrefer build --recipe demo --root demo/native --out build --videoqa-source mevis \
        --train-config train/configs/tiny.yaml --train-override optim.steps=4
    pixelrefer build ... --from shard            # redo sharding and what follows, keep the rest
    pixelrefer build ... --until mix             # stop after mixing

Stages, in order: ingest -> videoqa -> mix -> shard -> train -> report. Each runs the verb of the
same name in this process (so its own progress and output lines appear) and then writes
`OUT/build/<stage>.done` holding the command it ran. A rerun skips a stage whose marker holds the
same command, until one stage has to run: every stage after it runs too. `--from STAGE` deletes that stage's outputs and those of every later stage and redoes
them. videoqa runs only with `--videoqa-source`, train only with `--train-config`; train runs once
per recipe stage (data.shards = that stage's shards, output in OUT/train/<stage>/, each stage
starting from the previous one's weights).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines import workspace

STAGES = ("ingest", "videoqa", "mix", "shard", "train", "report")


class BuildError(Exception):
    """A stage failed; the message names it and its command."""


@dataclass
class Plan:
    """What a build runs, resolved from the command line."""

    out: Path
    recipe: str
    recipe_name: str
    recipe_stages: list[str]
    roots: dict[str, Path]
    ingest_args: list[str] = field(default_factory=list)
    videoqa_sources: list[str] = field(default_factory=list)
    videoqa_args: list[str] = field(default_factory=list)
    allow_missing: bool = False
    shard_args: list[str] = field(default_factory=list)
    train_config: str | None = None
    train_overrides: list[str] = field(default_factory=list)
    ray_address: str | None = None

    def commands(self, stage: str) -> list[list[str]]:
        """The CLI invocations of one stage (empty when the stage does not apply)."""
        out, ray = str(self.out), (["--ray-address", self.ray_address] if self.ray_address else [])
        if stage == "ingest":
            return [["ingest", "--source", "all", *self.ingest_args, "--out", out, *ray]]
        if stage == "videoqa":
            sources = [a for s in self.videoqa_sources for a in ("--source", s)]
            return [["videoqa", "--out", out, *sources, *self.videoqa_args, *ray]] if sources else []
        if stage == "mix":
            return [["mix", "--recipe", self.recipe, "--out", out, *(["--allow-missing"] if self.allow_missing else [])]]
        if stage == "shard":
            return [["shard", "--mix", str(self.mix_file(s)), "--out", out, *self._shard_args(), *ray] for s in self.recipe_stages]
        if stage == "train":
            return self._train_commands() if self.train_config else []
        return [["report", out]]

    def _shard_args(self) -> list[str]:
        """The shard flags; with a train config, the stored image views match its data.image_size."""
        if not self.train_config or any(a.startswith("--view-size") for a in self.shard_args):
            return self.shard_args
        from train.config import load_config

        return [*self.shard_args, "--view-size", str(load_config(self.train_config, self.train_overrides).data.image_size)]

    def _train_commands(self) -> list[list[str]]:
        commands, previous = [], None
        for s in self.recipe_stages:
            run_dir = self.out / "train" / s
            init = [f"init_from={previous}"] if previous else []
            commands.append(["train", "--config", self.train_config, *self.train_overrides,
                             f"data.shards={self.shard_dir(s)}", f"output_dir={run_dir}", *init])
            previous = run_dir
        return commands

    def mix_file(self, stage: str) -> Path:
        return self.out / "mix" / self.recipe_name / f"{stage}.parquet"

    def shard_dir(self, stage: str) -> Path:
        return self.out / "shards" / self.recipe_name / stage

    def outputs(self, stage: str) -> list[Path]:
        """What `--from` deletes before redoing a stage."""
        out = self.out
        if stage == "ingest":
            return [p for s in self.roots for p in (workspace.unified_dir(out, s), out / "rejects" / f"{s}.jsonl", out / "stats" / f"{s}.json")]
        if stage == "videoqa":  # the request cache and journal stay: a redo costs no LLM calls
            return [p for s in self.videoqa_sources for t in [f"videoqa_{s}"]
                    for p in (workspace.unified_dir(out, t), out / "rejects" / f"{t}.jsonl", out / "stats" / f"{t}.json")]
        if stage == "mix":
            return [out / "mix" / self.recipe_name, out / "stats" / f"mix-{self.recipe_name}.json"]
        if stage == "shard":
            return [out / "shards" / self.recipe_name]
        return [out / stage]


def marker(out: Path, stage: str) -> Path:
    return out / "build" / f"{stage}.done"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def run_build(plan: Plan, redo_from: str | None = None, last: str = STAGES[-1],
              run_verb: Callable[[list[str]], int] | None = None) -> list[str]:
    """Run the stages up to `last`, redoing `redo_from` and later ones; return the stages that ran."""
    if run_verb is None:
        from pipelines.cli import main as run_verb
    first = redo_from or STAGES[0]
    chosen = STAGES[STAGES.index(first) : STAGES.index(last) + 1]
    for stage in STAGES[STAGES.index(redo_from) :] if redo_from else ():
        for path in [marker(plan.out, stage), *plan.outputs(stage)]:
            _remove(path)
    ran = []
    for stage in chosen:
        commands = plan.commands(stage)
        done = marker(plan.out, stage)
        # once a stage has run, every later one runs too: its inputs changed
        if not ran and done.is_file() and json.loads(done.read_text(encoding="utf-8"))["commands"] == commands:
            print(f"build: {stage}: complete, skipped ({done})")
            continue
        print(f"build: {stage}: " + ("; ".join("pixelrefer " + " ".join(c) for c in commands) or "nothing to do"))
        for command in commands:
            code = run_verb(command)
            if code != 0:
                raise BuildError(f"stage {stage} failed (exit {code}): pixelrefer {' '.join(command)}")
        workspace.write_json_atomic(done, {"commands": commands})
        ran.append(stage)
    return ran


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", required=True, help="Recipe YAML path or bundled name (pixelrefer-2.2m, demo).")
    parser.add_argument("--out", type=Path, required=True, help="Workspace folder for every stage's outputs.")
    parser.add_argument("--root", type=Path, help="Folder holding <source>/ per source (as `pixelrefer demo-data` writes).")
    parser.add_argument("--roots", type=Path, help="YAML mapping source -> release folder; replaces --root.")
    parser.add_argument("--videoqa-source", action="append", default=[], help="Run videoqa on this ingested video source (repeatable).")
    parser.add_argument("--videoqa-arg", action="append", default=[],
                        help="Extra argument passed to `pixelrefer videoqa` (repeatable), e.g. --videoqa-arg=--backend --videoqa-arg=openai.")
    parser.add_argument("--allow-missing", action="store_true", help="Mix what is ingested and report recipe entries that are not.")
    parser.add_argument("--shard-arg", action="append", default=[], help="Extra argument for `pixelrefer shard` (repeatable), e.g. --shard-arg=--lite.")
    parser.add_argument("--train-config", help="Train config YAML; without it the train stage is skipped.")
    parser.add_argument("--train-override", action="append", default=[], metavar="KEY=VALUE", help="Train config override (repeatable).")
    parser.add_argument("--ray-address", help="Ray cluster address for ingest, videoqa and shard (default: local Ray for ingest, in-process otherwise).")
    parser.add_argument("--from", dest="first", choices=STAGES, help="Redo this stage and every later one (earlier ones are left as they are).")
    parser.add_argument("--until", dest="last", choices=STAGES, default=STAGES[-1], help="Stop after this stage.")


def make_plan(args: argparse.Namespace) -> Plan:
    from pipelines.ingest import resolve_roots
    from pipelines.mix import load_recipe

    recipe = load_recipe(args.recipe)
    roots = resolve_roots("all", args.root, args.roots)
    ingest_args = ["--roots", str(args.roots)] if args.roots else ["--root", str(args.root)]
    return Plan(
        out=args.out, recipe=args.recipe, recipe_name=recipe.name, recipe_stages=[s.name for s in recipe.stages],
        roots=roots, ingest_args=ingest_args, videoqa_sources=args.videoqa_source, videoqa_args=args.videoqa_arg,
        allow_missing=args.allow_missing, shard_args=args.shard_arg, train_config=args.train_config,
        train_overrides=args.train_override, ray_address=args.ray_address,
    )


def run(args: argparse.Namespace) -> int:
    from pipelines.ingest import IngestError
    from pipelines.mix import MixError

    if args.first and STAGES.index(args.first) > STAGES.index(args.last):
        print(f"pixelrefer build: --from {args.first} comes after --until {args.last}", file=sys.stderr)
        return 2
    try:
        plan = make_plan(args)
        run_build(plan, args.first, args.last)
    except (BuildError, IngestError, MixError) as err:
        print(f"pixelrefer build: {err}", file=sys.stderr)
        return 1
    print(f"build: done; outputs under {args.out}")
    return 0

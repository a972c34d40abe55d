"""`pixelrefer build`: every stage of a recipe, from native releases to shards, a trained model and a report.

    pixelrefer build --recipe pixelrefer-2.2m --roots roots.yaml --out build --allow-missing
    pixelrefer build --recipe demo --root demo/native --out build --videoqa-source mevis \
        --train-config train/configs/tiny.yaml --train-override optim.steps=4
    pixelrefer build ... --from shard            # redo sharding and what follows, keep the rest
    pixelrefer build ... --until mix             # stop after mixing
    pixelrefer build ... --plan                  # what would run, and what each recipe entry brings to the shards

Stages, in order: ingest -> segment -> videoqa -> mix -> shard -> train -> report. Each runs the
verb of the same name in this process (so its own progress and output lines appear) and then writes
`OUT/build/<stage>.done` holding the command it ran. A rerun skips a stage whose marker holds the
same command and whose inputs did not change (ingest: the annotation files its parts were made
from; mix: the recipe, policy and parts), until one stage has to run: every stage after it runs
too, and each redoes only the units whose own fingerprints changed. `--from STAGE` deletes that stage's outputs and those of every later stage and redoes
them. videoqa runs only with `--videoqa-source`, train only with `--train-config`; train runs once
per recipe stage (data.shards = that stage's shards, output in OUT/train/<stage>/, each stage
starting from the previous one's weights).

Box and point regions: shards need masks, so a build has one policy, `--box-regions` (default:
the recipe's `box_regions`): `sam2` (needs `--sam2-checkpoint`) or `box-mask` run `pixelrefer
segment` on every ingested source whose recipe entries hold such regions, and the mix reads what
it wrote (`vg` -> `vg_sam2`, see pipelines/mix.py); `drop` leaves those samples out of the mix,
counted. Without a policy, a recipe whose entries hold such regions stops the build before the
segment stage, listing the entries and their sample counts (known once ingested).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from pipelines import workspace
from schemas.recipe import BoxRegions

STAGES = ("ingest", "segment", "videoqa", "mix", "shard", "train", "report")
SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_l.yaml"


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
    box_regions: BoxRegions | None = None
    sam2_config: str = SAM2_CONFIG
    sam2_checkpoint: str | None = None

    def commands(self, stage: str) -> list[list[str]]:
        """The CLI invocations of one stage (empty when the stage does not apply)."""
        out, ray = str(self.out), (["--ray-address", self.ray_address] if self.ray_address else [])
        if stage == "ingest":
            return [["ingest", "--source", "all", *self.ingest_args, "--out", out, *ray]]
        if stage == "segment":
            return [["segment", "--source", s, "--out", out, *self._segmentor_args(), *ray] for s in self.segment_sources()]
        if stage == "videoqa":
            sources = [a for s in self.videoqa_sources for a in ("--source", s)]
            return [["videoqa", "--out", out, *sources, *self.videoqa_args, *ray]] if sources else []
        if stage == "mix":
            policy = ["--box-regions", self.box_regions] if self.box_regions else []
            return [["mix", "--recipe", self.recipe, "--out", out, *policy, *(["--allow-missing"] if self.allow_missing else [])]]
        if stage == "shard":
            return [["shard", "--mix", str(self.mix_file(s)), "--out", out, *self._shard_args(), *ray] for s in self.recipe_stages]
        if stage == "train":
            return self._train_commands() if self.train_config else []
        return [["report", out]]

    def raw_mix(self) -> dict:
        """The recipe's dry-run mix over the sources as ingested (no policy applied, none segmented)."""
        from pipelines.mix import load_recipe, mix

        recipe = load_recipe(self.recipe).model_copy(update={"box_regions": None})  # not the recipe's policy either
        return mix(recipe, self.out, dry_run=True, allow_missing=True)

    def segment_sources(self) -> list[str]:
        """The ingested sources whose recipe entries hold box/point regions without masks, to segment
        under the policy; raises BuildError, naming them, when there is no policy."""
        boxed = [(stage, r) for stage, rows in self.raw_mix()["stages"].items() for r in rows
                 if r["status"] == "covered" and r["box_point"]]
        if boxed and self.box_regions is None:
            listed = "\n  ".join(f"{stage}/{r['name']}: {r['box_point']} of {r['available']} samples of {r['source']}"
                                  for stage, r in boxed)
            raise BuildError(f"recipe entries hold box/point regions without masks, which shards cannot take:\n  {listed}\n"
                             "choose what happens to them: --box-regions sam2 (with --sam2-checkpoint), box-mask or drop "
                             "(or the recipe's box_regions)")
        return sorted({r["source"] for _, r in boxed}) if self.box_regions in ("sam2", "box-mask") else []

    def _segmentor_args(self) -> list[str]:
        if self.box_regions == "box-mask":
            return ["--segmentor", "box-mask"]
        return ["--segmentor", "sam2", "--sam2-config", self.sam2_config, "--sam2-checkpoint", str(self.sam2_checkpoint)]

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
        written = {"ingest": list(self.roots), "segment": [workspace.sam2_source(s) for s in self.roots],
                   # the request cache and journal stay: a redo costs no LLM calls
                   "videoqa": [workspace.videoqa_source(s) for s in self.videoqa_sources]}
        if stage in written:  # the sources the stage writes
            return [p for s in written[stage] for p in (workspace.unified_dir(out, s), out / "rejects" / f"{s}.jsonl",
                                                       out / "stats" / f"{s}.json")]
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


def _shown(commands: list[list[str]]) -> str:
    return "; ".join("pixelrefer " + " ".join(c) for c in commands) or "nothing to do"


def _recorded(done: Path) -> list[list[str]] | None:
    """The commands a stage marker holds; None without a marker."""
    return json.loads(done.read_text(encoding="utf-8"))["commands"] if done.is_file() else None


def stage_state(plan: Plan, stage: str, commands: list[list[str]]) -> tuple[str, str]:
    """(state, reason) of a stage about to run `commands`: `complete` when its marker holds them and,
    for mix, the mix files are made from the current recipe, policy and parts (`mix_state`);
    `stale` when not; `to-run` without a marker."""
    done = marker(plan.out, stage)
    recorded = _recorded(done)
    if recorded is None:
        return "to-run", f"no marker: {_shown(commands)}"
    if recorded != commands:
        return "stale", f"its command changed: {_shown(commands)}"
    if stage == "ingest":  # the command can stay the same while the release's files change
        changed = {source: files for source in workspace.ingested_sources(plan.out)
                   if (files := workspace.changed_inputs(plan.out, source))}
        if changed:
            return "stale", "annotation files changed: " + "; ".join(f"{s} ({', '.join(f)})" for s, f in changed.items())
    if stage == "mix":
        from pipelines.mix import load_recipe, mix_state

        changed = mix_state(plan.out, load_recipe(plan.recipe), plan.box_regions)
        if changed:
            return "stale", f"{changed}: {_shown(commands)}"
    return "complete", f"{done} holds its command"


def stage_states(plan: Plan) -> list[tuple[str, str, str]]:
    """(stage, state, reason) per stage, running nothing: `stage_state`'s, then `to-run` after the
    first stage that runs, or `blocked` (a stage that cannot run as asked)."""
    states, upstream = [], None
    for stage in STAGES:
        if upstream:  # its commands depend on what the earlier stage writes (segment: the ingested regions)
            states.append((stage, "to-run", f"after {upstream}"))
            continue
        try:
            state, reason = stage_state(plan, stage, plan.commands(stage))
        except BuildError as err:
            state, reason = "blocked", str(err)
        states.append((stage, state, reason))
        upstream = None if state == "complete" else stage
    return states


def format_plan(plan: Plan) -> str:
    """The build plan: the state of every stage, then what each recipe entry brings to the shards
    (the mix dry run under the build's box/point policy)."""
    from pipelines.mix import format_report, load_recipe, mix

    lines = [f"build plan: recipe {plan.recipe_name}, box/point regions: {plan.box_regions or 'no policy'}, workspace {plan.out}",
             f"{'stage':<9} {'state':<9} reason"]
    lines += [f"{stage:<9} {state:<9} {reason}" for stage, state, reason in stage_states(plan)]
    recipe = load_recipe(plan.recipe)
    stats = mix(recipe, plan.out, dry_run=True, allow_missing=True, box_regions=plan.box_regions)
    return "\n".join([*lines, format_report(recipe, stats["stages"], stats["box_regions"])])


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
        state, reason = ("to-run", "") if ran else stage_state(plan, stage, commands)
        if state == "complete":
            print(f"build: {stage}: complete, skipped ({done})")
            continue
        print(f"build: {stage}: " + (f"stale, {reason}" if state == "stale" else _shown(commands)))
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
    parser.add_argument("--box-regions", choices=get_args(BoxRegions),
                        help="What becomes of box/point regions (default: the recipe's box_regions): sam2 masks them with "
                             "SAM 2 (needs --sam2-checkpoint), box-mask uses the box as the mask (mask_origin box; point-only "
                             "regions are rejected), drop leaves their samples out, counted.")
    parser.add_argument("--sam2-checkpoint", type=Path, help="SAM 2 checkpoint file (.pt) for --box-regions sam2.")
    parser.add_argument("--sam2-config", default=SAM2_CONFIG, help=f"SAM 2 config inside the sam2 package (default {SAM2_CONFIG}).")
    parser.add_argument("--plan", action="store_true",
                        help="Print each stage's state (complete/stale/to-run and why) and each recipe entry's requested, "
                             "available and expected-in-shards counts; run nothing.")


def make_plan(args: argparse.Namespace) -> Plan:
    from pipelines.ingest import resolve_roots
    from pipelines.mix import load_recipe

    recipe = load_recipe(args.recipe)
    policy = args.box_regions or recipe.box_regions
    if policy == "sam2" and not (args.sam2_checkpoint and args.sam2_checkpoint.is_file()):
        raise BuildError(f"--box-regions sam2 needs --sam2-checkpoint PATH of a SAM 2 checkpoint (.pt file); "
                         f"{'got ' + str(args.sam2_checkpoint) + ', which is not a file' if args.sam2_checkpoint else 'none given'}"
                         "; or choose --box-regions box-mask or drop")
    roots = resolve_roots("all", args.root, args.roots)
    ingest_args = ["--roots", str(args.roots)] if args.roots else ["--root", str(args.root)]
    return Plan(
        out=args.out, recipe=args.recipe, recipe_name=recipe.name, recipe_stages=[s.name for s in recipe.stages],
        roots=roots, ingest_args=ingest_args, videoqa_sources=args.videoqa_source, videoqa_args=args.videoqa_arg,
        allow_missing=args.allow_missing, shard_args=args.shard_arg, train_config=args.train_config,
        train_overrides=args.train_override, ray_address=args.ray_address, box_regions=policy,
        sam2_config=args.sam2_config, sam2_checkpoint=args.sam2_checkpoint and str(args.sam2_checkpoint),
    )


def run(args: argparse.Namespace) -> int:
    from pipelines.ingest import IngestError
    from pipelines.mix import MixError

    if args.first and STAGES.index(args.first) > STAGES.index(args.last):
        print(f"pixelrefer build: --from {args.first} comes after --until {args.last}", file=sys.stderr)
        return 2
    try:
        plan = make_plan(args)
        if args.plan:
            print(format_plan(plan))
            return 0
        run_build(plan, args.first, args.last)
    except (BuildError, IngestError, MixError) as err:
        print(f"pixelrefer build: {err}", file=sys.stderr)
        return 1
    print(f"build: done; outputs under {args.out}")
    return 0

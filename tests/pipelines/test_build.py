"""build: stage order, skipping complete stages, --from redoing a stage and what follows, --until,
the box/point policy (segment stage, or a stop that lists the entries), and --plan."""

from pathlib import Path

import pytest
import yaml

from pipelines.build import STAGES, BuildError, Plan, format_plan, marker, run_build
from pipelines.cli import main
from pipelines.mix import load_recipe, mix
from pipelines.workspace import FileHashes, part_path, write_json_atomic, write_part, write_source_part
from schemas import Region, RegionFrame
from tests.factories import image_sample

TINY = str(Path(__file__).resolve().parents[2] / "train" / "configs" / "tiny.yaml")


def plan(out: Path, **changes) -> Plan:
    fields = dict(out=out, recipe="demo", recipe_name="demo", recipe_stages=["stage1", "stage2"],
                  roots={"lvis": Path("/data/lvis")}, ingest_args=["--root", "/data"], videoqa_sources=["mevis"],
                  videoqa_args=["--backend", "heuristic"], train_config=TINY)
    fields.update(changes)
    return Plan(**fields)


class Recorder:
    """Stands in for the CLI: records each command and leaves a file where the stage writes; mixes
    for real (nothing is ingested, so empty stages), since the build checks the mix's fingerprint."""

    def __init__(self, out: Path, fail: str | None = None):
        self.out, self.fail, self.calls = out, fail, []

    def __call__(self, command: list[str]) -> int:
        self.calls.append(command)
        verb = command[0]
        target = {"ingest": "unified/lvis/x", "segment": "unified/vg_sam2/x", "videoqa": "unified/videoqa_mevis/x", "mix": "mix/demo/x",
                  "shard": "shards/demo/x", "train": "train/x", "report": "report/x"}[verb]
        (self.out / target).parent.mkdir(parents=True, exist_ok=True)
        (self.out / target).write_text("x")
        if verb == "mix" and verb != self.fail:
            mix(load_recipe(command[2]), self.out, allow_missing=True)
        return 3 if verb == self.fail else 0


def test_commands_of_every_stage(tmp_path):
    p = plan(tmp_path)
    assert p.commands("ingest") == [["ingest", "--source", "all", "--root", "/data", "--out", str(tmp_path)]]
    assert p.commands("segment") == []  # nothing ingested: no box/point region to mask
    assert p.commands("videoqa") == [["videoqa", "--out", str(tmp_path), "--source", "mevis", "--backend", "heuristic"]]
    assert p.commands("mix") == [["mix", "--recipe", "demo", "--out", str(tmp_path)]]
    view = ["--view-size", "28"]  # the stored image views match the train config's data.image_size
    assert p.commands("shard") == [["shard", "--mix", str(tmp_path / "mix/demo/stage1.parquet"), "--out", str(tmp_path), *view],
                                   ["shard", "--mix", str(tmp_path / "mix/demo/stage2.parquet"), "--out", str(tmp_path), *view]]
    assert p.commands("train") == [
        ["train", "--config", TINY, f"data.shards={tmp_path / 'shards/demo/stage1'}", f"output_dir={tmp_path / 'train/stage1'}"],
        ["train", "--config", TINY, f"data.shards={tmp_path / 'shards/demo/stage2'}", f"output_dir={tmp_path / 'train/stage2'}",
         f"init_from={tmp_path / 'train/stage1'}"],
    ]
    assert plan(tmp_path, train_overrides=["data.image_size=56"]).commands("shard")[0][-2:] == ["--view-size", "56"]
    assert plan(tmp_path, shard_args=["--view-size=0"]).commands("shard")[0][-1] == "--view-size=0"
    assert plan(tmp_path, train_config=None).commands("shard")[0][-1] == str(tmp_path)
    ray = plan(tmp_path, ray_address="auto")
    assert [ray.commands(stage)[0][-2:] for stage in ("ingest", "videoqa", "shard")] == [["--ray-address", "auto"]] * 3
    assert plan(tmp_path, box_regions="drop").commands("mix") == [["mix", "--recipe", "demo", "--out", str(tmp_path), "--box-regions", "drop"]]
    assert p.commands("report") == [["report", str(tmp_path)]]
    assert plan(tmp_path, videoqa_sources=[], train_config=None).commands("videoqa") == []
    assert plan(tmp_path, train_config=None).commands("train") == []


def test_rerun_skips_and_from_redoes_the_rest(tmp_path, capsys):
    p = plan(tmp_path)
    first = Recorder(tmp_path)
    assert run_build(p, run_verb=first) == list(STAGES)  # segment has nothing to do, and is marked done
    assert [c[0] for c in first.calls] == ["ingest", "videoqa", "mix", "shard", "shard", "train", "train", "report"]
    again = Recorder(tmp_path)
    assert run_build(p, run_verb=again) == [] and again.calls == []
    assert f"build: shard: complete, skipped ({marker(tmp_path, 'shard')})" in capsys.readouterr().out
    redo = Recorder(tmp_path)
    assert not (tmp_path / "shards/demo/y").exists()
    (tmp_path / "shards/demo/y").write_text("stale")
    assert run_build(p, redo_from="shard", run_verb=redo) == ["shard", "train", "report"]
    assert not (tmp_path / "shards/demo/y").exists()  # the stage's old outputs were removed
    assert (tmp_path / "unified/lvis/x").exists() and (tmp_path / "mix/demo/x").exists()  # earlier ones kept


def test_a_mix_made_from_other_parts_is_stale_and_redone_with_what_follows(tmp_path, capsys):
    p = plan(tmp_path)
    run_build(p, run_verb=Recorder(tmp_path))
    write_part(part_path(tmp_path, "lvis", 0), [image_sample()], {"written": 1})  # lvis ingested (again) by hand
    write_json_atomic(tmp_path / "unified/lvis/source.json", {"source": "lvis", "root": str(tmp_path), "adapter_version": "1"})
    capsys.readouterr()
    assert [line.split(maxsplit=2) for line in format_plan(p).splitlines()[2:7]] == [
        ["ingest", "complete", f"{marker(tmp_path, 'ingest')} holds its command"],
        ["segment", "complete", f"{marker(tmp_path, 'segment')} holds its command"],
        ["videoqa", "complete", f"{marker(tmp_path, 'videoqa')} holds its command"],
        ["mix", "stale", f"parts (unified/lvis/part-00000.parquet) changed: pixelrefer mix --recipe demo --out {tmp_path}"],
        ["shard", "to-run", "after mix"]]
    assert run_build(p, run_verb=Recorder(tmp_path)) == ["mix", "shard", "train", "report"]
    assert f"build: mix: stale, parts (unified/lvis/part-00000.parquet) changed: pixelrefer mix --recipe demo --out {tmp_path}" in capsys.readouterr().out


def test_an_edited_annotation_file_makes_ingest_stale_and_redone(tmp_path, capsys):
    """The ingest command stays the same when a release file is edited: its parts' recorded inputs decide."""
    p = plan(tmp_path)
    run_build(p, run_verb=Recorder(tmp_path))
    release = tmp_path / "release"
    (release / "lvis_v1_val.json").parent.mkdir()
    (release / "lvis_v1_val.json").write_text('{"images": []}')
    inputs = [FileHashes(tmp_path).identity(release / "lvis_v1_val.json", release)]
    write_source_part(part_path(tmp_path, "lvis", 0), [], [], {"inputs": inputs})
    write_json_atomic(tmp_path / "unified/lvis/source.json", {"source": "lvis", "root": str(release), "media": []})
    (release / "lvis_v1_val.json").write_text('{"images": [1]}')
    assert format_plan(p).splitlines()[2].split(maxsplit=2) == [
        "ingest", "stale", "annotation files changed: lvis (lvis_v1_val.json)"]
    capsys.readouterr()
    ran = run_build(p, run_verb=Recorder(tmp_path))
    assert ran[0] == "ingest" and "build: ingest: stale, annotation files changed: lvis (lvis_v1_val.json)" in capsys.readouterr().out


def test_until_and_changed_commands(tmp_path):
    rec = Recorder(tmp_path)
    assert run_build(plan(tmp_path), last="mix", run_verb=rec) == ["ingest", "segment", "videoqa", "mix"]
    assert not marker(tmp_path, "shard").exists()
    # a different videoqa backend is a different command: ingest is skipped, videoqa and what follows run
    rec = Recorder(tmp_path)
    changed = plan(tmp_path, videoqa_args=["--backend", "openai", "--model", "m"])
    assert run_build(changed, last="mix", run_verb=rec) == ["videoqa", "mix"]


def test_a_failing_stage_stops_the_build_without_a_marker(tmp_path):
    with pytest.raises(BuildError, match=r"stage mix failed \(exit 3\): pixelrefer mix --recipe demo --out "):
        run_build(plan(tmp_path), run_verb=Recorder(tmp_path, fail="mix"))
    assert marker(tmp_path, "videoqa").exists() and not marker(tmp_path, "mix").exists()


def boxed_workspace(tmp_path: Path) -> tuple[Path, str]:
    """A workspace where `vg` is ingested with three samples: a mask region, a box region and a
    point region; and a one-entry recipe over it."""
    out = tmp_path / "out"
    box = Region(label="cat", prompt="box", frames=[RegionFrame(frame=0, box=(2.0, 2.0, 20.0, 30.0))])
    point = Region(label="dog", prompt="point", frames=[RegionFrame(frame=0, point=(5.0, 5.0))])
    samples = [image_sample(id="vg/val2017/0", source="vg"), image_sample(id="vg/val2017/1", source="vg", regions=[box]),
               image_sample(id="vg/val2017/2", source="vg", regions=[point])]
    write_part(part_path(out, "vg", 0), samples, {"written": 3})
    write_json_atomic(out / "unified/vg/source.json", {"source": "vg", "root": str(tmp_path), "adapter_version": "1"})
    recipe = tmp_path / "boxes.yaml"
    recipe.write_text(yaml.safe_dump({"name": "boxes", "stages": [{"name": "s1", "entries": [
        {"name": "vg-phrases", "source": "vg", "fraction": 1.0}]}]}))
    return out, str(recipe)


def test_box_regions_are_segmented_dropped_or_stop_the_build(tmp_path):
    out, recipe = boxed_workspace(tmp_path)
    boxes = plan(out, recipe=recipe, recipe_name="boxes", recipe_stages=["s1"], videoqa_sources=[], train_config=None)
    with pytest.raises(BuildError) as err:
        boxes.commands("segment")
    assert str(err.value) == (
        "recipe entries hold box/point regions without masks, which shards cannot take:\n"
        "  s1/vg-phrases: 2 of 3 samples of vg\n"
        "choose what happens to them: --box-regions sam2 (with --sam2-checkpoint), box-mask or drop (or the recipe's box_regions)")
    rec = Recorder(out)
    with pytest.raises(BuildError, match="box/point regions without masks"):  # stopped before segmenting anything
        run_build(boxes, run_verb=rec)
    assert [c[0] for c in rec.calls] == ["ingest"] and not marker(out, "segment").exists()
    assert plan(out, recipe=recipe, box_regions="box-mask").commands("segment") == [
        ["segment", "--source", "vg", "--out", str(out), "--segmentor", "box-mask"]]
    assert plan(out, recipe=recipe, box_regions="sam2", sam2_checkpoint="/ckpt/sam2.pt").commands("segment") == [
        ["segment", "--source", "vg", "--out", str(out), "--segmentor", "sam2", "--sam2-config",
         "configs/sam2.1/sam2.1_hiera_l.yaml", "--sam2-checkpoint", "/ckpt/sam2.pt"]]
    assert plan(out, recipe=recipe, box_regions="drop").commands("segment") == []


def test_sam2_needs_a_real_checkpoint(tmp_path, capsys):
    out, recipe = boxed_workspace(tmp_path)
    args = ["build", "--recipe", recipe, "--root", str(tmp_path), "--out", str(out), "--box-regions", "sam2"]
    assert main(args) == 1
    assert capsys.readouterr().err == ("pixelrefer build: --box-regions sam2 needs --sam2-checkpoint PATH of a SAM 2 "
                                       "checkpoint (.pt file); none given; or choose --box-regions box-mask or drop\n")
    assert main([*args, "--sam2-checkpoint", str(tmp_path / "nope.pt")]) == 1
    assert f"got {tmp_path / 'nope.pt'}, which is not a file" in capsys.readouterr().err


def test_plan_shows_stage_states_and_what_each_entry_brings_to_the_shards(tmp_path):
    """Ingest is marked done with its command; each policy changes the entry's expected shard count."""
    out, recipe = boxed_workspace(tmp_path)
    boxes = plan(out, recipe=recipe, recipe_name="boxes", recipe_stages=["s1"], videoqa_sources=[], train_config=None)
    run_build(boxes, last="ingest", run_verb=Recorder(out))
    header = ["stage", "entry", "source", "status", "requested", "available", "dupes", "selected", "box/pt", "to-shards", "unsupported"]
    lines = format_plan(boxes).splitlines()
    assert [line.split(maxsplit=2) for line in lines[:5]] == [
        ["build", "plan:", f"recipe boxes, box/point regions: no policy, workspace {out}"],
        ["stage", "state", "reason"],
        ["ingest", "complete", f"{marker(out, 'ingest')} holds its command"],
        ["segment", "blocked", "recipe entries hold box/point regions without masks, which shards cannot take:"],
        ["s1/vg-phrases:", "2", "of 3 samples of vg"]]
    assert [line.split() for line in lines[-3:-1]] == [header, ["s1", "vg-phrases", "vg", "covered", "3", "3", "0", "3", "2", "1", "2"]]
    assert lines[-1] == ("box/point regions without a mask in 2 candidates of vg-phrases; no policy: shards reject the selected "
                         "ones (region_without_mask); set one with --box-regions sam2|box-mask|drop or the recipe's box_regions")
    masked = format_plan(plan(out, recipe=recipe, recipe_name="boxes", recipe_stages=["s1"], videoqa_sources=[],
                              train_config=None, box_regions="box-mask")).splitlines()
    assert masked[3].split(maxsplit=2) == ["segment", "to-run", f"no marker: pixelrefer segment --source vg --out {out} --segmentor box-mask"]
    assert masked[4:9] == [f"{stage:<9} to-run    after segment" for stage in ("videoqa", "mix", "shard", "train", "report")]
    # the point-only sample cannot be rasterised: it is the one box-mask does not bring to the shards
    assert masked[-2].split() == ["s1", "vg-phrases", "vg", "covered", "3", "3", "0", "3", "2", "2", "1"]
    dropped = format_plan(plan(out, recipe=recipe, recipe_name="boxes", recipe_stages=["s1"], videoqa_sources=[],
                               train_config=None, box_regions="drop")).splitlines()
    # fraction 1.0 of the candidates left after the drop
    assert dropped[-2].split() == ["s1", "vg-phrases", "vg", "covered", "1", "3", "0", "1", "2", "1", "0"]
    assert dropped[-1].endswith("of vg-phrases; dropped from the candidates")


def test_plan_of_the_2_2m_recipe_runs_nothing(tmp_path, capsys):
    """With a roots file over empty release folders: every stage to run, every entry not ingested."""
    for name in ("lvis", "vg"):
        (tmp_path / name).mkdir()
    roots = tmp_path / "roots.yaml"
    roots.write_text("lvis: lvis\nvg: vg\n")
    out = tmp_path / "out"
    assert main(["build", "--recipe", "pixelrefer-2.2m", "--roots", str(roots), "--out", str(out), "--plan"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [f"build plan: recipe pixelrefer-2.2m, box/point regions: no policy, workspace {out}",
                         "stage     state     reason",
                         f"ingest    to-run    no marker: pixelrefer ingest --source all --roots {roots} --out {out}"]
    assert lines[3:9] == [f"{stage:<9} to-run    after ingest" for stage in STAGES[1:]]
    assert lines[10].split() == ["stage1", "dam-sam", "dam", "not-ingested", "592000", "-", "0", "0", "-", "-", "-"]
    assert lines[-1] == ("of 2,318,000 samples requested by count: covered 0 (0.0%), resample 250,000 (10.8%), "
                         "not-ingested 2,068,000 (89.2%), no-adapter 0 (0.0%)")
    assert len(lines) == 9 + 1 + 30 + 1 and not out.exists()

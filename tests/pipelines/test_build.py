"""build: stage order, skipping complete stages, --from redoing a stage and what follows, --until."""

from pathlib import Path

import pytest

from pipelines.build import STAGES, BuildError, Plan, marker, run_build


TINY = str(Path(__file__).resolve().parents[2] / "train" / "configs" / "tiny.yaml")


def plan(out: Path, **changes) -> Plan:
    fields = dict(out=out, recipe="demo", recipe_name="demo", recipe_stages=["stage1", "stage2"],
                  roots={"lvis": Path("/data/lvis")}, ingest_args=["--root", "/data"], videoqa_sources=["mevis"],
                  videoqa_args=["--backend", "heuristic"], train_config=TINY)
    fields.update(changes)
    return Plan(**fields)


class Recorder:
    """Stands in for the CLI: records each command and leaves a file where the stage writes."""

    def __init__(self, out: Path, fail: str | None = None):
        self.out, self.fail, self.calls = out, fail, []

    def __call__(self, command: list[str]) -> int:
        self.calls.append(command)
        verb = command[0]
        target = {"ingest": "unified/lvis/x", "videoqa": "unified/videoqa_mevis/x", "mix": "mix/demo/x",
                  "shard": "shards/demo/x", "train": "train/x", "report": "report/x"}[verb]
        (self.out / target).parent.mkdir(parents=True, exist_ok=True)
        (self.out / target).write_text("x")
        return 3 if verb == self.fail else 0


def test_commands_of_every_stage(tmp_path):
    p = plan(tmp_path)
    assert p.commands("ingest") == [["ingest", "--source", "all", "--root", "/data", "--out", str(tmp_path)]]
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
    assert p.commands("report") == [["report", str(tmp_path)]]
    assert plan(tmp_path, videoqa_sources=[], train_config=None).commands("videoqa") == []
    assert plan(tmp_path, train_config=None).commands("train") == []


def test_rerun_skips_and_from_redoes_the_rest(tmp_path, capsys):
    p = plan(tmp_path)
    first = Recorder(tmp_path)
    assert run_build(p, run_verb=first) == list(STAGES)
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


def test_until_and_changed_commands(tmp_path):
    rec = Recorder(tmp_path)
    assert run_build(plan(tmp_path), last="mix", run_verb=rec) == ["ingest", "videoqa", "mix"]
    assert not marker(tmp_path, "shard").exists()
    # a different videoqa backend is a different command: ingest is skipped, videoqa and what follows run
    rec = Recorder(tmp_path)
    changed = plan(tmp_path, videoqa_args=["--backend", "openai", "--model", "m"])
    assert run_build(changed, last="mix", run_verb=rec) == ["videoqa", "mix"]


def test_a_failing_stage_stops_the_build_without_a_marker(tmp_path):
    with pytest.raises(BuildError, match=r"stage mix failed \(exit 3\): pixelrefer mix --recipe demo --out "):
        run_build(plan(tmp_path), run_verb=Recorder(tmp_path, fail="mix"))
    assert marker(tmp_path, "videoqa").exists() and not marker(tmp_path, "mix").exists()

"""Nothing stale (DESIGN.md section 7): every stage's marker records what it was made from, and a
change upstream reaches mix and shard; one SourceStats schema for ingest, segment and videoqa."""

import json

import pyarrow.parquet as pq
import pytest
import yaml

from pipelines import shard, workspace
from pipelines.cli import main
from pipelines.ingest import ingest_source
from pipelines.mix import load_recipe, mix_state
from pipelines.sam2 import BoxMask
from pipelines.segment import segment_source
from pipelines.videoqa.branches import Context, HeuristicBackend
from pipelines.videoqa.engine import run_source
from sources import registry
from tests.pipelines.toy_source import REGISTRY
from tests.pipelines.videoqa_inputs import (
    RIGHT,
    STILL,
    vg_sample,
    video_sample,
    write_source,
)
from tokenization.saot import SaotConfig


@pytest.fixture
def toys(tmp_path, monkeypatch):
    """`toy` and `toy2` ingested in this process (`--workers 0`)."""
    monkeypatch.setattr(registry, "BUILTIN", {**registry.BUILTIN, **REGISTRY})
    for name in ("toy", "toy2"):
        registry.get(name).write_fixture(tmp_path / name)
        ingest_source(name, tmp_path / name, tmp_path / "out", workers=0)
    return tmp_path


def write_recipe(tmp, stages):
    path = tmp / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "r", "seed": 0, "stages": [
        {"name": stage, "entries": entries} for stage, entries in stages.items()]}))
    return str(path)


def mix_and_shard(out, recipe, stages, capsys):
    capsys.readouterr()
    assert main(["mix", "--recipe", recipe, "--out", str(out)]) == 0
    for stage in stages:
        assert main(["shard", "--mix", str(out / "mix" / "r" / f"{stage}.parquet"), "--out", str(out),
                     "--view-size", "0", "--max-samples-per-shard", "4"]) == 0
    return capsys.readouterr().out


def shard_sources(dest):
    index = json.loads((dest / "index.json").read_text())
    mix = pq.read_table(dest.parents[2] / index["mix"]).to_pylist()
    return index, sorted({m["source"] for m in mix})


def test_dropping_a_source_or_a_stage_remixes_and_reshards(toys, capsys):
    out = toys / "out"
    both = [{"name": "a", "source": "toy", "count": 4}, {"name": "b", "source": "toy2", "count": 4}]
    recipe = write_recipe(toys, {"s1": both, "s2": [{"name": "c", "source": "toy", "count": 2}]})
    mix_and_shard(out, recipe, ["s1", "s2"], capsys)
    dest = out / "shards" / "r" / "s1"
    index, sources = shard_sources(dest)
    assert sources == ["toy", "toy2"] and index["samples"] == 8
    assert mix_state(out, load_recipe(recipe)) == ""
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    printed = mix_and_shard(out, recipe, ["s1", "s2"], capsys)  # nothing changed: all reused, bytes unchanged
    assert f"mix r: complete, made from the same recipe and parts: reused ({out / 'mix' / 'r' / 'mix.done'})" in printed
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before

    recipe = write_recipe(toys, {"s1": both[:1]})  # toy2 and stage s2 leave the recipe
    assert mix_state(out, load_recipe(recipe)) == ("parts (unified/toy2/part-00000.parquet, unified/toy2/part-00001.parquet, "
                                                    "unified/toy2/part-00002.parquet, unified/toy2/part-00003.parquet), recipe changed")
    printed = mix_and_shard(out, recipe, ["s1"], capsys)
    assert (f"mix r: stage s2 is no longer in the recipe: removed {out / 'mix/r/s2.parquet'} and {out / 'shards/r/s2'}"
            in printed)
    assert not (out / "mix/r/s2.parquet").exists() and not (out / "shards/r/s2").exists()
    mix_sha = workspace.sha256_file(out / "mix/r/s1.parquet")
    assert f"-> {mix_sha[:12]}): redoing every shard" in printed
    index, sources = shard_sources(dest)
    assert sources == ["toy"] and index["samples"] == 4 and index["made_from"]["mix_sha256"] == mix_sha
    assert sorted(p.name for p in dest.glob("*.tar")) == ["000000000.tar"]  # the second shard of 8 samples is gone


def test_an_edited_annotation_reaches_mix_and_shards(toys, capsys):
    out = toys / "out"
    recipe = write_recipe(toys, {"s1": [{"name": "a", "source": "toy", "count": 9}]})
    mix_and_shard(out, recipe, ["s1"], capsys)
    records = json.loads((toys / "toy" / "annotations.json").read_text())
    records[0]["label"] = "renamed"
    (toys / "toy" / "annotations.json").write_text(json.dumps(records))
    ingest_source("toy", toys / "toy", out, workers=0)
    # every part was redone (they all read annotations.json); only part 0 came out different
    assert mix_state(out, load_recipe(recipe)) == "parts (unified/toy/part-00000.parquet) changed"
    printed = mix_and_shard(out, recipe, ["s1"], capsys)
    assert "mix r: complete" not in printed and "redoing every shard" in printed, printed
    from train.shards import iter_shards

    labels = {s.sample.id: s.sample.conversation[1].text for s in iter_shards(sorted((out / "shards/r/s1").glob("*.tar")))}
    assert labels["toy/b/0"] == "renamed"


def test_other_shard_settings_are_refused_naming_them(toys, capsys):
    out = toys / "out"
    recipe = write_recipe(toys, {"s1": [{"name": "a", "source": "toy", "count": 3}]})
    mix_and_shard(out, recipe, ["s1"], capsys)
    mix = out / "mix/r/s1.parquet"
    with pytest.raises(ValueError, match=r"holds shards made with other settings \(limits, saot differ from "):
        shard.shard_stage(out, mix, SaotConfig(lite=True), shard.ShardLimits(max_samples=1), view_size=0)


def test_every_stage_writes_the_one_source_stats_schema(toys):
    out, root = toys / "out", toys / "media"
    write_source(out, root, "vg", [vg_sample(root, 1, "box"), vg_sample(root, 2, "point")])
    write_source(out, root, "mevis", [video_sample(root, "mevis", "v1", [RIGHT, STILL], ["block", "box"]),
                                      vg_sample(root, 3, "box")])  # not a video: a not_a_video reject
    segment_source(out, "vg", BoxMask())
    run_source(out, "mevis", ["qa"], Context(backend=HeuristicBackend()), concurrency=1)
    stats = {s: workspace.read_source_stats(out, s) for s in ("toy", "vg_sam2", "videoqa_mevis")}
    keys = {"source", "stage", "read", "written", "rejected", "by_reason", "samples", "parts", "timings", "failed_parts", "detail"}
    assert {s: set(v) for s, v in stats.items()} == dict.fromkeys(stats, keys)
    assert [(v["stage"], v["read"], v["written"], v["rejected"], v["samples"]) for v in stats.values()] == [
        ("ingest", 12, 9, 3, 9), ("segment", 2, 1, 1, 1), ("videoqa", 2, 1, 1, 2)]
    for v in stats.values():
        assert v["read"] == v["written"] + v["rejected"] == v["written"] + sum(v["by_reason"].values())
    assert stats["vg_sam2"]["by_reason"] == {"point_needs_sam2": 1}

"""`pixelrefer mix`: deterministic selection, exact cross-source dedup, stage re-samples, text-only samples,
missing sources, dry run, bundled recipes."""

import json

import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.cli import main
from pipelines.ingest import ingest_source
from pipelines.mix import Candidate, entry_status, load_recipe, write_selection
from pipelines.workspace import iter_mixed_samples, part_path, write_json_atomic, write_part
from schemas import Region, RegionFrame, Turn, masks
from schemas.recipe import Entry
from sources import registry
from sources.fixtures import write_image
from sources.roots import Roots
from tests.factories import image_sample
from tests.pipelines.toy_source import REGISTRY

TOY_IDS = {"toy/b/0", "toy/a/1", "toy/a/2", "toy/b/3", "toy/a/5", "toy/b/6", "toy/a/8", "toy/a/10", "toy/a/11"}


@pytest.fixture(scope="module")
def ws(ray_local, tmp_path_factory):
    """Two ingests of `toy` (3-record and 12-record parts) and `toy2`: toy's records with record 0
    relabelled and image 3 redrawn, so 6 of toy2's 9 samples are exact duplicates of toy's."""
    tmp = tmp_path_factory.mktemp("mix")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "BUILTIN", {**registry.BUILTIN, **REGISTRY})
        for name in ("toy", "toy2"):
            registry.get(name).write_fixture(tmp / name)
        records = json.loads((tmp / "toy2" / "annotations.json").read_text())
        records[0]["label"] = "other"
        (tmp / "toy2" / "annotations.json").write_text(json.dumps(records))
        write_image(tmp / "toy2" / "images" / "3.png", 24, 16, [(3, 1, 7, 5)], seed=99)
        ingest_source("toy", tmp / "toy", tmp / "out", workers=2)
        ingest_source("toy2", tmp / "toy2", tmp / "out", workers=2)
        ingest_source("toy", tmp / "toy", tmp / "out_b", workers=2, units_per_part=4)
        yield tmp


def staged_recipe(tmp, name, stages, seed=0):
    """A recipe file of `stages` ({stage name: entries}, in order)."""
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "seed": seed, "stages": [
        {"name": stage, "entries": entries} for stage, entries in stages.items()]}))
    return str(path)


def recipe(tmp, name, entries, seed=0):
    return staged_recipe(tmp, name, {"s1": entries}, seed)


def mix_ids(out, name, stage="s1"):
    return pq.read_table(out / "mix" / name / f"{stage}.parquet")["id"].to_pylist()


def test_two_runs_are_identical_and_the_seed_sets_the_order(ws):
    out = ws / "out"
    path = recipe(ws, "both", [{"name": "a", "source": "toy", "fraction": 1.0}, {"name": "b", "source": "toy2", "fraction": 1.0}])
    assert main(["mix", "--recipe", path, "--out", str(out)]) == 0
    first = (out / "mix" / "both" / "s1.parquet").read_bytes(), (out / "stats" / "mix-both.json").read_bytes()
    assert main(["mix", "--recipe", path, "--out", str(out)]) == 0
    assert ((out / "mix" / "both" / "s1.parquet").read_bytes(), (out / "stats" / "mix-both.json").read_bytes()) == first
    ids = mix_ids(out, "both")
    assert main(["mix", "--recipe", recipe(ws, "both", [{"name": "a", "source": "toy", "fraction": 1.0},
                 {"name": "b", "source": "toy2", "fraction": 1.0}], seed=1), "--out", str(out)]) == 0
    reseeded = mix_ids(out, "both")
    assert sorted(reseeded) == sorted(ids) and reseeded != ids


def test_exact_duplicates_across_sources_are_removed_and_counted(ws, capsys):
    out = ws / "out"
    path = recipe(ws, "dedup", [{"name": "a", "source": "toy", "fraction": 1.0}, {"name": "b", "source": "toy2", "count": 9}])
    assert main(["mix", "--recipe", path, "--out", str(out)]) == 0
    assert set(mix_ids(out, "dedup")) == TOY_IDS | {"toy2/b/0", "toy2/b/3", "toy2/a/11"}
    stats = json.loads((out / "stats" / "mix-dedup.json").read_text())
    assert stats["duplicates_removed"] == 6
    assert [(r["name"], r["status"], r["requested"], r["available"], r["duplicates"], r["selected"]) for r in stats["stages"]["s1"]] == [
        ("a", "covered", 9, 9, 0, 9), ("b", "covered", 9, 9, 6, 3)]
    printed = capsys.readouterr().out.splitlines()
    assert printed[2].split() == ["s1", "b", "toy2", "covered", "9", "9", "6", "3", "0", "3", "0"]
    assert printed[3] == "of 9 samples requested by count: covered 9 (100.0%), resample 0 (0.0%), not-ingested 0 (0.0%), no-adapter 0 (0.0%)"
    assert printed[4] == "fewer samples than requested for: b"
    assert main(["stats", str(out)]) == 0
    assert json.loads((out / "stats" / "summary.json").read_text())["mix_duplicates_removed"]["dedup"] == 6


def stage_rows(out, name, stage):
    return [(r["name"], r["status"], r["requested"], r["available"], r["duplicates"], r["selected"])
            for r in json.loads((out / "stats" / f"mix-{name}.json").read_text())["stages"][stage]]


def test_a_stage_re_samples_an_earlier_stage_by_the_seed(ws):
    """A re-sample draws only from what its earlier stage selected (toy/b/3 is not in s1 under seed
    0, so s3 cannot take it), filtered like a source, ranked by the recipe seed."""
    out = ws / "out"
    stages = {"s1": [{"name": "a", "source": "toy", "count": 5}], "s2": [{"name": "again", "source": "s1", "count": 3}],
              "s3": [{"name": "b", "source": "s1", "subsets": ["b"], "fraction": 1.0}]}
    expected = {0: (["toy/a/2", "toy/b/0", "toy/a/10", "toy/b/6", "toy/a/5"], ["toy/b/0", "toy/a/5", "toy/a/2"], ["toy/b/0", "toy/b/6"]),
                1: (["toy/a/1", "toy/a/2", "toy/a/11", "toy/b/6", "toy/a/10"], ["toy/a/2", "toy/a/1", "toy/a/11"], ["toy/b/6"])}
    for seed, (s1, s2, s3) in expected.items():
        assert main(["mix", "--recipe", staged_recipe(ws, "re", stages, seed), "--out", str(out)]) == 0
        assert (mix_ids(out, "re"), mix_ids(out, "re", "s2"), mix_ids(out, "re", "s3")) == (s1, s2, s3)
        assert stage_rows(out, "re", "s2") == [("again", "resample", 3, 5, 0, 3)]
        assert stage_rows(out, "re", "s3") == [("b", "resample", len(s3), len(s3), 0, len(s3))]
        assert [s.id for s, _ in iter_mixed_samples(out, out / "mix" / "re" / "s2.parquet")] == s2  # rows of the unified parts


def test_a_re_sampled_sample_already_taken_in_its_stage_is_a_duplicate(ws):
    """Dedup holds across entries of a stage whatever their kind: `direct` takes all of subset a
    (6) first, so the re-sample of s1 (all 9 toy samples) counts those 6 as duplicates and takes
    the 3 of subset b, however many it asks for."""
    out = ws / "out"
    stages = {"s1": [{"name": "all", "source": "toy", "fraction": 1.0}],
              "s2": [{"name": "direct", "source": "toy", "subsets": ["a"], "fraction": 1.0},
                     {"name": "again", "source": "s1", "count": 5}]}
    assert main(["mix", "--recipe", staged_recipe(ws, "overlap", stages), "--out", str(out)]) == 0
    assert stage_rows(out, "overlap", "s2") == [("direct", "covered", 6, 6, 0, 6), ("again", "resample", 5, 9, 6, 3)]
    assert sorted(mix_ids(out, "overlap", "s2")) == sorted(TOY_IDS)


def test_a_stage_named_like_a_source_is_an_error(ws, capsys):
    path = staged_recipe(ws, "clash", {"toy": [{"name": "a", "source": "toy2", "count": 1}],
                                       "s2": [{"name": "b", "source": "toy", "count": 1}]})
    assert main(["mix", "--recipe", path, "--out", str(ws / "out")]) == 1
    assert capsys.readouterr().err == "pixelrefer mix: recipe clash: stages ['toy'] are named like sources; rename them\n"


def general_qa(n, question, media=None):
    """A `llava` general QA sample; text-only (no media) by default."""
    return image_sample(id=f"llava/qa/{n}", source="llava", subset="qa", task="general_qa", media=media, regions=[],
                        conversation=[Turn(role="user", text=question), Turn(role="assistant", text="4")], meta={})


def test_text_only_samples_are_filtered_by_media_kind_none_and_deduplicated(tmp_path):
    """Samples 0 and 1 are the same text with no media: exact duplicates; sample 3 has an image."""
    out = tmp_path / "out"
    samples = [general_qa(0, "What is 2 + 2?"), general_qa(1, "What is 2 + 2?"), general_qa(2, "What is 3 + 1?"),
               general_qa(3, "How many cars?", media=image_sample().media)]
    write_part(part_path(out, "llava", 0), samples, {"written": 4})
    write_json_atomic(out / "unified/llava/source.json", {"source": "llava", "root": str(tmp_path), "adapter_version": "1"})
    path = recipe(tmp_path, "qa", [{"name": "text", "source": "llava", "filters": {"media_kind": "none"}, "fraction": 1.0},
                                   {"name": "image", "source": "llava", "filters": {"media_kind": "image"}, "fraction": 1.0}])
    assert main(["mix", "--recipe", path, "--out", str(out)]) == 0
    assert stage_rows(out, "qa", "s1") == [("text", "covered", 3, 3, 1, 2), ("image", "covered", 1, 1, 0, 1)]
    assert mix_ids(out, "qa") == ["llava/qa/3", "llava/qa/1", "llava/qa/2"]


def test_selection_does_not_depend_on_the_part_layout(ws):
    entries = [{"name": "five", "source": "toy", "count": 5}]
    for out in (ws / "out", ws / "out_b"):
        assert main(["mix", "--recipe", recipe(ws, "five", entries), "--out", str(out)]) == 0
    ids = mix_ids(ws / "out", "five")
    assert len(set(ids)) == 5 and set(ids) <= TOY_IDS
    assert mix_ids(ws / "out_b", "five") == ids
    assert {p for p in pq.read_table(ws / "out_b" / "mix" / "five" / "s1.parquet")["part"].to_pylist()} <= {
        "unified/toy/part-00000.parquet"}


def test_subsets_and_filters_narrow_the_candidates(ws):
    out = ws / "out"
    path = recipe(ws, "narrow", [{"name": "b", "source": "toy", "subsets": ["b"], "fraction": 1.0},
                                 {"name": "boxes", "source": "toy", "filters": {"prompts": ["box"]}, "count": 3},
                                 {"name": "half", "source": "toy", "tasks": ["recognition"], "subsets": ["a"], "fraction": 0.5}])
    assert main(["mix", "--recipe", path, "--out", str(out)]) == 0
    rows = json.loads((out / "stats" / "mix-narrow.json").read_text())["stages"]["s1"]
    assert [(r["available"], r["requested"], r["selected"]) for r in rows] == [(3, 3, 3), (0, 3, 0), (6, 3, 3)]
    ids = mix_ids(out, "narrow")
    assert {"toy/b/0", "toy/b/3", "toy/b/6"} <= set(ids) and len(ids) == 6


def test_mixed_samples_come_back_in_mix_order_with_their_root(ws):
    out = ws / "out"
    assert main(["mix", "--recipe", recipe(ws, "read", [{"name": "a", "source": "toy", "count": 4}]), "--out", str(out)]) == 0
    got = list(iter_mixed_samples(out, out / "mix" / "read" / "s1.parquet"))
    assert [s.id for s, _ in got] == mix_ids(out, "read")
    assert {root for _, root in got} == {Roots.of(ws / "toy")}
    assert [s for s, _ in iter_mixed_samples(out, out / "mix" / "read" / "s1.parquet", block_rows=3)] == [s for s, _ in got]


def test_reading_a_mix_of_changed_data_is_an_error(ws, tmp_path):
    out = ws / "out"
    stale = tmp_path / "stale.parquet"
    write_selection(stale, [Candidate("toy/a/99", "toy", "unified/toy/part-00000.parquet", 1, "", "toy/a/99")])
    with pytest.raises(ValueError, match=r"row 1 of unified/toy/part-00000.parquet is toy/a/1, expected toy/a/99; "
                                         r"the unified data changed after mixing: rerun `pixelrefer mix`"):
        list(iter_mixed_samples(out, stale))


def test_a_source_not_ingested_fails_unless_allowed(ws, capsys):
    out = ws / "out"
    path = recipe(ws, "gap", [{"name": "a", "source": "toy", "count": 2}, {"name": "l", "source": "lvis", "count": 5},
                              {"name": "h", "source": "nosuch", "count": 5}])
    assert main(["mix", "--recipe", path, "--out", str(out)]) == 1
    assert capsys.readouterr().err == (
        "pixelrefer mix: recipe gap:\n  entry l of stage s1 needs source lvis (not-ingested)\n"
        "  entry h of stage s1 needs source nosuch (no-adapter)\n"
        "run `pixelrefer ingest --source NAME ...` for them (`videoqa`/`segment` for the sources they write), "
        "or pass --allow-missing\n")
    assert not (out / "mix" / "gap").exists()
    assert main(["mix", "--recipe", path, "--out", str(out), "--allow-missing"]) == 0
    assert len(mix_ids(out, "gap")) == 2
    printed = capsys.readouterr().out.splitlines()
    assert printed[4] == "of 12 samples requested by count: covered 2 (16.7%), resample 0 (0.0%), not-ingested 5 (41.7%), no-adapter 5 (41.7%)"


def test_dry_run_prints_the_plan_and_writes_nothing(ws, capsys):
    """A re-sample is planned from the earlier stage's selection, which the dry run makes but does not write."""
    out = ws / "out"
    path = staged_recipe(ws, "plan", {"s1": [{"name": "a", "source": "toy", "count": 4}],
                                      "s2": [{"name": "again", "source": "s1", "count": 6}]})
    assert main(["mix", "--recipe", path, "--out", str(out), "--dry-run"]) == 0
    assert not (out / "mix" / "plan").exists() and not (out / "stats" / "mix-plan.json").exists()
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        ["stage", "entry", "source", "status", "requested", "available", "dupes", "selected", "box/pt", "to-shards", "unsupported"],
        ["s1", "a", "toy", "covered", "4", "9", "0", "4", "0", "4", "0"],
        ["s2", "again", "s1", "resample", "6", "4", "0", "4", "0", "4", "0"],
        "of 10 samples requested by count: covered 4 (40.0%), resample 6 (60.0%), not-ingested 0 (0.0%), no-adapter 0 (0.0%)".split(),
        "fewer samples than requested for: again".split(),
        ["dry", "run:", "nothing", "written"]]


def test_bundled_recipes_and_the_2_2m_dry_run(tmp_path, capsys):
    """Every entry of the published mixture has an adapter or re-samples stage 1: on an empty
    workspace the dry run finds every source not ingested and none without an adapter."""
    big = load_recipe("pixelrefer-2.2m")
    assert [sum(e.count for e in s.entries) for s in big.stages] == [1_495_000, 823_000]
    assert [s.name for s in load_recipe("demo").stages] == ["stage1", "stage2"]
    assert main(["mix", "--recipe", "pixelrefer-2.2m", "--out", str(tmp_path), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[1]: line.split()[2:6] for line in lines[1:31]}
    assert len(rows) == 30
    assert {n: rows[n][0] for n in ("hc-stvg", "pascal-part", "partimagenet", "vcr", "region-caption-resample",
                                    "general-video-qa", "general-text-qa", "general-image-qa")} == {
        "hc-stvg": "hcstvg", "pascal-part": "pascalpart", "partimagenet": "partimagenet", "vcr": "vcr",
        "region-caption-resample": "stage1", "general-video-qa": "llava", "general-text-qa": "llava", "general-image-qa": "llava"}
    assert rows.pop("region-caption-resample") == ["stage1", "resample", "250000", "0"]
    assert {status for _, status, _, _ in rows.values()} == {"not-ingested"}
    assert lines[31:] == [
        "of 2,318,000 samples requested by count: covered 0 (0.0%), resample 250,000 (10.8%), "
        "not-ingested 2,068,000 (89.2%), no-adapter 0 (0.0%)",
        "fewer samples than requested for: region-caption-resample",
        "dry run: nothing written"]


def test_a_bad_recipe_names_the_file(tmp_path, capsys):
    path = recipe(tmp_path, "bad", [{"name": "a", "source": "toy", "count": 1, "fraction": 0.5}])
    assert main(["mix", "--recipe", path, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"pixelrefer mix: {path}: 1 validation error for Recipe")
    assert "entry a: give exactly one of count or fraction" in err
    assert main(["mix", "--recipe", "nope", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        "pixelrefer mix: no recipe file 'nope' and no bundled recipe of that name (bundled: demo, pixelrefer-2.2m)\n")


def test_a_written_source_without_an_adapter_is_covered(ws, tmp_path, monkeypatch):
    """videoqa and segment write sources (videoqa_mevis, vg_sam2) that no adapter produces."""
    monkeypatch.setattr(registry, "BUILTIN", {k: v for k, v in registry.BUILTIN.items() if k != "toy"})
    assert "toy" not in registry.available()
    out = ws / "out"
    path = recipe(ws, "derived", [{"name": "a", "source": "toy", "count": 3}])
    assert main(["mix", "--recipe", path, "--out", str(out)]) == 0
    assert len(mix_ids(out, "derived")) == 3


def test_box_regions_policy_reads_the_segmented_source_or_drops(tmp_path, capsys):
    """`vg` holds a mask, a box and a point sample. Without a policy the mix keeps them and says the
    shards will reject two; drop leaves them out; box-mask reads `vg_sam2` once segment wrote it,
    ranked by the ids it was made from, and records each sample's entry in the mix file."""
    out = tmp_path / "out"
    box = Region(label="cat", prompt="box", frames=[RegionFrame(frame=0, box=(2.0, 2.0, 20.0, 30.0))])
    point = Region(label="dog", prompt="point", frames=[RegionFrame(frame=0, point=(5.0, 5.0))])
    masked = image_sample(id="vg/val2017/1", source="vg", regions=[box.model_copy(update={
        "prompt": "mask", "mask_origin": "box", "frames": [RegionFrame(frame=0, box=(2.0, 2.0, 20.0, 30.0),
                                                                       mask=masks.box_to_rle((2.0, 2.0, 20.0, 30.0), 40, 60))]})])
    vg = [image_sample(id="vg/val2017/0", source="vg"), image_sample(id="vg/val2017/1", source="vg", regions=[box]),
          image_sample(id="vg/val2017/2", source="vg", regions=[point])]
    for source, samples in [("vg", vg), ("vg_sam2", [vg[0].model_copy(update={"id": "vg_sam2/val2017/0", "source": "vg_sam2"}),
                                                     masked.model_copy(update={"id": "vg_sam2/val2017/1", "source": "vg_sam2"})])]:
        write_part(part_path(out, source, 0), samples, {"written": len(samples)})
        write_json_atomic(out / "unified" / source / "source.json", {"source": source, "root": str(tmp_path), "adapter_version": "1"})
    path = recipe(tmp_path, "boxes", [{"name": "vg", "source": "vg", "count": 3}])
    assert main(["mix", "--recipe", path, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split() == ["s1", "vg", "vg", "covered", "3", "3", "0", "3", "2", "1", "2"]
    assert printed[3] == ("box/point regions without a mask in 2 candidates of vg; no policy: shards reject the selected ones "
                          "(region_without_mask); set one with --box-regions sam2|box-mask|drop or the recipe's box_regions")
    without = mix_ids(out, "boxes")
    assert main(["mix", "--recipe", path, "--out", str(out), "--box-regions", "drop"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["s1", "vg", "vg", "covered", "3", "3", "0", "1", "2", "1", "0"]
    assert mix_ids(out, "boxes") == ["vg/val2017/0"]
    assert main(["mix", "--recipe", path, "--out", str(out), "--box-regions", "box-mask"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["s1", "vg", "vg_sam2", "covered", "3", "2", "0", "2", "0", "2", "0"]
    # the same ids in the same order as the unsegmented mix, less the point sample segment rejected
    assert [i.replace("vg_sam2/", "vg/") for i in mix_ids(out, "boxes")] == [i for i in without if i != "vg/val2017/2"]
    assert pq.read_table(out / "mix/boxes/s1.parquet")["entry"].to_pylist() == ["vg", "vg"]
    assert json.loads((out / "stats/mix-boxes.json").read_text())["box_regions"] == "box-mask"


def test_a_source_videoqa_writes_is_not_ingested_until_it_runs():
    """`videoqa_mevis` has no adapter, but videoqa writes it from mevis: the plan before videoqa says not-ingested."""
    assert entry_status(Entry(name="q", source="videoqa_mevis", count=1), set(), set()) == "not-ingested"
    assert entry_status(Entry(name="q", source="videoqa_nosuch", count=1), set(), set()) == "no-adapter"
    assert entry_status(Entry(name="q", source="videoqa_mevis", count=1), {"videoqa_mevis"}, set()) == "covered"

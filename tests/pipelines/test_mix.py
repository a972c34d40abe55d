"""`pixelrefer mix`: deterministic selection, exact cross-source dedup, missing sources, dry run, bundled recipes."""

import json

import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.cli import main
from pipelines.ingest import ingest_source
from pipelines.mix import Candidate, load_recipe, write_selection
from pipelines.workspace import iter_mixed_samples
from sources import registry
from sources.fixtures import write_image
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


def recipe(tmp, name, entries, seed=0, stage="s1"):
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "seed": seed, "stages": [{"name": stage, "entries": entries}]}))
    return str(path)


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
    assert printed[2].split() == ["s1", "b", "toy2", "covered", "9", "9", "6", "3"]
    assert printed[3] == "of 9 samples requested by count: covered 9 (100.0%), not-ingested 0 (0.0%), no-adapter 0 (0.0%), not-yet-supported 0 (0.0%)"
    assert printed[4] == "fewer samples than requested for: b"
    assert main(["stats", str(out)]) == 0
    assert json.loads((out / "stats" / "summary.json").read_text())["mix_duplicates_removed"]["dedup"] == 6


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
    assert {root for _, root in got} == {(ws / "toy").resolve()}
    assert [s for s, _ in iter_mixed_samples(out, out / "mix" / "read" / "s1.parquet", block_rows=3)] == [s for s, _ in got]


def test_reading_a_mix_of_changed_data_is_an_error(ws, tmp_path):
    out = ws / "out"
    stale = tmp_path / "stale.parquet"
    write_selection(stale, [Candidate("toy/a/99", "toy", "unified/toy/part-00000.parquet", 1, "")])
    with pytest.raises(ValueError, match=r"row 1 of unified/toy/part-00000.parquet is toy/a/1, expected toy/a/99; "
                                         r"the unified data changed after mixing: rerun `pixelrefer mix`"):
        list(iter_mixed_samples(out, stale))


def test_a_source_not_ingested_fails_unless_allowed(ws, capsys):
    out = ws / "out"
    path = recipe(ws, "gap", [{"name": "a", "source": "toy", "count": 2}, {"name": "l", "source": "lvis", "count": 5},
                              {"name": "h", "source": "hcstvg", "count": 5}])
    assert main(["mix", "--recipe", path, "--out", str(out)]) == 1
    assert capsys.readouterr().err == (
        "pixelrefer mix: recipe gap:\n  entry l of stage s1 needs source lvis (not-ingested)\n"
        "  entry h of stage s1 needs source hcstvg (no-adapter)\n"
        "run `pixelrefer ingest --source NAME ...` for them (`videoqa`/`segment` for the sources they write), "
        "or pass --allow-missing\n")
    assert not (out / "mix" / "gap").exists()
    assert main(["mix", "--recipe", path, "--out", str(out), "--allow-missing"]) == 0
    assert len(mix_ids(out, "gap")) == 2
    printed = capsys.readouterr().out.splitlines()
    assert printed[4] == "of 12 samples requested by count: covered 2 (16.7%), not-ingested 5 (41.7%), no-adapter 5 (41.7%), not-yet-supported 0 (0.0%)"


def test_dry_run_prints_the_plan_and_writes_nothing(ws, capsys):
    out = ws / "out"
    path = recipe(ws, "plan", [{"name": "a", "source": "toy", "count": 4},
                               {"name": "v", "source": "vcr", "count": 6, "supported": False, "note": "no adapter"}])
    assert main(["mix", "--recipe", path, "--out", str(out), "--dry-run"]) == 0
    assert not (out / "mix" / "plan").exists() and not (out / "stats" / "mix-plan.json").exists()
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        ["stage", "entry", "source", "status", "requested", "available", "dupes", "selected"],
        ["s1", "a", "toy", "covered", "4", "9", "0", "4"],
        ["s1", "v", "vcr", "not-yet-supported", "6", "-", "0", "0"],
        "of 10 samples requested by count: covered 4 (40.0%), not-ingested 0 (0.0%), no-adapter 0 (0.0%), not-yet-supported 6 (60.0%)".split(),
        ["dry", "run:", "nothing", "written"]]


def test_bundled_recipes_and_the_2_2m_dry_run(ws, capsys):
    big = load_recipe("pixelrefer-2.2m")
    assert [sum(e.count for e in s.entries) for s in big.stages] == [1_495_000, 823_000]
    assert sum(e.count for s in big.stages for e in s.entries if not e.supported) == 701_000
    assert [s.name for s in load_recipe("demo").stages] == ["stage1", "stage2"]
    assert main(["mix", "--recipe", "pixelrefer-2.2m", "--out", str(ws / "out"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[1]: line.split()[3] for line in lines[1:-2]}
    assert len(rows) == 30
    assert {n for n, s in rows.items() if s == "not-yet-supported"} == {
        "hc-stvg", "pascal-part", "partimagenet", "vcr", "region-caption-resample", "general-video-qa",
        "general-text-qa", "general-image-qa"}
    assert set(rows.values()) <= {"not-yet-supported", "no-adapter", "not-ingested"}
    assert lines[-2].startswith("of 2,318,000 samples requested by count: covered 0 (0.0%), ")
    assert lines[-2].endswith("not-yet-supported 701,000 (30.2%)")


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

"""The README's first command: `pixelrefer demo` runs the whole chain on CPU, then reruns as a no-op.

The demo recipe's box/point policy is box-mask: VG, MDVP, PACO, VCR and HC-STVG box regions reach
the shards as box masks (mask_origin box), MDVP's two point-only samples are named segment
rejects, and no sample is lost at sharding."""

import json
import subprocess
import sys
import tarfile

from pipelines.build import STAGES


def demo(out, steps=2):
    cmd = [sys.executable, "-m", "pipelines.cli", "demo", "--out", str(out), "--steps", str(steps)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_demo_runs_every_stage_and_a_rerun_skips_them(tmp_path):
    out = tmp_path / "demo"
    first = demo(out)
    assert first.returncode == 0, first.stderr[-3000:]
    lines = first.stdout.splitlines()
    assert "demo: videoqa uses the offline heuristic backend (no LLM): QA from mask-derived track facts" in lines
    for source in ["dam", "lvis", "mdvp", "mevis", "osprey", "paco", "refcoco", "vg", "videorefer",
                   "hcstvg", "pascalpart", "partimagenet", "vcr", "llava"]:
        stats = json.loads((out / "stats" / f"{source}.json").read_text())
        assert stats["read"] == stats["written"] + stats["rejected"] and stats["written"] > 0, source
        assert any(line.startswith(f"{source:<20}{'ingest':<9}{stats['read']:>7}{stats['written']:>9}") for line in lines), source
    segmented = {s: json.loads((out / "stats" / f"{s}_sam2.json").read_text()) for s in ["hcstvg", "mdvp", "paco", "vcr", "vg"]}
    assert {s: (st["read"], st["written"], st["by_reason"]) for s, st in segmented.items()} == {
        "hcstvg": (2, 2, {}), "mdvp": (5, 3, {"point_needs_sam2": 2}), "paco": (2, 2, {}), "vcr": (2, 2, {}), "vg": (6, 6, {})}
    shards = {}
    for stage in ["stage1", "stage2"]:
        index = json.loads((out / "shards" / "demo" / stage / "index.json").read_text())
        shards[stage] = (index["records"], index["samples"], index["rejected"])
        log = [json.loads(line) for line in (out / "train" / stage / "log.jsonl").read_text().splitlines()]
        assert [entry["step"] for entry in log] == [1, 2]
        assert f"train {stage}: loss {log[0]['loss']:.4f} at step 1 -> {log[-1]['loss']:.4f} at step 2 ({out / 'train' / stage})" in lines
    assert shards == {"stage1": (34, 34, {}), "stage2": (25, 25, {})}  # no region_without_mask: nothing lost at sharding
    with tarfile.open(out / "shards" / "demo" / "stage1" / "000000000.tar") as tar:
        headers = [json.load(tar.extractfile(m)) for m in tar if m.name.endswith(".json")]
    vg = [h["sample"] for h in headers if h["sample"]["source"] == "vg_sam2"]
    assert len(vg) == 6 and {r["mask_origin"] for s in vg for r in s["regions"]} == {"box"}
    page = (out / "report" / "index.html").read_text()
    assert "<h2>Gallery</h2>" in page and page.count("data:image/png;base64,") >= 9
    assert sorted(p.name for p in (out / "report").iterdir()) == ["index.html"]
    assert ("<tr><td>stage1</td><td>vg</td><td>vg_sam2</td><td>covered</td><td>6</td><td>6</td><td>0</td><td>6</td>"
            "<td>6</td><td>6</td></tr>") in page  # requested, available, dupes, selected, expected, reached shards
    assert "<tr><td>demo/stage1</td><td>34</td><td>34</td><td>none</td></tr>" in page
    assert ("<tr><td>demo/stage1</td><td>box</td><td>10</td><td>the box rasterised as the mask (--box-regions box-mask)"
            "</td></tr>") in page
    assert "<tr><td>stage2</td><td>2</td>" in page  # the training table: run stage2, 2 steps
    sharded = sum(json.loads((out / "shards" / "demo" / s / "index.json").read_text())["samples"] for s in ["stage1", "stage2"])
    assert f"object tokens per sample (shards) (n={sharded})" in page
    assert "<h2>Mixture: recipe demo (requested vs achieved)</h2>" in page
    assert f"report: {out / 'report' / 'index.html'}" in lines

    second = demo(out)
    assert second.returncode == 0, second.stderr[-3000:]
    for stage in STAGES:
        assert f"build: {stage}: complete, skipped ({out / 'build' / (stage + '.done')})" in second.stdout
    assert second.stdout.splitlines()[-1] == lines[-1]

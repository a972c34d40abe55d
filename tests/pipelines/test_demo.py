"""The README's first command: `pixelrefer demo` runs the whole chain on CPU, then reruns as a no-op."""

import json
import subprocess
import sys

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
    for source in ["dam", "lvis", "mdvp", "mevis", "osprey", "paco", "refcoco", "vg", "videorefer"]:
        stats = json.loads((out / "stats" / f"{source}.json").read_text())
        assert stats["read"] == stats["written"] + stats["rejected"] and stats["written"] > 0, source
        assert any(line.startswith(f"{source:<18}{stats['read']:>7}{stats['written']:>9}") for line in lines), source
    for stage in ["stage1", "stage2"]:
        index = json.loads((out / "shards" / "demo" / stage / "index.json").read_text())
        assert index["samples"] > 0
        log = [json.loads(line) for line in (out / "train" / stage / "log.jsonl").read_text().splitlines()]
        assert [entry["step"] for entry in log] == [1, 2]
        assert f"train {stage}: loss {log[0]['loss']:.4f} at step 1 -> {log[-1]['loss']:.4f} at step 2 ({out / 'train' / stage})" in lines
    page = (out / "report" / "index.html").read_text()
    assert "<h2>Gallery</h2>" in page and page.count("data:image/png;base64,") >= 9
    sharded = sum(json.loads((out / "shards" / "demo" / s / "index.json").read_text())["samples"] for s in ["stage1", "stage2"])
    assert f"object tokens per sample (shards) (n={sharded})" in page
    assert "<h2>Mixture: recipe demo (requested vs achieved)</h2>" in page
    assert lines[-1] == f"report: {out / 'report' / 'index.html'}"

    second = demo(out)
    assert second.returncode == 0, second.stderr[-3000:]
    for stage in STAGES:
        assert f"build: {stage}: complete, skipped ({out / 'build' / (stage + '.done')})" in second.stdout
    assert second.stdout.splitlines()[-1] == lines[-1]

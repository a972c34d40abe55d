"""`pixelrefer stats`: the per-source/per-task table and summary.json over an ingested toy workspace;
text-only samples through stats and the report."""

import base64
import io
import json
import re

import pytest
from PIL import Image

from pipelines import workspace
from pipelines.cli import main
from pipelines.ingest import ingest_source
from pipelines.render import conversation_panel
from pipelines.stats import summarize
from schemas import Turn
from sources import registry
from sources.fixtures import write_image
from tests.factories import image_sample, video_sample
from tests.pipelines.toy_source import REGISTRY, ToySource


@pytest.fixture(scope="module")
def out(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stats")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "BUILTIN", {**registry.BUILTIN, **REGISTRY})
        ToySource().write_fixture(tmp / "toy")
        ingest_source("toy", tmp / "toy", tmp / "out", workers=2)
    # a second "source" written directly: one image sample and one video sample (3 frames, mask + box regions)
    part = workspace.part_path(tmp / "out", "lvis", 0)
    workspace.write_part(part, [image_sample(), video_sample()], {"read": 2})
    workspace.write_json_atomic(part.parent / "source.json", {"source": "lvis", "root": str(tmp), "adapter_version": "1"})
    return tmp / "out"


def test_summary_counts_per_source_and_task(out, capsys):
    assert main(["stats", str(out)]) == 0
    summary = json.loads((out / "stats" / "summary.json").read_text())
    assert summary["sources"]["toy"] == {
        "counts": {"stage": "ingest", "read": 12, "written": 9, "rejected": 3,
                   "by_reason": {"empty_mask": 1, "image_missing": 1, "no_label": 1}},
        "tasks": {"recognition": {"samples": 9, "regions": 9, "frames": 9, "mask": 9, "box": 0, "point": 0,
                                  "licenses": ["CC0-1.0"]}},
        "total": {"samples": 9, "regions": 9, "frames": 9, "mask": 9, "box": 0, "point": 0, "licenses": ["CC0-1.0"]},
    }
    assert summary["sources"]["lvis"]["tasks"] == {
        "recognition": {"samples": 1, "regions": 1, "frames": 1, "mask": 1, "box": 0, "point": 0, "licenses": ["CC-BY-4.0"]},
        "video_qa": {"samples": 1, "regions": 2, "frames": 3, "mask": 1, "box": 1, "point": 0, "licenses": ["CC-BY-NC-SA-4.0"]},
    }
    assert summary["sources"]["lvis"]["counts"] == {"stage": None, "read": None, "written": None, "rejected": None, "by_reason": None}
    assert summary["total"] == {"samples": 11, "regions": 12, "frames": 13, "mask": 11, "box": 1, "point": 0,
                                "licenses": ["CC-BY-4.0", "CC-BY-NC-SA-4.0", "CC0-1.0"]}
    assert summary["mix_duplicates_removed"] == {}
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["source", "task", "samples", "regions", "frames", "mask", "box", "point", "licences"]
    assert lines[1].split() == ["lvis", "recognition", "1", "1", "1", "1", "0", "0", "CC-BY-4.0"]
    assert lines[-2].split() == ["(all)", "(all)", "11", "12", "13", "11", "1", "0", "CC-BY-4.0,", "CC-BY-NC-SA-4.0,", "CC0-1.0"]
    assert lines[-1] == f"summary written to {out / 'stats' / 'summary.json'}"


def test_stats_without_ingest_is_an_error(tmp_path, capsys):
    assert main(["stats", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"pixelrefer stats: no ingested source under {tmp_path / 'unified'}; run `pixelrefer ingest` first\n")


def test_text_only_samples_count_no_frames_and_render_as_their_conversation(tmp_path):
    """A `llava` part with a text-only and an image general QA sample: stats count one frame, and the
    report's gallery draws the text-only one as the conversation panel alone (no frame to load)."""
    qa = dict(source="llava", subset="qa", task="general_qa", regions=[], meta={},
              conversation=[Turn(role="user", text="What is 2 + 2?"), Turn(role="assistant", text="4")])
    text, image = image_sample(id="llava/qa/0", media=None, **qa), image_sample(id="llava/qa/1", **qa)
    out = tmp_path / "out"
    write_image(tmp_path / image.media.path, image.media.width, image.media.height)
    workspace.write_part(workspace.part_path(out, "llava", 0), [text, image], {"read": 2})
    workspace.write_json_atomic(out / "unified/llava/source.json", {"source": "llava", "root": str(tmp_path), "adapter_version": "1"})
    assert summarize(out)["sources"]["llava"]["tasks"] == {
        "general_qa": {"samples": 2, "regions": 0, "frames": 1, "mask": 0, "box": 0, "point": 0, "licenses": ["CC-BY-4.0"]}}
    assert main(["report", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    assert "<tr><td>llava</td><td>general_qa</td><td>2</td></tr>" in page
    gallery = {alt: Image.open(io.BytesIO(base64.b64decode(data)))  # embedded in the page, by sample key
               for data, alt in re.findall(r'src="data:image/png;base64,([^"]+)" alt="([^"]+)"', page)}
    assert gallery[text.key].size == conversation_panel(text, 460).size
    assert gallery[image.key].width > 460  # the image tile, then the panel

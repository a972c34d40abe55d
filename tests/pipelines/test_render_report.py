"""inspect draws regions where their masks are; report summarises the build from its own files."""

import json
from collections import Counter

import numpy as np
from PIL import Image
from pipelines.cli import main
from pipelines.render import MASK_ALPHA, colour, media_frame_loader, render_sample
from pipelines.report import mask_origin_section
from pipelines.workspace import part_path, write_json_atomic, write_part
from schemas import Media, Region, RegionFrame, Turn, masks
from sources.fixtures import draw, rect_mask, write_image
from tests.factories import image_sample, video_sample

W, H = 120, 80
RECT = (10, 20, 50, 60)


def two_region_sample():
    m = masks.encode(rect_mask(W, H, RECT))
    return image_sample(
        media=Media(kind="image", path="val2017/000000000042.png", width=W, height=H),
        regions=[
            Region(label="car", prompt="mask", mask_origin="annotation", frames=[RegionFrame(frame=0, mask=m)]),
            Region(label="sign", prompt="box", frames=[RegionFrame(frame=0, box=(70.0, 10.0, 110.0, 40.0))]),
        ],
        conversation=[Turn(role="user", text="Is <obj0> below <obj1>?"), Turn(role="assistant", text="Yes.")],
    )


def make_build(tmp_path):
    root, out = tmp_path / "native", tmp_path / "out"
    write_image(root / "val2017/000000000042.png", W, H, [RECT])
    sample = two_region_sample()
    write_part(part_path(out, "lvis", 0), [sample], {"written": 1})
    write_json_atomic(out / "unified/lvis/source.json", {"source": "lvis", "root": str(root), "adapter_version": "1"})
    (out / "rejects").mkdir(parents=True)
    (out / "rejects/lvis.jsonl").write_text(
        json.dumps({"reason": "image_missing", "locator": "lvis_v1_val.json:images[id=7]", "detail": "no image"}) + "\n")
    return root, out, sample


def test_masks_are_blended_at_their_pixels_and_nowhere_else(tmp_path):
    root, _, sample = make_build(tmp_path)
    picture = render_sample(sample, media_frame_loader(root), frame_height=H)
    pixels = np.asarray(picture)
    base = draw(W, H, [RECT]).astype(np.float32)
    inside = (base[40, 30] * (1 - MASK_ALPHA) + np.array(colour(0)) * MASK_ALPHA).round()
    np.testing.assert_array_equal(pixels[40, 30], inside)
    np.testing.assert_array_equal(pixels[70, 5], base[70, 5])  # background untouched
    np.testing.assert_array_equal(pixels[25, 70], colour(1))  # the box outline, left edge
    assert picture.width > W  # the conversation panel sits beside the frame


def test_inspect_cli_writes_identical_pngs(tmp_path, capsys):
    _, out, sample = make_build(tmp_path)
    assert main(["inspect", str(out), "--id", sample.id]) == 0
    png = out / "inspect" / f"{sample.key}.png"
    assert capsys.readouterr().out.splitlines() == [str(png)]
    first = png.read_bytes()
    assert main(["inspect", str(out), "--source", "lvis"]) == 0
    assert png.read_bytes() == first
    assert main(["inspect", str(out), "--id", "lvis/val2017/nope"]) == 2
    assert capsys.readouterr().err.endswith("no sample with id 'lvis/val2017/nope'\n")


def test_video_frames_are_drawn_as_a_strip(tmp_path):
    sample = video_sample()
    root = tmp_path / "mevis"
    for i, path in enumerate(sample.media.frames):
        write_image(root / path, 32, 32, seed=i)
    picture = render_sample(sample, media_frame_loader(root), frame_height=32, panel_width=100)
    assert picture.size == (3 * 32 + 2 * 4 + 100, max(32, picture.height))
    pixels = np.asarray(picture)
    frames = [np.asarray(Image.open(root / path)) for path in sample.media.frames]  # JPEG-decoded
    np.testing.assert_array_equal(pixels[24, 36 + 20], colour(1))  # frame 1 tile: region 1's box outline
    np.testing.assert_array_equal(pixels[28, 36 + 10], frames[1][28, 10])  # frame 1 background
    np.testing.assert_array_equal(pixels[28, 72 + 10], frames[2][28, 10])  # frame 2 background


def test_report_holds_counts_rejects_licences_and_gallery(tmp_path):
    _, out, sample = make_build(tmp_path)
    assert main(["report", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    for heading in ["Samples per source and task", "Licences", "Rejects by reason", "Distributions", "Gallery"]:
        assert f"<h2>{heading}</h2>" in page
    assert "<tr><td>lvis</td><td>recognition</td><td>1</td></tr>" in page
    assert "<tr><td>lvis</td><td>image_missing</td><td>1</td><td>lvis_v1_val.json:images[id=7]</td></tr>" in page
    assert "<tr><td>CC-BY-4.0</td><td>lvis</td><td></td></tr>" in page
    assert page.count('src="data:image/png;base64,') == 1
    assert sorted(p.name for p in (out / "report").iterdir()) == ["index.html"]  # the gallery is in the page only
    assert "region area in pixels (first frame, log scale) (n=2)" in page
    assert "Mixture" not in page  # nothing mixed yet
    assert "object tokens per sample (shards): no data" in page  # nor sharded
    assert "<h2>Shard rejects by reason</h2><p>Nothing sharded yet.</p>" in page
    assert "<h2>Mask origins in the shards</h2><p>Nothing sharded yet.</p>" in page
    assert "<h2>Training</h2><p>No training run yet.</p>" in page


def test_report_shows_requested_vs_achieved_mixture(tmp_path):
    _, out, _ = make_build(tmp_path)
    write_json_atomic(out / "stats/mix-demo.json", {"recipe": "demo", "seed": 0, "duplicates_removed": 1, "box_regions": None, "stages": {
        "stage1": [{"name": "lvis", "source": "lvis", "reads": "lvis", "status": "covered", "count": 5, "fraction": None,
                    "requested": 5, "available": 2, "duplicates": 1, "selected": 1, "box_point": 0, "to_shards": 1, "unsupported": 0},
                   {"name": "vcr", "source": "vcr", "reads": "vcr", "status": "no-adapter", "count": 9, "fraction": None,
                    "requested": 9, "available": None, "duplicates": 0, "selected": 0, "box_point": None, "to_shards": None,
                    "unsupported": 9}]}})
    assert main(["report", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    assert "<h2>Mixture: recipe demo (requested vs achieved)</h2><p>Box/point regions: no policy.</p>" in page
    # not sharded: nothing reached the shards yet
    assert "<tr><td>stage1</td><td>lvis</td><td>lvis</td><td>covered</td><td>5</td><td>2</td><td>1</td><td>1</td><td>1</td><td>-</td></tr>" in page
    assert "<tr><td>stage1</td><td>vcr</td><td>vcr</td><td>no-adapter</td><td>9</td><td>-</td><td>0</td><td>0</td><td>-</td><td>-</td></tr>" in page


def test_report_shows_each_training_run_with_its_loss_curve(tmp_path):
    _, out, _ = make_build(tmp_path)
    log = out / "train" / "stage1" / "log.jsonl"
    log.parent.mkdir(parents=True)
    skipped = {1: {}, 2: {"too_long": 1}, 3: {"token_count_mismatch": 1, "too_long": 2}}  # cumulative, as train logs it
    log.write_text("".join(json.dumps({"step": i, "loss": loss, "tokens": 60 * i, "skipped": skipped[i]}) + "\n"
                           for i, loss in [(1, 4.0), (2, 3.0), (3, 3.5)]))
    (out / "train" / "stage2").mkdir()
    (out / "train" / "stage2" / "log.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0, "tokens": 9, "skipped": {}}) + "\n")
    assert main(["report", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    assert ("<h2>Training</h2><table><tr><th>run</th><th>steps</th><th>tokens</th><th>first loss</th><th>last loss</th>"
            "<th>skipped samples</th></tr>"
            "<tr><td>stage1</td><td>3</td><td>180</td><td>4.0000</td><td>3.5000</td><td>token_count_mismatch 1, too_long 2</td></tr>"
            "<tr><td>stage2</td><td>1</td><td>9</td><td>2.0000</td><td>2.0000</td><td>none</td></tr></table>") in page
    # x spans 30..330 over the steps, y 20 (highest loss) .. 130 (lowest)
    assert '<polyline points="30.0,20.0 180.0,130.0 330.0,75.0" fill="none" stroke="#3b7dd8"/>' in page
    assert "<figcaption>stage1: loss per logged step</figcaption>" in page


def test_random_weight_sam2_masks_are_flagged():
    section = mask_origin_section({"demo/stage1": Counter({"sam2_random": 3, "annotation": 2})})
    assert section == ("<h2>Mask origins in the shards</h2><table><tr><th>recipe/stage</th><th>mask origin</th><th>regions</th>"
                       "<th></th></tr><tr><td>demo/stage1</td><td>annotation</td><td>2</td><td></td></tr>"
                       "<tr><td>demo/stage1</td><td>sam2_random</td><td>3</td>"
                       "<td><b>random SAM 2 weights: these masks are meaningless</b></td></tr></table>")

"""SAOT geometry against hand-computed values and an independent OpenCV re-implementation;
the batched torch path against the scalar one and against cv2.resize."""

import math

import cv2
import numpy as np
import pytest
import torch

from schemas import Reject
from tests.benchmarks.official_saot import official_object, official_positions
from tokenization import saot, saot_torch
from tokenization.saot import SaotConfig

CONFIGS = [SaotConfig(mode=m, lite=lite) for m in saot.MODES for lite in (False, True)]


def _random_case(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, np.ndarray]:
    h, w = (int(v) for v in rng.integers(16, 360, 2))
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if kind == "tiny":
        y, x = rng.integers(0, h), rng.integers(0, w)
        mask[y : y + rng.integers(1, 4), x : x + rng.integers(2, 4)] = 1  # 2 to 9 px: ~30-60x zoom
    elif kind == "huge":
        mask[rng.integers(0, 4) :, : w - rng.integers(0, 4)] = 1
    elif kind == "border":
        mask[: rng.integers(1, h), w - rng.integers(1, w) :] = 1
    else:  # several components, anywhere
        for _ in range(rng.integers(2, 5)):
            y, x = rng.integers(0, h), rng.integers(0, w)
            mask[y : y + rng.integers(1, h // 2 + 2), x : x + rng.integers(1, w // 2 + 2)] = 1
    return image, mask


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).contiguous()


def test_hand_computed_geometry_official_and_paper():
    mask = np.zeros((100, 200), bool)
    mask[10:20, 30:50] = 1  # area 200 -> s = ceil(sqrt(196*32/200)) = ceil(5.6) = 6
    g = saot.mask_geometry(mask)
    assert (g.box, g.scale, g.crop_hw, g.resize_hw, g.grid_hw) == ((0, 2, 47, 77), 6, (47, 75), (294, 462), (21, 33))
    p = saot.mask_geometry(mask, SaotConfig(mode="paper"))
    assert (p.box, p.crop_hw, p.resize_hw) == ((0, 2, 47, 77), (48, 76), (294, 462))
    assert g.crop_slice == (slice(0, 47), slice(2, 77))


def test_large_object_fallback_official_lite_and_paper():
    mask = np.zeros((300, 300), bool)
    mask[:200, :150] = 1  # 30000 px = 153 patches > 100 (> 50 for Lite)
    official = saot.mask_geometry(mask)
    assert official.scale == 1 / math.sqrt(30000 / 196 / 100)
    assert (official.crop_hw, official.resize_hw) == ((227, 177), (196, 154))
    lite = saot.mask_geometry(mask, SaotConfig(lite=True))
    assert lite.scale == 1 / math.sqrt(30000 / 196 / 50)
    assert lite.resize_hw == (140, 112)
    paper = saot.mask_geometry(mask, SaotConfig(mode="paper"))
    assert (paper.scale, paper.resize_hw) == (1, (238, 182))


def test_empty_mask_and_empty_crop_are_rejects_with_reasons():
    with pytest.raises(Reject) as err:
        saot.mask_geometry(np.zeros((8, 8), bool), locator="s/1")
    assert (err.value.reason, err.value.locator) == ("empty_mask", "s/1")
    with pytest.raises(Reject) as err:
        saot.geometry(0, (0, 0, 0, 0), (8, 8))
    assert err.value.reason == "empty_mask"
    with pytest.raises(Reject) as err:  # the official slice [y0:y1) of a 1-row frame is empty
        saot.mask_geometry(np.ones((1, 5), bool))
    assert err.value.reason == "degenerate_crop"
    assert saot.mask_geometry(np.ones((1, 5), bool), SaotConfig(mode="paper")).crop_hw == (1, 5)


def test_config_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        SaotConfig(mode="other")


def test_token_count():
    assert saot.token_count(torch.full((4, 4), 0.5)) == 8
    assert saot.token_count(torch.full((4, 4), 0.49)) == 7  # int() truncates, as released
    assert saot.token_count(torch.ones(10, 10)) == 32
    assert saot.token_count(torch.ones(10, 10), n=10) == 10
    assert saot.token_count(torch.zeros(2, 2), lite=True) == 32


def test_position_grid_hand_values_and_axis_swap():
    mask = np.zeros((100, 200), bool)
    mask[10:20, 30:50] = 1
    g = saot.mask_geometry(mask)  # box (y0, x0, y1, x1) = (0, 2, 47, 77), grid 21 x 33
    pos = saot.position_grid(g)
    assert pos.shape == (21, 33, 2) and pos.dtype == np.float32
    # official: channel 0 = (j/33 * (y1 - y0) + y0) / (W - 1): the y extent over the width
    assert pos[0, 0].tolist() == [0.0, np.float32(2 / 99)]
    assert pos[20, 32, 0] == np.float32((32 / 33 * 47) / 199)
    assert pos[20, 32, 1] == np.float32((20 / 21 * 75 + 2) / 99)
    paper = saot.position_grid(saot.mask_geometry(mask, SaotConfig(mode="paper")))
    assert paper[0, 0].tolist() == [np.float32(2 / 199), 0.0]


@pytest.mark.parametrize("kind", ["tiny", "huge", "border", "multi"])
def test_geometry_matches_independent_official_reimplementation(kind):
    rng = np.random.default_rng(["tiny", "huge", "border", "multi"].index(kind))
    for _ in range(25):
        image, mask = _random_case(rng, kind)
        for cfg in CONFIGS:
            paper = cfg.mode == "paper"
            try:
                ref = official_object(image, mask, lite=cfg.lite, paper=paper)
            except cv2.error:  # the official slice can be empty on a 1-row crop: we reject it
                with pytest.raises(Reject):
                    saot.mask_geometry(mask, cfg)
                continue
            g = saot.mask_geometry(mask, cfg)
            assert (g.box, g.scale, g.crop_hw, g.resize_hw) == (ref["box"], ref["scale"], ref["crop_hw"], ref["resize_hw"])
            grid = saot.grid_mask(mask[g.crop_slice], g)
            assert torch.equal(grid, ref["grid"])
            assert saot.token_count(grid, lite=cfg.lite) == ref["tokens"]
            expected_pos = official_positions(g.box, g.grid_hw, mask.shape, paper=paper)
            np.testing.assert_allclose(saot.position_grid(g), expected_pos, rtol=0, atol=1e-6)


def test_geometry_from_rle_box_equals_geometry_from_decoded_mask():
    from schemas import masks

    rng = np.random.default_rng(7)
    for kind in ("tiny", "huge", "border", "multi"):
        for _ in range(10):
            _, mask = _random_case(rng, kind)
            rle = masks.encode(mask)
            x0, y0, x1, y1 = masks.bbox(rle)
            from_rle = saot.geometry(masks.area(rle), (int(y0), int(x0), int(y1) - 1, int(x1) - 1), mask.shape)
            assert from_rle == saot.mask_geometry(mask)


def test_batched_torch_equals_scalar_and_stays_within_cv2_tolerance():
    rng = np.random.default_rng(11)
    # tiny masks zoom ~60x (multi-megapixel crops, as released): covered by the geometry test
    cases = [_random_case(rng, kind) for kind in ("huge", "border", "multi") for _ in range(5)]
    for cfg in CONFIGS:
        frames, jobs, refs = [], [], []
        for i, (image, mask) in enumerate(cases):
            try:
                g = saot.mask_geometry(mask, cfg)
            except Reject:
                continue
            frames.append(_chw(image))
            jobs.append(saot_torch.CropJob(len(frames) - 1, mask[g.crop_slice], g))
            refs.append(official_object(image, mask, lite=cfg.lite, paper=cfg.mode == "paper"))
        jobs.append(jobs[0])  # a duplicate shares a bucket with the first job
        refs.append(refs[0])
        batched = saot_torch.tokenize_batch(frames, jobs, cfg)
        for job, out, ref in zip(jobs, batched, refs):
            one = saot_torch.tokenize_batch([frames[job.frame]], [saot_torch.CropJob(0, job.crop_mask, job.geom)], cfg)[0]
            assert torch.equal(out.crop, one.crop) and torch.equal(out.grid, one.grid)
            assert out.token_count == one.token_count == ref["tokens"]
            diff = np.abs(out.crop.permute(1, 2, 0).numpy().astype(int) - ref["crop"].astype(int))
            assert diff.max() <= saot_torch.PIXEL_TOLERANCE
            if cfg.lite:
                local = np.abs(out.local.permute(1, 2, 0).numpy().astype(int) - ref["local"].astype(int))
                assert out.local.shape == (3, 224, 224) and local.max() <= saot_torch.PIXEL_TOLERANCE


RESIZERS = {  # name: (OpenCV flag, resize, max |diff| to cv2.resize)
    "linear": (cv2.INTER_LINEAR, lambda img, size: saot_torch.resize_rgb(img, size), 0),  # CPU: OpenCV itself
    "area": (cv2.INTER_AREA, lambda img, size: saot_torch.resize_rgb(img, size, area=True), 0),
    # the CUDA paths (tap tables), run here on CPU tensors
    "linear_fixed_point": (cv2.INTER_LINEAR, lambda img, size: saot_torch.linear_fixed_point(img[None], size)[0], saot_torch.PIXEL_TOLERANCE),
    "area_taps": (cv2.INTER_AREA, lambda img, size: saot_torch.area_resize(img[None], size)[0], saot_torch.PIXEL_TOLERANCE),
}


@pytest.mark.parametrize("name", sorted(RESIZERS))
def test_resize_within_tolerance_of_cv2_for_shrink_enlarge_and_mixed(name):
    flag, resize, tolerance = RESIZERS[name]
    rng = np.random.default_rng(3)
    worst = 0
    for _ in range(40):
        h, w, oh, ow = (int(v) for v in rng.integers(5, 300, 4))
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noise: the worst case for rounding
        ours = resize(_chw(image), (oh, ow))
        ref = cv2.resize(image, (ow, oh), interpolation=flag)
        assert ours.shape == (3, oh, ow)
        worst = max(worst, int(np.abs(ours.permute(1, 2, 0).numpy().astype(int) - ref.astype(int)).max()))
    assert worst == tolerance  # the tap tables do round differently from OpenCV in the last bit


def test_resizes_do_not_depend_on_the_thread_count():
    image = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (3, 300, 420), dtype=np.uint8))
    sizes = [((644, 798), False), ((210, 266), True), ((400, 500), True)]
    resizers = [saot_torch.resize_rgb, lambda img, size, area: (saot_torch.area_resize if area else saot_torch.linear_fixed_point)(img[None], size)[0]]
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    try:
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        single = [resize(image, size, area) for resize in resizers for size, area in sizes]
        torch.set_num_threads(4)
        cv2.setNumThreads(4)
        multi = [resize(image, size, area) for resize in resizers for size, area in sizes]
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    assert all(torch.equal(a, b) for a, b in zip(single, multi))


def test_lite_global_views_are_336_and_match_cv2_area():
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((480, 640), (200, 500), (100, 90))]
    views = saot_torch.global_views([_chw(i) for i in images])
    for image, view in zip(images, views):
        ref = cv2.resize(image, (336, 336), interpolation=cv2.INTER_AREA)
        assert view.shape == (3, 336, 336)
        assert np.abs(view.permute(1, 2, 0).numpy().astype(int) - ref.astype(int)).max() <= saot_torch.PIXEL_TOLERANCE


def _geometry(mode: str, crop_hw: tuple[int, int]) -> saot.Geometry:
    """A hand-made geometry whose crop is resized x0.5 to the grid (each cell averages a 2x2 block)."""
    h, w = crop_hw
    return saot.Geometry(mode, (h, w), 1, (0, 0, h - 1, w - 1), 1.0, crop_hw, (h // 2 * saot.PATCH, w // 2 * saot.PATCH))


@pytest.mark.parametrize(("blocks", "official", "paper"), [
    ((1, 1, 1, 1), 4, 1),  # every cell 0.25: uint8 rounds each pass up to 1 (4 tokens); float sums to 1.0
    ((1, 0, 0, 0), 1, 0),  # a 1-pixel speck: one uint8 token; float 0.25 truncates to none
    ((4, 4, 0, 0), 2, 2),  # whole blocks: both resizes agree
])
def test_official_token_count_resizes_the_mask_as_uint8(blocks, official, paper):
    # A 4x4 crop mask -> 2x2 grid: bilinear (align_corners=False) at x0.5 reads two source pixels
    # with weight 1/2 per axis. The float resize gives each cell its block's mean; torch's uint8
    # kernel resizes one axis at a time and rounds each pass half up, so a 0/1 block with any object
    # pixel becomes 1. `blocks` puts 0-4 object pixels in the TL, TR, BL, BR blocks (first pixel
    # in the block's top-left).
    mask = np.zeros((4, 4), np.uint8)
    for (y, x), count in zip([(0, 0), (0, 2), (2, 0), (2, 2)], blocks):
        block = np.zeros(4, np.uint8)
        block[:count] = 1
        mask[y : y + 2, x : x + 2] = block.reshape(2, 2)
    counts = {mode: saot.token_count(saot.grid_mask(mask, _geometry(mode, (4, 4)))) for mode in saot.MODES}
    assert counts == {"official": official, "paper": paper}
    assert set(saot.grid_mask(mask, _geometry("official", (4, 4))).unique().tolist()) <= {0.0, 1.0}


def test_area_taps_are_the_exact_box_filter():
    # 5 -> 2 pixels: r = 2.5, so output 0 covers [0, 2.5) and output 1 covers [2.5, 5), each
    # source pixel weighted by its covered fraction / 2.5; ceil(2.5) + 1 = 4 taps per output, the
    # unused ones weight 0 on a clipped (valid) index
    idx, w = saot_torch._area_taps(5, 2)
    assert idx.tolist() == [[0, 1, 2, 3], [2, 3, 4, 4]]
    assert w.tolist() == [[0.4, 0.4, 0.2, 0.0], [0.2, 0.4, 0.4, 0.0]]


def test_lite_local_view_is_resized_once_per_frame_as_the_released_cache():
    rng = np.random.default_rng(13)
    frames = [_chw(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)) for _ in range(2)]
    boxes = [(10, 10, 40, 50), (60, 80, 100, 150), (20, 30, 70, 90)]  # objects on frames 0, 0, 1
    jobs = []
    for frame, (y0, x0, y1, x1) in zip([0, 0, 1], boxes):
        mask = np.zeros((120, 160), np.uint8)
        mask[y0:y1, x0:x1] = 1
        g = saot.mask_geometry(mask, SaotConfig(lite=True))
        jobs.append(saot_torch.CropJob(frame, mask[g.crop_slice], g))
    official, paper = SaotConfig(lite=True), SaotConfig(mode="paper", lite=True)
    assert saot_torch.local_owners(jobs, official) == [0, 0, 2]  # the first object of each frame
    assert saot_torch.local_owners(jobs, paper) == [0, 1, 2]
    own = saot_torch.tokenize_batch(frames, jobs, official)  # local_of=None: every job its own view
    shared = saot_torch.tokenize_batch(frames, jobs, official, saot_torch.local_owners(jobs, official))
    assert shared[1].local is shared[0].local  # one resize, shared
    assert not torch.equal(own[1].local, own[0].local)
    assert all(torch.equal(s.local, own[o].local) for s, o in zip(shared, [0, 0, 2]))
    assert all(torch.equal(s.crop, o.crop) and torch.equal(s.grid, o.grid) for s, o in zip(shared, own))

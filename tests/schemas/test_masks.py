"""Golden tests: our codec against pycocotools itself, bit for bit."""

import numpy as np
import pytest
from pycocotools import mask as cocomask

from schemas import masks


def coco_polygon(rings, h, w):
    return cocomask.decode(cocomask.merge(cocomask.frPyObjects(rings, h, w))).astype(bool)


def test_single_polygon_matches_pycocotools():
    ring = [10.0, 5.0, 40.5, 5.0, 40.5, 30.2, 10.0, 30.2]
    rle = masks.to_rle([ring], 48, 64)
    assert isinstance(rle["counts"], str) and rle["size"] == [48, 64]
    np.testing.assert_array_equal(masks.decode(rle), coco_polygon([ring], 48, 64))
    assert masks.area(rle) == int(coco_polygon([ring], 48, 64).sum())


def test_multi_ring_polygon_is_merged():
    rings = [[2, 2, 12, 2, 12, 12, 2, 12], [30, 30, 40, 30, 35, 40]]
    got = masks.decode(masks.to_rle(rings, 50, 50))
    np.testing.assert_array_equal(got, coco_polygon(rings, 50, 50))
    assert got[5, 5] and got[33, 35] and not got[20, 20]


def test_hole_via_uncompressed_crowd_rle():
    m = np.zeros((20, 20), dtype=np.uint8)
    m[2:18, 2:18] = 1
    m[8:12, 8:12] = 0  # the hole
    flat = m.flatten(order="F")
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            run, cur = 0, v
        run += 1
    counts.append(run)
    uncompressed = {"size": [20, 20], "counts": counts}
    rle = masks.to_rle(uncompressed, 20, 20)
    expected = cocomask.frPyObjects(uncompressed, 20, 20)
    assert rle["counts"] == expected["counts"].decode()
    np.testing.assert_array_equal(masks.decode(rle), m.astype(bool))
    assert masks.area(rle) == 16 * 16 - 16


def test_compressed_rle_passes_through_bytes_or_str():
    m = np.zeros((9, 7), dtype=np.uint8)
    m[1:4, 2:6] = 1
    coco = cocomask.encode(np.asfortranarray(m))
    assert masks.to_rle({"size": [9, 7], "counts": coco["counts"]}, 9, 7) == {"size": [9, 7], "counts": coco["counts"].decode()}
    assert masks.to_rle({"size": [9, 7], "counts": coco["counts"].decode()}, 9, 7)["counts"] == coco["counts"].decode()


def test_four_number_ring_is_not_rasterised_as_a_box():
    # pycocotools dispatches a 4-number ring to its box path: it paints the xywh box (15 x 12
    # pixels) or, for a plain list, fails inside frBbox; never a polygon
    trap = [[5, 5, 15, 12]]
    assert cocomask.area(cocomask.frPyObjects(np.array(trap, dtype=float), 20, 20))[0] == 15 * 12
    with pytest.raises(TypeError):
        cocomask.frPyObjects(trap, 20, 20)
    assert masks.area(masks.to_rle(trap, 20, 20)) == 0
    # and a 4-number first ring must not hide the real polygon after it
    rings = [[5, 5, 15, 12], [0, 0, 10, 0, 10, 10, 0, 10]]
    np.testing.assert_array_equal(masks.decode(masks.to_rle(rings, 20, 20)), coco_polygon(rings[1:], 20, 20))


def test_odd_and_short_rings_dropped():
    assert masks.valid_rings([[1, 2, 3, 4, 5], [1, 2, 3, 4], [0, 0, 4, 0, 4, 4, 0, 4]]) == [[0.0, 0.0, 4.0, 0.0, 4.0, 4.0, 0.0, 4.0]]
    assert masks.valid_rings([0, 0, 4, 0, 4, 4]) == [[0.0, 0.0, 4.0, 0.0, 4.0, 4.0]]


def test_empty_mask_round_trip():
    rle = masks.empty(6, 5)
    assert rle == {"size": [6, 5], "counts": cocomask.encode(np.zeros((6, 5), np.uint8, order="F"))["counts"].decode()}
    assert masks.area(rle) == 0 and masks.bbox(rle) is None
    assert not masks.decode(rle).any()
    assert masks.to_rle([], 6, 5) == rle


def test_bbox_and_box_to_rle_are_inverse_for_integer_boxes():
    rle = masks.box_to_rle([10, 20, 60, 50], 64, 80)
    assert masks.area(rle) == 50 * 30
    assert masks.bbox(rle) == [10.0, 20.0, 60.0, 50.0]
    # toBbox agrees: xywh -> xyxy
    assert masks.bbox(rle) == masks.xywh_to_xyxy(cocomask.toBbox(masks._coco(rle)))


def test_box_to_rle_uses_pixel_centres_and_clips():
    rle = masks.box_to_rle([0.4, 0.6, 2.5, 2.4], 4, 4)
    expected = np.zeros((4, 4), bool)
    expected[1:2, 0:2] = True  # centres 0.5 and 1.5 in x; only 1.5 in y
    np.testing.assert_array_equal(masks.decode(rle), expected)
    assert masks.area(masks.box_to_rle([-5, -5, 100, 2], 4, 4)) == 8


def test_size_mismatch_and_bad_counts_raise():
    good = masks.encode(np.ones((4, 4), np.uint8))
    with pytest.raises(masks.MaskError, match=r"RLE size \[4, 4\] differs from the image size \[4, 5\]"):
        masks.to_rle(good, 4, 5)
    with pytest.raises(masks.MaskError, match="sum to 15, expected 16"):
        masks.to_rle({"size": [4, 4], "counts": [5, 10]}, 4, 4)
    with pytest.raises(masks.MaskError, match="invalid character"):
        masks.to_rle({"size": [4, 4], "counts": "zz"}, 4, 4)
    with pytest.raises(masks.MaskError, match="non-ASCII character 'é'"):
        masks.to_rle({"size": [4, 4], "counts": "0é"}, 4, 4)
    with pytest.raises(masks.MaskError, match="end in the middle of a number"):
        masks.to_rle({"size": [4, 4], "counts": "0P"}, 4, 4)
    with pytest.raises(masks.MaskError, match="not a polygon list or RLE dict"):
        masks.to_rle("nope", 4, 4)


def test_run_lengths_match_pycocotools_on_random_masks():
    rng = np.random.default_rng(7)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        rle = masks.encode(m)
        uncompressed = cocomask.frPyObjects({"size": [h, w], "counts": masks.run_lengths(rle["counts"]).tolist()}, h, w)
        assert uncompressed["counts"].decode() == rle["counts"]
        np.testing.assert_array_equal(masks.decode(rle), m.astype(bool))


def test_decode_window_is_the_window_of_the_full_decode():
    rng = np.random.default_rng(4)
    cases = 0
    for _ in range(500):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        m = rng.random((h, w)) < rng.random()  # any density, all-background and all-foreground included
        top, left = int(rng.integers(0, h)), int(rng.integers(0, w))
        height, width = int(rng.integers(0, h - top + 1)), int(rng.integers(0, w - left + 1))
        window = masks.decode_window(masks.encode(m), slice(top, top + height), slice(left, left + width))
        assert window.dtype == bool and np.array_equal(window, m[top : top + height, left : left + width])
        cases += height * width > 0
    assert cases == 352  # non-empty windows among the 500
    full = np.ones((5, 4), bool)  # one run of foreground after an empty background run
    assert masks.decode_window(masks.encode(full), slice(1, 4), slice(1, 3)).tolist() == [[True, True]] * 3


def test_merge_and_clip():
    a = masks.box_to_rle([0, 0, 2, 2], 4, 4)
    b = masks.box_to_rle([2, 2, 4, 4], 4, 4)
    assert masks.area(masks.merge([a, b])) == 8
    assert masks.clip_box([-3, -4, 10, 2], 5, 5) == [0.0, 0.0, 5.0, 2.0]
    assert masks.clip_box([6, 0, 9, 3], 5, 5) is None
    assert masks.clip_box([1, -904, 3, -10], 5, 5) is None


def test_polygon_points_near_the_frame_go_to_pycocotools_unchanged():
    rings = [[-3.5, -2.0, 70.0, 1.0, 66.0, 52.5, 2.0, 47.0], [10, 10, 20, 10, 15, 18]]
    np.testing.assert_array_equal(masks.decode(masks.to_rle(rings, 48, 64)), coco_polygon(rings, 48, 64))
    reach = [[-4 * 64, -4 * 48, 5 * 64, 0, 5 * 64, 5 * 48]]  # the farthest allowed corners
    np.testing.assert_array_equal(masks.decode(masks.to_rle(reach, 48, 64)), coco_polygon(reach, 48, 64))


@pytest.mark.parametrize("ring, message", [
    ([0, 0, 1e12, 0, 5, 5], "polygon ring 0 point 1 [1000000000000.0, 0.0] lies more than 4 frame sizes outside the 10x8 frame"),
    ([0, 0, 5, 3e7, 5, 5], "polygon ring 0 point 1 [5.0, 30000000.0] lies more than 4 frame sizes outside the 10x8 frame"),
    ([0, 0, 5, 5, -40.5, 5], "polygon ring 0 point 2 [-40.5, 5.0] lies more than 4 frame sizes outside the 10x8 frame"),
    ([0, None, 4, 0, 4, 4], "polygon ring 0 coordinate 1 is None, not a number"),
    ([0, 0, "4", 0, 4, 4], "polygon ring 0 coordinate 2 is '4', not a number"),
    ([0, 0, 4, True, 4, 4], "polygon ring 0 coordinate 3 is True, not a number"),
    ([0, 0, 4, 0, float("nan"), 4], "polygon ring 0 point 2 is [nan, 4.0], not finite"),
    ([0, 0, 4, 0, 4, float("-inf")], "polygon ring 0 point 2 is [4.0, -inf], not finite"),
    ([0, 0, 10**400, 0, 4, 4], "polygon ring 0 holds a coordinate beyond the float range"),
])
def test_bad_polygon_coordinates_raise_before_pycocotools(ring, message):
    with pytest.raises(masks.MaskError) as err:
        masks.to_rle([[0, 0, 2, 0, 2, 2], ring], 8, 10)
    assert str(err.value) == message.replace("ring 0", "ring 1")
    with pytest.raises(masks.MaskError) as err:  # a bare flat ring too
        masks.to_rle(ring, 8, 10)
    assert str(err.value) == message


def test_a_ring_that_is_not_a_list_raises_and_valid_rings_never_does():
    with pytest.raises(masks.MaskError, match=r"^polygon ring 1 is 5, not a list of coordinates$"):
        masks.to_rle([[0, 0, 4, 0, 4, 4], 5], 8, 10)
    assert masks.valid_rings([[0, None, 4, 0, 4, 4], 5]) == [[0, None, 4, 0, 4, 4]]


@pytest.mark.parametrize("segmentation, message", [
    ({"size": "ab", "counts": "1"}, "RLE size must be [height, width], got 'ab'"),
    ({"size": [4, 4, 1], "counts": "1"}, "RLE size must be [height, width], got [4, 4, 1]"),
    ({"size": [4, -4], "counts": "1"}, "mask width -4 is outside 1..65535"),
    ({"size": [4.0, 4], "counts": "1"}, "mask height 4.0 is not an integer"),
    ({"size": [None, 4], "counts": "1"}, "mask height None is not an integer"),
    ({"size": [4, 4], "counts": [8, 8.0]}, "uncompressed RLE counts[1] is 8.0, not a non-negative integer"),
    ({"size": [4, 4], "counts": [20, -4]}, "uncompressed RLE counts[1] is -4, not a non-negative integer"),
    ({"size": [4, 4], "counts": [False, 16]}, "uncompressed RLE counts[0] is False, not a non-negative integer"),
    ({"size": [4, 4], "counts": [10**30]}, f"uncompressed RLE counts sum to {10**30}, expected 16"),
    ({"size": [4, 4], "counts": {"a": 1}}, "RLE counts must be a list or a string, got dict"),
    ({"size": [4, 4], "counts": b"0\xe9"}, "compressed RLE counts hold a non-ASCII character 'é'"),
    ({"size": [4, 4], "counts": "06"}, "compressed RLE runs cover 6 pixels, expected 4 x 4 = 16"),
])
def test_malformed_rle_raises_a_clear_mask_error(segmentation, message):
    with pytest.raises(masks.MaskError) as err:
        masks.to_rle(segmentation, 4, 4)
    assert str(err.value) == message


@pytest.mark.parametrize("height, width, message", [
    (70000, 10, "mask height 70000 is outside 1..65535"),
    (0, 10, "mask height 0 is outside 1..65535"),
    (10, "10", "mask width '10' is not an integer"),
    (65535, 65535, "mask size 65535 x 65535 exceeds 2147483648 pixels"),
])
def test_absurd_mask_sizes_raise_before_any_allocation(height, width, message):
    with pytest.raises(masks.MaskError) as err:
        masks.to_rle([], height, width)
    assert str(err.value) == message
    with pytest.raises(masks.MaskError) as err:
        masks.check_counts({"size": [height, width], "counts": "0"})
    assert str(err.value) == message

"""Indexed region-tag dialects -> <obj{i}> (sources/dialects.py)."""

import pytest

from schemas import Reject
from sources import dialects
from sources.dialects import MDVP, OSPREY, map_conversation, region_map, rewrite


def canonical(dialect, text, count=3):
    return rewrite(dialect, text, region_map(dialect, [text], count, "f.json[0]"))


@pytest.mark.parametrize("text, expected", [
    ("<region1> and <region2>", "<obj0> and <obj1>"),
    ("<region1]", "<obj0>"),
    ("see <region1. then", "see <obj0> then"),
    ("<region 1>", "<obj0>"),
    ("<Region1>", "<obj0>"),
    ("<regin1>", "<obj0>"),
    ("<regin 1>", "<obj0>"),
    ("<region of1>", "<obj0>"),  # in the release; its index is unambiguous
    ("<region of 2> and <Region1]", "<obj1> and <obj0>"),
    ("only <region3> is named", "only <obj0> is named"),  # renumbered in native order
    ("<region3> left of <region1>", "<obj1> left of <obj0>"),
    ("a < b and c > d", "a < b and c > d"),  # not tags
])
def test_osprey_tags_and_repairs(text, expected):
    assert canonical(OSPREY, text) == expected


@pytest.mark.parametrize("text, expected", [
    ("<Mark 1>: red\n<Mark 2>: blue", "<obj0>: red\n<obj1>: blue"),
    ("<mark2> near <Region 1>", "<obj1> near <obj0>"),
    ("Region 2: a cup", "<obj0>: a cup"),
    ("the region 2 metres away", "the region 2 metres away"),  # bench form is capitalised only
    ("MyRegion 1", "MyRegion 1"),
])
def test_mdvp_tags(text, expected):
    assert canonical(MDVP, text) == expected


@pytest.mark.parametrize("dialect, text, reason, detail", [
    (OSPREY, "is <region> red?", "region_tag_malformed", "'<region>' is not a osprey region tag with an index"),
    (OSPREY, "<region of>", "region_tag_malformed", "'<region of>' is not a osprey region tag with an index"),
    (OSPREY, "<region of4>", "region_index_out_of_range", "'<region of4>' names region 4 but the record has 3"),
    (OSPREY, "unclosed <region2", "region_tag_malformed", "'<region2' is not a osprey region tag with an index"),
    (OSPREY, "<region4>", "region_index_out_of_range", "'<region4>' names region 4 but the record has 3"),
    (OSPREY, "<region0>", "region_index_out_of_range", "'<region0>' names region 0 but the record has 3"),
    (MDVP, "<Mark>", "region_tag_malformed", "'<Mark>' is not a mdvp region tag with an index"),
    (MDVP, "Region 9: x", "region_index_out_of_range", "'Region 9' names region 9 but the record has 3"),
])
def test_unrepairable_tags_are_rejected(dialect, text, reason, detail):
    with pytest.raises(Reject) as err:
        region_map(dialect, [text], 3, "f.json[0]")
    assert (err.value.reason, err.value.message, err.value.locator) == (reason, detail, "f.json[0]")


def test_map_conversation_drops_leading_gpt_and_notes_unreferenced():
    native = [{"from": "gpt", "value": "Hi."}, *dialects.native_dialogue("<image>\nWhat is <region3>?", "A  cup.")]
    turns, named, notes = map_conversation(OSPREY, native, 3, "f.json[0]")
    assert [(t.role, t.text) for t in turns] == [("user", "What is <obj0>?"), ("assistant", "A cup.")]
    assert named == [3]
    assert notes == {"dropped_leading_turns": 1, "unreferenced_regions": [1, 2]}


@pytest.mark.parametrize("conversations", [None, [{"from": "human"}], ["text"], [{"from": "human", "value": 3}]])
def test_map_conversation_rejects_malformed_turns(conversations):
    with pytest.raises(Reject) as err:
        map_conversation(OSPREY, conversations, 1, "f.json[0]")
    assert err.value.reason == "bad_turn"

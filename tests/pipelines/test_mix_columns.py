"""The mix's columnar reads: per-row filters and mask gaps from projected columns, and the dedup
digest built by pyarrow kernels (equal exactly when the compared content is equal)."""

import pyarrow.parquet as pq

from pipelines import workspace
from pipelines.mix import _DIGESTED, SourceColumns, _digests
from schemas import Region, RegionFrame, Turn
from schemas.recipe import Entry, Filters
from tests.factories import image_sample

BOX = RegionFrame(frame=0, box=(1.0, 2.0, 3.0, 4.0))
POINT = RegionFrame(frame=0, point=(1.0, 2.0))


def variants():
    """A base sample and one change each; the comment says whether the digest must differ."""
    base = image_sample(id="lvis/val2017/0")
    region = base.regions[0]
    turns = base.conversation
    return [
        base,
        image_sample(id="lvis/val2017/1"),  # same content: equal
        image_sample(id="lvis/val2017/2", regions=[region.model_copy(update={"label": "other", "mask_origin": "sam2"})]),  # equal
        image_sample(id="lvis/b/3", subset="b", regions=[Region(label="car", prompt="box", frames=[BOX])]),  # box: differs
        image_sample(id="lvis/val2017/4", regions=[region, Region(label="x", prompt="point", frames=[POINT])]),  # + point: differs
        # a turn whose text holds the separators of the digest key: differs
        image_sample(id="lvis/val2017/5", conversation=[Turn(role="system", text=turns[0].text + ";1:user;"),
                                                 Turn(role="user", text=turns[1].text[8:]), turns[2]]),
        image_sample(id="lvis/val2017/6", media=base.media.model_copy(update={"path": "elsewhere.jpg"})),  # path not compared: equal
        image_sample(id="lvis/val2017/7", media=base.media.model_copy(update={"width": 61})),  # geometry: differs
    ]


def write_source(out, samples):
    path = workspace.part_path(out, "lvis", 0)
    path.parent.mkdir(parents=True)
    workspace.write_part(path, samples, {"made_from": {}, "samples": len(samples)})
    return path


def test_the_digest_is_equal_only_for_equal_compared_content(tmp_path):
    path = write_source(tmp_path, variants())
    digests = _digests(pq.ParquetFile(path).read(columns=_DIGESTED))
    assert [d == digests[0] for d in digests] == [True, True, True, False, False, False, True, False]
    assert len(set(digests)) == 5


def test_filters_and_gaps_come_from_the_projected_columns(tmp_path):
    write_source(tmp_path, variants())
    columns = SourceColumns.read(tmp_path, "lvis")
    assert columns.ids == [f"lvis/{'b' if i == 3 else 'val2017'}/{i}" for i in range(8)]
    assert columns.gap.tolist() == [0, 0, 0, 1, 2, 0, 0, 0]  # 1: a frame without a mask, 2: without a box either
    assert columns.row.tolist() == list(range(8)) and columns.parts == ["unified/lvis/part-00000.parquet"]

    def kept(**fields):
        return [i for i, keep in enumerate(columns.keep(Entry(name="e", source="lvis", count=1, **fields))) if keep]

    assert kept() == list(range(8))
    assert kept(subsets=["b*"]) == [3]
    assert kept(tasks=["recognition"], filters=Filters(prompts=["mask", "box"])) == [0, 1, 2, 3, 5, 6, 7]
    assert kept(filters=Filters(max_regions=1, splits=["val"], media_kind="image")) == [0, 1, 2, 3, 5, 6, 7]
    assert kept(filters=Filters(media_kind="none")) == []

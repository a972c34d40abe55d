"""Every registered adapter: a fixture exists, converts to valid samples, and counts add up."""

import pytest

from schemas import Reject, Sample, validate
from sources import registry
from sources.roots import Roots


def convert_fixture(adapter, root):
    """All outcomes of an adapter over its own fixture under `root`, unit by unit in order."""
    roots = Roots.of(root)
    return [outcome for unit in adapter.units(roots) for outcome in adapter.convert(roots, unit)]


def split_outcomes(outcomes):
    samples = [o for o in outcomes if isinstance(o, Sample)]
    rejects = [o for o in outcomes if isinstance(o, Reject)]
    return samples, rejects


def file_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_our_adapters_are_registered():
    assert {"lvis", "paco", "refcoco"} <= set(registry.available())


@pytest.mark.parametrize("name", sorted(registry.available()))
def test_fixture_converts_to_valid_samples_and_counts_add_up(name, tmp_path):
    adapter = registry.get(name)
    assert adapter.LAYOUT.strip() and adapter.license and adapter.version
    adapter.write_fixture(tmp_path / "a")
    adapter.write_fixture(tmp_path / "b")
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b"), "the fixture writer is not deterministic"

    units = adapter.units(Roots.of(tmp_path / "a"))
    assert len({u.name for u in units}) == len(units) and all(u.source == name for u in units)
    outcomes = convert_fixture(adapter, tmp_path / "a")
    samples, rejects = split_outcomes(outcomes)
    # read = written + rejected: every outcome is exactly one of the two
    assert len(samples) + len(rejects) == len(outcomes)
    assert len(samples) >= 1
    for sample in samples:
        assert validate(sample) is sample and sample.source == name
    assert len({s.id for s in samples}) == len(samples)
    for reject in rejects:
        assert reject.reason and reject.locator
    again = [o.model_dump_json() if isinstance(o, Sample) else o.to_dict() for o in convert_fixture(adapter, tmp_path / "b")]
    assert again == [o.model_dump_json() if isinstance(o, Sample) else o.to_dict() for o in outcomes]

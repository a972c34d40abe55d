"""Shared by the adapter tests: run an adapter over its own fixture, index the samples by id."""

from schemas import Sample
from tests.sources.test_registry import convert_fixture


def fixture_outcomes(adapter, root):
    """Write the adapter's fixture under `root` and return every outcome, unit by unit."""
    adapter.write_fixture(root)
    return convert_fixture(adapter, root)


def samples_by_id(outcomes):
    return {o.id: o for o in outcomes if isinstance(o, Sample)}

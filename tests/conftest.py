"""Test-wide settings: hermetic (no hub, no network) before anything imports transformers or datasets."""

import os

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"

import pytest


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray for the tests of one module, started as the stages start theirs (2 CPUs, no
    dashboard, listening on 127.0.0.1 only), shut down afterwards."""
    import ray

    from pipelines.raypool import ray_session

    with ray_session(None, 2):
        yield ray

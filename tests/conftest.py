"""Test-wide settings: hermetic (no hub, no network) before anything imports transformers or datasets."""

import os

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"

import pytest


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray for the tests of one module: 2 CPUs, no dashboard, shut down afterwards."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()

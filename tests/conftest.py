"""Test-wide settings: hermetic (no hub, no network) before anything imports transformers or datasets."""

import os

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"

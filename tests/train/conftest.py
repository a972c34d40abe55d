"""Trainer tests run torch single-threaded: the tiny models are far faster that way on a shared
2-core machine (intra-op threads spin-wait under contention), and results do not change."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Ray plumbing shared by the stages that run on Ray (ingest, segment, videoqa).

    with ray_session(args.ray_address, workers):        # local Ray with `workers` CPUs, or join a cluster
        for key, result in unordered(task, jobs, limit):  # at most `limit` tasks in flight, as they finish
            ...
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def ray_session(address: str | None, workers: int | None) -> Iterator[None]:
    """Ray for one stage: join `address`, or start a local Ray with `workers` CPUs (all when None).
    A Ray already running in this process (a caller's, a test's) is used and left running."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def gpus_per_actor() -> int:
    """1 when the cluster has a GPU (a model actor then takes one), else 0 (it runs on CPU)."""
    import ray

    return 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0


def unordered(task: Any, jobs: Iterable[tuple[Hashable, tuple]], limit: int) -> Iterator[tuple[Hashable, Any]]:
    """(key, task(*args)) for each (key, args) job, in finishing order, with at most `limit` in flight.

    Jobs are submitted lazily, so a long queue never sits in the object store at once. A task
    that raised re-raises here.
    """
    import ray

    pending, in_flight = iter(jobs), {}
    while True:
        for key, args in pending:
            in_flight[task.remote(*args)] = key
            if len(in_flight) >= limit:
                break
        if not in_flight:
            return
        [ref], _ = ray.wait(list(in_flight), num_returns=1)
        yield in_flight.pop(ref), ray.get(ref)

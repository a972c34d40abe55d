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
    """Ray for one stage: join `address`, or start a local Ray with `workers` CPUs (all when None)
    that listens on 127.0.0.1 only.
    A Ray already running in this process (a caller's, a test's) is used and left running."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        with _loopback_only():
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     _node_ip_address="127.0.0.1")
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Make a local Ray listen on 127.0.0.1 only: a stage's own Ray needs no peers.

    Ray replaces a loopback `_node_ip_address` by the machine's routable address (and binds its
    servers to all interfaces) unless it believes clusters are disabled, a flag it reads once, at
    import, from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER. So the flag is lowered for the start only:
    a later `ray.init(address=...)` in this process must still advertise a reachable address.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


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

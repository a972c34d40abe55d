"""Ray plumbing shared by the stages that fan work out (ingest, segment, videoqa, shard).

    add_ray_arguments(parser)                            # --workers and --ray-address, one meaning in every verb
    workers = stage_workers(args.workers, args.ray_address)
    with ray_session(args.ray_address, workers):         # local Ray with `workers` CPUs, or join a cluster
        for key, result in fan_out(fn, jobs, workers):   # Ray tasks (or actors), at most `workers` in flight
            ...

`--workers N` means the same in every verb: N parallel workers (Ray tasks, or Ray actors for
the stages that hold a model); 0 runs the work in this process, without Ray. `--ray-address`
joins a cluster and implies at least one worker.
"""

from __future__ import annotations

import argparse
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

WORKERS_HELP = "parallel workers (Ray tasks/actors); 0 = in this process"


def add_ray_arguments(parser: argparse.ArgumentParser, default: int | None = 0, what: str = "") -> None:
    """`--workers` and `--ray-address`; `default` None means every CPU Ray has; `what` says what a worker runs."""
    shown = "every CPU Ray has" if default is None else str(default)
    parser.add_argument("--workers", type=_workers, default=default,
                        help=f"{WORKERS_HELP}. {what}Default: {shown}.".replace(". .", "."))
    parser.add_argument("--ray-address", default=None,
                        help="Join this Ray cluster (e.g. `auto`, `ray://host:10001`; implies at least one worker); "
                             "default: a local Ray when workers > 0.")


def _workers(value: str) -> int:
    count = int(value)
    if count < 0:
        raise argparse.ArgumentTypeError("must be 0 (in this process) or more")
    return count


def stage_workers(workers: int | None, address: str | None) -> int | None:
    """The workers a stage runs: as asked, but at least one on a cluster (None: every CPU)."""
    return max(1, workers) if address and workers is not None else workers


def maybe_ray(address: str | None, workers: int | None):
    """`ray_session` when the stage has workers, else nothing (a run in this process)."""
    return nullcontext() if workers == 0 else ray_session(address, workers)


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


@dataclass(frozen=True)
class Failure:
    """What `fan_out(..., keep_failures=True)` yields for a job that raised or whose worker died."""

    error: BaseException


def fan_out(target: Callable[..., Any] | Sequence[Any], jobs: Iterable[tuple[Hashable, tuple]], workers: int, *,
            method: str = "", ordered: bool = False, keep_failures: bool = False) -> Iterator[tuple[Hashable, Any]]:
    """(key, result) for each (key, args) job: the one fan-out of every stage.

    `workers` 0: `target(*args)` in this process, in job order. Otherwise `target` is a function,
    run as Ray tasks (one CPU each, no retries: a unit is redone by the stage's rerun, not
    behind its back) with at most `workers` in flight; or a list of Ray actors whose `method`
    takes the args, one job per actor at a time. Jobs are submitted lazily, so a long queue never
    sits in the object store. `ordered`: results in job order (the shard writer), else as they
    finish. A job that raised re-raises here, or with `keep_failures` comes back as a `Failure`.
    """
    if not workers:
        for key, args in jobs:
            yield key, _local(target, args, keep_failures)
        return
    import ray

    if callable(target):
        task = ray.remote(num_cpus=1, max_retries=0)(target)
        slots, submit = workers, lambda slot, args: task.remote(*args)
    else:
        slots, submit = len(target), lambda slot, args: getattr(target[slot], method).remote(*args)
    pending, free, in_flight, order = iter(jobs), deque(range(slots)), {}, deque()
    while True:
        while free and (job := next(pending, None)) is not None:
            slot = free.popleft()
            ref = submit(slot, job[1])
            in_flight[ref] = (job[0], slot)
            order.append(ref)
        if not in_flight:
            return
        ref = order[0] if ordered else ray.wait(list(in_flight), num_returns=1)[0][0]
        ray.wait([ref], num_returns=1)
        key, slot = in_flight.pop(ref)
        order.remove(ref)
        free.append(slot)
        yield key, _get(ref, keep_failures)


def _local(target: Callable[..., Any], args: tuple, keep_failures: bool) -> Any:
    if not keep_failures:
        return target(*args)
    try:
        return target(*args)
    except Exception as err:  # noqa: BLE001 - one unit's failure is reported, the other units go on (as on Ray)
        return Failure(err)


def _get(ref: Any, keep_failures: bool) -> Any:
    import ray

    if not keep_failures:
        return ray.get(ref)
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:  # the task raised, or its worker died
        return Failure(getattr(err, "cause", None) or err)

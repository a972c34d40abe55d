"""The local Ray a stage starts listens on the loopback interface only."""

import ipaddress

import ray
from ray._private import ray_constants

from pipelines.raypool import ray_session


def _listening_addresses() -> set[str]:
    """Addresses that this process and its children (Ray's servers and workers) listen on."""
    import psutil  # Ray ships it (ray/thirdparty_files) and puts it on sys.path when imported

    me = psutil.Process()
    found = set()
    for proc in [me, *me.children(recursive=True)]:
        try:
            found |= {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.NoSuchProcess:  # a worker that exited meanwhile
            continue
    return found


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def test_local_ray_listens_on_127_0_0_1_only():
    assert not ray.is_initialized()
    cluster_flag = ray_constants.ENABLE_RAY_CLUSTER
    with ray_session(None, 1):
        assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]
        assert ray.get(ray.remote(lambda: 7).remote()) == 7  # workers reach it
        addresses = _listening_addresses()
        assert addresses and all(_loopback(a) for a in addresses), sorted(addresses)
    assert not ray.is_initialized()
    assert ray_constants.ENABLE_RAY_CLUSTER == cluster_flag  # a later join of a cluster advertises a real address

"""The cluster path: a real two-node Ray cluster on this machine (a head and a second node, each
its own `ray start` process group with its own CPU, both bound to 127.0.0.1), and `ingest`,
`videoqa` (heuristic backend) and `shard` run with `--ray-address` against it on the demo corpus
give the same bytes as the same commands run locally; Ray's state API shows work on both nodes.

How a loopback cluster is started (Ray 2.x on Linux; docs/cluster.md):
- RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 in every process (nodes and drivers): otherwise Ray replaces
  127.0.0.1 by the machine's routable address and its servers listen on every interface.
- The worker node's `ray start --address` refuses to run with that flag at 0 ("multi-node
  clusters are not supported"), so it runs `ray start` with the CLI's own copy of the flag
  raised: only the refusal reads it, the address resolution still sees 0 (JOIN below).
- Token authentication: `ray start --head` (Ray 2.60) turns it on when a token exists, e.g. in
  ~/.ray; here every node and driver gets RAY_AUTH_MODE=token and the test's own token
  (RAY_AUTH_TOKEN_PATH: a file in the test's temp dir), whatever ~/.ray holds.
- Teardown kills the two process groups (SIGTERM, then SIGKILL) and the workers their raylets
  started in groups of their own: `ray stop` would stop every Ray on the machine, not only this
  cluster's.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipelines.cli import main

PY = sys.executable
RAY = [PY, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]
# `ray start` joining a loopback head: the CLI's refusal of multi-node clusters reads its own copy of the flag
JOIN = [PY, "-c", ("import sys, types; from ray._private import ray_constants as c; import ray.scripts.scripts as s; "
                  "s.ray_constants = types.SimpleNamespace(**{**vars(c), 'ENABLE_RAY_CLUSTER': True}); sys.exit(s.main())")]
# what ran where, read from Ray's state API (GCS task events) by a driver joining the cluster
WHERE = """
import collections, json, sys, ray
from ray.util.state import list_tasks
ray.init(address=sys.argv[1], log_to_driver=False)
nodes = {n["NodeID"]: [k for k in n["Resources"] if k.startswith("node_")][0] for n in ray.nodes() if n["Alive"]}
ran = collections.defaultdict(lambda: collections.defaultdict(set))  # job (one per stage run, in order) -> task -> nodes
for t in list_tasks(address=sys.argv[1], limit=10000, raise_on_missing_output=False, timeout=30):
    if t.node_id in nodes and t.job_id != ray.get_runtime_context().get_job_id():
        ran[t.job_id][t.func_or_class_name].add(nodes[t.node_id])
jobs = [{name: sorted(where) for name, where in ran[job].items()} for job in sorted(ran, key=lambda j: int.from_bytes(bytes.fromhex(j), "little"))]
print(json.dumps({"nodes": sorted(nodes.values()), "jobs": jobs}))
"""
# the second node is in the cluster before the first stage counts the cluster's CPUs
READY = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
end = time.monotonic() + 60
while sum(n["Alive"] for n in ray.nodes()) < 2 and time.monotonic() < end:
    time.sleep(0.5)
sys.exit(0 if ray.cluster_resources().get("CPU") == 2 else 1)
"""
VIDEO = ["--source", "mevis", "--source", "videorefer", "--backend", "heuristic"]
SECONDS = 330  # the whole test, cluster start and teardown included: ~150 s on 2 idle cores, ~300 s on busy ones


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("the cluster test ran out of time")
        return left


def _run(cmd: list[str], env: dict, deadline: _Deadline, log: Path) -> None:
    """One command in its own process group, killed with the group at the deadline."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=deadline.left())
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            raise
        out.write(f"# {rc} after {time.monotonic() - start:.1f} s\n".encode())
    assert rc == 0, f"{' '.join(cmd)} exited {rc}; see {log}:\n" + log.read_text(errors="replace")[-3000:]


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, start time) of every process, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[19])
        except (ValueError, OSError, IndexError):
            continue
    return found


def _stop_cluster(pgids: list[int]) -> None:
    """Kill the nodes' process groups, then the processes their raylets started in groups of their
    own (Ray workers and actors: `ray::...`), found before the kill by parent links."""
    table = _processes()
    ours = {pid for pid, (_, pgid, _) in table.items() if pgid in pgids}
    while more := {pid for pid, (ppid, _, _) in table.items() if ppid in ours and pid not in ours}:
        ours |= more
    for pgid in reversed(pgids):
        _kill_group(pgid)
    now = _processes()
    for pid in ours:
        if pid in now and now[pid][2] == table[pid][2]:  # the same process, not a reused pid
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _kill_group(pgid: int) -> None:
    """SIGTERM the group, SIGKILL what is left after 5 s (raylet and GCS can outlive a SIGTERM)."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + wait
        while time.monotonic() < end:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _pipeline(out: Path, native: Path, env: dict, deadline: _Deadline, log: Path, ray: list[str]) -> None:
    """ingest, videoqa, mix (local: it has no Ray) and shard; `ray` the cluster flags (none: local)."""
    cli = [PY, "-m", "pipelines.cli"]
    workers = ["--workers", "2"] if ray else []  # videoqa and shard default to 0 (1 on a cluster): ask for both nodes
    _run([*cli, "ingest", "--source", "all", "--root", str(native), "--out", str(out), *ray], env, deadline, log)
    _run([*cli, "videoqa", "--out", str(out), *VIDEO, *ray, *workers], env, deadline, log)
    _run([*cli, "mix", "--recipe", "demo", "--out", str(out), "--box-regions", "drop"], env, deadline, log)
    # stage2 holds images, videos and the videoqa output (stage1 would add a minute, nothing new);
    # blocks of 8 rows: 3 shards, so both writer actors get work
    _run([*cli, "shard", "--mix", str(out / "mix" / "demo" / "stage2.parquet"), "--out", str(out),
          "--view-size", "64", "--max-samples-per-shard", "8", *ray, *workers], env, deadline, log)


def _files(out: Path) -> dict[str, bytes]:
    """Every output file's bytes: stats files without their timings, the videoqa journals (a resume log,
    appended in the order units finish) as sorted lines; all else byte for byte."""
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel == "stats/file-hashes.json":  # a cache keyed by mtime
            continue
        data = path.read_bytes()
        if rel.startswith("stats/") or rel == "videoqa/stats.json":
            data = json.dumps(_untimed(json.loads(data)), sort_keys=True).encode()
        elif rel.startswith("videoqa/") and rel.endswith("/journal.jsonl"):
            data = b"".join(sorted(data.splitlines(keepends=True)))
        files[rel] = data
    return files


def _untimed(value):
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if "timing" not in k and "seconds" not in k}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 60)
def test_stages_on_a_two_node_cluster_match_a_local_run(tmp_path):
    deadline = _Deadline(SECONDS)
    native, log = tmp_path / "native", tmp_path / "commands.log"
    assert main(["demo-data", "--out", str(native)]) == 0
    token = tmp_path / "ray_token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for var in ("RAY_ADDRESS", "RAY_AUTH_TOKEN"):
        env.pop(var, None)

    _pipeline(tmp_path / "local", native, env, deadline, log, [])

    nodes = Path(tempfile.mkdtemp(prefix="pxr-", dir="/tmp"))  # Ray's socket paths must stay under 108 bytes
    port = _free_port()
    address = f"127.0.0.1:{port}"
    groups = []
    try:
        for cmd, temp in (
            ([*RAY, "start", "--head", f"--port={port}", '--resources={"node_head": 1}', "--include-dashboard=true",
              "--dashboard-host=127.0.0.1", f"--dashboard-port={_free_port()}", f"--ray-client-server-port={_free_port()}"], "head"),
            ([*JOIN, "start", f"--address={address}", '--resources={"node_b": 1}'], "b"),
        ):
            cmd += ["--node-ip-address=127.0.0.1", "--num-cpus=1", f"--temp-dir={nodes / temp}", "--disable-usage-stats",
                    f"--dashboard-agent-listen-port={_free_port()}"]  # fixed defaults would collide on one machine
            with log.open("ab") as out:  # `ray start` returns once its node runs; the node stays in its process group
                proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            groups.append(proc.pid)
            assert proc.wait(timeout=min(90, deadline.left())) == 0, log.read_text(errors="replace")[-3000:]

        _run([PY, "-c", READY, address], env, deadline, log)
        _pipeline(tmp_path / "cluster", native, env, deadline, log, ["--ray-address", address])

        where = subprocess.run([PY, "-c", WHERE, address], check=False, env=env, capture_output=True, text=True,
                               timeout=min(90, deadline.left()), start_new_session=True)
        assert where.returncode == 0, where.stderr[-3000:]
        ran = json.loads(where.stdout.strip().splitlines()[-1])
    finally:
        _stop_cluster(groups)
        shutil.rmtree(nodes, ignore_errors=True)

    local, cluster = _files(tmp_path / "local"), _files(tmp_path / "cluster")
    assert sorted(cluster) == sorted(local)
    assert [rel for rel in local if cluster[rel] != local[rel]] == []
    assert sum(rel.endswith(".tar") for rel in local) >= 2 and any(rel.startswith("unified/videoqa_mevis/") for rel in local)
    print(json.dumps(ran))
    assert ran["nodes"] == ["node_b", "node_head"]
    assert len(ran["jobs"]) == 3, ran  # the jobs that ran tasks: ingest, videoqa, shard (READY runs none, mix no Ray)
    jobs = dict(zip(("ingest", "videoqa", "shard"), ran["jobs"]))
    on = {stage: set().union(*tasks.values()) for stage, tasks in jobs.items()}
    # each stage keeps 2 one-CPU tasks (ingest parts, videoqa samples) or one-CPU actors (shard writers, 3 blocks)
    # busy at once, and each node has one CPU: so each stage's work lands on both nodes
    assert on == {stage: {"node_b", "node_head"} for stage in ("ingest", "videoqa", "shard")}, ran

"""The Ray executor on a multi-process Ray cluster started the documented way: a head
node (``ray start --head``) and a worker node (``ray start --address=HEAD``) as separate
process trees on this machine, each offering one CPU. The session's two client actors
need one CPU each, so they land on different nodes. The sums must equal the in-process
driver's for the same seeds.

The cluster runs with ``--block`` under this test's own process handles, so stopping it
never touches other Ray instances on the machine (``ray stop`` would).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

pytestmark = pytest.mark.timeout(240)

RAY = str(Path(sys.executable).with_name("ray"))

_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import ray

    ray.init(address=sys.argv[1], log_to_driver=False)
    deadline = time.time() + 60
    while len([n for n in ray.nodes() if n["Alive"]]) < 2:  # the worker node registers
        if time.time() > deadline:
            raise SystemExit("the worker node never joined")
        time.sleep(0.5)
    from secagg.masking import ThreatModel, simulate_ring

    x = np.random.default_rng(0).integers(0, 2**32, size=(24, 16), dtype=np.uint64).astype(np.uint32)
    drop = {3: "share_keys", 7: "masked_input", 11: "unmasking"}
    threat = ThreatModel(adversary="honest-but-curious", security_bits=3)
    ref = simulate_ring(x, bits=32, graph="sparse", k=8, threat=threat, dropout=drop)
    got = simulate_ring(x, bits=32, graph="sparse", k=8, threat=threat, dropout=drop, backend="ray",
                        num_workers=2)
    kept = [u for u in range(24) if u not in (3, 7)]  # 11 leaves after its masked input: in the sum
    want = x[kept].sum(axis=0, dtype=np.uint32)
    assert got.survivors == ref.survivors == kept, (got.survivors, ref.survivors)
    assert (got.ring_sum == ref.ring_sum).all() and (got.ring_sum == want).all()

    @ray.remote(num_cpus=1)
    def where():
        time.sleep(1.0)
        return ray.get_runtime_context().get_node_id()

    nodes = set(ray.get([where.remote() for _ in range(2)]))
    print("NODES", len(nodes))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ip() -> str:
    """The address ``ray start`` advertises for this host."""
    import ray._private.services as services

    return services.get_node_ip_address()


@pytest.fixture()
def cluster():
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="/tmp/ray")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--block", "--num-cpus=1", "--disable-usage-stats"]
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
                             f"--temp-dir={tmp}", *common], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    procs = [head]
    try:
        address = f"{_ip()}:{port}"
        deadline = time.time() + 60
        while subprocess.run([RAY, "status", f"--address={address}"], env=env, capture_output=True).returncode:
            if head.poll() is not None or time.time() > deadline:
                pytest.fail("the Ray head node did not start")
            time.sleep(1.0)
        procs.append(subprocess.Popen([RAY, "start", f"--address={address}", *common], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        yield address, env
    finally:
        for p in reversed(procs):  # --block: terminating `ray start` stops that node's processes
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)


def test_same_sums_on_a_two_node_cluster_as_in_process(cluster):
    address, env = cluster
    out = subprocess.run([sys.executable, "-c", _SCRIPT, address], env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "NODES 2" in out.stdout  # one task per node: the cluster really has two

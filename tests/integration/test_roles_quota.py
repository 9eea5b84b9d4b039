"""Issue 3, acceptance 5: weights and a quota guarantee between three framework processes.

Roles ``a`` (weight 1) and ``b`` (weight 2), and ``b/x`` under ``b`` with a guarantee of
37.5 % of the cluster, set through the CLI. Until ``b/x`` has a framework, the headroom
for its guarantee stays unallocated; when it arrives, the guarantee is met first.
Hierarchical DRF then gives ``a`` a third of the cluster and ``b``'s subtree two
thirds, of which ``b/x`` holds its guarantee:
a = 0.333, b itself = 0.292, b/x = 0.375.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cluster import Cluster, wait_until
from tests.integration.shares import role_shares as shares
from tests.integration.shares import start_greedy, stop_all


@pytest.mark.integration
def test_weights_and_guarantee(cluster: Cluster, tmp_path: Path) -> None:
    cluster.master_args = ["--allocation-interval", "0.1"]
    cluster.start_master()
    for _ in range(4):
        cluster.start_agent(resources="cpus:8;mem:8192")
    cluster.wait_agents(4)
    out = cluster.cli("weights", "--master", cluster.master_url, "a=1", "b=2")
    assert out.returncode == 0, out.stderr
    out = cluster.cli("quota", "set", "--master", cluster.master_url,
                      "--guarantee", "cpus:12;mem:12288", "b/x")
    assert out.returncode == 0, out.stderr
    procs = []
    try:
        procs.append(start_greedy(cluster, "a", tmp_path))
        procs.append(start_greedy(cluster, "b", tmp_path))
        # b/x has no framework yet, but the headroom for its guarantee is held back:
        # a and b together never get more than the other 62.5 %.
        wait_until(lambda: sum(shares(cluster).values()) >= 0.6, 20, what="a and b running")
        for _ in range(8):
            assert sum(shares(cluster).values()) <= 0.625 + 1e-9
            time.sleep(0.25)
        procs.append(start_greedy(cluster, "b/x", tmp_path))
        wait_until(lambda: shares(cluster).get("b/x", 0) >= 0.375, 20,
                   what="b/x guarantee met")
        time.sleep(3)
        samples = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            samples.append(shares(cluster))
            time.sleep(0.25)
        mean = {r: sum(s.get(r, 0.0) for s in samples) / len(samples) for r in ("a", "b", "b/x")}
        print("mean dominant shares", {r: round(v, 3) for r, v in mean.items()})
        expected = {"a": 1 / 3, "b": 2 / 3 - 0.375, "b/x": 0.375}
        for role, want in expected.items():
            assert abs(mean[role] - want) <= 0.05 * want, (role, mean[role], want)
        roles = cluster.cli("roles", "--master", cluster.master_url)
        assert roles.returncode == 0 and "b/x" in roles.stdout and "cpus:12" in roles.stdout
    finally:
        stop_all(procs)

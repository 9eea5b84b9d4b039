"""Acceptance 3: weighted DRF between two framework processes on a saturated cluster."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cluster import Cluster, wait_until
from tests.integration.shares import role_shares, start_greedy, stop_all


@pytest.mark.integration
def test_weighted_drf_converges_to_weights(cluster: Cluster, tmp_path: Path) -> None:
    cluster.master_args = ["--weights", "a=1,b=3", "--allocation-interval", "0.1"]
    cluster.start_master()
    for _ in range(4):
        cluster.start_agent(resources="cpus:8;mem:8192")
    cluster.wait_agents(4)
    procs = []
    try:
        procs = [start_greedy(cluster, role, tmp_path) for role in ("a", "b")]
        wait_until(lambda: len(role_shares(cluster)) == 2, 20, what="both roles running")
        time.sleep(4)  # let a couple of generations of tasks turn over
        samples = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            shares = role_shares(cluster)
            if shares.get("a") and shares.get("b"):
                samples.append((shares["a"], shares["b"]))
            time.sleep(0.25)
        mean_a = sum(a for a, _ in samples) / len(samples)
        mean_b = sum(b for _, b in samples) / len(samples)
        ratio = mean_b / mean_a
        print(f"mean dominant shares a={mean_a:.3f} b={mean_b:.3f} ratio={ratio:.3f}")
        assert mean_a + mean_b > 0.8, "the cluster should be saturated"
        assert abs(ratio - 3.0) <= 0.15, f"b/a ratio {ratio:.3f} not within 5% of 3"
    finally:
        stop_all(procs)

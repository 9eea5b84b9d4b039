"""Sandbox garbage collection rule (Mesos's gc_delay shortened by disk usage)."""

from __future__ import annotations

import pytest

from mesos_zmq.agent.gc import expired, max_sandbox_age

WEEK = 7 * 24 * 3600.0


@pytest.mark.parametrize(("usage", "days"), [(0.0, 6.3), (0.5, 2.8), (0.9, 0.0), (1.0, 0.0)])
def test_fuller_disk_keeps_sandboxes_for_less_time(usage: float, days: float) -> None:
    assert max_sandbox_age(WEEK, 0.1, usage) / 86400 == pytest.approx(days, abs=0.01)


def test_only_sandboxes_older_than_the_limit_go() -> None:
    boxes = [("old", 100.0), ("new", 990.0), ("edge", 900.0)]
    assert expired(boxes, now=1000.0, max_age=100.0) == ["old"]
    assert expired(boxes, now=1000.0, max_age=0.0) == ["old", "new", "edge"]

"""A short chaos run inside the suite: one SIGSTOP of the leader, one double kill.

``tools/chaos.py`` keeps its own accounting (marker lines written by the tasks, the
master's offers, the ZooKeeper leader record); this runs it small enough for CI
(about 40 s: no baseline, two faults, a small ``--snapshot-every`` so that the new
leaders recover from snapshots) and asserts every safety count on its last line is 0.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAFETY = ("lost", "duplicated", "dropped_accepts", "overbooked", "multi_terminal",
          "leaked_offers", "deposed_acted", "stalled")


@pytest.mark.integration
def test_short_chaos_run_with_a_pause_and_a_double_kill_is_safe() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/chaos.py"), "--kills", "2",
         "--faults", "stop,double", "--masters", "3", "--agents", "2", "--zk-size", "1",
         "--baseline", "0", "--snapshot-every", "20", "--gap", "1", "1.5", "--seed", "7"],
        capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    counts = dict(item.split("=", 1) for item in last.split() if "=" in item)
    assert counts.get("kills") == "2", result.stdout[-3000:] + result.stderr[-3000:]
    bad = {key: counts.get(key) for key in SAFETY if counts.get(key) != "0"}
    assert not bad, f"{bad}\n{result.stdout[-4000:]}"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

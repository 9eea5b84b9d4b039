"""A short chaos run inside the suite: kill the leader twice while tasks launch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_short_chaos_run_loses_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/chaos.py"), "--kills", "2", "--masters", "2",
         "--agents", "2", "--zk-size", "1", "--seed", "7"],
        capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert last.startswith("kills=2 lost=0 duplicated=0 dropped_accepts=0"), last

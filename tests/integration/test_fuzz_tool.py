"""``tools/fuzz.py`` inside the suite: a short run against a real master and a real agent.

The tool starts its own processes (a master with an agent and a framework running a
task, and a second agent whose master it plays), sends hostile frames and checks after
every batch that nothing died, nothing answered ``internal`` and the master's state did
not change. Its last line is ``frames=N crashes=C internal=I state_changed=S``; every
count but ``frames`` must be 0. About 15 s.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAST_LINE = re.compile(r"^frames=(\d+) crashes=(\d+) internal=(\d+) state_changed=(\d+)$")


def run_fuzz(*args: str, timeout: float = 240
             ) -> tuple[dict[str, int], subprocess.CompletedProcess[str]]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/fuzz.py"), *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=ROOT,
    )
    lines = result.stdout.strip().splitlines()
    match = LAST_LINE.match(lines[-1]) if lines else None
    assert match is not None, result.stdout[-3000:] + result.stderr[-3000:]
    names = ("frames", "crashes", "internal", "state_changed")
    return dict(zip(names, map(int, match.groups()), strict=True)), result


@pytest.mark.integration
def test_hostile_frames_to_a_real_master_and_agent_change_nothing() -> None:
    counts, result = run_fuzz("--frames", "300", "--seed", "7", "--time-limit", "150")
    report = result.stdout[-4000:] + result.stderr[-2000:]
    assert counts == {"frames": 300, "crashes": 0, "internal": 0, "state_changed": 0}, report
    assert "accepted=0 read_escapes=0" in result.stdout, report
    assert result.returncode == 0, report


@pytest.mark.integration
def test_the_tool_reports_a_state_change() -> None:
    """The oracle itself: made to send a weight change the master accepts (in place of
    the requests it must refuse), the tool says ``accepted``, counts the change and
    exits 1."""
    script = (
        "import sys; sys.path.insert(0, 'tools'); import fuzz\n"
        "fuzz.must_refuse = lambda *args: fuzz.SetWeights(weights={'web': 3.0})\n"
        "sys.exit(fuzz.main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "--frames", "100", "--seed", "3", "--targets",
         "master", "--time-limit", "120"],
        capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL, cwd=ROOT,
    )
    report = result.stdout[-3000:] + result.stderr[-3000:]
    match = LAST_LINE.match(result.stdout.strip().splitlines()[-1])
    assert match is not None, report
    assert int(match.group(4)) >= 1 and result.returncode == 1, report
    assert "accepted=0" not in result.stdout, report

"""The master daemon builds its state and core without the cyclic collector and then
freezes them (issue 13: a full collection during a new leader's build doubled it).
Run in a child process: frozen objects are never collected, so this test process must
not freeze its own."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import gc
from mesos_zmq.master.server import building_long_lived
held = []
before = gc.get_freeze_count()
with building_long_lived():
    assert not gc.isenabled()
    held.extend([i] for i in range(1000))
assert gc.isenabled()
assert gc.get_freeze_count() >= before + 1000
try:
    with building_long_lived():
        raise KeyError("a failed build")
except KeyError:
    pass
assert gc.isenabled()
from mesos_zmq.collector import COLLECTOR_THRESHOLDS, tune_collector
tune_collector()
assert gc.get_threshold() == COLLECTOR_THRESHOLDS and COLLECTOR_THRESHOLDS[0] > 700
print("ok")
"""


def test_the_build_runs_without_the_collector_and_what_it_built_is_frozen() -> None:
    # ...and the daemon's collector waits for a loop turn's objects to die first
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"

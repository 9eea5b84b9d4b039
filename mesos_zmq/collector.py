"""The cyclic garbage collector's settings for the daemons (master and agent).

Only for a daemon's own process: tests and tools that build many cores keep CPython's
defaults unless they mean to measure a daemon.
"""

from __future__ import annotations

import gc
from typing import Final

#: the collector's thresholds in the daemon's process (CPython's default: 700, 10, 10)
COLLECTOR_THRESHOLDS: Final = (50_000, 10, 10)


def tune_collector() -> None:
    """Let the young generation grow to 50,000 objects before it is collected.

    Its count is allocations less deallocations, and a loop turn holds thousands of
    objects until its flush (the frames it read, decoded, and the answers to them). At
    CPython's 700 a turn set off young collections that promoted them all, so older
    generations filled with what was about to die and full collections walked the
    whole state every few seconds: a fifth of the master's time per task under churn
    (``tools/bench_core_churn.py``: 106-117 us a task at 700, 86-88 at 50,000). Cyclic
    garbage (rare here: everything else is freed by reference counts) waits a little
    longer. Only for a daemon's process."""
    gc.set_threshold(*COLLECTOR_THRESHOLDS)

"""Start a local ZooKeeper (one server or a 3-node ensemble) for trying HA by hand.

    python tools/zk.py [--size 3] [--dir /tmp/zk]

Prints the connection string to use in ``--zk zk://HOSTS/mesos-zmq`` and runs until
Ctrl-C, then stops the servers it started. Uses Debian's zookeeper package.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mesos_zmq.testing.zookeeper import Ensemble


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1, choices=(1, 3, 5))
    parser.add_argument("--dir", default=None, help="data directory (default: temporary)")
    parser.add_argument("--tick-ms", type=int, default=200)
    args = parser.parse_args()
    # Stop the servers on SIGTERM too, not only on Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="mesos-zmq-zk-"))
    ensemble = Ensemble(root, size=args.size, tick_ms=args.tick_ms).start()
    print(f"zookeeper: {ensemble.hosts}", flush=True)
    print(f"use: --zk zk://{ensemble.hosts}/mesos-zmq", flush=True)
    try:
        while all(s.alive() for s in ensemble.servers):
            time.sleep(0.5)
        print("a ZooKeeper server exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        ensemble.stop()


if __name__ == "__main__":
    sys.exit(main())

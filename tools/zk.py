"""Start a local ZooKeeper (one server or a 3-node ensemble) for trying HA by hand.

    python tools/zk.py [--size 3] [--dir /tmp/zk] [--port 2281]

Prints the connection string to use in ``--zk zk://HOSTS/mesos-zmq`` and runs until
Ctrl-C or SIGTERM, then stops the servers it started and removes the temporary data
directory it made (a ``--dir`` given is kept). Uses Debian's zookeeper package.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mesos_zmq.errors import MesosZmqError
from mesos_zmq.testing.zookeeper import Ensemble


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1, choices=(1, 3, 5))
    parser.add_argument("--dir", default=None, help="data directory (default: temporary, "
                        "removed on exit)")
    parser.add_argument("--tick-ms", type=int, default=200)
    parser.add_argument("--port", type=int, default=None,
                        help="client port of the first server (the next ones follow); "
                        "default: free ports")
    args = parser.parse_args(argv)
    if args.port is not None:
        taken = [p for p in range(args.port, args.port + args.size) if not _port_free(p)]
        if taken:
            print(f"error: port {taken[0]} is in use (another ZooKeeper?): choose --port",
                  file=sys.stderr)
            return 2
    # Stop the servers on SIGTERM and SIGHUP too, not only on Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    temporary = args.dir is None
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="mesos-zmq-zk-"))
    ensemble: Ensemble | None = None
    try:
        ensemble = Ensemble(root, size=args.size, tick_ms=args.tick_ms,
                            first_port=args.port)
        ensemble.start()  # a failure half-way still stops what started (finally)
        print(f"zookeeper: {ensemble.hosts}", flush=True)
        print(f"use: --zk zk://{ensemble.hosts}/mesos-zmq", flush=True)
        while all(s.alive() for s in ensemble.servers):
            time.sleep(0.5)
        print("a ZooKeeper server exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except MesosZmqError as exc:  # e.g. ZooKeeper is not installed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        # A second signal must not cut the clean-up short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if ensemble is not None:
            ensemble.stop()
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

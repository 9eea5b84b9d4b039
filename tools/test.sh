#!/usr/bin/env bash
# Install everything the tests need (a venv with the package and test tools, and
# Debian's ZooKeeper for the HA tests) and run lint, type checks and the test suite.
# Usage: bash tools/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# ZooKeeper (Debian package; the tests start their own servers, never the service).
if [ ! -e /usr/share/zookeeper/lib ] && [ ! -e /usr/share/java/zookeeper.jar ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper \
            >/dev/null) || echo "warning: could not install zookeeper" >&2
    else
        echo "warning: zookeeper missing; install Debian's zookeeper package" >&2
    fi
fi

# systemd-analyze checks the units in deploy/ (verify, exposure scores); no systemd
# needs to run.
if ! command -v systemd-analyze >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd \
            >/dev/null) || echo "warning: could not install systemd" >&2
    else
        echo "warning: systemd-analyze missing; install Debian's systemd package" >&2
    fi
fi

echo "== ruff"
.venv/bin/ruff check mesos_zmq tests tools
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$code"

"""``python -m mesos_zmq`` is the same as the ``mesos-zmq`` command."""

from mesos_zmq.cli.main import main

main()

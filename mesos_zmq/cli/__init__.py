"""The ``mesos-zmq`` command line."""

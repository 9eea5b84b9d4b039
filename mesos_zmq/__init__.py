"""mesos-zmq: a cluster resource manager in the spirit of Apache Mesos."""

__version__ = "0.1.0"

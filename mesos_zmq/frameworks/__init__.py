"""Example frameworks: ``execute`` (behind ``mesos-zmq run``) and ``sleeper``."""

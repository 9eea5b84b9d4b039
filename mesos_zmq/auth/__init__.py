"""Who may talk to the cluster: CurveZMQ keys, the ZAP handler, principals.

Theory of operation
-------------------
Every socket can run CurveZMQ. The masters of one cluster share one **server key pair**;
every agent, framework and CLI *pins* its public key, so a process that cannot prove it
holds the server secret (a fake master behind a forged ``/leader`` record) cannot finish
the handshake, whatever ZooKeeper says. Each client has a key pair of its own; the
master's **credentials file** maps client public keys to a **principal** (a name) and a
**kind** (agent, framework or operator). The master's ZAP handler
(:mod:`mesos_zmq.auth.zap`) accepts only listed keys and stamps every message of the
connection with the principal's name (ZeroMQ's ``User-Id`` property), so the principal a
handler sees comes from the handshake, never from the payload.

Keys are files written by ``mesos-zmq keygen NAME`` (:mod:`mesos_zmq.auth.keys`): a
public ``NAME.key`` and a secret ``NAME.key_secret`` (mode 0600, refused if group or
others can read it).
"""

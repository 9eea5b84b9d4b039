"""Fuzz a real master and a real agent over plain ZeroMQ with hostile frames.

Starts a master and an agent as separate OS processes on 127.0.0.1 (random ports,
temporary work dirs), or uses the master at ``--master``, and gives the master some
state worth protecting: role weights, a quota, a dynamic reservation on the agent, and a
framework with a running task. Then it sends ``--frames`` hostile frames in batches from
a handful of plain DEALER sockets (random routing ids, replaced now and then):

* garbage bytes, arbitrary msgpack values, envelope-shaped junk, multi-part messages, an
  oversized frame now and then;
* well-typed messages of every type with hostile values (ids of the real agent,
  framework, task and offers; unknown, unsafe and huge ids; resources like ``cpus:1e306``;
  bad roles; huge, tiny, negative numbers; long strings), and the same frames mutated byte
  by byte or field by field.

None of these peers ever registers: every message that could change the master's durable
state (subscribe, register, operator requests) is built so that a correct master must
refuse it (an empty framework name, unparsable resources, an unknown agent, an invalid
weight, ...), and a mutated frame that would decode to such a message is sent unmutated
instead. So the oracle is exact: after each batch the master's state (frameworks, agents,
tasks, weights, quotas, reservations, drains) must equal the state before the fuzz. A
request it accepts anyway (``subscribed``, ``agent_registered``, ``operator_reply``) is
reported as ``accepted`` (a bug in the master, or in this tool's idea of what it refuses).

Agent fuzzing (``--targets`` with ``agent``): a second agent is started with ``--master``
pointing at a ROUTER socket of this tool, which plays its master (the agent pins no key
unless started with ``--master-key``: with keys a fake master never hears from an agent,
so this is what a buggy or compromised master could do). After registering it, the tool
sends it hostile frames: registration answers, launches (with harmless commands only),
kills, acknowledgements, file reads trying to escape the sandbox towards a canary file,
and junk. After each batch it must still answer a file read.

After each batch: every process is alive, the master answers a state request, replies
with code ``internal`` are counted, and the state is compared. The last line is exactly::

    frames=N crashes=C internal=I state_changed=S

``crashes`` counts processes that died or stopped answering, ``internal`` error replies
with code ``internal`` (master or agent), ``state_changed`` batches after which the
master's state differed from before the fuzz. Exit status 0 only if all three are 0 and
no read escaped a sandbox (130 when interrupted). Bounded by ``--time-limit``; processes
are stopped by PID at the end, also on Ctrl-C or SIGTERM::

    python tools/fuzz.py --frames 2000 --seed 7
    python tools/fuzz.py --frames 500 --targets master --master tcp://127.0.0.1:5050
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import signal
import sys
import tempfile
import time
import types
import typing
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import msgpack
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mesos_zmq.cli.client import MasterUnreachable, RequestRefused, request
from mesos_zmq.errors import MesosZmqError, ProtocolError
from mesos_zmq.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    ERROR_CODES,
    MAX_BATCH_MESSAGES,
    PROTOCOL_VERSION,
    Accept,
    Acknowledge,
    AgentRegistered,
    DrainAgent,
    Envelope,
    Error,
    FileData,
    FrameworkInfo,
    GetState,
    Heartbeat,
    Message,
    Offers,
    OperatorKill,
    OperatorReply,
    ReactivateAgent,
    ReadFile,
    Refused,
    RegisterAgent,
    RemoveQuota,
    ReregisterAgent,
    ReserveResources,
    RunTasks,
    SetQuota,
    SetWeights,
    State,
    StatusUpdate,
    Subscribe,
    Subscribed,
    TaskInfo,
    UnreserveResources,
    batch_frame,
    decode_frame,
    encode,
    record_types,
    to_plain,
)
from mesos_zmq.tasks import TaskState
from mesos_zmq.transport import MAX_EPOCH
from tests.cluster import Proc, free_port, wait_until

# --------------------------------------------------------------------------- values
HOSTILE_IDS = ["", ".", "..", "a/b", "../../etc", "x" * 201, "a b", "\x00", "ünï", "*", "-",
               "id000000", "master-S-0", "t1"]
INVALID_IDS = ["", ".", "..", "a/b", "../../etc", "x" * 201, "a b", "\x00", "ünï", "a\nb"]
VALID_RESOURCES = ["cpus:1;mem:128", "cpus:0.5", "cpus(web):1;mem(web):64", "mem:1",
                   "ports:[31000-31010]"]
#: resource texts that no parser accepts, or that hold nothing
BAD_RESOURCES = ["cpus:1e306", "cpus:-1", "cpus:nan", "cpus:inf", "mem:99999999999999999999",
                 "ports:[5-1]", "cpus(..):1", "cpus", ";;:", "cpus:1x", "", "disk:0.0001",
                 "cpus:0x10", "cpus(a b):1", "cpus:1;;mem:-2"]
#: resource texts no parser accepts
UNPARSABLE = BAD_RESOURCES[:10]
VALID_ROLES = ["*", "web", "web/a", "fuzzq", "fuzzw", "fuzzr"]
BAD_ROLES = ["", ".", "..", "-x", "a b", "/a", "a/", "a*", "x" * 300, "a\x00b"]
NUMBERS = [0.0, -0.0, -1.0, 5e-324, 1e-300, 0.001, 0.5, 1.0, 5.0, 3600.0, 3600.5, 1e9,
           1e9 + 1, 1e306, -1e306, 1.7976931348623157e308]
INTEGERS = [0, 1, -1, 2, 30, 65535, 65536, 2**31, 2**63 - 1, -(2**63), 2**64 - 1]
STATES = [s.value for s in TaskState]
SAFE_COMMANDS = ["true", "exit 3", "sleep 0.2", "echo hi", "echo hi >&2", "kill -9 $$"]
SAFE_ARGV = [["/bin/true"], ["/bin/sleep", "0.2"], ["/bin/sh", "-c", "exit 3"], []]
#: operator requests, registrations and subscriptions: the only messages a peer that
#: never registered could change durable state with; built so that they must be refused
STATE_CAPABLE = (Subscribe, RegisterAgent, ReregisterAgent, SetWeights, SetQuota,
                 RemoveQuota, DrainAgent, ReactivateAgent, ReserveResources,
                 UnreserveResources, OperatorKill)
ALL_TYPES = [cls for _, cls in sorted(record_types().items())]
MASTER_WEIGHTS: dict[str, int] = {
    "subscribe": 4, "register_agent": 4, "reregister_agent": 4, "accept": 4, "decline": 3,
    "kill": 3, "acknowledge": 3, "reconcile": 2, "status_update": 4, "teardown": 3,
    "revive": 2, "suppress": 2, "heartbeat": 2, "usage": 2, "agent_stopping": 2,
    "operator_kill": 3, "drain_agent": 3, "reactivate_agent": 2, "set_weights": 3,
    "set_quota": 3, "remove_quota": 2, "reserve_resources": 3, "unreserve_resources": 3,
    "read_file": 3, "file_data": 1, "error": 1, "get_state": 1,
}
AGENT_WEIGHTS: dict[str, int] = {
    "agent_registered": 3, "run_tasks": 5, "kill_task": 3, "shutdown_framework": 2,
    "acknowledge": 3, "read_file": 5, "error": 2, "heartbeat": 1,
}


class Values:
    """Random hostile values for record fields, by annotation and field name (the
    shapes of :func:`mesos_zmq.protocol._checker_for`), from one seeded generator."""

    def __init__(self, rng: random.Random, known: dict[str, list[str]],
                 paths: list[str]) -> None:
        self.rng = rng
        #: real ids by kind (agent, framework, task, offer, uuid), refreshed by the caller
        self.known = known
        self.paths = paths
        self._hints: dict[type[Any], dict[str, Any]] = {}

    # ----------------------------------------------------------------- leaves
    def text(self) -> str:
        rng = self.rng
        size = rng.choice([0, 1, 3, 8, 20, 40, 300, 5000])
        alphabet = rng.choice(["ascii", "unicode", "controls"])
        if alphabet == "ascii":
            return "".join(chr(rng.randint(32, 126)) for _ in range(size))
        if alphabet == "controls":
            return "".join(chr(rng.randint(0, 31)) for _ in range(min(size, 40)))
        out = []
        for _ in range(min(size, 300)):
            code = rng.randint(0, 0x10FFFF)
            out.append(chr(code if not 0xD800 <= code <= 0xDFFF else 0xFFFD))
        return "".join(out)

    def id_for(self, kind: str) -> str:
        rng = self.rng
        pool = self.known.get(kind) or []
        roll = rng.random()
        if pool and roll < 0.4:
            return rng.choice(pool)
        if roll < 0.55:
            everything = [x for ids in self.known.values() for x in ids]
            if everything:
                return rng.choice(everything)
        if roll < 0.85:
            return rng.choice(HOSTILE_IDS)
        return self.text()

    def string(self, name: str) -> str:
        rng = self.rng
        kind = {"agent_id": "agent", "framework_id": "framework", "task_id": "task",
                "offer_id": "offer", "offer_ids": "offer", "uuid": "uuid",
                "in_reply_to": "request"}.get(name)
        if kind is not None:
            return self.id_for(kind)
        named: dict[str, list[str]] = {
            "resources": VALID_RESOURCES + BAD_RESOURCES, "guarantee": VALID_RESOURCES
            + BAD_RESOURCES, "limit": VALID_RESOURCES + BAD_RESOURCES,
            "role": VALID_ROLES + BAD_ROLES, "roles": VALID_ROLES + BAD_ROLES,
            "suppressed_roles": VALID_ROLES + BAD_ROLES, "weights": VALID_ROLES + BAD_ROLES,
            "state": [*STATES, "", "task_running"],
            "kind": ["COMMAND", "TCP", "HTTP", "RESERVE", "UNRESERVE", ""],
            "attributes": ["", "rack:a", ":", "a:b:c", "a;;b", "x" * 300],
            "name": ["fw", "", " "], "hostname": ["h1", "", "h" * 300],
            "command": SAFE_COMMANDS, "path": self.paths,
            "code": [*ERROR_CODES, "", "weird"],
            "capabilities": ["PARTITION_AWARE", "GPU_RESOURCES", "x"],
        }
        if name in named and rng.random() < 0.8:
            return rng.choice(named[name])
        return self.text()

    def number(self) -> float:
        rng = self.rng
        if rng.random() < 0.7:
            return rng.choice(NUMBERS)
        return rng.uniform(-1e6, 1e6) * 10.0 ** rng.randint(-300, 300)

    def integer(self) -> int:
        rng = self.rng
        if rng.random() < 0.7:
            return rng.choice(INTEGERS)
        return rng.randint(-(2**63), 2**64 - 1)

    def plain(self, depth: int = 0) -> Any:
        """An arbitrary msgpack value (what a hostile peer may put anywhere)."""
        rng = self.rng
        roll = rng.random()
        if depth < 3 and roll < 0.15:
            return [self.plain(depth + 1) for _ in range(rng.randint(0, 4))]
        if depth < 3 and roll < 0.3:
            return {self.key(): self.plain(depth + 1) for _ in range(rng.randint(0, 4))}
        choices: list[Callable[[], Any]] = [
            lambda: None, lambda: rng.random() < 0.5, self.integer,
            lambda: rng.choice([float("nan"), float("inf"), float("-inf"), self.number()]),
            self.text, lambda: rng.randbytes(rng.randint(0, 16)),
            lambda: msgpack.ExtType(rng.randint(0, 127), rng.randbytes(rng.randint(0, 6))),
            lambda: msgpack.Timestamp(rng.randint(0, 2**33), rng.randint(0, 999_999_999)),
        ]
        return rng.choice(choices)()

    def key(self) -> Any:
        rng = self.rng
        makers: list[Callable[[], Any]] = [self.text, self.integer, lambda: None,
                                           lambda: rng.randbytes(3), lambda: rng.random() < 0.5]
        return rng.choice(makers)()

    # ----------------------------------------------------------------- records
    def value(self, hint: Any, name: str) -> Any:
        rng = self.rng
        origin = typing.get_origin(hint)
        if hint is str:
            return self.string(name)
        if hint is bool:
            return rng.random() < 0.5
        if hint is int:
            return self.integer()
        if hint is float:
            return self.number()
        if hint is bytes:
            return rng.randbytes(rng.randint(0, 64))
        if hint is Any:
            return self.plain()
        if origin in (types.UnionType, typing.Union):
            (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
            return None if rng.random() < 0.4 else self.value(inner, name)
        if origin is list:
            (item,) = typing.get_args(hint)
            return [self.value(item, name) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
        if origin is dict:
            key, value = typing.get_args(hint)
            return {self.value(key, name): self.value(value, name)
                    for _ in range(rng.choice([0, 1, 2, 3]))}
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self.record(hint)
        raise TypeError(f"no generator for annotation {hint!r}")

    def record(self, cls: type[Any]) -> Any:
        hints = self._hints.get(cls)
        if hints is None:
            hints = self._hints[cls] = typing.get_type_hints(cls)
        return cls(**{f.name: self.value(hints[f.name], f.name)
                      for f in dataclasses.fields(cls)})


# --------------------------------------------------------------------------- must refuse
def must_refuse(msg: Message, values: Values, quota_roles: set[str],
                task_ids: set[str], agent_ids: set[str]) -> Message:
    """``msg`` poisoned so that a correct master refuses it (state-capable types only).

    Each poison is a rule the master checks whatever the other fields hold."""
    rng = values.rng
    replace = dataclasses.replace
    if isinstance(msg, Subscribe):
        info = msg.framework
        poison = rng.choice(["name", "id", "no_roles", "role", "failover"])
        if poison == "name":
            info = replace(info, name=rng.choice(["", " ", "\t\n"]))
        elif poison == "id":
            info = replace(info, framework_id=rng.choice([i for i in INVALID_IDS if i]))
        elif poison == "no_roles":
            info = replace(info, roles=[])
        elif poison == "role":
            info = replace(info, roles=[*info.roles, rng.choice(BAD_ROLES)])
        else:
            info = replace(info, failover_timeout=rng.choice([-1.0, 1e9, 1e300, -1e300]))
        return Subscribe(framework=info)
    if isinstance(msg, RegisterAgent):
        return replace(msg, resources=rng.choice(BAD_RESOURCES))
    if isinstance(msg, ReregisterAgent):
        if rng.random() < 0.5:
            return replace(msg, agent_id=rng.choice(INVALID_IDS))
        return replace(msg, resources=rng.choice(BAD_RESOURCES))
    if isinstance(msg, SetWeights):
        weights = dict(msg.weights)
        if rng.random() < 0.2:
            return SetWeights(weights={})
        if rng.random() < 0.5:
            weights[rng.choice(BAD_ROLES)] = 1.0
        else:
            weights[rng.choice(VALID_ROLES[1:])] = rng.choice([0.0, -1.0, 1e9, 1e300, -0.0])
        return SetWeights(weights=weights)
    if isinstance(msg, SetQuota):
        poison = rng.choice(["role", "guarantee", "limit", "capacity"])
        if poison == "role":
            return replace(msg, role=rng.choice(["*", *BAD_ROLES]))
        if poison == "guarantee":
            return replace(msg, guarantee=rng.choice([*UNPARSABLE, "cpus(web):1",
                                                      "ports:[1-2]"]))
        if poison == "limit":
            return replace(msg, limit=rng.choice([*UNPARSABLE, "cpus(web):1"]))
        return replace(msg, role="fuzzcap", guarantee="cpus:1000000", force=False)
    if isinstance(msg, RemoveQuota):
        role = msg.role
        while role in quota_roles:
            role = values.text()
        return replace(msg, role=role)
    if isinstance(msg, DrainAgent):
        if msg.agent_id in agent_ids:
            return replace(msg, grace=rng.choice([-1.0, 3600.5, 1e300, -1e300]))
        return msg
    if isinstance(msg, ReactivateAgent):
        return msg  # no agent is draining (checked by the state comparison)
    if isinstance(msg, ReserveResources | UnreserveResources):
        if msg.agent_id in agent_ids:
            return replace(msg, resources=rng.choice(["cpus:1", "mem:64", "cpus(*):1",
                                                      "cpus(web):1000000", *BAD_RESOURCES]))
        return msg
    if isinstance(msg, OperatorKill):
        task_id = msg.task_id
        while task_id in task_ids:
            task_id = values.text()
        return replace(msg, task_id=task_id)
    return msg


# --------------------------------------------------------------------------- frames
def pack(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def mutate_bytes(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        if not data:
            data.append(rng.randint(0, 255))
            continue
        i = rng.randrange(len(data))
        kind = rng.choice(["flip", "set", "insert", "delete", "truncate"])
        if kind == "flip":
            data[i] ^= 1 << rng.randint(0, 7)
        elif kind == "set":
            data[i] = rng.randint(0, 255)
        elif kind == "insert":
            data.insert(i, rng.randint(0, 255))
        elif kind == "delete":
            del data[i]
        else:
            del data[i:]
    return bytes(data)


def mutate_body(values: Values, body: Any) -> Any:
    """One field (at any depth) replaced by an arbitrary value, dropped, or a junk field."""
    rng = values.rng
    if not isinstance(body, dict) or not body or rng.random() < 0.2:
        return {**(body if isinstance(body, dict) else {}), values.key(): values.plain()}
    key = rng.choice(list(body))
    inner = body[key]
    copy = dict(body)
    if isinstance(inner, dict) and inner and rng.random() < 0.5:
        copy[key] = mutate_body(values, inner)
    elif isinstance(inner, list) and inner and rng.random() < 0.5:
        items = list(inner)
        i = rng.randrange(len(items))
        items[i] = mutate_body(values, items[i]) if isinstance(items[i], dict) else \
            values.plain()
        copy[key] = items
    elif rng.random() < 0.3:
        del copy[key]
    else:
        copy[key] = values.plain()
    return copy


def decodes_to_state_capable(frame: bytes) -> bool:
    """Whether any message the frame carries (a batch's items too) could change state."""
    return any(isinstance(m, STATE_CAPABLE) for m in messages_of(frame))


def messages_of(frame: bytes) -> list[Message]:
    """The messages a frame carries that decode (one, or a batch's items); none when
    the frame as a whole does not decode."""
    try:
        items = decode_frame(frame)
    except ProtocolError:
        return []
    return [item.message for item in items if isinstance(item, Envelope)]


class Frames:
    """The hostile frames of one target: ``next()`` gives the parts of one message."""

    def __init__(self, values: Values, weights: dict[str, int],
                 shape: Callable[[Message], Message]) -> None:
        self.values = values
        self.rng = values.rng
        self.types = [record_types()[tag] for tag in weights]
        self.weights = list(weights.values())
        self.shape = shape
        self.count = 0

    def typed(self) -> Message:
        if self.rng.random() < 0.1:
            cls = self.rng.choice(ALL_TYPES)
        else:
            cls = self.rng.choices(self.types, self.weights)[0]
        return self.shape(self.values.record(cls))

    def request_id(self) -> str:
        rng = self.rng
        return rng.choice(["", "r", f"fz{self.count}", "x" * 200, self.values.text()[:200]])

    def batch(self) -> bytes:
        """A batch frame: hostile items among typed ones, a nested batch, sometimes
        more items than a batch may hold, or its bytes mutated."""
        rng = self.rng
        if rng.random() < 0.05:
            item = encode(self.typed(), self.request_id())
            count = MAX_BATCH_MESSAGES + 1
            return b"\xdc" + count.to_bytes(2, "big") + item * count
        items = []
        for _ in range(rng.randint(2, 8)):
            pick = rng.random()
            if pick < 0.5:
                items.append(encode(self.typed(), self.request_id(),
                                    rng.choice([0, 0, 1, MAX_EPOCH, 2**63])))
            elif pick < 0.7:
                items.append(pack(self.values.plain()))
            elif pick < 0.8:
                items.append(batch_frame([encode(self.typed(), self.request_id())] * 2))
            else:
                items.append(pack([PROTOCOL_VERSION, rng.choice(list(record_types())),
                                   self.request_id(), self.values.plain()]))
        frame = batch_frame(items)
        if rng.random() < 0.2:
            mutated = mutate_bytes(rng, frame)
            # A mutation must not turn a must-refuse request into one the master may
            # accept (as for single frames).
            if not decodes_to_state_capable(mutated):
                return mutated
        return frame

    def next(self) -> list[bytes]:
        rng = self.rng
        self.count += 1
        if self.count % 500 == 250:
            return [pack([PROTOCOL_VERSION, "heartbeat", "big",
                          {"pad": b"x" * (DEFAULT_MAX_FRAME_BYTES + 1)}])]
        roll = rng.random()
        if roll < 0.08:
            return [rng.randbytes(rng.choice([0, 1, 2, 5, 20, 100, 1000]))]
        if roll < 0.15:
            return [pack(self.values.plain())]
        if roll < 0.27:
            version = PROTOCOL_VERSION if rng.random() < 0.7 else self.values.plain()
            tag = rng.choice(list(record_types())) if rng.random() < 0.7 else \
                self.values.plain()
            body = {self.values.key(): self.values.plain() for _ in range(rng.randint(0, 4))}
            envelope = [version, tag, self.request_id(), body if rng.random() < 0.8 else
                        self.values.plain()]
            if rng.random() < 0.2:
                envelope.append(self.values.plain())
            return [pack(envelope)]
        if roll < 0.29:
            msg = self.typed()
            return [encode(msg, self.request_id()), rng.randbytes(rng.randint(0, 10))]
        if roll < 0.35:
            return [self.batch()]
        msg = self.typed()
        frame = encode(msg, self.request_id(), rng.choice([0, 0, 0, 1, 2, MAX_EPOCH, 2**63]))
        if roll < 0.75:
            return [frame]
        if roll < 0.87:
            mutated = mutate_bytes(rng, frame)
        else:
            body = mutate_body(self.values, to_plain(msg))
            mutated = pack([PROTOCOL_VERSION, msg.TYPE, self.request_id(), body])
        # A mutation must not turn a must-refuse request into one the master may accept.
        return [frame if decodes_to_state_capable(mutated) else mutated]


# --------------------------------------------------------------------------- processes
@contextmanager
def terminated_on_sigterm() -> Iterator[None]:
    """SIGTERM stops the run like Ctrl-C (so that the processes are stopped)."""
    def on_term(signum: int, frame: types.FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def state_of(address: str, timeout: float = 5.0) -> dict[str, Any]:
    reply = request(address, GetState(), timeout=timeout)
    if not isinstance(reply, State):
        raise MasterUnreachable(f"unexpected reply {reply.TYPE}")
    return reply.state


def projection(state: dict[str, Any]) -> dict[str, Any]:
    """What hostile frames from peers that never registered must not change."""
    def quota(amounts: dict[str, float]) -> tuple[tuple[str, float], ...]:
        return tuple(sorted(amounts.items()))

    return {
        "frameworks": sorted((f["id"], f["name"], f["user"], tuple(f["roles"]),
                              f["failover_timeout"]) for f in state["frameworks"]),
        "agents": sorted((a["id"], a["hostname"], a["resources"], a["attributes"],
                          a["reserved"], a["drain"]) for a in state["agents"]),
        "tasks": sorted((t["framework_id"], t["id"], t["agent_id"], t["state"],
                         t["resources"], t["role"]) for t in state["tasks"]),
        # Roles come and go with allocations: only weights and quotas are state.
        "roles": sorted((r["role"], r["weight"], quota(r["guarantee"]), quota(r["limit"]))
                        for r in state["roles"]
                        if r["weight"] != 1.0 or r["guarantee"] or r["limit"]),
    }


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    for key in before:
        gone = [x for x in before[key] if x not in after[key]]
        new = [x for x in after[key] if x not in before[key]]
        if gone or new:
            out.append(f"{key}: -{gone[:3]} +{new[:3]}")
    return out


def new_dealer(context: zmq.Context[zmq.Socket[bytes]], address: str,
               rng: random.Random) -> zmq.Socket[bytes]:
    sock: zmq.Socket[bytes] = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    identity = bytes([rng.randint(1, 255)]) + rng.randbytes(rng.randint(0, 40))
    sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.connect(address)
    return sock


def receive_all(sock: zmq.Socket[bytes]) -> Iterator[list[bytes]]:
    while True:
        try:
            yield sock.recv_multipart(flags=zmq.NOBLOCK)
        except zmq.Again:
            return


@dataclasses.dataclass
class Tally:
    frames: int = 0
    crashes: int = 0
    internal: int = 0
    state_changed: int = 0
    accepted: int = 0
    escapes: int = 0
    interrupted: bool = False
    replies: Counter[str] = dataclasses.field(default_factory=Counter)
    notes: list[str] = dataclasses.field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(text, flush=True)


# --------------------------------------------------------------------------- master side
class Baseline:
    """The legitimate state the fuzz must not disturb, and the framework that owns it."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], address: str,
                 sleep: float) -> None:
        self.address = address
        self.framework_id = ""
        self.agent_ids: list[str] = []
        self.offer_ids: list[str] = []
        self.task_ids = ["fuzz-base-task"]
        self.socket: zmq.Socket[bytes] = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)
        self.sleep = sleep

    def setup(self) -> None:
        state = state_of(self.address)
        self.agent_ids = [a["id"] for a in state["agents"]]
        agent_id = self.agent_ids[0]
        for msg in (SetWeights(weights={"fuzzw": 2.0}),
                    SetQuota(role="fuzzq", guarantee="cpus:0.5", limit="cpus:2"),
                    ReserveResources(agent_id=agent_id, resources="cpus(fuzzr):0.5;mem(fuzzr):64")):
            reply = request(self.address, msg, timeout=5.0)
            if not isinstance(reply, OperatorReply):
                raise RuntimeError(f"baseline {msg.TYPE} refused: {reply}")
        info = FrameworkInfo(name="fuzz-baseline", roles=["*"], failover_timeout=3600.0)
        self.socket.send(encode(Subscribe(framework=info), "base-sub"))
        deadline = time.monotonic() + 20
        offer = None
        while time.monotonic() < deadline and offer is None:
            if not self.socket.poll(500):
                continue
            for msg in messages_of(self.socket.recv()):
                if isinstance(msg, Subscribed):
                    self.framework_id = msg.framework_id
                elif isinstance(msg, Offers) and msg.offers and offer is None:
                    offer = msg.offers[0]
        if offer is None or not self.framework_id:
            raise RuntimeError("the baseline framework got no offer")
        task = TaskInfo(task_id=self.task_ids[0], agent_id=offer.agent_id,
                        resources="cpus:0.5;mem:32", command=f"sleep {self.sleep:.0f}")
        self.socket.send(encode(Accept(framework_id=self.framework_id,
                                       offer_ids=[offer.offer_id], tasks=[task],
                                       refuse_seconds=0), "base-launch"))
        wait_until(lambda: any(t["id"] == task.task_id and t["state"] == "TASK_RUNNING"
                               for t in state_of(self.address)["tasks"]),
                   timeout=30, what="the baseline task to run")

    def keep_alive(self) -> None:
        """Heartbeat, acknowledge updates, remember the offers it holds (fuzz ids)."""
        with suppress(zmq.ZMQError):
            self.socket.send(encode(Heartbeat()))
        for parts in receive_all(self.socket):
            for msg in messages_of(parts[-1]):
                if isinstance(msg, Offers):
                    self.offer_ids = [o.offer_id for o in msg.offers][-10:]
                elif isinstance(msg, StatusUpdate) and msg.status.uuid:
                    s = msg.status
                    self.socket.send(encode(Acknowledge(
                        framework_id=s.framework_id, agent_id=s.agent_id,
                        task_id=s.task_id, uuid=s.uuid)))

    def close(self) -> None:
        self.socket.close(linger=0)


class MasterTarget:
    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], address: str,
                 rng: random.Random, values: Values, baseline: Baseline | None,
                 tally: Tally, procs: list[Proc], canary: str) -> None:
        self.context = context
        self.canary = canary
        self.address = address
        self.rng = rng
        self.values = values
        self.baseline = baseline
        self.tally = tally
        self.procs = procs
        self.peers = [new_dealer(context, address, rng) for _ in range(6)]
        state = state_of(address)
        self.before = projection(state)
        self.quota_roles = {r["role"] for r in state["roles"] if r["guarantee"] or r["limit"]}
        self.agent_ids = {a["id"] for a in state["agents"]}
        self.task_ids = {t["id"] for t in state["tasks"]}
        values.known.update(
            agent=sorted(self.agent_ids), task=sorted(self.task_ids),
            framework=sorted(f["id"] for f in state["frameworks"]),
        )
        self.frames = Frames(values, MASTER_WEIGHTS, self._shape)
        self.dead: set[str] = set()
        self.alive = True

    def _shape(self, msg: Message) -> Message:
        if self.baseline is not None:
            self.values.known["offer"] = list(self.baseline.offer_ids)
        if isinstance(msg, STATE_CAPABLE):
            return must_refuse(msg, self.values, self.quota_roles, self.task_ids,
                               self.agent_ids)
        return msg

    def batch(self, count: int) -> int:
        sent = 0
        for _ in range(count):
            if self.rng.random() < 0.01:
                i = self.rng.randrange(len(self.peers))
                self.peers[i].close(linger=0)
                self.peers[i] = new_dealer(self.context, self.address, self.rng)
            peer = self.rng.choice(self.peers)
            try:
                peer.send_multipart(self.frames.next(), flags=zmq.NOBLOCK)
            except zmq.Again:
                continue
            sent += 1
        self._collect(settle=0.3, limit=3.0)
        return sent

    def _collect(self, settle: float, limit: float) -> None:
        """Read replies until none came for ``settle`` seconds (at most ``limit``)."""
        deadline = time.monotonic() + limit
        quiet_since = time.monotonic()
        poller = zmq.Poller()
        for peer in self.peers:
            poller.register(peer, zmq.POLLIN)
        while time.monotonic() < deadline and time.monotonic() - quiet_since < settle:
            if not poller.poll(50):
                continue
            quiet_since = time.monotonic()
            for peer in self.peers:
                for parts in receive_all(peer):
                    self._reply(parts)

    def _reply(self, parts: list[bytes]) -> None:
        try:
            items = decode_frame(parts[-1])
        except ProtocolError as exc:
            self.tally.note(f"master sent an undecodable frame: {exc.code} {exc.message[:80]}")
            return
        for item in items:
            if isinstance(item, Refused):
                self.tally.note(f"master sent an undecodable message: {item.error.code}")
            else:
                self._reply_message(item.message)

    def _reply_message(self, msg: Message) -> None:
        kind = f"error:{msg.code}" if isinstance(msg, Error) else msg.TYPE
        self.tally.replies[f"master {kind}"] += 1
        if isinstance(msg, Error) and msg.code == "internal":
            self.tally.internal += 1
            self.tally.note(f"master internal error: {msg.message[:120]} "
                            f"(request {msg.in_reply_to[:40]!r})")
        elif isinstance(msg, FileData) and self.canary.encode() in msg.data:
            self.tally.escapes += 1
            self.tally.note(f"a read through the master escaped a sandbox: {msg.path[:120]!r}")
        elif isinstance(msg, Subscribed | AgentRegistered | OperatorReply):
            self.tally.accepted += 1
            self.tally.note(f"master accepted a request it must refuse: {msg}"[:300])

    def check(self, batch: int) -> None:
        for proc in self.procs:
            if proc.name not in self.dead and not proc.alive():
                self.dead.add(proc.name)
                self.tally.crashes += 1
                self.tally.note(f"batch {batch}: {proc.name} (pid {proc.pid}) died, exit "
                                f"status {proc.popen.returncode if proc.popen else '?'}")
        try:
            state = state_of(self.address, timeout=10.0)
        except (MasterUnreachable, RequestRefused, MesosZmqError) as exc:
            if "master" not in self.dead:
                self.tally.crashes += 1
                self.tally.note(f"batch {batch}: the master does not answer a state "
                                f"request ({exc})")
            self.alive = False
            return
        after = projection(state)
        if after != self.before:
            self.tally.state_changed += 1
            self.tally.note(f"batch {batch}: the master's state changed: "
                            + "; ".join(differences(self.before, after)))
            self.before = after
        if self.baseline is not None:
            self.baseline.keep_alive()

    def close(self) -> None:
        for peer in self.peers:
            peer.close(linger=0)


# --------------------------------------------------------------------------- agent side
class AgentTarget:
    """A real agent whose master is this tool (a ROUTER socket)."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], root: Path,
                 rng: random.Random, values: Values, tally: Tally, canary: str) -> None:
        self.rng = rng
        self.values = values
        self.tally = tally
        self.router: zmq.Socket[bytes] = context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self.router.bind("tcp://127.0.0.1:0")
        self.address = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.canary = canary
        args = ["agent", "--master", self.address, "--work-dir", str(root / "agent-fuzzed"),
                "--resources", "cpus:2;mem:256;disk:64;ports:[32000-32010]",
                "--hostname", "fuzzed-agent", "--isolation", "posix",
                "--log-format", "json", "--log-level", "info"]
        self.proc = Proc("fuzzed-agent", args, root / "agent-fuzzed.log").start()
        self.identity = b""
        self.agent_id = "fuzzagent-1"
        self.updates: list[StatusUpdate] = []
        self.frames = Frames(values, AGENT_WEIGHTS, self._shape)
        self.launched = 0
        self.alive = True
        self.probes = 0
        #: the highest epoch sent (up to MAX_EPOCH): the agent ignores frames of a lower
        #: one (a deposed master) and of a higher one (forged)
        self.epoch = 1

    def start(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.identity:
            if self.router.poll(200):
                self._drain()
        if not self.identity:
            raise RuntimeError("the fuzzed agent never connected to the fake master")
        self._register()

    def _register(self) -> None:
        self.router.send_multipart([self.identity, encode(AgentRegistered(
            agent_id=self.agent_id, heartbeat_interval=1.0, missed_heartbeats=30), "",
            self.epoch)])

    def _shape(self, msg: Message) -> Message:
        self.values.known.update(
            agent=[self.agent_id],
            task=[u.status.task_id for u in self.updates[-20:]],
            framework=["fuzz-fw", *{u.status.framework_id for u in self.updates[-20:]}],
            uuid=[u.status.uuid for u in self.updates[-20:]],
        )
        if isinstance(msg, RunTasks):
            rng = self.rng
            # Half the launches are plausible (safe ids, small resources), so that tasks
            # really run and kills, acknowledgements and reads meet live ones.
            plausible = rng.random() < 0.5
            tasks = []
            for task in msg.tasks:
                # Harmless commands only: a fuzzer must not run random programs.
                env = {k: v for k, v in task.env.items() if not k.upper().startswith("LD_")}
                task = dataclasses.replace(
                    task, command=rng.choice(SAFE_COMMANDS), argv=list(rng.choice(SAFE_ARGV)),
                    env=env, health_check=None if task.health_check is None else
                    dataclasses.replace(task.health_check, command="true"))
                if plausible:
                    self.launched += 1
                    task = dataclasses.replace(
                        task, task_id=f"fz-{self.launched}", agent_id=self.agent_id,
                        resources=rng.choice(["cpus:0.1;mem:32", "cpus:0.5;mem:64", "mem:16"]),
                        role="", user="", name=task.name[:50],
                        env=env if rng.random() < 0.3 else {},
                        kill_grace_period=rng.choice([None, 0.0, 1.0, task.kill_grace_period]),
                        shell=rng.random() < 0.7 or not task.argv)
                tasks.append(task)
            framework_id = "fuzz-fw" if plausible else msg.framework_id
            return dataclasses.replace(msg, framework_id=framework_id, tasks=tasks)
        return msg

    def _drain(self) -> None:
        for parts in receive_all(self.router):
            if len(parts) < 2:
                continue
            self.identity = parts[0]
            try:
                items = decode_frame(parts[-1])
            except ProtocolError as exc:
                self.tally.note(f"agent sent an undecodable frame: {exc.code}")
                continue
            for item in items:
                if isinstance(item, Refused):
                    self.tally.note(f"agent sent an undecodable message: {item.error.code}")
                else:
                    self._heard(item)

    def _heard(self, env: Envelope) -> None:
        """One message from the agent (a batch's items one by one)."""
        msg = env.message
        kind = f"error:{msg.code}" if isinstance(msg, Error) else msg.TYPE
        self.tally.replies[f"agent {kind}"] += 1
        if isinstance(msg, RegisterAgent | ReregisterAgent):
            self._register()
        elif isinstance(msg, StatusUpdate):
            self.updates = [*self.updates[-50:], msg]
            if self.rng.random() < 0.5 and msg.status.uuid:
                s = msg.status
                self.router.send_multipart([self.identity, encode(Acknowledge(
                    framework_id=s.framework_id, agent_id=s.agent_id, task_id=s.task_id,
                    uuid=s.uuid), "", self.epoch)])
        elif isinstance(msg, FileData) and self.canary.encode() in msg.data:
            self.tally.escapes += 1
            self.tally.note(f"agent read escaped its sandbox: path {msg.path[:120]!r}")
        elif isinstance(msg, Error) and msg.code == "internal":
            self.tally.internal += 1
            self.tally.note(f"agent internal error: {msg.message[:120]}")
        if env.request_id.startswith("probe-"):
            self.probes = max(self.probes, int(env.request_id.split("-")[1]))

    def batch(self, count: int) -> int:
        sent = 0
        for _ in range(count):
            self._drain()
            parts = self.frames.next()
            for part in parts:
                with suppress(ProtocolError):
                    for item in decode_frame(part):
                        epoch = item.epoch if isinstance(item, Envelope) else 0
                        if epoch <= MAX_EPOCH:  # the agent ignores (only) a larger one
                            self.epoch = max(self.epoch, epoch)
            try:
                self.router.send_multipart([self.identity, *parts], flags=zmq.NOBLOCK)
            except zmq.ZMQError:
                continue
            sent += 1
        return sent

    def check(self, batch: int) -> None:
        """The agent is alive and answers a file read (re-registered first)."""
        number = batch + 1
        probe = ReadFile(agent_id=self.agent_id, task_id="fuzz-probe",
                         framework_id="fuzz-probe")
        deadline = time.monotonic() + 15
        next_send = 0.0
        while time.monotonic() < deadline and self.probes < number:
            if not self.proc.alive():
                break
            if time.monotonic() >= next_send:
                self._register()
                self.router.send_multipart([self.identity,
                                            encode(probe, f"probe-{number}", self.epoch)])
                next_send = time.monotonic() + 1.0
            if self.router.poll(100):
                self._drain()
        if not self.proc.alive():
            self.tally.crashes += 1
            code = self.proc.popen.returncode if self.proc.popen else "?"
            self.tally.note(f"batch {batch}: the fuzzed agent (pid {self.proc.pid}) died, "
                            f"exit status {code}")
            self.alive = False
        elif self.probes < number:
            self.tally.crashes += 1
            self.tally.note(f"batch {batch}: the fuzzed agent does not answer a file read")
            self.alive = False

    def close(self) -> None:
        self.proc.stop(signal.SIGINT, timeout=10)
        self.router.close(linger=0)


# --------------------------------------------------------------------------- run
def start_cluster(root: Path) -> tuple[str, list[Proc]]:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    master = Proc("master", ["master", "--port", str(port), "--work-dir", str(root / "master"),
                             "--heartbeat-interval", "0.5", "--missed-heartbeats", "20",
                             "--allocation-interval", "0.2", "--log-format", "json",
                             "--log-level", "info"], root / "master.log").start()
    procs = [master]
    wait_until(lambda: state_of(address, timeout=0.5), timeout=30, what="the master")
    agent = Proc("agent", ["agent", "--master", address, "--work-dir", str(root / "agent"),
                           "--resources", "cpus:4;mem:4096;disk:1024;ports:[31000-31099]",
                           "--hostname", "fuzz-agent", "--isolation", "posix",
                           "--log-format", "json", "--log-level", "info"],
                 root / "agent.log").start()
    procs.append(agent)
    wait_until(lambda: any(a["connected"] for a in state_of(address)["agents"]), timeout=30,
               what="the agent to register")
    return address, procs


def run(args: argparse.Namespace, root: Path, tally: Tally) -> None:
    rng = random.Random(args.seed)
    targets = set(args.targets.split(","))
    started = time.monotonic()
    procs: list[Proc] = []
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    # A file beside the sandboxes: a read that returns it escaped its sandbox.
    canary = os.urandom(16).hex()
    canary_path = root / "canary.txt"
    canary_path.write_text(canary + "\n")
    values = Values(rng, {}, [
        "stdout", "stderr", "", "/", "..", "../../..", "/etc/passwd", str(canary_path),
        "../" * 12 + str(canary_path).lstrip("/"), "../../../canary.txt",
        "../../../../canary.txt", "../../../../../canary.txt", "../../../../../../canary.txt",
        "stdout/../../canary.txt", "\x00", "a" * 5000])
    master: MasterTarget | None = None
    agent: AgentTarget | None = None
    baseline: Baseline | None = None
    try:
        if "master" in targets:
            if args.master:
                address = args.master
            else:
                address, procs = start_cluster(root)
                baseline = Baseline(context, address, args.time_limit + 60)
                baseline.setup()
            master = MasterTarget(context, address, rng, values, baseline, tally, procs,
                                  canary)
        if "agent" in targets:
            agent = AgentTarget(context, root, rng, values, tally, canary)
            procs.append(agent.proc)
            agent.start()
        print(f"fuzzing: seed={args.seed} targets={','.join(sorted(targets))} "
              f"work_dir={root}", flush=True)
        batch = 0
        while tally.frames < args.frames:
            if time.monotonic() - started > args.time_limit:
                tally.note(f"time limit of {args.time_limit:.0f}s reached")
                break
            count = min(args.batch, args.frames - tally.frames)
            use_agent = agent is not None and agent.alive and (
                master is None or not master.alive or batch % 3 == 2)
            if use_agent and agent is not None:
                tally.frames += agent.batch(count)
                agent.check(batch)
            elif master is not None and master.alive:
                tally.frames += master.batch(count)
                master.check(batch)
            else:
                break
            if args.verbose:
                print(f"batch {batch}: frames={tally.frames} crashes={tally.crashes} "
                      f"internal={tally.internal} state_changed={tally.state_changed}",
                      flush=True)
            batch += 1
        if master is not None and master.alive:
            master.check(batch)
    finally:
        if agent is not None:
            agent.close()
        if master is not None:
            master.close()
        if baseline is not None:
            baseline.close()
        for proc in reversed(procs):
            proc.stop(signal.SIGINT if proc.name.startswith("agent") else signal.SIGTERM,
                      timeout=15)
        context.term()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, required=True, help="hostile frames to send")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--master", default="",
                        help="fuzz this running master instead of starting one (its state "
                             "must not change: nothing is set up on it)")
    parser.add_argument("--targets", default="master,agent",
                        help="master, agent, or both (default)")
    parser.add_argument("--batch", type=int, default=50, help="frames between checks")
    parser.add_argument("--time-limit", type=float, default=300.0,
                        help="seconds; the run stops after the batch that exceeds it")
    parser.add_argument("--work-dir", default="", help="keep logs here (default: a temporary "
                                                        "directory, removed at the end)")
    parser.add_argument("--verbose", "-v", action="store_true", help="a line per batch")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    targets = set(args.targets.split(","))
    if not targets or targets - {"master", "agent"}:
        print("--targets: master, agent or master,agent", file=sys.stderr)
        return 2
    if not args.master:
        # Our own processes: plain loopback, whatever keys this shell exports.
        for name in [n for n in os.environ if n.startswith("MESOS_ZMQ_")]:
            del os.environ[name]
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="mesos-zmq-fuzz-") as tmp:
        root = Path(args.work_dir) if args.work_dir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        try:
            with terminated_on_sigterm():
                run(args, root, tally)
        except KeyboardInterrupt:
            tally.note("interrupted")
            tally.interrupted = True
        except (RuntimeError, AssertionError, MesosZmqError) as exc:
            tally.note(f"setup failed: {exc}")
            tally.crashes += 1
        if tally.crashes and not args.work_dir:
            for log in sorted(root.glob("*.log")):
                lines = log.read_text(errors="replace").splitlines()[-15:]
                print(f"----- {log.name}\n" + "\n".join(lines), flush=True)
    replies = ", ".join(f"{k}={v}" for k, v in sorted(tally.replies.items()))
    print(f"replies: {replies}", flush=True)
    print(f"seed={args.seed} accepted={tally.accepted} read_escapes={tally.escapes}",
          flush=True)
    print(f"frames={tally.frames} crashes={tally.crashes} internal={tally.internal} "
          f"state_changed={tally.state_changed}", flush=True)
    bad = tally.crashes or tally.internal or tally.state_changed or tally.escapes
    return 1 if bad else 130 if tally.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())

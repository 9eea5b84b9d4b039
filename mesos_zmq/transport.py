"""ZeroMQ sockets: the master's ROUTER and the clients' DEALER.

The master binds one ROUTER; each agent, framework or CLI connects one DEALER. A
frame from a client arrives at the ROUTER as ``[identity, payload]``; the identity is
how the master addresses its reply. Clients reconnect by closing their DEALER and
opening a fresh one (new identity), which is also how a client abandons a master that
stopped answering; the re-registration message tells the master who the new identity
belongs to.

With keys (:mod:`mesos_zmq.auth`), the ROUTER is a CURVE server whose ZAP handler
stamps each message with its sender's principal (``recv_nowait`` returns it), and each
DEALER is a CURVE client that pins the masters' public key. A handshake the master
refuses is seen on the client through a socket monitor (:meth:`ClientSocket.auth_problem`),
so a client with a wrong key says so instead of waiting forever.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Final

import structlog
import zmq
import zmq.utils.monitor

from mesos_zmq.auth.keys import ClientKeys, KeyPair
from mesos_zmq.auth.zap import DOMAIN
from mesos_zmq.errors import ConfigError, ProtocolError
from mesos_zmq.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    Envelope,
    Refused,
    batches,
    decode_frame,
)

log = structlog.get_logger()

#: zmq drops (and disconnects) anything larger than this before we see it; frames
#: between the protocol limit and this cap get a protocol error reply instead.
HARD_FRAME_CAP: Final = 64 * 1024 * 1024
_HWM: Final = 200_000
#: a client's reconnection to a master that went away: first after 0.1 s, then backing
#: off to a second (libzmq's default retries every 0.1 s for ever: 10,000 agents
#: knocking at a dead leader's port ten times a second)
RECONNECT_IVL_MS: Final = 100
RECONNECT_IVL_MAX_MS: Final = 1000
#: connections the kernel queues before the master accepts them (capped by the host's
#: net.core.somaxconn, 4096 on current Linux)
LISTEN_BACKLOG: Final = 8192
#: replies at least this large are tracked until ZeroMQ hands them to the kernel, so
#: that the bytes a peer has not read can be counted (see ServerSocket.unsent_bytes)
TRACKED_BYTES: Final = 64 * 1024
#: handshakes failing without detail (a wrong pinned key, a master without keys, but
#: also a connection dropped mid-greeting) in a row before they are blamed on keys
HANDSHAKES_BEFORE_BLAME: Final = 3
_NOBLOCK: Final = int(zmq.NOBLOCK)
_MORE: Final = int(zmq.NOBLOCK | zmq.SNDMORE)
_RCVMORE: Final = int(zmq.RCVMORE)
#: the largest epoch a master can have: epochs are ZooKeeper node versions (int32)
MAX_EPOCH: Final = 2**31 - 1


def normalize_address(address: str) -> str:
    """``127.0.0.1:5050`` or ``tcp://127.0.0.1:5050`` -> ``tcp://127.0.0.1:5050``."""
    text = address.strip()
    if "://" not in text:
        text = "tcp://" + text
    return text


def _ipv6(address: str) -> bool:
    return "[" in address or address.count(":") > 2


class ServerSocket:
    """The master's ROUTER socket."""

    def __init__(
        self, context: zmq.Context[zmq.Socket[bytes]], address: str,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        key: KeyPair | None = None,
    ) -> None:
        """``key``: the masters' server pair; a ZAP handler must already run on
        ``context`` (:class:`mesos_zmq.auth.zap.ZapHandler`), or every handshake fails."""
        self.max_frame_bytes = max_frame_bytes
        self.secure = key is not None
        #: large replies not yet handed to the kernel, per peer: (tracker, bytes)
        self._tracked: dict[bytes, deque[tuple[zmq.MessageTracker, int]]] = {}
        self.socket: zmq.Socket[bytes] = context.socket(zmq.ROUTER)
        if key is not None:
            self.socket.setsockopt(zmq.CURVE_SERVER, 1)
            self.socket.setsockopt(zmq.CURVE_SECRETKEY, key.secret)
            self.socket.setsockopt(zmq.CURVE_PUBLICKEY, key.public)
            self.socket.setsockopt_string(zmq.ZAP_DOMAIN, DOMAIN)
            # Without a ZAP handler libzmq would accept any key: refuse instead.
            self.socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        self.socket.setsockopt(zmq.LINGER, 0)
        # Thousands of agents connect at once after a failover: with libzmq's backlog of
        # 100 the kernel drops their SYNs and each waits out TCP's retransmission
        # (1 s, 3 s, 7 s...), which stretched the registration of 10,000 agents.
        self.socket.setsockopt(zmq.BACKLOG, LISTEN_BACKLOG)
        self.socket.setsockopt(zmq.SNDHWM, _HWM)
        self.socket.setsockopt(zmq.RCVHWM, _HWM)
        self.socket.setsockopt(zmq.MAXMSGSIZE, max(HARD_FRAME_CAP, max_frame_bytes * 2))
        if _ipv6(address):
            self.socket.setsockopt(zmq.IPV6, 1)
        try:
            self.socket.bind(normalize_address(address))
        except zmq.ZMQError as exc:
            self.socket.close(linger=0)
            raise ConfigError(
                f"cannot listen on {address}: {exc.strerror} "
                "(is another master running there? choose --ip/--port)"
            ) from None
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def recv(self) -> tuple[bytes, list[bytes]]:
        """One multipart message: the peer identity and its remaining frames."""
        parts = self.socket.recv_multipart(copy=True)
        return parts[0], parts[1:]

    def recv_nowait(self) -> tuple[bytes, list[bytes], str | None]:
        """Like ``recv`` but raises ``zmq.Again`` when nothing is queued; the third
        item is the sender's ZAP ``User-Id`` (None on a socket without keys)."""
        if not self.secure:
            # Part by part: recv_multipart's generality cost 2.4 us a message against
            # 0.9 here (a ROUTER's message is the sender's identity and at least one
            # part; all its parts have arrived once the first can be read).
            sock = self.socket
            identity = sock.recv(_NOBLOCK)
            parts = [sock.recv()]
            while sock.getsockopt(_RCVMORE):
                parts.append(sock.recv())
            return identity, parts, None
        frames = self.socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
        try:
            user = frames[-1].get("User-Id")
        except zmq.ZMQError:  # no ZAP verdict on this connection: nobody vouched for it
            user = None
        return frames[0].bytes, [f.bytes for f in frames[1:]], str(user) if user else ""

    def send(self, identity: bytes, frame: bytes, track: bool = False) -> None:
        """``track``: count the frame in :meth:`unsent_bytes` whatever its size (replies
        whose size the peer chooses); frames of TRACKED_BYTES or more always are."""
        try:
            if not track and len(frame) < TRACKED_BYTES:
                # Two plain sends with int flags: send_multipart's enum arithmetic was a
                # fifth of the cost of a heartbeat. A ROUTER never blocks (it drops what
                # a full or unknown peer cannot take), so the second part always follows.
                self.socket.send(identity, _MORE)
                self.socket.send(frame, _NOBLOCK)
                return
            tracker = self.socket.send_multipart([identity, frame], flags=zmq.NOBLOCK,
                                                 copy=False, track=True)
        except zmq.Again:
            return  # peer not reading: it will be declared gone by heartbeats
        if tracker is not None:
            self._tracked.setdefault(identity, deque()).append((tracker, len(frame)))

    def unsent_bytes(self, identity: bytes) -> int:
        """Bytes of large replies to ``identity`` that ZeroMQ still holds: a peer that
        does not read lets them pile up in this process, so the master caps them."""
        pending = self._tracked.get(identity)
        if not pending:
            return 0
        while pending and pending[0][0].done:
            pending.popleft()
        if not pending:
            del self._tracked[identity]
            return 0
        return sum(size for tracker, size in pending if not tracker.done)

    def sweep(self) -> None:
        """Forget peers whose tracked replies were all handed over (each connection of
        a CLI command is a new peer: their entries must not pile up)."""
        for identity in [i for i, pending in self._tracked.items()
                         if all(tracker.done for tracker, _ in pending)]:
            del self._tracked[identity]

    def close(self) -> None:
        self.socket.close(linger=0)


class ClientSocket:
    """A DEALER connected to the master; ``reconnect`` starts over with a new identity."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], address: str,
                 keys: ClientKeys | None = None) -> None:
        self.context = context
        self.address = normalize_address(address)
        self.keys = keys
        self._monitor: zmq.Socket[bytes] | None = None
        #: why the last handshake failed ("" while none has)
        self._auth_problem = ""
        #: handshakes failed since the last one that succeeded
        self._failed_handshakes = 0
        self.socket = self._open()
        #: the highest master epoch heard; anything from a lower one is a deposed leader
        self.max_epoch = 0
        self.ignored_stale = 0

    def _open(self) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, _HWM)
        sock.setsockopt(zmq.RCVHWM, _HWM)
        sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        sock.setsockopt(zmq.ROUTING_ID, f"{os.getpid()}-{uuid.uuid4().hex[:12]}".encode())
        if _ipv6(self.address):
            sock.setsockopt(zmq.IPV6, 1)
        if self.keys is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, self.keys.master_public)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.own.public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.keys.own.secret)
        self._monitor = sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        sock.connect(self.address)
        return sock

    def auth_problem(self) -> str:
        """Why the master's handshake failed, in words a user can act on ("" if none).

        ZeroMQ retries a refused handshake quietly forever; callers that wait for the
        master ask this so that a wrong key is an error, not a hang.
        """
        if self._monitor is None:
            return ""
        while True:
            try:
                parts = self._monitor.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return self._auth_problem
            event = zmq.utils.monitor.parse_monitor_message(parts)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._auth_problem = ""
                self._failed_handshakes = 0
                continue
            self._failed_handshakes += 1
            if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL \
                    and self._failed_handshakes < HANDSHAKES_BEFORE_BLAME:
                # A connection that dropped during the greeting looks the same: only a
                # failure that keeps recurring is a mismatch of keys.
                continue
            if self.keys is None:
                self._auth_problem = ("the master requires keys: give this client's key "
                                      "(--key or MESOS_ZMQ_KEY) and the masters' public key "
                                      "(--master-key or MESOS_ZMQ_MASTER_KEY)")
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._auth_problem = ("the master did not accept this key: its public key "
                                      "is not in the master's credentials file")
            else:
                self._auth_problem = ("the CurveZMQ handshake with the master failed: is "
                                      "the master key pinned here (--master-key) the "
                                      "masters' public key, and does the master use keys?")

    def _close_monitor(self) -> None:
        if self._monitor is not None:
            self.socket.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None

    def reconnect(self, address: str | None = None) -> None:
        """Drop the old socket (and anything queued on it) and connect afresh."""
        self._close_monitor()
        self.socket.close(linger=0)
        if address is not None:
            self.address = normalize_address(address)
        self.socket = self._open()

    def send(self, frame: bytes) -> None:
        try:
            self.socket.send(frame, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # master unreachable and queue full: retries and heartbeats recover

    def send_all(self, frames: list[bytes]) -> None:
        """Encoded messages, in order, in as few frames as batches allow (what one turn
        of a client's loop has to say: a framework's acknowledgements of many updates)."""
        for frame in batches(frames):
            self.send(frame)

    def recv(self) -> list[bytes]:
        return self.socket.recv_multipart(copy=True)

    def receive_all(self, limit: int = 1000) -> Iterator[Envelope]:
        """Decode whatever is queued without blocking: no further frame is read once
        ``limit`` messages were (a batch's items each count), so that a caller with a
        backlog gets back to its loop, and sends what it has to say, every so often.

        A frame that does not decode is logged and skipped: a confused or hostile peer
        must not stop a client from hearing the rest.
        """
        read = 0
        while read < limit:
            try:
                frames = self.socket.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            read += 1
            for frame in frames:
                try:
                    items = decode_frame(frame)
                except ProtocolError as exc:
                    log.warning("undecodable frame from master", code=exc.code,
                                error=exc.message[:200])
                    continue
                read += len(items) - 1
                for envelope in items:
                    if isinstance(envelope, Refused):
                        log.warning("undecodable message from master",
                                    code=envelope.error.code,
                                    error=envelope.error.message[:200])
                        continue
                    if envelope.epoch:
                        if envelope.epoch > MAX_EPOCH:
                            # Epochs are ZooKeeper versions (32-bit): a larger one is
                            # forged, and believing it would deafen us to the real
                            # master for good.
                            log.warning("ignored a message with an impossible epoch",
                                        epoch=envelope.epoch)
                            self.ignored_stale += 1
                            continue
                        if envelope.epoch < self.max_epoch:
                            # A deposed leader still talking: nothing it says counts.
                            self.ignored_stale += 1
                            continue
                        self.max_epoch = envelope.epoch
                    yield envelope

    def poll(self, timeout_ms: int) -> bool:
        return bool(self.socket.poll(timeout_ms, zmq.POLLIN))

    def close(self, linger_ms: int = 0) -> None:
        """``linger_ms``: how long queued messages (a last word) may still go out."""
        self._close_monitor()
        self.socket.close(linger=linger_ms)

"""Replicated masters: elect a leader in ZooKeeper, replicate the log there.

A master started with ``--zk`` is a standby until it wins the election. While it
waits it keeps a hot copy of the state by tailing the log, so taking over is: win,
claim a new epoch (fencing any old leader's writes), read the last few entries, bind
the socket, publish the leader record, serve.

kazoo does not stop a leader whose ZooKeeper session is in doubt, so the master
watches the connection itself: SUSPENDED pauses handling and committing until the
connection is back; LOST (the session expired: someone else may lead) ends the
process, and its supervisor (systemd) starts it again as a standby. A write refused
because the epoch moved (:class:`~mesos_zmq.master.zk_log.LogFenced`) ends it too.
SIGTERM withdraws from the election at once, so a standby takes over without waiting
for the session to expire.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
import uuid
from types import FrameType

import structlog
from kazoo.client import KazooState

from mesos_zmq import __version__
from mesos_zmq.detector import parse_master_url, zk_client
from mesos_zmq.errors import ConfigError, LogError
from mesos_zmq.master.contender import Contender
from mesos_zmq.master.server import MasterConfig, MasterServer, state_from
from mesos_zmq.master.zk_log import LogFenced, ZooKeeperLog

log = structlog.get_logger()

EXIT_SESSION_LOST = 3
EXIT_FENCED = 4
TAIL_EVERY = 0.2


def advertised_address(config: MasterConfig) -> str:
    host = config.ip
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"tcp://{host}:{config.port}"


def run_master_ha(config: MasterConfig) -> int:
    """Run one replicated master until a signal, loss of leadership or fencing."""
    url = parse_master_url(config.zk)
    if url.kind != "zk":
        raise ConfigError("--zk must be a zk://host:port,.../path URL")
    if config.port == 0:
        raise ConfigError("with --zk the master needs a fixed --port to advertise")
    client = zk_client(url, config.zk_session_timeout)
    member_id = config.master_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    stop = threading.Event()
    lost = threading.Event()
    suspended = threading.Event()

    def on_state(state: str) -> None:
        if state == KazooState.LOST:
            lost.set()
        elif state == KazooState.SUSPENDED:
            suspended.set()
        else:
            suspended.clear()

    client.add_listener(on_state)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("master stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    zk_log = ZooKeeperLog(client, url.path)
    contender = Contender(client, url.path, member_id)
    code = 0
    try:
        recovered = zk_log.recover()
        state = state_from(recovered.snapshot, recovered.records)
        contender.join()
        won = threading.Event()

        def campaign() -> None:
            try:
                if contender.wait_for_leadership(stop):
                    won.set()
            except Exception:  # the session went away under us
                lost.set()

        threading.Thread(target=campaign, name="election", daemon=True).start()
        log.info("standing by", master_id=member_id, zk=str(url))
        while not (won.is_set() or stop.is_set() or lost.is_set()):
            for record in zk_log.tail():  # keep the standby's copy hot
                state.apply(record)
            won.wait(TAIL_EVERY)
        if stop.is_set() or lost.is_set():
            return EXIT_SESSION_LOST if lost.is_set() else 0
        epoch = zk_log.claim_epoch()
        for record in zk_log.tail():
            state.apply(record)
        log.info("elected leader", master_id=member_id, epoch=epoch)

        def guard() -> str | None:
            if stop.is_set() or lost.is_set():
                return "exit"
            return "pause" if suspended.is_set() else None

        config.master_id = member_id
        server = MasterServer(config, replicated_log=zk_log, state=state, guard=guard,
                              epoch=epoch)
        contender.publish({
            "id": member_id,
            "address": advertised_address(config),
            "epoch": epoch,
            "version": __version__,
            "elected_at": time.time(),
        })
        server.serve_forever()
        if lost.is_set():
            log.error("ZooKeeper session lost: stepping down")
            code = EXIT_SESSION_LOST
    except LogFenced as exc:
        log.error("fenced by a newer leader: stepping down", error=str(exc))
        code = EXIT_FENCED
    except LogError as exc:
        log.error("replicated log failed: stepping down", error=str(exc))
        code = EXIT_SESSION_LOST
    finally:
        try:
            contender.withdraw()
        except Exception:
            pass
        client.stop()
        client.close()
    return code

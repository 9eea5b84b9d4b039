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
import threading
import time
from types import FrameType
from typing import Any

import structlog
from kazoo.client import KazooState
from kazoo.exceptions import NoAuthError, NoNodeError

from mesos_zmq import __version__
from mesos_zmq.collector import tune_collector
from mesos_zmq.detector import ELECTION_NODE, parse_master_url, zk_client
from mesos_zmq.errors import ConfigError, LogError
from mesos_zmq.master.contender import Contender, LeadershipLost
from mesos_zmq.master.server import (
    MasterConfig,
    MasterServer,
    advertised_address,
    building_long_lived,
    raise_descriptor_limit,
    stable_master_id,
)
from mesos_zmq.master.state import MasterState, replay, state_from
from mesos_zmq.master.zk_log import LogFenced, ZooKeeperLog
from mesos_zmq.zk_auth import ZkCredentials, load_zk_credentials

log = structlog.get_logger()

EXIT_SESSION_LOST = 3
EXIT_FENCED = 4
TAIL_EVERY = 0.2


def catch_up(zk_log: ZooKeeperLog, state: MasterState) -> MasterState:
    """Apply what the log gained; rebuild from the snapshot if we fell behind compaction."""
    tail = zk_log.tail()
    if tail.snapshot is not None:
        log.info("fell behind log compaction: reloading the snapshot")
        return state_from(tail.snapshot, tail.records, state.history)
    replay(state, tail.records)
    return state


class LeaderWatch:
    """The serving leader's doubts about itself, asked once per loop turn.

    A loop turn normally takes milliseconds. A gap longer than a third of the session
    timeout means this process was paused (SIGSTOP, swap, a long GC): ZooKeeper may
    have expired its session and elected someone else while it slept, and kazoo may
    not have said so yet. Before handling anything more the leader proves, with a
    round trip, that the epoch is still its own and its election node still leads;
    otherwise it steps down without sending a word. Once a second it also checks that
    its leader record is there and its own (republishing a record that went missing).
    """

    CHECK_EVERY = 1.0

    def __init__(self, contender: Contender, zk_log: ZooKeeperLog, epoch: int,
                 session_timeout: float) -> None:
        self.contender = contender
        self.zk_log = zk_log
        self.epoch = epoch
        self.stall = session_timeout / 3
        self.last_turn = time.monotonic()
        self.last_check = self.last_turn
        #: a stall was seen and leadership is not proven since
        self.in_doubt = False
        self.deposed = ""

    def verdict(self, now: float) -> str | None:
        """None: serve this turn; "pause": handle nothing yet; "exit": step down."""
        if now - self.last_turn > self.stall:
            self.in_doubt = True
        self.last_turn = now
        if self.deposed:
            return "exit"
        if not self.in_doubt and now - self.last_check < self.CHECK_EVERY:
            return None
        self.last_check = now
        try:
            if self.zk_log.current_epoch() != self.epoch:
                self.deposed = "the epoch moved: a newer master leads"
            elif not self.contender.check_published():
                self.deposed = "our election node or leader record is not ours any more"
        except Exception as exc:
            # No answer (connection in doubt): serve nothing until there is one. A lost
            # session shows up as LOST, or as a changed session on the next try.
            log.warning("cannot confirm leadership yet", error=repr(exc))
            return "pause"
        if self.deposed:
            log.error("leadership lost", why=self.deposed)
            return "exit"
        self.in_doubt = False
        self.last_turn = time.monotonic()
        return None


class StandbyList:
    """The other masters, listed from ZooKeeper every few seconds by a thread, so that
    ``state`` shows them without a ZooKeeper round trip on the leader's loop."""

    def __init__(self, contender: Contender, stop: threading.Event,
                 every: float = 5.0) -> None:
        self._contender = contender
        self._stop = stop
        self._every = every
        self._members: list[dict[str, Any]] = []
        threading.Thread(target=self._run, name="standbys", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._members = self._contender.others()
            except Exception:  # ZooKeeper unreachable: keep the last list
                pass
            self._stop.wait(self._every)

    def get(self) -> list[dict[str, Any]]:
        return list(self._members)


def secure_tree(client: Any, path: str, credentials: ZkCredentials) -> None:
    """Give every node of a tree made before credentials the masters' ACL: the cluster
    nodes, and each log entry and snapshot chunk under them (an entry anyone may write
    would be replayed by the next leader). Nodes created from now on get it by default.
    The leader record is left to its owner, which republishes it readable by all."""
    acl = credentials.masters_acl()
    nodes = [path, *(f"{path}/{sub}" for sub in ("epoch", "log", "snapshots", "snapshot",
                                                  ELECTION_NODE))]
    for node in nodes:
        try:
            client.set_acls(node, acl)
        except NoNodeError:
            continue
        except NoAuthError:
            raise ConfigError(f"ZooKeeper node {node} belongs to other credentials than "
                              "--zk-credentials") from None
        if node.rsplit("/", 1)[-1] in ("log", "snapshots", ELECTION_NODE):
            nodes += [f"{node}/{child}" for child in _children(client, node)]
            if node.endswith("/snapshots"):
                for snapshot in _children(client, node):
                    nodes += [f"{node}/{snapshot}/{c}"
                              for c in _children(client, f"{node}/{snapshot}")]


def _children(client: Any, node: str) -> list[str]:
    try:
        return list(client.get_children(node))
    except NoNodeError:
        return []


def run_master_ha(config: MasterConfig) -> int:
    """Run one replicated master until a signal, loss of leadership or fencing."""
    raise_descriptor_limit()
    tune_collector()  # a standby replays the leader's churn as it comes
    url = parse_master_url(config.zk)
    if url.kind != "zk":
        raise ConfigError("--zk must be a zk://host:port,.../path URL")
    if config.port == 0:
        raise ConfigError("with --zk the master needs a fixed --port to advertise")
    credentials = None
    if config.zk_credentials:
        credentials = load_zk_credentials(config.zk_credentials)
    elif url.auth:
        log.warning("ZooKeeper credentials in the zk:// URL show in ps to every user of "
                    "this host: put them in a file given as --zk-credentials")
        credentials = ZkCredentials.parse(url.auth, "the zk:// URL")
    client = zk_client(url, config.zk_session_timeout, credentials)
    if credentials is not None:
        secure_tree(client, url.path, credentials)
    member_id = config.master_id or stable_master_id(config.work_dir)
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
    # SIGHUP re-reads the credentials of a serving leader (a standby reads them when it
    # takes over); it must not end the process as its default action would.
    serving: list[MasterServer] = []

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        for server in serving:
            server.request_reload()

    signal.signal(signal.SIGHUP, on_hangup)

    zk_log = ZooKeeperLog(client, url.path)
    contender = Contender(client, url.path, member_id, advertised_address(config))
    if credentials is not None:
        contender.public_acl = credentials.public_acl()
    code = 0
    try:
        started = time.monotonic()
        recovered = zk_log.recover()
        state = state_from(recovered.snapshot, recovered.records, config.history)
        log.info("log recovered", records=len(recovered.records),
                 snapshot=recovered.snapshot is not None,
                 seconds=round(time.monotonic() - started, 3))
        contender.join()
        won = threading.Event()
        won_at: list[float] = []

        def campaign() -> None:
            try:
                if contender.wait_for_leadership(stop):
                    won_at.append(time.monotonic())
                    won.set()
            except Exception:  # the session went away under us
                lost.set()

        threading.Thread(target=campaign, name="election", daemon=True).start()
        log.info("standing by", master_id=member_id, zk=str(url))
        while not (won.is_set() or stop.is_set() or lost.is_set()):
            state = catch_up(zk_log, state)  # keep the standby's copy hot
            won.wait(TAIL_EVERY)
        if stop.is_set() or lost.is_set():
            return EXIT_SESSION_LOST if lost.is_set() else 0
        noticed = time.monotonic()
        epoch = zk_log.claim_epoch()
        claimed = time.monotonic()
        state = catch_up(zk_log, state)
        caught_up = time.monotonic()
        log.info("elected leader", master_id=member_id, epoch=epoch)
        watch = LeaderWatch(contender, zk_log, epoch, config.zk_session_timeout)

        def guard() -> str | None:
            if stop.is_set() or lost.is_set():
                return "exit"
            if suspended.is_set():
                return "pause"
            return watch.verdict(time.monotonic())

        config.master_id = member_id
        standbys = StandbyList(contender, stop)
        published_at: list[float] = []
        published_cpu: list[float] = []

        def publish(address: str) -> None:
            # As soon as the socket listens, before the core is built: agents and
            # frameworks connect and send meanwhile (their messages wait in ZeroMQ).
            contender.publish({
                "id": member_id,
                "address": advertised_address(config),
                "epoch": epoch,
                "version": __version__,
                "elected_at": time.time(),
            })
            published_at.append(time.monotonic())
            published_cpu.append(time.thread_time())

        with building_long_lived():
            server = MasterServer(config, replicated_log=zk_log, state=state, guard=guard,
                                  epoch=epoch, standbys=standbys.get, on_listening=publish)
        serving.append(server)
        built = time.monotonic()
        built_cpu = time.thread_time()
        published = published_at[0]
        # Where a takeover's time goes (milliseconds per step, from the moment the
        # election thread saw this member lead).
        won_time = won_at[0] if won_at else noticed
        log.info("leader record published", epoch=epoch,
                 noticed_ms=round((noticed - won_time) * 1000, 1),
                 claim_ms=round((claimed - noticed) * 1000, 1),
                 catch_up_ms=round((caught_up - claimed) * 1000, 1),
                 listen_and_publish_ms=round((published - caught_up) * 1000, 1),
                 core_ms=round((built - published) * 1000, 1),
                 # this thread's CPU (user and system) over core_ms: the core and the
                 # rest of the server's set-up; the difference is time spent waiting for
                 # a core, the GIL or I/O
                 core_cpu_ms=round((built_cpu - published_cpu[0]) * 1000, 1),
                 total_ms=round((built - won_time) * 1000, 1))
        server.serve_forever()
        if lost.is_set():
            log.error("ZooKeeper session lost: stepping down")
            code = EXIT_SESSION_LOST
        elif watch.deposed:
            log.error("no longer the leader: stepping down", why=watch.deposed)
            code = EXIT_FENCED
        elif server.exit_code:
            code = server.exit_code
    except (LogFenced, LeadershipLost) as exc:
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

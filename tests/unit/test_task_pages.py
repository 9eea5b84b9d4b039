"""Task listings a page at a time (issue 13, "reads"): ``get_tasks`` and a capped
``state`` in the master core, and the CLI's ``tasks``/``state`` that never need one
answer larger than a page."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from mesos_zmq.auth.principal import Principal
from mesos_zmq.cli import client as client_mod
from mesos_zmq.cli import main as cli_main
from mesos_zmq.protocol import (
    MAX_TASKS_PAGE,
    Accept,
    Error,
    GetState,
    GetTasks,
    Message,
    RegisterAgent,
    State,
    StatusUpdate,
    Tasks,
    TaskStatus,
    decode,
    encode,
)
from tests.unit.test_acls import ALICE, ANALYTICS, BOB, OTHER, harness, subscribe
from tests.unit.test_master_core import AGENT, FW, Harness, task
from tests.unit.test_master_principals import refused, send

AGENT_P = Principal("agent", "agent")


def ten_tasks(h: Harness, peer: bytes = FW, prefix: str = "t", count: int = 10,
              finished: int = 4, now: float = 0.0) -> tuple[str, str]:
    """A framework with ``count`` tasks launched in order, the first ``finished`` of
    them finished in order afterwards."""
    agent_id = h.register_agent(resources="cpus:64;mem:65536", now=now)
    fid = h.subscribe(peer=peer, now=now)
    (offer,) = h.offers_to(peer, now)
    tasks = [task(f"{prefix}{i}", agent_id, "cpus:1;mem:16") for i in range(count)]
    assert h.send(peer, Accept(framework_id=fid, offer_ids=[offer.offer_id], tasks=tasks,
                               refuse_seconds=0), now) == []
    for i in range(finished):
        finish(h, fid, agent_id, f"{prefix}{i}", now + 1.0 + i)
    return agent_id, fid


def finish(h: Harness, fid: str, agent_id: str, task_id: str, now: float) -> None:
    status = TaskStatus(task_id=task_id, framework_id=fid, agent_id=agent_id,
                        state="TASK_FINISHED", uuid=f"u-{task_id}", timestamp=now,
                        exit_code=0)
    h.send(AGENT, StatusUpdate(status=status), now)


def page(h: Harness, who: Principal | None = None, **fields: Any) -> tuple[list[str], int]:
    (reply,) = send(h, b"cli", GetTasks(**fields), who, now=20.0)
    assert isinstance(reply, Tasks), reply
    return [t["id"] for t in reply.tasks], reply.total


def test_pages_cut_the_listing_newest_first_with_its_total() -> None:
    h = Harness()
    ten_tasks(h)
    newest_first = [f"t{i}" for i in (9, 8, 7, 6, 5, 4, 3, 2, 1, 0)]
    assert page(h) == (newest_first, 10)  # Mesos's defaults: limit 100, desc
    assert page(h, limit=3) == (newest_first[:3], 10)
    assert page(h, limit=3, offset=3) == (newest_first[3:6], 10)
    assert page(h, limit=3, offset=9) == (["t0"], 10)
    assert page(h, limit=3, offset=10) == ([], 10)
    assert page(h, limit=3, offset=10**15) == ([], 10)  # past the end: empty, no error
    assert page(h, limit=0) == ([], 10)  # only the total
    assert page(h, order="asc", limit=6) == (["t0", "t1", "t2", "t3", "t4", "t5"], 10)
    assert page(h, which="active") == (newest_first[:6], 6)
    assert page(h, which="completed") == (newest_first[6:], 4)
    assert page(h, which="completed", order="asc", offset=1, limit=2) == (["t1", "t2"], 4)


def test_a_page_holds_views_as_state_shows_them() -> None:
    h = Harness()
    agent_id, fid = ten_tasks(h, count=2, finished=1)
    (reply,) = h.send(b"cli", GetTasks(), 20.0)
    assert isinstance(reply, Tasks)
    (state,) = h.send(b"cli", GetState(), 20.0)
    assert isinstance(state, State)
    by_id = {t["id"]: t for t in state.state["tasks"]}
    assert reply.tasks == [by_id["t1"], by_id["t0"]]
    assert reply.tasks[1]["state"] == "TASK_FINISHED" and reply.tasks[1]["exit_code"] == 0
    assert {t["framework_id"] for t in reply.tasks} == {fid}
    assert {t["agent_id"] for t in reply.tasks} == {agent_id}


def test_one_frameworks_tasks() -> None:
    h = Harness()
    _, first = ten_tasks(h, count=3, finished=1)
    fid2 = h.subscribe(peer=b"fw2")
    (offer,) = h.offers_to(b"fw2", 10.0)
    agent_id = offer.agent_id
    h.send(b"fw2", Accept(framework_id=fid2, offer_ids=[offer.offer_id],
                          tasks=[task("u0", agent_id, "cpus:1;mem:16")], refuse_seconds=0),
           10.0)
    assert page(h, framework_id=fid2) == (["u0"], 1)
    assert page(h, framework_id=first) == (["t2", "t1", "t0"], 3)
    assert page(h, framework_id=first, which="completed") == (["t0"], 1)
    assert page(h, framework_id="no-such-framework") == ([], 0)
    assert page(h)[1] == 4


def test_a_capped_state_shows_the_newest_tasks_and_counts_them_all() -> None:
    h = Harness()
    ten_tasks(h)
    (capped,) = h.send(b"cli", GetState(tasks_limit=3), 20.0)
    assert isinstance(capped, State)
    assert [t["id"] for t in capped.state["tasks"]] == ["t9", "t8", "t7"]
    assert capped.state["task_counts"] == {"active": 6, "completed": 4}
    (none,) = h.send(b"cli", GetState(tasks_limit=0), 20.0)
    assert none.state["tasks"] == [] and none.state["task_counts"]["completed"] == 4
    assert [f["active_tasks"] for f in none.state["frameworks"]] == [6]
    # Without a cap: every task, active ones then finished ones, as before.
    (whole,) = h.send(b"cli", GetState(), 20.0)
    assert [t["id"] for t in whole.state["tasks"]] == [
        "t4", "t5", "t6", "t7", "t8", "t9", "t0", "t1", "t2", "t3"]


@pytest.mark.parametrize("msg,needle", [
    (GetTasks(limit=-1), "limit must be within 0..1000, got -1"),
    (GetTasks(limit=MAX_TASKS_PAGE + 1), "limit must be within 0..1000, got 1001"),
    (GetTasks(offset=-5), "offset must be at least 0, got -5"),
    (GetTasks(order="up"), "order must be one of asc, desc, not 'up'"),
    (GetTasks(which="running"), "which must be one of all, active, completed, not 'running'"),
    (GetState(tasks_limit=-1), "tasks_limit must be within 0..1000, got -1"),
    (GetState(tasks_limit=5000), "page through more tasks with get_tasks"),
])
def test_bad_page_requests_are_refused_as_invalid(msg: Message, needle: str) -> None:
    h = Harness()
    ten_tasks(h, count=2)
    before = h.core.state.snapshot()
    (reply,) = h.send(b"cli", msg, 20.0, rid="r")
    assert isinstance(reply, Error) and reply.code == "invalid", reply
    assert needle in reply.message and reply.in_reply_to == "r"
    assert h.core.state.snapshot() == before


def test_who_may_ask_for_pages_is_who_may_ask_for_the_state() -> None:
    h = Harness()
    refused(send(h, b"a", GetTasks(), AGENT_P))
    assert isinstance(send(h, b"o", GetTasks(), ALICE)[0], Tasks)
    assert isinstance(send(h, b"f", GetTasks(), ANALYTICS)[0], Tasks)


def test_pages_and_totals_leave_out_what_the_reader_may_not_see() -> None:
    h = harness()
    (reg,) = send(h, b"ag", RegisterAgent(hostname="h", resources="cpus:8;mem:1024"), AGENT_P)
    fids = {}
    for when, (who, role, peer) in enumerate(((ANALYTICS, "analytics", b"fa"),
                                              (OTHER, "other", b"fo"))):
        fids[who.name] = subscribe(h, peer, who, role).framework_id
        offers = [m for p, m, _ in h.tick(5.0 * (when + 1)) if p == peer and hasattr(m, "offers")]
        offer = offers[0].offers[0]
        ids = [f"{who.name}-{i}" for i in range(3)]
        out = send(h, peer, Accept(framework_id=fids[who.name], offer_ids=[offer.offer_id],
                                   tasks=[task(t, reg.agent_id, "cpus:1;mem:64") for t in ids]),
                   who)
        assert out == [], out
    # view_tasks: anyone sees analytics' tasks, bob none, nobody other's
    assert page(h, ALICE) == (["analytics-2", "analytics-1", "analytics-0"], 3)
    assert page(h, ALICE, limit=1, offset=1) == (["analytics-1"], 3)
    assert page(h, ALICE, framework_id=fids["other"]) == ([], 0)
    assert page(h, BOB) == ([], 0)
    assert page(h, OTHER, which="active") == (["analytics-2", "analytics-1", "analytics-0"], 3)
    # ... exactly as the state (capped or not) shows them
    for limit in (None, 2):
        (state,) = send(h, b"reader", GetState(tasks_limit=limit), ALICE)
        assert isinstance(state, State)
        shown = [t["id"] for t in state.state["tasks"]]
        assert set(shown) <= {"analytics-0", "analytics-1", "analytics-2"}
        assert len(shown) == (3 if limit is None else 2)
        assert state.state["task_counts"] == {"active": 3, "completed": 0}
    (state,) = send(h, b"reader", GetState(tasks_limit=10), BOB)
    assert state.state["tasks"] == [] and state.state["task_counts"] == {
        "active": 0, "completed": 0}


# --------------------------------------------------------------------------- the CLI


def fake_tasks(count: int) -> list[dict[str, Any]]:
    """A listing, newest first, of ``count`` finished tasks."""
    return [{"id": f"t{i}", "name": "", "framework_id": "F1", "agent_id": "A1",
             "state": "TASK_FINISHED", "exit_code": 0, "message": "", "reason": "",
             "resources": "cpus:0.1", "role": "*", "updated_at": 1.8e9 + i}
            for i in reversed(range(count))]


class FakeMaster:
    """Answers the CLI's requests from a listing, remembering what was asked."""

    def __init__(self, count: int, pages: bool = True) -> None:
        self.listing = fake_tasks(count)
        self.pages = pages
        self.asked: list[Message] = []

    def request(self, master: str, msg: Message, timeout: float = 5.0) -> Message:
        self.asked.append(msg)
        if isinstance(msg, GetTasks):
            if not self.pages:
                raise client_mod.RequestRefused("unknown_type", "unknown message type")
            rows = self.listing[msg.offset:msg.offset + msg.limit]
            return Tasks(tasks=rows, total=len(self.listing))
        assert isinstance(msg, GetState)
        if self.pages:
            tasks = self.listing if msg.tasks_limit is None else self.listing[:msg.tasks_limit]
        else:  # every task, finished ones in the order they ended
            tasks = self.listing[::-1]
        state: dict[str, Any] = {"master": {"id": "m1"}, "agents": [], "frameworks": [],
                                 "tasks": tasks, "roles": []}
        if self.pages:
            state["task_counts"] = {"active": 0, "completed": len(self.listing)}
        return State(state=state)


def run_cli(monkeypatch: pytest.MonkeyPatch, fake: FakeMaster, *args: str) -> Any:
    monkeypatch.setattr(cli_main, "request", fake.request)
    return CliRunner().invoke(cli_main.cli, list(args))


def test_tasks_shows_one_page_and_says_how_to_see_more(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMaster(250)
    result = run_cli(monkeypatch, fake, "tasks", "--json")
    assert result.exit_code == 0, result.output
    assert [t["id"] for t in json.loads(result.stdout)] == [f"t{i}" for i in range(249, 149, -1)]
    assert "tasks 1-100 of 250 shown (newest first)" in result.stderr
    assert "--offset 100" in result.stderr and "--all" in result.stderr
    (asked,) = fake.asked
    assert asked == GetTasks(limit=100, offset=0, order="desc", framework_id="", which="all")
    result = run_cli(monkeypatch, fake, "tasks", "--limit", "2", "--offset", "248",
                     "--order", "asc", "--completed", "--framework", "F1")
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["ID", "t1", "t0"]
    assert result.stderr == ""  # the end of the listing: nothing more to say
    assert fake.asked[-1] == GetTasks(limit=2, offset=248, order="asc", framework_id="F1",
                                      which="completed")
    result = run_cli(monkeypatch, fake, "tasks", "--offset", "400")
    assert result.exit_code == 0 and "no tasks from offset 400: there are 250" in result.stderr
    for bad in (["--limit", "0"], ["--limit", "1001"], ["--offset", "-1"],
                ["--active", "--completed"]):
        assert run_cli(monkeypatch, fake, "tasks", *bad).exit_code == 2, bad


def test_tasks_all_reads_every_page_and_no_answer_is_larger_than_a_page(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMaster(2500)
    result = run_cli(monkeypatch, fake, "tasks", "--all", "--json")
    assert result.exit_code == 0, result.output
    assert [t["id"] for t in json.loads(result.stdout)] == [f"t{i}" for i in range(2499, -1, -1)]
    assert result.stderr == ""
    assert [(m.limit, m.offset) for m in fake.asked if isinstance(m, GetTasks)] == [
        (1000, 0), (1000, 1000), (1000, 2000)]


def test_tasks_from_a_master_older_than_pages_are_cut_from_its_state(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMaster(5, pages=False)
    result = run_cli(monkeypatch, fake, "tasks", "--limit", "2", "--offset", "1", "--json")
    assert result.exit_code == 0, result.output
    assert [t["id"] for t in json.loads(result.stdout)] == ["t3", "t2"]
    assert "tasks 2-3 of 5 shown" in result.stderr
    assert fake.asked[-1] == GetState(tasks_limit=None)


def test_state_asks_for_the_tasks_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMaster(300)
    result = run_cli(monkeypatch, fake, "state")
    assert result.exit_code == 0, result.output
    assert "tasks      0 active, 300 completed" in result.stdout
    assert fake.asked[-1] == GetState(tasks_limit=0)
    result = run_cli(monkeypatch, fake, "state", "--json")
    assert len(json.loads(result.stdout)["tasks"]) == 100
    assert fake.asked[-1] == GetState(tasks_limit=100)
    result = run_cli(monkeypatch, fake, "state", "--json", "--tasks-limit", "7")
    assert len(json.loads(result.stdout)["tasks"]) == 7
    result = run_cli(monkeypatch, fake, "state", "--json", "--all-tasks")
    assert len(json.loads(result.stdout)["tasks"]) == 300
    assert fake.asked[-1] == GetState(tasks_limit=None)
    result = run_cli(monkeypatch, FakeMaster(4, pages=False), "state")  # an older master
    assert "tasks      0 active, 4 completed" in result.stdout
    run_cli(monkeypatch, fake, "agents")
    assert fake.asked[-1] == GetState(tasks_limit=0)  # agents need no tasks


class OversizedAnswer:
    """A client socket whose master answers with one large frame."""

    answer = State(state={"tasks": fake_tasks(200)})

    def __init__(self, context: Any, address: str, keys: Any = None) -> None:
        self.address = address
        self.rid = ""

    def send(self, frame: bytes) -> None:
        self.rid = decode(frame).request_id

    def poll(self, timeout_ms: int) -> bool:
        return True

    def auth_problem(self) -> str:
        return ""

    def recv(self) -> list[bytes]:
        return [encode(self.answer, self.rid)]

    def close(self) -> None:
        pass


def test_an_answer_too_large_is_said_not_waited_for(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(client_mod, "ClientSocket", OversizedAnswer)
    size = len(encode(OversizedAnswer.answer, "0" * 32))  # a request id is a uuid's hex
    with pytest.raises(client_mod.ReplyTooLarge) as info:
        client_mod.request("tcp://127.0.0.1:1", GetState(), timeout=0.5, keys=None,
                           max_bytes=size - 1)
    assert str(info.value).startswith(f"the master's answer is larger than {size - 1} bytes "
                                      f"({size}): use --limit/--offset")
    # the CLI reads larger answers than peers do, and says when one is larger still
    assert client_mod.MAX_REPLY_BYTES >= 16 * 4 * 1024 * 1024
    assert isinstance(client_mod.request("tcp://127.0.0.1:1", GetState(), keys=None), State)
    monkeypatch.setattr(client_mod, "MAX_REPLY_BYTES", size - 1)
    monkeypatch.setattr("sys.argv", ["mesos-zmq", "state", "--json"])
    with pytest.raises(SystemExit) as exited:
        cli_main.main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the master's answer is larger than") and "within" not in err

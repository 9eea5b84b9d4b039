"""The master's durable records are typed, and logs written before they were still
replay to the same state (issue 11).

``data/master_log_before_typed_records.json`` was written by the master as it was
before records became classes (every kind of record, from a scenario of agents,
tasks, quota, reservations, drains, filters, a lost agent and a torn-down framework),
with the state that code rebuilt from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mesos_zmq.master.records import (
    RECORD_TYPES,
    AgentAdded,
    TaskUpdated,
    record_from_plain,
    record_to_plain,
    stamped,
)
from mesos_zmq.master.state import MasterState, state_from

RECORDED = Path(__file__).parent / "data" / "master_log_before_typed_records.json"
#: record kinds added after the log was recorded (a cluster with keys writes them)
NEWER = {"owner_set", "scheduler_changed"}


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def test_an_old_log_replays_to_the_same_state() -> None:
    recorded = json.loads(RECORDED.read_text())
    records = recorded["records"]
    assert {r["op"] for r in records} == set(RECORD_TYPES) - NEWER  # every old kind
    for plain in records:
        assert record_to_plain(record_from_plain(plain)) == plain  # the format is unchanged
    assert as_json(state_from(None, records).snapshot()) == recorded["snapshot"]


@pytest.mark.parametrize("plain,needle", [
    ({"op": "no_such_op"}, "unknown state record op"),
    ({"agent_id": "a"}, "unknown state record op"),
    ({"op": "agent_added", "agent_id": "a"}, "bad agent_added record"),
    ({"op": "task_updated", "framework_id": "f", "task_id": "t", "state": 3},
     "bad task_updated record"),
])
def test_a_bad_record_is_refused_and_changes_nothing(plain: dict[str, Any],
                                                      needle: str) -> None:
    state = MasterState()
    before = state.snapshot()
    with pytest.raises(ValueError, match=needle):
        state.apply(record_from_plain(plain))
    assert state.snapshot() == before


def test_records_are_stamped_with_time_only_where_they_carry_one() -> None:
    added = AgentAdded(agent_id="a", hostname="h", resources="cpus:1")
    assert stamped(added, 5.0).time == 5.0
    updated = TaskUpdated(framework_id="f", task_id="t", state="TASK_RUNNING")
    assert record_to_plain(stamped(updated, 7.0))["time"] == 7.0
    from mesos_zmq.master.records import OfferRemoved

    removed = OfferRemoved(offer_id="o")
    assert stamped(removed, 5.0) is removed and "time" not in record_to_plain(removed)


def test_a_damaged_log_is_a_log_error_naming_the_record() -> None:
    from mesos_zmq.errors import LogError

    good = {"op": "agent_added", "agent_id": "a", "hostname": "h", "resources": "cpus:1"}
    with pytest.raises(LogError, match="record 1 of the log"):
        state_from(None, [good, {"op": "no_such_op"}])

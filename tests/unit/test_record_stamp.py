"""``stamped`` copies a record with its time set, by generated code rather than
``dataclasses.replace`` (every committed record is stamped): the copy must be the
record ``replace`` would have made, of the same class, and the original untouched."""

from __future__ import annotations

import dataclasses

import pytest

from mesos_zmq.master import records as r
from mesos_zmq.protocol import TaskInfo

TASK = TaskInfo(task_id="t1", agent_id="a1", resources="cpus:1", command="true")


@pytest.mark.parametrize("record", [
    r.TaskUpdated(framework_id="f1", task_id="t1", state="TASK_FAILED", exit_code=3,
                  message="boom", reason="REASON_COMMAND_EXECUTOR_FAILED"),
    r.TaskAdded(framework_id="f1", task=TASK, time=1.0),
    r.AgentAdded(agent_id="a1", hostname="h", resources="cpus:2", attributes="rack:1"),
])
def test_a_stamped_record_is_the_one_replace_would_make(record: object) -> None:
    copy = r.stamped(record, 1234.5)  # type: ignore[arg-type]
    assert copy == dataclasses.replace(record, time=1234.5)  # type: ignore[type-var]
    assert type(copy) is type(record)
    assert copy is not record and record.time != 1234.5  # type: ignore[attr-defined]
    assert r.record_from_plain(r.record_to_plain(copy)) == copy


def test_a_record_without_time_is_returned_as_it_is() -> None:
    record = r.OfferRemoved(offer_id="o1")
    assert r.stamped(record, 5.0) is record

"""docs/protocol.md cannot silently fall behind the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mesos_zmq import protocol

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
NESTED = [protocol.FrameworkInfo, protocol.TaskInfo, protocol.TaskStatus, protocol.Offer,
          protocol.HealthCheck, protocol.TaskUsage,
          protocol.Operation,
          protocol.TaskReport, protocol.ReconcileTask]


def test_every_message_type_is_documented() -> None:
    missing = [tag for tag in protocol.record_types() if f"`{tag}`" not in DOC]
    assert missing == []


def test_every_field_is_documented() -> None:
    missing = []
    for cls in [*protocol.record_types().values(), *NESTED]:
        for f in dataclasses.fields(cls):
            if f"`{f.name}`" not in DOC:
                missing.append(f"{cls.__name__}.{f.name}")
    assert missing == []


def test_every_error_code_is_documented() -> None:
    assert [c for c in protocol.ERROR_CODES if f"`{c}`" not in DOC] == []

"""An agent upgraded on a work dir written by the agent before its records were typed
(issue 11) recovers its tasks as that agent would have.

The literals below were produced by running the previous code, not this one: its core,
``checkpoint.batch_records``, ``TaskLog`` (with a compaction in the middle, as at
start-up), the supervisor's own event writer and ``cancel_unstarted``, on seven tasks
of two frameworks (one task id used by both); a few torn and foreign lines were then
appended by hand. The expected values are what that code's replay and recovery made of
them. They are the compatibility contract: never regenerate them with the current code.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from mesos_zmq.agent.checkpoint import (
    TaskCheckpoint,
    TaskLog,
    batch_records,
    events_path,
    replay,
)
from mesos_zmq.agent.core import AgentCore, Effects, RecoveredTask
from mesos_zmq.agent.events import (
    Exited,
    Failed,
    Health,
    OtherEvent,
    Started,
    Supervising,
    SupervisorEvent,
    decode_event,
    decode_record,
    encode_event,
    encode_line,
    record_json,
)
from mesos_zmq.agent.supervisor import load_events
from mesos_zmq.protocol import AgentRegistered, TaskInfo, TaskStatus, from_plain, to_plain
from mesos_zmq.resources import Resources

#: tasks.log as the previous agent wrote it (records, a compaction, records), then junk
TASKS_LOG = (
    b'{"k":"F1/web","launch":{"framework_id":"F1","task":{"task_id":"web","agent_id":"A1",'
    b'"resources":"cpus:1;mem:128;gpus:1;ports:[31000-31001]","name":"web server","command'
    b'":"python -m http.server $PORT","argv":[],"shell":true,"env":{"A":"b"},"kill_grace_p'
    b'eriod":5.0,"role":"prod","health_check":{"kind":"HTTP","command":"","port":8080,"pat'
    b'h":"/health","delay":0.0,"interval":5.0,"timeout":20.0,"grace_period":10.0,"consecut'
    b'ive_failures":3}},"container_id":"c-F1-web","gpus":["1"]}}\n'
    b'{"k":"F1/web","state":{"state":"TASK_RUNNING","exit_code":null,"healthy":null},"seq"'
    b':2}\n'
    b'{"k":"F2/web","launch":{"framework_id":"F2","task":{"task_id":"web","agent_id":"A1",'
    b'"resources":"cpus:0.5","name":"","command":"sleep 100","argv":[],"shell":true,"env":'
    b'{},"kill_grace_period":null,"role":"","health_check":null},"container_id":"c-F2-web"'
    b',"gpus":[]}}\n'
    b'{"k":"F2/web","state":{"state":"TASK_RUNNING","exit_code":null,"healthy":null},"seq"'
    b':2}\n'
    b'{"k":"F2/web","update":{"task_id":"web","framework_id":"F2","agent_id":"A1","state":'
    b'"TASK_RUNNING","uuid":"u2","timestamp":1700000001.5,"source":"agent","reason":"","me'
    b'ssage":"","exit_code":null,"healthy":null}}\n'
    b'{"k":"F1/killme","launch":{"framework_id":"F1","task":{"task_id":"killme","agent_id"'
    b':"A1","resources":"cpus:0.1","name":"","command":"sleep 1000","argv":[],"shell":true'
    b',"env":{},"kill_grace_period":null,"role":"","health_check":null},"container_id":"c-'
    b'F1-killme","gpus":[]}}\n'
    b'{"k":"F1/killme","state":{"state":"TASK_RUNNING","exit_code":null,"healthy":null},"s'
    b'eq":2}\n'
    b'{"k":"F1/killme","kill":"REASON_TASK_KILLED"}\n'
    b'{"k":"F1/done","launch":{"framework_id":"F1","task":{"task_id":"done","agent_id":"A1'
    b'","resources":"cpus:0.1","name":"","command":"true","argv":[],"shell":true,"env":{},'
    b'"kill_grace_period":null,"role":"","health_check":null},"container_id":"c-F1-done","'
    b'gpus":[]}}\n'
    b'{"update":{"task_id":"done","framework_id":"F1","agent_id":"A1","state":"TASK_RUNNIN'
    b'G","uuid":"u4","timestamp":1700000001.0,"source":"agent","reason":"","message":"","e'
    b'xit_code":null,"healthy":null},"seq":2,"k":"F1/done"}\n'
    b'{"ack":"u4","k":"F1/done"}\n'
    b'{"update":{"task_id":"done","framework_id":"F1","agent_id":"A1","state":"TASK_FINISH'
    b'ED","uuid":"u5","timestamp":1700000002.0,"source":"agent","reason":"","message":"Com'
    b'mand exited with status 0","exit_code":0,"healthy":null},"seq":3,"k":"F1/done"}\n'
    b'{"ack":"u5","k":"F1/done"}\n'
    b'{"k":"F1/done","forget":true}\n'
    b'{"update":{"task_id":"web","framework_id":"F1","agent_id":"A1","state":"TASK_RUNNING'
    b'","uuid":"u6","timestamp":1700000004.0,"source":"agent","reason":"REASON_TASK_HEALTH'
    b'_CHECK_STATUS_UPDATED","message":"HTTP 500","exit_code":null,"healthy":false},"seq":'
    b'3,"k":"F1/web"}\n'
    b'{"k":"F1/fin","launch":{"framework_id":"F1","task":{"task_id":"fin","agent_id":"A1",'
    b'"resources":"cpus:0.1","name":"","command":"","argv":["/bin/false"],"shell":false,"e'
    b'nv":{},"kill_grace_period":null,"role":"","health_check":null},"container_id":"c-F1-'
    b'fin","gpus":[]}}\n'
    b'{"update":{"task_id":"fin","framework_id":"F1","agent_id":"A1","state":"TASK_RUNNING'
    b'","uuid":"u7","timestamp":1700000001.0,"source":"agent","reason":"","message":"","ex'
    b'it_code":null,"healthy":null},"seq":2,"k":"F1/fin"}\n'
    b'{"ack":"u7","k":"F1/fin"}\n'
    b'{"update":{"task_id":"fin","framework_id":"F1","agent_id":"A1","state":"TASK_FAILED"'
    b',"uuid":"u8","timestamp":1700000005.0,"source":"agent","reason":"REASON_COMMAND_EXEC'
    b'UTOR_FAILED","message":"Command exited with status 1","exit_code":1,"healthy":null},'
    b'"seq":3,"k":"F1/fin"}\n'
    b'{"k":"F1/oom","launch":{"framework_id":"F1","task":{"task_id":"oom","agent_id":"A1",'
    b'"resources":"cpus:0.1;mem:16","name":"","command":"hog","argv":[],"shell":true,"env"'
    b':{},"kill_grace_period":null,"role":"","health_check":null},"container_id":"c-F1-oom'
    b'","gpus":[]}}\n'
    b'{"seq":1,"k":"F1/oom"}\n'
    b'{"update":{"task_id":"oom","framework_id":"F1","agent_id":"A1","state":"TASK_RUNNING'
    b'","uuid":"u9","timestamp":1700000001.0,"source":"agent","reason":"","message":"","ex'
    b'it_code":null,"healthy":null},"seq":2,"k":"F1/oom"}\n'
    b'{"k":"F1/staged","launch":{"framework_id":"F1","task":{"task_id":"staged","agent_id"'
    b':"A1","resources":"cpus:0.1","name":"","command":"true","argv":[],"shell":true,"env"'
    b':{},"kill_grace_period":null,"role":"","health_check":null},"container_id":"c-F1-sta'
    b'ged","gpus":[]}}\n'
    b'not json\n'
    b'[1, 2]\n'
    b'{"update": {"task_id": "x"}}\n'
    b'{"k": "F1/fin", "update": "garbage", "seq": 5}\n'
    b'{"k": "F9/none", "ack": "u1"}\n'
    b'{"k": "F1/web", "update": {"task_id": "web", "sta'
)

#: the tasks' events files as the previous supervisors wrote them (and a little junk)
EVENTS = {
    'F1/done': (
        b'{"seq": 1, "event": "supervising", "time": 1796249478.3331056, "pid": 4004, "start":'
        b' 123460}\n'
        b'{"seq": 2, "event": "started", "time": 1796249478.3331254, "pid": 5001, "supervisor"'
        b': 4001}\n'
        b'{"seq": 3, "event": "exited", "time": 1796249478.333222, "exit_code": 0, "signal": n'
        b'ull, "killed": "", "oom": false}\n'
    ),
    'F1/web': (
        b'{"seq": 1, "event": "supervising", "time": 1796249478.329798, "pid": 4001, "start": '
        b'123457}\n'
        b'{"seq": 2, "event": "started", "time": 1796249478.3298314, "pid": 5002, "supervisor"'
        b': 4002}\n'
        b'{"seq": 3, "event": "health", "time": 1796249478.333302, "healthy": false, "message"'
        b': "HTTP 500", "kill": false}\n'
        b'{"seq": 4, "event": "exited", "time": 1796249478.333779, "exit_code": null, "signal"'
        b': 9, "killed": "health check failed: HTTP 500", "oom": false}\n'
    ),
    'F2/web': (
        b'{"seq": 1, "event": "supervising", "time": 1796249478.330339, "pid": 4002, "start": '
        b'123458}\n'
        b'{"seq": 2, "event": "started", "time": 1796249478.3303523, "pid": 5003, "supervisor"'
        b': 4003}\n'
        b'{"seq": 3, "event": "from-a-newer-supervisor", "x": 1}\n'
        b'{"seq": "4", "event": "started"}\n'
        b'[5]\n'
    ),
    'F1/killme': (
        b'{"seq": 1, "event": "supervising", "time": 1796249478.330552, "pid": 4003, "start": '
        b'123459}\n'
        b'{"seq": 2, "event": "started", "time": 1796249478.330564, "pid": 5004, "supervisor":'
        b' 4004}\n'
        b'{"seq": 3, "event": "exited", "time": 1796249478.333785, "exit_code": null, "signal"'
        b': 15, "killed": "", "oom": false}\n'
    ),
    'F1/fin': (
        b'{"seq": 1, "event": "supervising", "time": 1796249478.3334584, "pid": 4005, "start":'
        b' 123461}\n'
        b'{"seq": 2, "event": "started", "time": 1796249478.3334694, "pid": 5005, "supervisor"'
        b': 4005}\n'
        b'{"seq": 3, "event": "exited", "time": 1796249478.3335319, "exit_code": 1, "signal": '
        b'null, "killed": "", "oom": false}\n'
    ),
    'F1/oom': (
        b'{"seq": 1, "event": "supervising", "time": 1796249478.3336792, "pid": 4006, "start":'
        b' 123462}\n'
        b'{"seq": 2, "event": "started", "time": 1796249478.3337183, "pid": 5006, "supervisor"'
        b': 4006}\n'
        b'{"seq": 3, "event": "exited", "time": 1796249478.3337903, "exit_code": null, "signal'
        b'": 9, "killed": "", "oom": true}\n'
        b'{"seq": 9, "event": "exi'
    ),
    'F1/staged': (
        b'{"seq": 1, "event": "failed", "time": 1796249478.3338976, "error": "the agent restar'
        b'ted before the task was started"}\n'
    ),
}

#: what the previous replay made of TASKS_LOG: [key, checkpoint] a line
EXPECTED_CHECKPOINTS = (
    b'["F1/web",{"framework_id":"F1","info":{"task_id":"web","agent_id":"A1","resources":"'
    b'cpus:1;mem:128;gpus:1;ports:[31000-31001]","name":"web server","command":"python -m '
    b'http.server $PORT","argv":[],"shell":true,"env":{"A":"b"},"kill_grace_period":5.0,"r'
    b'ole":"prod","health_check":{"kind":"HTTP","command":"","port":8080,"path":"/health",'
    b'"delay":0.0,"interval":5.0,"timeout":20.0,"grace_period":10.0,"consecutive_failures"'
    b':3}},"container_id":"c-F1-web","gpus":["1"],"state":"TASK_RUNNING","exit_code":null,'
    b'"healthy":false,"pending":[{"task_id":"web","framework_id":"F1","agent_id":"A1","sta'
    b'te":"TASK_RUNNING","uuid":"u6","timestamp":1700000004.0,"source":"agent","reason":"R'
    b'EASON_TASK_HEALTH_CHECK_STATUS_UPDATED","message":"HTTP 500","exit_code":null,"healt'
    b'hy":false}],"kill_reason":null,"last_seq":3}]\n'
    b'["F2/web",{"framework_id":"F2","info":{"task_id":"web","agent_id":"A1","resources":"'
    b'cpus:0.5","name":"","command":"sleep 100","argv":[],"shell":true,"env":{},"kill_grac'
    b'e_period":null,"role":"","health_check":null},"container_id":"c-F2-web","gpus":[],"s'
    b'tate":"TASK_RUNNING","exit_code":null,"healthy":null,"pending":[{"task_id":"web","fr'
    b'amework_id":"F2","agent_id":"A1","state":"TASK_RUNNING","uuid":"u2","timestamp":1700'
    b'000001.5,"source":"agent","reason":"","message":"","exit_code":null,"healthy":null}]'
    b',"kill_reason":null,"last_seq":2}]\n'
    b'["F1/killme",{"framework_id":"F1","info":{"task_id":"killme","agent_id":"A1","resour'
    b'ces":"cpus:0.1","name":"","command":"sleep 1000","argv":[],"shell":true,"env":{},"ki'
    b'll_grace_period":null,"role":"","health_check":null},"container_id":"c-F1-killme","g'
    b'pus":[],"state":"TASK_RUNNING","exit_code":null,"healthy":null,"pending":[],"kill_re'
    b'ason":"REASON_TASK_KILLED","last_seq":2}]\n'
    b'["F1/fin",{"framework_id":"F1","info":{"task_id":"fin","agent_id":"A1","resources":"'
    b'cpus:0.1","name":"","command":"","argv":["/bin/false"],"shell":false,"env":{},"kill_'
    b'grace_period":null,"role":"","health_check":null},"container_id":"c-F1-fin","gpus":['
    b'],"state":"TASK_FAILED","exit_code":1,"healthy":null,"pending":[{"task_id":"fin","fr'
    b'amework_id":"F1","agent_id":"A1","state":"TASK_FAILED","uuid":"u8","timestamp":17000'
    b'00005.0,"source":"agent","reason":"REASON_COMMAND_EXECUTOR_FAILED","message":"Comman'
    b'd exited with status 1","exit_code":1,"healthy":null}],"kill_reason":null,"last_seq"'
    b':5}]\n'
    b'["F1/oom",{"framework_id":"F1","info":{"task_id":"oom","agent_id":"A1","resources":"'
    b'cpus:0.1;mem:16","name":"","command":"hog","argv":[],"shell":true,"env":{},"kill_gra'
    b'ce_period":null,"role":"","health_check":null},"container_id":"c-F1-oom","gpus":[],"'
    b'state":"TASK_RUNNING","exit_code":null,"healthy":null,"pending":[{"task_id":"oom","f'
    b'ramework_id":"F1","agent_id":"A1","state":"TASK_RUNNING","uuid":"u9","timestamp":170'
    b'0000001.0,"source":"agent","reason":"","message":"","exit_code":null,"healthy":null}'
    b'],"kill_reason":null,"last_seq":2}]\n'
    b'["F1/staged",{"framework_id":"F1","info":{"task_id":"staged","agent_id":"A1","resour'
    b'ces":"cpus:0.1","name":"","command":"true","argv":[],"shell":true,"env":{},"kill_gra'
    b'ce_period":null,"role":"","health_check":null},"container_id":"c-F1-staged","gpus":['
    b'],"state":"","exit_code":null,"healthy":null,"pending":[],"kill_reason":null,"last_s'
    b'eq":0}]\n'
)

#: what the previous agent did on recovering that work dir: one batch of effects a line
EXPECTED_RECOVERY = (
    b'{"checkpoint":[{"kill":"REASON_TASK_KILLED","k":"F1/killme"}],"signal":[[["F1","kill'
    b'me"],15]],"forget":[],"messages":[]}\n'
    b'{"checkpoint":[{"update":{"task_id":"web","framework_id":"F1","agent_id":"A1","state'
    b'":"TASK_KILLED","uuid":"r0","timestamp":1700000011.0,"source":"agent","reason":"REAS'
    b'ON_TASK_HEALTH_CHECK_STATUS_UPDATED","message":"health check failed: HTTP 500","exit'
    b'_code":137,"healthy":false},"seq":4,"k":"F1/web"}],"signal":[],"forget":[],"messages'
    b'":[]}\n'
    b'{"checkpoint":[{"seq":3,"k":"F2/web"}],"signal":[],"forget":[],"messages":[]}\n'
    b'{"checkpoint":[{"update":{"task_id":"killme","framework_id":"F1","agent_id":"A1","st'
    b'ate":"TASK_KILLED","uuid":"r1","timestamp":1700000011.0,"source":"agent","reason":"R'
    b'EASON_TASK_KILLED","message":"Command terminated with signal SIGTERM","exit_code":14'
    b'3,"healthy":null},"seq":3,"k":"F1/killme"}],"signal":[],"forget":[],"messages":[]}\n'
    b'{"checkpoint":[{"update":{"task_id":"oom","framework_id":"F1","agent_id":"A1","state'
    b'":"TASK_FAILED","uuid":"r2","timestamp":1700000011.0,"source":"agent","reason":"REAS'
    b'ON_CONTAINER_LIMITATION_MEMORY","message":"memory limit exceeded: the task was kille'
    b'd by the OOM killer","exit_code":137,"healthy":null},"seq":3,"k":"F1/oom"}],"signal"'
    b':[],"forget":[],"messages":[]}\n'
    b'{"checkpoint":[{"update":{"task_id":"staged","framework_id":"F1","agent_id":"A1","st'
    b'ate":"TASK_FAILED","uuid":"r3","timestamp":1700000011.0,"source":"agent","reason":"R'
    b'EASON_COMMAND_EXECUTOR_FAILED","message":"failed to start the task: the agent restar'
    b'ted before the task was started","exit_code":null,"healthy":null},"seq":1,"k":"F1/st'
    b'aged"}],"signal":[],"forget":[],"messages":[]}\n'
    b'{"checkpoint":[],"signal":[],"forget":[],"messages":[["StatusUpdate",{"status":{"tas'
    b'k_id":"web","framework_id":"F1","agent_id":"A1","state":"TASK_RUNNING","uuid":"u6","'
    b'timestamp":1700000004.0,"source":"agent","reason":"REASON_TASK_HEALTH_CHECK_STATUS_U'
    b'PDATED","message":"HTTP 500","exit_code":null,"healthy":false}}],["StatusUpdate",{"s'
    b'tatus":{"task_id":"web","framework_id":"F2","agent_id":"A1","state":"TASK_RUNNING","'
    b'uuid":"u2","timestamp":1700000001.5,"source":"agent","reason":"","message":"","exit_'
    b'code":null,"healthy":null}}],["StatusUpdate",{"status":{"task_id":"killme","framewor'
    b'k_id":"F1","agent_id":"A1","state":"TASK_KILLED","uuid":"r1","timestamp":1700000011.'
    b'0,"source":"agent","reason":"REASON_TASK_KILLED","message":"Command terminated with '
    b'signal SIGTERM","exit_code":143,"healthy":null}}],["StatusUpdate",{"status":{"task_i'
    b'd":"fin","framework_id":"F1","agent_id":"A1","state":"TASK_FAILED","uuid":"u8","time'
    b'stamp":1700000005.0,"source":"agent","reason":"REASON_COMMAND_EXECUTOR_FAILED","mess'
    b'age":"Command exited with status 1","exit_code":1,"healthy":null}}],["StatusUpdate",'
    b'{"status":{"task_id":"oom","framework_id":"F1","agent_id":"A1","state":"TASK_RUNNING'
    b'","uuid":"u9","timestamp":1700000001.0,"source":"agent","reason":"","message":"","ex'
    b'it_code":null,"healthy":null}}],["StatusUpdate",{"status":{"task_id":"staged","frame'
    b'work_id":"F1","agent_id":"A1","state":"TASK_FAILED","uuid":"r3","timestamp":17000000'
    b'11.0,"source":"agent","reason":"REASON_COMMAND_EXECUTOR_FAILED","message":"failed to'
    b' start the task: the agent restarted before the task was started","exit_code":null,"'
    b'healthy":null}}]]}\n'
)
#: where the hand-made junk starts in TASKS_LOG
JUNK = TASKS_LOG.index(b"not json\n")


def expected_checkpoints() -> dict[str, TaskCheckpoint]:
    out = {}
    for line in EXPECTED_CHECKPOINTS.splitlines():
        key, body = json.loads(line)
        out[key] = TaskCheckpoint(
            framework_id=body["framework_id"], info=from_plain(TaskInfo, body["info"]),
            container_id=body["container_id"], gpus=body["gpus"], state=body["state"],
            exit_code=body["exit_code"], healthy=body["healthy"],
            pending=[from_plain(TaskStatus, s) for s in body["pending"]],
            kill_reason=body["kill_reason"], last_seq=body["last_seq"])
    return out


def write_work_dir(work_dir: Path) -> TaskLog:
    (work_dir / "meta").mkdir(parents=True)
    (work_dir / "meta" / "tasks.log").write_bytes(TASKS_LOG)
    for name, data in EVENTS.items():
        path = events_path(work_dir, *name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return TaskLog(work_dir)


def test_a_log_written_before_replays_to_the_same_checkpoints() -> None:
    found = replay(TASKS_LOG.split(b"\n"))
    expected = expected_checkpoints()
    assert list(found) == list(expected)  # the order tasks are recovered in, too
    assert found == expected


def test_a_log_written_before_loads_and_compacts_to_the_same(tmp_path: Path) -> None:
    log = write_work_dir(tmp_path)
    expected = expected_checkpoints()
    assert log.load() == expected
    log.compact(list(log.load().values()))
    assert log.load() == expected
    log.close()


def test_events_written_before_are_read_typed(tmp_path: Path) -> None:
    write_work_dir(tmp_path)

    def events(framework_id: str, task_id: str) -> list[SupervisorEvent]:
        return [replace(e, time=0.0)
                for e in load_events(events_path(tmp_path, framework_id, task_id))]

    assert events("F1", "web") == [
        Supervising(pid=4001, start=123457, seq=1),
        Started(pid=5002, supervisor=4002, seq=2),
        Health(healthy=False, message="HTTP 500", kill=False, seq=3),
        Exited(exit_code=None, signal=9, killed="health check failed: HTTP 500", seq=4),
    ]
    assert events("F1", "fin")[-1] == Exited(exit_code=1, signal=None, seq=3)
    # a torn last line is left for later
    assert events("F1", "oom")[-1] == Exited(exit_code=None, signal=9, oom=True, seq=3)
    # written by cancel_unstarted
    assert events("F1", "staged") == [
        Failed(error="the agent restarted before the task was started", seq=1)]
    # a kind this agent does not know is consumed; lines without a numeric seq are not
    assert events("F2", "web")[2:] == [OtherEvent(kind="from-a-newer-supervisor", seq=3)]


def test_a_work_dir_written_before_is_recovered_as_before(tmp_path: Path) -> None:
    """What the shell does at start-up (AgentServer._recover) ends as it did before."""
    log = write_work_dir(tmp_path)
    found = log.load()
    log.close()
    counter = itertools.count()
    core = AgentCore("host", Resources.parse("cpus:4;mem:1024;gpus:2"), "", "A1",
                     lambda: f"r{next(counter)}", kill_grace=3.0, retry_interval=1.0)
    core.wall_offset = 1_700_000_000.0
    outcome: list[dict[str, Any]] = []

    def note(fx: Effects, seq: tuple[tuple[str, str], int] | None = None) -> None:
        lines = batch_records(fx.checkpoint, seq, lambda key: True)
        outcome.append({"checkpoint": [record_json(k, r) for k, r in lines],
                        "signal": [[list(k), s] for k, s in fx.signal],
                        "forget": [list(k) for k in fx.forget],
                        "messages": [[type(m).__name__, to_plain(m)] for m, _ in fx.messages]})

    note(core.recover([RecoveredTask(framework_id=cp.framework_id, info=cp.info,
                                     state=cp.state, exit_code=cp.exit_code,
                                     healthy=cp.healthy, pending=cp.pending,
                                     kill_reason=cp.kill_reason)
                       for cp in found.values()], 10.0))
    for cp in found.values():
        key = (cp.framework_id, cp.info.task_id)
        events = load_events(events_path(tmp_path, *key), cp.last_seq)
        total = Effects()
        for event in events:
            total.extend(core.supervisor_event(key, event, 11.0))
        if events:
            note(total, seq=(key, events[-1].seq))
    core.connected(12.0)
    note(core.handle(AgentRegistered(agent_id="A1", heartbeat_interval=1.0,
                                     missed_heartbeats=5), "", 12.0))
    assert outcome == [json.loads(line) for line in EXPECTED_RECOVERY.splitlines()]


def test_records_and_events_are_written_as_before() -> None:
    """Each record and event re-encodes to the very JSON object the previous code wrote
    (task-log keys may come in another order; events are byte for byte the same)."""
    kinds = set()
    for raw in TASKS_LOG[:JUNK].splitlines():
        line = decode_record(raw)
        assert line is not None, raw
        kinds.add(type(line[1]).__name__)
        assert json.loads(encode_line(*line)) == json.loads(raw)
    assert kinds == {"TaskLaunched", "StateRecorded", "KillStarted", "UpdateRecorded",
                     "UpdateAcked", "EventConsumed", "TaskForgotten"}
    for data in EVENTS.values():
        for raw in data.splitlines():
            event = decode_event(json.loads(raw)) if raw.endswith(b"}") else None
            if event is not None and not isinstance(event, OtherEvent):
                assert encode_event(event).encode() == raw

"""Tasks run as their user (Mesos's --switch_user): the rules, and the supervisor run
in-process (as root, where this suite runs, it really switches)."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from mesos_zmq.agent import flags as agent_flags
from mesos_zmq.agent.containerizer import task_user
from mesos_zmq.agent.events import Exited, Failed, Started
from mesos_zmq.agent.health import run_check
from mesos_zmq.agent.isolation import Limits
from mesos_zmq.agent.launcher import _decode_request, encode_request
from mesos_zmq.agent.run_as import (
    Account,
    RunAs,
    SandboxError,
    UserError,
    choose_user,
    lookup_account,
    open_outputs,
    resolve_user,
    task_environment,
)
from mesos_zmq.agent.server import AgentConfig
from mesos_zmq.agent.supervisor import (
    SupervisorSpec,
    load_events,
    supervise,
)
from mesos_zmq.protocol import HealthCheck, TaskInfo

ALICE = Account(name="alice", uid=1000, gid=1000, groups=(1000, 27), home="/home/alice")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this host")


# ----------------------------------------------------------------------------- the rules


def test_no_user_runs_as_the_agent() -> None:
    assert choose_user("", None, 0) is None
    assert choose_user("", ALICE, 1234) is None


def test_a_root_agent_switches_to_the_user() -> None:
    run_as = choose_user("alice", ALICE, 0)
    assert run_as == RunAs(ALICE, switch=True)
    assert run_as.ids() == (1000, 1000, [1000, 27])


def test_a_root_agent_running_a_root_task_does_not_switch() -> None:
    """No switch means vfork + exec: a full fork's copied pages would be charged to a
    tiny task's memory cgroup and could get its supervisor killed."""
    root = Account(name="root", uid=0, gid=0, groups=(0,), home="/root")
    assert choose_user("root", root, 0) == RunAs(root, switch=False)


def test_a_user_the_host_does_not_know_fails_the_launch() -> None:
    with pytest.raises(UserError, match=r"^user 'x' does not exist on this agent$"):
        choose_user("x", None, 0)
    with pytest.raises(UserError, match="does not exist"):
        choose_user("x", None, 1000)


def test_a_non_root_agent_runs_only_its_own_user() -> None:
    same = choose_user("alice", ALICE, 1000)
    assert same == RunAs(ALICE, switch=False)
    assert same.ids() == (None, None, None)  # nothing to switch, nothing it could
    with pytest.raises(UserError, match=r"cannot run the task as user 'alice': the agent "
                                        r"does not run as root \(uid 1234\)"):
        choose_user("alice", ALICE, 1234)


def test_switch_user_off_ignores_the_tasks_user() -> None:
    info = TaskInfo(task_id="t", agent_id="a", resources="cpus:1", user="nobody")
    assert task_user(info, switch_user=True) == "nobody"
    assert task_user(info, switch_user=False) == ""
    assert task_user(TaskInfo(task_id="t", agent_id="a", resources="cpus:1"), True) == ""


def test_the_flag_is_on_by_default() -> None:
    assert agent_flags.default("switch_user") is True
    assert AgentConfig().switch_user is True


def test_the_users_identity_goes_into_the_environment_unless_the_task_set_it() -> None:
    env = task_environment({"PATH": "/bin", "HOME": "/srv/app"}, RunAs(ALICE, switch=True))
    assert env == {"PATH": "/bin", "HOME": "/srv/app", "USER": "alice", "LOGNAME": "alice"}
    plain = {"PATH": "/bin"}
    assert task_environment(plain, None) is plain


def test_accounts_come_from_the_host() -> None:
    entry = nobody()
    account = lookup_account("nobody")
    assert account is not None
    assert (account.uid, account.gid, account.home) == (entry.pw_uid, entry.pw_gid,
                                                        entry.pw_dir)
    assert entry.pw_gid in account.groups
    assert lookup_account("no-such-user-7f3a") is None
    assert lookup_account("bad\0name") is None
    with pytest.raises(UserError, match="'no-such-user-7f3a' does not exist"):
        resolve_user("no-such-user-7f3a")


def test_the_launcher_carries_the_user_and_the_disk_limit() -> None:
    spec = SupervisorSpec(events="/e", sandbox="/s", argv=["true"], env={}, user="nobody",
                          disk_limit=1 << 20, disk_interval=0.5)
    key, decoded, _, _ = _decode_request(encode_request("/e", spec, "c1", Limits()))
    assert key == "/e"
    assert (decoded.user, decoded.disk_limit, decoded.disk_interval) == ("nobody", 1 << 20,
                                                                         0.5)


# ------------------------------------------------------------------ what touches the sandbox


def test_a_planted_link_is_never_followed(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    outside = tmp_path / "shadow"
    outside.write_text("secret\n")
    (sandbox / "stdout").symlink_to(outside)
    with pytest.raises(SandboxError, match="stdout in the sandbox: a symbolic link"):
        open_outputs(str(sandbox), None)
    assert outside.read_text() == "secret\n"


def test_a_hard_link_or_a_fifo_is_refused(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    outside = tmp_path / "outside"
    outside.write_text("mine\n")
    os.link(outside, sandbox / "stdout")
    with pytest.raises(SandboxError, match="stdout in the sandbox is not a plain file"):
        open_outputs(str(sandbox), None)
    (sandbox / "stdout").unlink()
    os.mkfifo(sandbox / "stderr")  # never blocks: no reader (ENXIO), or refused
    with pytest.raises(SandboxError, match="stderr in the sandbox"):
        open_outputs(str(sandbox), None)
    assert outside.read_text() == "mine\n"


def test_a_sandbox_that_is_a_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "sandbox").symlink_to(real)
    with pytest.raises(SandboxError, match="cannot open the sandbox"):
        open_outputs(str(tmp_path / "sandbox"), None)


@as_root
def test_the_sandbox_and_its_outputs_are_given_to_the_user(tmp_path: Path) -> None:
    entry = nobody()
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    run_as = resolve_user("nobody")
    out, err = open_outputs(str(sandbox), run_as)
    os.close(out)
    os.close(err)
    for path in (sandbox, sandbox / "stdout", sandbox / "stderr"):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (entry.pw_uid, entry.pw_gid), path
    assert stat.S_ISREG((sandbox / "stdout").stat().st_mode)


# ------------------------------------------------------------------ the supervisor, in-process


def spec(tmp_path: Path, command: str, **fields: object) -> SupervisorSpec:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir(exist_ok=True)
    return SupervisorSpec(events=str(tmp_path / "events" / "t1"), sandbox=str(sandbox),
                          argv=["/bin/sh", "-c", command], env={"PATH": "/usr/bin:/bin"},
                          **fields)  # type: ignore[arg-type]


@as_root
def test_the_task_runs_as_its_user(tmp_path: Path) -> None:
    entry = nobody()
    s = spec(tmp_path, 'id -u; id -g; echo "$HOME $USER $LOGNAME"; touch mine; '
                       'touch /root/mesos-zmq-not-allowed || echo denied', user="nobody")
    assert supervise(s) == 0
    events = load_events(Path(s.events))
    assert isinstance(events[1], Started)
    assert events[-1] == Exited(exit_code=0, signal=None, seq=3, time=events[-1].time)
    lines = (tmp_path / "sandbox" / "stdout").read_text().splitlines()
    assert lines == [str(entry.pw_uid), str(entry.pw_gid),
                     f"{entry.pw_dir} nobody nobody", "denied"]
    assert (tmp_path / "sandbox" / "mine").stat().st_uid == entry.pw_uid
    assert not Path("/root/mesos-zmq-not-allowed").exists()


def test_an_unknown_user_fails_the_launch_and_runs_nothing(tmp_path: Path) -> None:
    s = spec(tmp_path, f"touch {tmp_path / 'ran'}", user="no-such-user-7f3a")
    assert supervise(s) == 1
    *_, failed = load_events(Path(s.events))
    assert isinstance(failed, Failed)
    assert failed.error == "user 'no-such-user-7f3a' does not exist on this agent"
    assert not (tmp_path / "ran").exists()


@as_root
def test_command_health_checks_run_as_the_user(tmp_path: Path) -> None:
    entry = nobody()
    check = HealthCheck(kind="COMMAND", command=f'test "$(id -u)" = {entry.pw_uid}',
                        timeout=5.0)
    run_as = resolve_user("nobody")
    assert run_check(check, cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"},
                     run_as=run_as)[0]
    assert not run_check(check, cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"})[0]


def supervise_as(uid: int, gid: int, spec: SupervisorSpec) -> int:
    """Run a supervisor in a forked child that has given up root for good (uid, gid)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child leaves with os._exit
        code = 99
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            code = supervise(spec)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@as_root
def test_an_agent_not_running_as_root_runs_its_own_user_only() -> None:
    import shutil
    import tempfile

    entry = nobody()
    work = Path(tempfile.mkdtemp(prefix="mesos-zmq-not-root-"))
    os.chmod(work, 0o777)
    try:
        def as_nobody(user: str, name: str) -> int:
            spec = SupervisorSpec(events=str(work / name), sandbox=str(work),
                                  argv=["/bin/sh", "-c", "touch ran; id -u > uid"],
                                  env={"PATH": "/usr/bin:/bin"}, user=user)
            return supervise_as(entry.pw_uid, entry.pw_gid, spec)

        assert as_nobody("root", "ev-root") == 1
        error = load_events(work / "ev-root")[-1]
        assert isinstance(error, Failed)
        assert error.error == (f"cannot run the task as user 'root': the agent does not run "
                               f"as root (uid {entry.pw_uid}), and only root can switch "
                               "users")
        assert not (work / "ran").exists()
        assert as_nobody("nobody", "ev-nobody") == 0  # its own user: runs, no switch
        assert isinstance(load_events(work / "ev-nobody")[-1], Exited)
        assert (work / "uid").read_text() == f"{entry.pw_uid}\n"
    finally:
        shutil.rmtree(work, ignore_errors=True)

"""The user a task runs as: who it is on this host, and a sandbox it owns.

Mesos's agent switches to the task's user (``--switch_user``, on by default); so does
this one. :func:`choose_user` is the rule (pure); :func:`lookup_account` reads the host's
user and groups; :func:`open_outputs` makes the sandbox and the task's output files the
user's without ever following a link the user could have planted (everything by
descriptor, ``O_NOFOLLOW``), since the supervisor doing it is still root.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from dataclasses import dataclass

from mesos_zmq.errors import MesosZmqError


class UserError(MesosZmqError):
    """The task's user cannot run it here: no such user on this host, or the agent,
    not being root, cannot become it. The launch fails with this message."""


class SandboxError(MesosZmqError):
    """Something in the sandbox is not what the supervisor may touch (a link where an
    output file should be): the launch fails rather than follow it."""


@dataclass(frozen=True, slots=True)
class Account:
    """A user as this host's account database has it."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


@dataclass(frozen=True, slots=True)
class RunAs:
    """Who a task runs as. ``switch``: the supervisor (root) must take on the
    account's ids before ``exec``; False when the agent already is that user."""

    account: Account
    switch: bool

    def ids(self) -> tuple[int | None, int | None, list[int] | None]:
        """``user``, ``group`` and ``extra_groups`` for :class:`subprocess.Popen`
        (None: unchanged). The child sets groups, then gid, then uid, after ``fork``
        and before ``exec``: no instruction of the task runs with the agent's ids."""
        if not self.switch:
            return None, None, None
        a = self.account
        return a.uid, a.gid, list(a.groups)


def _shown(user: str) -> str:
    return repr(user[:64])


def choose_user(user: str, account: Account | None, agent_uid: int) -> RunAs | None:
    """Who runs a task that asked for ``user`` (Mesos's rules); pure.

    ``account`` is what the host's database says of ``user`` (None: no such user),
    ``agent_uid`` the agent's effective uid. No user: the agent's own (None). A user
    the host does not know, or another user than the agent's while the agent is not
    root, is a :class:`UserError`.
    """
    if not user:
        return None
    if account is None:
        raise UserError(f"user {_shown(user)} does not exist on this agent")
    if account.uid == agent_uid:
        # Already that user: no switch, so the task starts by vfork + exec. (A switch
        # needs a full fork, whose copy-on-write pages are charged to the task's memory
        # cgroup: a 1 MB task killed its own supervisor that way.)
        return RunAs(account, switch=False)
    if agent_uid == 0:
        return RunAs(account, switch=True)
    raise UserError(f"cannot run the task as user {_shown(user)}: the agent does not run "
                    f"as root (uid {agent_uid}), and only root can switch users")


def lookup_account(user: str) -> Account | None:
    """The host's account of ``user``, supplementary groups included (as ``initgroups``
    would set them), or None when there is no such user."""
    try:
        entry = pwd.getpwnam(user)
    except (KeyError, ValueError):  # ValueError: a NUL in the name
        return None
    try:
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except OSError:
        groups = (entry.pw_gid,)
    return Account(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups,
                   home=entry.pw_dir)


def resolve_user(user: str) -> RunAs | None:
    """Who runs a task that asked for ``user`` on this host (see :func:`choose_user`)."""
    if not user:
        return None
    return choose_user(user, lookup_account(user), os.geteuid())


def task_environment(env: dict[str, str], run_as: RunAs | None) -> dict[str, str]:
    """The task's environment: HOME, USER and LOGNAME are its user's, unless the task
    set them itself (the agent leaves its own out for a task with a user)."""
    if run_as is None:
        return env
    a = run_as.account
    return {"HOME": a.home, "USER": a.name, "LOGNAME": a.name, **env}


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_OUT_FLAGS = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
              | os.O_NONBLOCK | os.O_NOCTTY)


def open_outputs(sandbox: str, run_as: RunAs | None) -> tuple[int, int]:
    """The task's ``stdout`` and ``stderr`` descriptors, and the sandbox (and they)
    given to its user.

    A sandbox outlives its task (kept for reading, and a task of the same id runs in it
    again), so its user may have left anything in it: each file is opened relative to
    the sandbox's descriptor, neither following a link nor blocking on a FIFO, and
    must be a regular file with a single link (a hard link could be to a file outside);
    the owners change through those descriptors (``fchown``), never by path.
    """
    try:
        dfd = os.open(sandbox, _DIR_FLAGS)
    except OSError as exc:
        raise SandboxError(f"cannot open the sandbox {sandbox}: {exc.strerror}") from None
    opened: list[int] = []
    try:
        if run_as is not None and run_as.switch:
            os.fchown(dfd, run_as.account.uid, run_as.account.gid)
        for name in ("stdout", "stderr"):
            try:
                fd = os.open(name, _OUT_FLAGS, 0o644, dir_fd=dfd)
            except OSError as exc:
                why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
                raise SandboxError(f"cannot open {name} in the sandbox: {why}") from None
            opened.append(fd)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                raise SandboxError(f"{name} in the sandbox is not a plain file with one "
                                   "link: refused")
            os.set_blocking(fd, True)
            if run_as is not None and run_as.switch:
                os.fchown(fd, run_as.account.uid, run_as.account.gid)
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    finally:
        os.close(dfd)
    return opened[0], opened[1]

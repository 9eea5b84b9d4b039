"""Task isolation: cgroups (v1 or v2) when the host lets us, polling otherwise.

A task's resources are only a promise to the allocator unless something enforces them.
On Linux that something is the cgroup filesystem: the agent creates one cgroup per
container, writes the limits into it, and has the forked child join it before ``exec``
so that not a single instruction of the task runs unconstrained. The kernel then
enforces memory and CPU, and its counters survive the task's exit, so final usage and
the OOM verdict can still be read after the process is gone.

Hosts differ: older distributions mount every v1 controller separately (sometimes
co-mounting ``cpu,cpuacct``), current ones mount one unified v2 hierarchy and delegate a
subtree to the service, and unprivileged or containerised agents may have no writable
cgroups at all. :func:`detect_isolator` probes which of these is usable and falls back to
:class:`Posix`, which can only poll RSS and kill a task after the fact.

This module deliberately depends on nothing in the project but ``mesos_zmq.errors``:
it is called from the forked child's ``preexec_fn`` path and from the agent shell, and
must stay importable and testable against fake directory trees on any machine.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: the task launcher forks faster without them
    import logging

    import psutil

from mesos_zmq.errors import ConfigError, MesosZmqError

__all__ = [
    "CgroupMounts",
    "CgroupsV1",
    "CgroupsV2",
    "IsolationError",
    "Isolator",
    "Limits",
    "Posix",
    "Usage",
    "detect_isolator",
    "join_cgroups",
    "parse_mountinfo",
]


def _log() -> logging.Logger:
    """This module's logger.

    Stdlib logging on purpose: the entry point's structlog set-up renders stdlib records
    through the same processors, and this module may import nothing beyond stdlib+psutil.
    Imported when first needed: the task launcher imports this module and hardly ever
    logs, and ``logging`` registers a fork handler, which every supervisor the launcher forks
    would run (each object it touches is a page copied into that supervisor).
    """
    import logging

    return logging.getLogger(__name__)


CFS_PERIOD_US = 100_000
"""CFS period for hard CPU limits; 100 ms is the kernel default and what Mesos uses."""

_MIN_CFS_QUOTA_US = 1_000  # the kernel rejects quotas below 1 ms
_DESTROY_TIMEOUT = 2.0  # seconds destroy() waits for killed processes to leave
_POLL = 0.01
_AGENT_LEAF = "agent"  # v2: leaf the agent moves itself into (no internal processes)

_V1_CONTROLLERS = frozenset({
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory",
    "misc", "net_cls", "net_prio", "perf_event", "pids", "rdma",
})
_V1_USED = ("memory", "cpu", "cpuacct", "pids")  # order: memory first, it matters most
_V2_WANTED = ("cpu", "memory", "pids")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")


class IsolationError(MesosZmqError):
    """A cgroup file or directory could not be written: carries the path and strerror.

    The agent turns this into a failed launch (TASK_FAILED with the message) rather than
    running the task without the limits it was promised.
    """

    def __init__(self, path: str, strerror: str, errno_: int | None = None,
                 value: str | None = None) -> None:
        what = f"cannot write {value!r} to {path}" if value is not None else f"{path}"
        super().__init__(f"{what}: {strerror}")
        self.path = path
        self.strerror = strerror
        self.errno = errno_


@dataclass(frozen=True, slots=True)
class Limits:
    """What a container may use; ``None`` means unlimited.

    ``cpus`` always sets a proportional share (so busy neighbours split the machine by
    their reservations); ``cpu_hard_limit`` additionally caps it with a CFS quota, for
    tasks that must not use idle CPU either (predictable latency, fair billing).
    """

    cpus: float | None = None
    cpu_hard_limit: bool = False
    mem_bytes: int | None = None
    pids_max: int | None = None

    def __post_init__(self) -> None:
        # Fail at the boundary: a zero or negative limit written to a cgroup is either
        # rejected by the kernel with a confusing EINVAL or, worse, accepted.
        if self.cpus is not None and not self.cpus > 0:
            raise ValueError(f"cpus must be positive, got {self.cpus!r}")
        if self.mem_bytes is not None and self.mem_bytes <= 0:
            raise ValueError(f"mem_bytes must be positive, got {self.mem_bytes!r}")
        if self.pids_max is not None and self.pids_max <= 0:
            raise ValueError(f"pids_max must be positive, got {self.pids_max!r}")


@dataclass(frozen=True, slots=True)
class Usage:
    """A container's resource usage: cumulative CPU, current and peak memory."""

    cpu_seconds: float
    rss_bytes: int
    peak_bytes: int


class Isolator(ABC):
    """One way of confining containers; the agent holds exactly one for its lifetime."""

    kind: str

    @property
    def limits_pids(self) -> bool:
        """Whether ``Limits.pids_max`` is enforced (a pids controller is usable)."""
        return False

    @abstractmethod
    def prepare(self, container_id: str, limits: Limits) -> list[str]:
        """Create the container's cgroup(s), write ``limits``, return cgroup.procs paths.

        The forked child writes its own pid into every returned path before ``exec``
        (see :func:`join_cgroups`), so the task never runs outside its limits.
        """

    @abstractmethod
    def usage(self, container_id: str, pid: int | None) -> Usage | None:
        """Current usage of the container, or ``None`` when it no longer exists."""

    @abstractmethod
    def oom_killed(self, container_id: str) -> bool:
        """Whether the container was killed for exceeding its memory limit."""

    @abstractmethod
    def pids(self, container_id: str) -> list[int]:
        """Every pid in the container's cgroup(s), sorted."""

    @abstractmethod
    def destroy(self, container_id: str) -> None:
        """Kill whatever is left in the container and remove its cgroup(s); idempotent."""

    @abstractmethod
    def containers(self) -> list[str]:
        """Container ids that currently have cgroups, for orphan clean-up at start-up."""

    @abstractmethod
    def enforce(self, container_id: str, pid: int | None, limits: Limits) -> bool:
        """Enforce limits the kernel does not; True when the container was just killed."""

    def homes(self, proc_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
        """For each directory that holds containers' cgroups, the cgroup.procs file of
        the calling process's own cgroup in that hierarchy: where a process that went
        into a container's cgroups (to start a task in them) goes back to. A hierarchy
        missing here cannot be left that way (none without cgroups)."""
        return {}


def join_cgroups(procs_paths: list[str]) -> None:
    """Move the calling process into every given cgroup; meant for ``preexec_fn``.

    Uses raw ``os.open``/``os.write`` so that each pid is one ``write(2)`` (what the
    kernel expects) and nothing is buffered or allocated more than needed after fork.
    """
    pid = str(os.getpid()).encode()
    for path in procs_paths:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- helpers


def _check_name(name: str, what: str = "container id") -> str:
    """Reject names that could escape the cgroup directory or collide with '.'/'..'."""
    if not _SAFE_NAME.fullmatch(name) or ".." in name or name == ".":
        raise ValueError(f"invalid {what} {name!r}: use 1-255 of [A-Za-z0-9_.-], no '..'")
    return name


def _write(path: str, value: str) -> None:
    """Write one value in one ``write(2)``, turning failures into IsolationError."""
    try:
        # Plain system calls rather than a file object: the launcher, whose loop is
        # what a burst of launches queues on, writes a few of these per task.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise IsolationError(path, e.strerror or str(e), e.errno, value) from e


def _read(path: str) -> str | None:
    """A cgroup file's content, or None when it (or its cgroup) has gone away.

    Read with plain system calls: supervisors read their task's OOM verdict here, and
    the less of the launcher's heap a supervisor touches, the less of it is copied."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENODEV, errno.ESRCH, errno.ENOTDIR):
            return None
        raise
    return b"".join(chunks).decode()


def _read_int(path: str) -> int | None:
    text = _read(path)
    if text is None or not text.strip():
        return None
    try:
        return int(text.split()[0])
    except ValueError:
        return None


def _read_kv(path: str) -> dict[str, int]:
    """Parse 'key value' lines (memory.stat, cpu.stat, memory.events, oom_control)."""
    out: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = int(parts[1])
    return out


def _read_pids(path: str) -> list[int]:
    return [int(p) for p in (_read(path) or "").split() if p.isdigit()]


def _unescape(field_: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_)


def _under(path: str, top: str) -> bool:
    top = top.rstrip("/") or "/"
    return path == top or path.startswith(top + "/") or top == "/"


def _shares(cpus: float) -> int:
    return max(2, int(1024 * cpus))


def _weight(shares: int) -> int:
    """cgroup v1 shares -> v2 weight, the same linear map runc and systemd use.

    Maps [2, 262144] onto [1, 10000] so that a task keeps the same *relative* weight
    whichever hierarchy the host has.
    """
    return min(10_000, max(1, 1 + ((shares - 2) * 9999) // 262_142))


def _quota(cpus: float) -> int:
    return max(_MIN_CFS_QUOTA_US, int(cpus * CFS_PERIOD_US))


def _tree(pid: int | None) -> list[psutil.Process] | None:
    """A live process and its descendants, or None if it is gone (or a zombie)."""
    import psutil

    if pid is None:
        return None
    try:
        top = psutil.Process(pid)
        if top.status() == psutil.STATUS_ZOMBIE:
            return None
        return [top, *top.children(recursive=True)]
    except psutil.Error:
        return None


def _tree_rss(procs: list[psutil.Process]) -> int:
    import psutil

    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += int(p.memory_info().rss)
    return total


def _tree_cpu(procs: list[psutil.Process]) -> float:
    """User+system CPU of the processes, plus that of the children they have reaped."""
    import psutil

    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += float(t.user + t.system + t.children_user + t.children_system)
    return total


# ------------------------------------------------------------------------- mountinfo


@dataclass(frozen=True, slots=True)
class CgroupMounts:
    """Where the cgroup hierarchies are mounted.

    ``v1`` maps each v1 controller to its mount point (co-mounted controllers share
    one); ``v2`` is the unified mount, and ``v2_root`` the cgroup that mount shows as its
    root (not "/" when a container runtime bind-mounted a sub-tree without cgroupns).
    """

    v1: dict[str, str] = field(default_factory=dict)
    v2: str | None = None
    v2_root: str = "/"


def parse_mountinfo(text: str, prefer_under: str = "/sys/fs/cgroup") -> CgroupMounts:
    """Find the cgroup mounts in /proc/self/mountinfo text.

    Each line is ``id parent major:minor root mountpoint options [optional...] - fstype
    source superoptions``; the number of optional fields varies, hence the search for
    the lone ``-``. For v1 the controllers are in the super options. When a controller
    is mounted twice (bind mounts), the mount under ``prefer_under`` wins, else the
    first one.
    """
    v1: dict[str, str] = {}
    v1_preferred: set[str] = set()
    v2: str | None = None
    v2_root = "/"
    v2_preferred = False
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 3:
            continue
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        fstype, superopts = fields[sep + 1], fields[sep + 3].split(",")
        preferred = _under(mountpoint, prefer_under)
        if fstype == "cgroup":
            for opt in superopts:
                if opt not in _V1_CONTROLLERS:
                    continue
                if opt not in v1 or (preferred and opt not in v1_preferred):
                    v1[opt] = mountpoint
                    if preferred:
                        v1_preferred.add(opt)
        elif fstype == "cgroup2" and (v2 is None or (preferred and not v2_preferred)):
            v2, v2_root, v2_preferred = mountpoint, root, preferred
    return CgroupMounts(v1=v1, v2=v2, v2_root=v2_root)


# --------------------------------------------------------------------------- cgroups


class _Cgroups(Isolator):
    """What v1 and v2 share: a set of directories per container, killed and removed."""

    def __init__(self, root: str, *, fake: bool) -> None:
        self.root = _check_name(root, "cgroup root")
        self.fake = fake

    @abstractmethod
    def _parents(self) -> list[str]:
        """The ``<...>/<root>`` directories that hold one directory per container."""

    def _dirs(self, container_id: str) -> list[str]:
        _check_name(container_id)
        return [os.path.join(p, container_id) for p in self._parents()]

    def _make_dirs(self, container_id: str) -> list[str]:
        dirs = self._dirs(container_id)
        for d in dirs:
            try:
                try:
                    os.mkdir(d)  # the usual case, in one system call
                except FileExistsError:
                    pass  # re-preparing after an agent crash between prepare and launch
                except FileNotFoundError:
                    os.makedirs(d, exist_ok=True)  # someone removed <root>: recreate it
            except OSError as e:
                raise IsolationError(d, e.strerror or str(e), e.errno) from e
        return dirs

    def prepare(self, container_id: str, limits: Limits) -> list[str]:
        dirs = self._make_dirs(container_id)
        try:
            self._write_limits(container_id, limits)
        except BaseException:
            # Never leave a half-configured cgroup behind for a launch that failed.
            with contextlib.suppress(MesosZmqError, OSError):
                self.destroy(container_id)
            raise
        return [os.path.join(d, "cgroup.procs") for d in self._joined(dirs, limits)]

    def _joined(self, dirs: list[str], limits: Limits) -> list[str]:
        """The cgroups a task joins. Every join is a cgroup migration, one of the
        dearest steps of a launch, so v1's separate pids hierarchy is joined only when
        there is a pids limit to enforce (the others are always needed)."""
        return dirs

    @abstractmethod
    def _write_limits(self, container_id: str, limits: Limits) -> None: ...

    def enforce(self, container_id: str, pid: int | None, limits: Limits) -> bool:
        return False  # the kernel enforces every limit we wrote

    def _pids_in(self, dirs: list[str]) -> list[int]:
        found: set[int] = set()
        for d in dirs:
            # Walk: a task may have created (delegated) sub-cgroups of its own.
            for sub, _, _ in os.walk(d):
                found.update(_read_pids(os.path.join(sub, "cgroup.procs")))
        return sorted(found)

    def pids(self, container_id: str) -> list[int]:
        return self._pids_in(self._dirs(container_id))

    def homes(self, proc_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
        try:
            with open(proc_cgroup) as f:
                lines = f.read().splitlines()
        except OSError:
            return {}
        own: dict[str, str] = {}  # controller ("" for v2) -> path within its hierarchy
        for line in lines:
            _, controllers, path = line.split(":", 2)
            path = path.split(" ")[0] or "/"  # "(deleted)" suffix of a removed cgroup
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = path
        return {parent: os.path.join(home, "cgroup.procs")
                for parent, home in self._home_dirs(own).items()}

    @abstractmethod
    def _home_dirs(self, own: dict[str, str]) -> dict[str, str]:
        """``homes``, as directories, from this process's cgroup path per controller."""

    def containers(self) -> list[str]:
        found: set[str] = set()
        for parent in self._parents():
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                for entry in os.scandir(parent):
                    if entry.is_dir(follow_symlinks=False):
                        with contextlib.suppress(ValueError):
                            found.add(_check_name(entry.name))
        return sorted(found)

    def destroy(self, container_id: str) -> None:
        if self.fake:
            dirs = [d for d in self._dirs(container_id) if os.path.isdir(d)]
        else:
            dirs = self._remove_empty(self._dirs(container_id))
        if not dirs:
            return
        if self.fake:
            # A fake tree holds plain files and no real processes: nothing to signal.
            import shutil

            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
            return
        deadline = time.monotonic() + _DESTROY_TIMEOUT
        me = os.getpid()
        while True:
            left = [p for p in self._pids_in(dirs) if p != me]
            if not left:
                break
            if time.monotonic() >= deadline:
                raise IsolationError(dirs[0], f"processes {left} survived SIGKILL for "
                                     f"{_DESTROY_TIMEOUT:g} s (uninterruptible sleep?)")
            for d in dirs:
                kill_file = os.path.join(d, "cgroup.kill")  # v2, Linux >= 5.14
                if os.path.exists(kill_file):
                    with contextlib.suppress(IsolationError):
                        _write(kill_file, "1")
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(_POLL)
        for d in dirs:
            self._rmdir_tree(d, deadline)

    @staticmethod
    def _remove_empty(dirs: list[str]) -> list[str]:
        """Remove the cgroups that hold no process and no cgroup (the kernel refuses the
        rest with EBUSY), in one call each; returns those left.

        The usual end of a container: its supervisor, the last process in it, has been
        reaped. Looking for processes first (and walking each cgroup twice) made
        releasing a container dearer than preparing it, on the launcher's loop."""
        left = []
        for d in dirs:
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError:
                left.append(d)
        return left

    @staticmethod
    def _rmdir_tree(top: str, deadline: float) -> None:
        """rmdir bottom-up; EBUSY can linger a moment after the last task exits."""
        for sub, _, _ in os.walk(top, topdown=False):
            while True:
                try:
                    os.rmdir(sub)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                        raise IsolationError(sub, e.strerror or str(e), e.errno) from e
                    time.sleep(_POLL)


class CgroupsV1(_Cgroups):
    """One directory per container under each mounted v1 controller.

    ``mounts`` maps controller name to mount point; ``memory`` and ``cpu`` are required,
    ``cpuacct`` (exact CPU time) and ``pids`` (fork-bomb protection) are used when
    present. Co-mounted controllers share a mount point and so share a directory.
    """

    kind = "cgroups-v1"

    def __init__(self, mounts: dict[str, str], root: str, *, fake: bool = False) -> None:
        super().__init__(root, fake=fake)
        missing = [c for c in ("memory", "cpu") if c not in mounts]
        if missing:
            raise ValueError(f"cgroup v1 controllers {missing} are required")
        self.mounts = {c: mounts[c] for c in _V1_USED if c in mounts}
        #: whether memory cgroups have memory.memsw.* (swap accounting, decided at
        #: boot): looked at in the first container only, rather than with a stat of
        #: the cgroup filesystem per launch (a tenth of a ms of the launcher's)
        self._has_memsw: bool | None = None

    @property
    def limits_pids(self) -> bool:
        return "pids" in self.mounts

    def _parents(self) -> list[str]:
        unique = dict.fromkeys(os.path.normpath(m) for m in self.mounts.values())
        return [os.path.join(m, self.root) for m in unique]

    def _joined(self, dirs: list[str], limits: Limits) -> list[str]:
        if limits.pids_max is not None:
            return dirs
        pids_mount = self.mounts.get("pids")
        shared = {os.path.normpath(self.mounts[c]) for c in self.mounts if c != "pids"}
        if pids_mount is None or os.path.normpath(pids_mount) in shared:
            return dirs
        skip = os.path.join(os.path.normpath(pids_mount), self.root)
        return [d for d in dirs if os.path.dirname(d) != skip]

    def _home_dirs(self, own: dict[str, str]) -> dict[str, str]:
        found = {}
        for controller, mount in self.mounts.items():
            path = own.get(controller)
            if path is not None:
                mount = os.path.normpath(mount)
                found[os.path.join(mount, self.root)] = os.path.normpath(
                    os.path.join(mount, path.lstrip("/")))
        return found

    def _dir(self, controller: str, container_id: str) -> str | None:
        mount = self.mounts.get(controller)
        if mount is None:
            return None
        return os.path.join(os.path.normpath(mount), self.root, _check_name(container_id))

    def probe(self) -> None:
        """Prove we may create cgroups: make ``<root>`` and a scratch child in each."""
        for parent in self._parents():
            scratch = os.path.join(parent, f".probe-{os.getpid()}")
            try:
                os.makedirs(parent, exist_ok=True)
                os.mkdir(scratch)
                os.rmdir(scratch)
            except OSError as e:
                raise IsolationError(scratch, e.strerror or str(e), e.errno) from e

    def _write_limits(self, container_id: str, limits: Limits) -> None:
        cpu = self._dir("cpu", container_id)
        mem = self._dir("memory", container_id)
        pids = self._dir("pids", container_id)
        assert cpu is not None and mem is not None  # required by the constructor
        if limits.cpus is not None:
            _write(os.path.join(cpu, "cpu.shares"), str(_shares(limits.cpus)))
            if limits.cpu_hard_limit:
                _write(os.path.join(cpu, "cpu.cfs_period_us"), str(CFS_PERIOD_US))
                _write(os.path.join(cpu, "cpu.cfs_quota_us"), str(_quota(limits.cpus)))
            else:
                # No quota: what a new cgroup has. Written only when it differs (a
                # cgroup left by a crash): setting a CFS quota is among the dearest
                # writes of a launch, even to the value it already has.
                quota = os.path.join(cpu, "cpu.cfs_quota_us")
                if _read_int(quota) != -1:
                    _write(quota, "-1")
        if limits.mem_bytes is not None:
            self._write_memory(mem, str(limits.mem_bytes))
        if limits.pids_max is not None:
            if pids is None:
                _log().warning("pids cgroup controller not mounted: pids_max %d not enforced",
                               limits.pids_max)
            else:
                _write(os.path.join(pids, "pids.max"), str(limits.pids_max))

    def _write_memory(self, mem: str, value: str) -> None:
        """Limit RAM, and RAM+swap to the same value so the task cannot page out.

        The kernel insists memsw >= limit at every moment: lowering works limit-first,
        raising above an existing memsw limit (re-prepare) only memsw-first.
        """
        limit = os.path.join(mem, "memory.limit_in_bytes")
        memsw = os.path.join(mem, "memory.memsw.limit_in_bytes")
        if self._has_memsw is None:
            self._has_memsw = os.path.exists(memsw)
        has_memsw = self._has_memsw
        try:
            _write(limit, value)
        except IsolationError as e:
            if not (has_memsw and e.errno == errno.EINVAL):
                raise
            _write(memsw, value)
            _write(limit, value)
            return
        if has_memsw:
            _write(memsw, value)

    def usage(self, container_id: str, pid: int | None) -> Usage | None:
        mem = self._dir("memory", container_id)
        assert mem is not None
        if not os.path.isdir(mem):
            return None
        acct = self._dir("cpuacct", container_id)
        if acct is not None:
            cpu = (_read_int(os.path.join(acct, "cpuacct.usage")) or 0) / 1e9
        else:
            # No cpuacct: only live processes can be asked; exited ones are lost.
            import psutil

            procs: list[psutil.Process] = []
            for q in self.pids(container_id):
                with contextlib.suppress(psutil.Error):
                    procs.append(psutil.Process(q))
            cpu = _tree_cpu(procs)
        stat = _read_kv(os.path.join(mem, "memory.stat"))
        rss = stat.get("total_rss", stat.get("rss", 0))
        peak = _read_int(os.path.join(mem, "memory.max_usage_in_bytes")) or 0
        return Usage(cpu_seconds=cpu, rss_bytes=rss, peak_bytes=max(peak, rss))

    def oom_killed(self, container_id: str) -> bool:
        mem = self._dir("memory", container_id)
        assert mem is not None
        ctl = _read_kv(os.path.join(mem, "memory.oom_control"))
        if "oom_kill" in ctl:  # Linux >= 4.13 counts kills exactly
            return ctl["oom_kill"] > 0
        # Older kernels: a heuristic. Either the group is in OOM right now, or it hit
        # its limit at least once; callers should combine it with the exit signal.
        failcnt = _read_int(os.path.join(mem, "memory.failcnt")) or 0
        return ctl.get("under_oom", 0) > 0 or failcnt > 0


class CgroupsV2(_Cgroups):
    """Containers under one directory of the unified hierarchy.

    ``mount`` is the cgroup2 mount point and ``base`` the agent's own cgroup relative to
    it ("/" or, under systemd ``Delegate=yes``, e.g. "/system.slice/agent.service").
    Containers live at ``<mount><base>/<root>/<container_id>``.

    cgroup v2 forbids processes in a cgroup whose children have controllers enabled, so
    outside the root cgroup :meth:`setup` first moves the agent's processes into the leaf
    ``<base>/agent``, then enables the controllers in ``<base>`` and ``<base>/<root>``.
    """

    kind = "cgroups-v2"

    def __init__(self, mount: str, base: str, root: str, *, fake: bool = False) -> None:
        super().__init__(root, fake=fake)
        self.mount = os.path.normpath(mount)
        self.base = "/" + base.strip("/")
        self.own = os.path.normpath(os.path.join(self.mount, self.base.lstrip("/")))
        if self.base != "/" and root == _AGENT_LEAF:
            raise ValueError(f"cgroup root {root!r} collides with the agent's own leaf")
        self.parent = os.path.join(self.own, self.root)
        self.controllers: tuple[str, ...] = ()
        self._ready = False
        self._lock = threading.Lock()

    def _parents(self) -> list[str]:
        return [self.parent]

    def _home_dirs(self, own: dict[str, str]) -> dict[str, str]:
        """The agent's leaf (:meth:`setup` moved the agent, and so its launcher, there),
        or the root cgroup when the agent runs in it; never an inner node, where no
        process may be once controllers are enabled below it."""
        if own.get("") is None:
            return {}
        home = os.path.join(self.own, _AGENT_LEAF) if self.base != "/" else self.own
        return {self.parent: home}

    @property
    def limits_pids(self) -> bool:
        return "pids" in self.controllers  # known once set up (detect does it)

    def setup(self) -> None:
        """Make the delegated subtree usable; idempotent, and run lazily by prepare."""
        with self._lock:
            if self._ready:
                return
            available = (_read(os.path.join(self.own, "cgroup.controllers")) or "").split()
            wanted = tuple(c for c in _V2_WANTED if c in available)
            if "cpu" not in wanted or "memory" not in wanted:
                raise IsolationError(os.path.join(self.own, "cgroup.controllers"),
                                     f"cpu and memory controllers not delegated "
                                     f"(available: {' '.join(available) or 'none'})")
            if self.base != "/":
                self._leave_inner_node()
            enable = " ".join(f"+{c}" for c in wanted)
            _write(os.path.join(self.own, "cgroup.subtree_control"), enable)
            try:
                os.makedirs(self.parent, exist_ok=True)
            except OSError as e:
                raise IsolationError(self.parent, e.strerror or str(e), e.errno) from e
            _write(os.path.join(self.parent, "cgroup.subtree_control"), enable)
            self.controllers = wanted
            self._ready = True

    def _leave_inner_node(self) -> None:
        leaf = os.path.join(self.own, _AGENT_LEAF)
        try:
            os.makedirs(leaf, exist_ok=True)
        except OSError as e:
            raise IsolationError(leaf, e.strerror or str(e), e.errno) from e
        src = os.path.join(self.own, "cgroup.procs")
        dst = os.path.join(leaf, "cgroup.procs")
        for pid in _read_pids(src):
            try:
                if self.fake:  # plain files: append, as the kernel would list them
                    with open(dst, "a") as f:
                        f.write(f"{pid}\n")
                else:
                    _write(dst, str(pid))
            except IsolationError as e:
                if e.errno != errno.ESRCH:  # exited meanwhile: nothing to move
                    raise
        if self.fake:
            _write(src, "")

    def _write_limits(self, container_id: str, limits: Limits) -> None:
        d = os.path.join(self.parent, _check_name(container_id))
        if limits.cpus is not None:
            _write(os.path.join(d, "cpu.weight"), str(_weight(_shares(limits.cpus))))
            quota = str(_quota(limits.cpus)) if limits.cpu_hard_limit else "max"
            _write(os.path.join(d, "cpu.max"), f"{quota} {CFS_PERIOD_US}")
        if limits.mem_bytes is not None:
            _write(os.path.join(d, "memory.max"), str(limits.mem_bytes))
            swap = os.path.join(d, "memory.swap.max")
            if os.path.exists(swap):  # absent without swap accounting
                _write(swap, "0")
        if limits.pids_max is not None:
            if "pids" not in self.controllers:
                _log().warning("pids controller not delegated: pids_max %d not enforced",
                               limits.pids_max)
            else:
                _write(os.path.join(d, "pids.max"), str(limits.pids_max))

    def prepare(self, container_id: str, limits: Limits) -> list[str]:
        _check_name(container_id)
        self.setup()
        return super().prepare(container_id, limits)

    def usage(self, container_id: str, pid: int | None) -> Usage | None:
        d = os.path.join(self.parent, _check_name(container_id))
        if not os.path.isdir(d):
            return None
        cpu = _read_kv(os.path.join(d, "cpu.stat")).get("usage_usec", 0) / 1e6
        rss = _read_kv(os.path.join(d, "memory.stat")).get("anon", 0)
        peak = _read_int(os.path.join(d, "memory.peak"))  # Linux >= 5.19
        if peak is None:
            peak = _read_int(os.path.join(d, "memory.current")) or 0
        return Usage(cpu_seconds=cpu, rss_bytes=rss, peak_bytes=max(peak, rss))

    def oom_killed(self, container_id: str) -> bool:
        d = os.path.join(self.parent, _check_name(container_id))
        return _read_kv(os.path.join(d, "memory.events")).get("oom_kill", 0) > 0


# ----------------------------------------------------------------------------- posix


class Posix(Isolator):
    """No kernel help: poll the task's process tree and SIGKILL it over its memory.

    Weaker than cgroups on every count (a fast allocation can overshoot between polls,
    CPU is not limited, processes that escape the tree are lost), but it keeps memory
    reservations meaningful on hosts where the agent cannot write cgroups.
    """

    kind = "posix"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._peak: dict[str, int] = {}
        self._oom: set[str] = set()

    def prepare(self, container_id: str, limits: Limits) -> list[str]:
        _check_name(container_id)
        with self._lock:  # a reused id starts afresh
            self._peak.pop(container_id, None)
            self._oom.discard(container_id)
        return []

    def _remember(self, container_id: str, rss: int) -> int:
        with self._lock:
            peak = max(rss, self._peak.get(container_id, 0))
            self._peak[container_id] = peak
            return peak

    def usage(self, container_id: str, pid: int | None) -> Usage | None:
        _check_name(container_id)
        procs = _tree(pid)
        if procs is None:
            return None
        rss = _tree_rss(procs)
        peak = self._remember(container_id, rss)
        return Usage(cpu_seconds=_tree_cpu(procs), rss_bytes=rss, peak_bytes=peak)

    def oom_killed(self, container_id: str) -> bool:
        _check_name(container_id)
        with self._lock:
            return container_id in self._oom

    def pids(self, container_id: str) -> list[int]:
        _check_name(container_id)
        return []

    def destroy(self, container_id: str) -> None:
        # Posix owns no processes (the containerizer kills the task's process group),
        # only bookkeeping.
        _check_name(container_id)
        with self._lock:
            self._peak.pop(container_id, None)
            self._oom.discard(container_id)

    def containers(self) -> list[str]:
        return []  # nothing survives an agent restart

    def enforce(self, container_id: str, pid: int | None, limits: Limits) -> bool:
        import psutil

        _check_name(container_id)
        procs = _tree(pid)
        if procs is None or pid is None:
            return False
        rss = _tree_rss(procs)
        self._remember(container_id, rss)
        if limits.mem_bytes is None or rss <= limits.mem_bytes:
            return False
        _log().warning("container %s uses %d bytes of memory, limit %d: killing it",
                       container_id, rss, limits.mem_bytes)
        with self._lock:
            self._oom.add(container_id)
        # The task leads its own process group: killing the group first also reaches
        # children forked after the tree was listed; the list catches setsid() escapees.
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.kill()
        return True


# ---------------------------------------------------------------------------- detect


class _Unusable(Exception):
    """Internal: why one kind of isolation cannot be used here."""


def _try_v1(mounts: CgroupMounts, root: str, fake: bool) -> CgroupsV1:
    missing = [c for c in ("memory", "cpu") if c not in mounts.v1]
    if missing:
        raise _Unusable(f"cgroup v1 controllers {', '.join(missing)} not mounted")
    iso = CgroupsV1(mounts.v1, root, fake=fake)
    try:
        iso.probe()
    except IsolationError as e:
        raise _Unusable(f"cannot create cgroup v1 directories: {e}") from e
    return iso


def _own_cgroup(mounts: CgroupMounts, proc_cgroup: str, root: str) -> str:
    """The agent's v2 cgroup, relative to the unified mount."""
    try:
        with open(proc_cgroup) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise _Unusable(f"cannot read {proc_cgroup}: {e.strerror}") from e
    path = next((ln[3:] for ln in lines if ln.startswith("0::")), None)
    if path is None:
        raise _Unusable(f"{proc_cgroup} has no cgroup v2 entry ('0::/...')")
    path = path.split(" ")[0] or "/"  # "(deleted)" suffix of a removed cgroup
    vroot = mounts.v2_root.rstrip("/")
    if vroot and (path == vroot or path.startswith(vroot + "/")):
        path = path[len(vroot):] or "/"
    # A second detect in the same process finds itself already in the leaf.
    head, tail = os.path.split(path.rstrip("/"))
    assert mounts.v2 is not None
    if tail == _AGENT_LEAF and os.path.isdir(os.path.join(mounts.v2, head.lstrip("/"), root)):
        path = head or "/"
    return path


def _try_v2(mounts: CgroupMounts, root: str, proc_cgroup: str, fake: bool) -> CgroupsV2:
    if mounts.v2 is None:
        raise _Unusable("no cgroup2 (unified) hierarchy mounted")
    iso = CgroupsV2(mounts.v2, _own_cgroup(mounts, proc_cgroup, root), root, fake=fake)
    try:
        iso.setup()
    except IsolationError as e:
        raise _Unusable(f"cannot use the cgroup v2 subtree {iso.own}: {e}") from e
    return iso


def detect_isolator(root: str = "mesos-zmq", prefer: str = "auto", *,
                    cgroup_mount: str = "/sys/fs/cgroup",
                    mountinfo: str = "/proc/self/mountinfo",
                    proc_cgroup: str = "/proc/self/cgroup",
                    fake: bool = False) -> Isolator:
    """The best isolator this host allows, or the one ``prefer`` names.

    ``auto`` tries v1 (memory and cpu mounted and writable), then v2 (cpu and memory
    delegated to the agent's cgroup and its subtree_control writable), then falls back
    to :class:`Posix` with a warning. An explicit choice that cannot work raises
    ConfigError rather than silently running tasks without the isolation asked for.
    ``mountinfo``, ``proc_cgroup`` and ``fake`` exist so tests can use a fake tree.
    """
    choices = ("auto", "cgroups-v1", "cgroups-v2", "posix")
    if prefer not in choices:
        raise ConfigError(f"unknown isolation {prefer!r}; choose one of {', '.join(choices)}")
    try:
        _check_name(root, "cgroup root")
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if prefer == "posix":
        return Posix()
    try:
        with open(mountinfo) as f:
            mounts = parse_mountinfo(f.read(), cgroup_mount)
    except OSError as e:
        mounts = CgroupMounts()
        _log().debug("cannot read %s: %s", mountinfo, e.strerror)
    reasons: list[str] = []
    hint = "run the agent as root with the hierarchy mounted, or choose posix isolation"
    if prefer in ("auto", "cgroups-v1"):
        try:
            return _try_v1(mounts, root, fake)
        except _Unusable as e:
            if prefer == "cgroups-v1":
                raise ConfigError(f"cgroups-v1 isolation unusable: {e}; {hint}") from e
            reasons.append(str(e))
    if prefer in ("auto", "cgroups-v2"):
        try:
            return _try_v2(mounts, root, proc_cgroup, fake)
        except _Unusable as e:
            if prefer == "cgroups-v2":
                raise ConfigError(
                    f"cgroups-v2 isolation unusable: {e}; run the agent as root or under "
                    f"systemd with Delegate=yes, or choose posix isolation") from e
            reasons.append(str(e))
    _log().warning("cgroups not writable: falling back to posix isolation, memory limits "
                   "enforced by polling (%s)", "; ".join(reasons))
    return Posix()

"""Task isolation: cgroup v1/v2 against fake trees, mountinfo parsing, real cgroups, posix.

The fake-tree tests pin the exact files and values written, on any machine. The real
cgroup tests run only as root on a host with writable v1 controllers and prove the
kernel actually enforces what we wrote (OOM kill, CFS quota).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesos_zmq.agent.isolation import (
    CgroupsV1,
    CgroupsV2,
    IsolationError,
    Isolator,
    Limits,
    Posix,
    Usage,
    detect_isolator,
    join_cgroups,
    parse_mountinfo,
)
from mesos_zmq.errors import ConfigError, MesosZmqError

MiB = 1024 * 1024
TEST_ROOT = "mesos-zmq-test"  # not the agent's default, so a live agent never reaps ours


def cid() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


def read(path: Path) -> str:
    return path.read_text().strip()


# --------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", ["", "..", "a/b", "../x", "a..b", ".", "a b", "x" * 256])
def test_container_ids_are_validated(tmp_path: Path, bad: str) -> None:
    iso = CgroupsV1({"memory": str(tmp_path / "m"), "cpu": str(tmp_path / "c")}, "r",
                    fake=True)
    with pytest.raises(ValueError):
        iso.prepare(bad, Limits())
    with pytest.raises(ValueError):
        Posix().usage(bad, None)


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        Limits(cpus=0)
    with pytest.raises(ValueError):
        Limits(mem_bytes=-1)
    with pytest.raises(ValueError):
        Limits(pids_max=0)


# ---------------------------------------------------------------------- mountinfo

V1_SEPARATE = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
"""

HYBRID_COMOUNTED = """\
25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 \
cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup \
cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 \
master:3 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup \
cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup \
cgroup rw,pids
33 25 0:30 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid shared:17 - cgroup cgroup \
rw,net_cls,net_prio
""".replace("\\\n", "")

V2_ONLY = """\
24 23 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
27 24 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
""".replace("\\\n", "")


def test_mountinfo_v1_separate_mounts() -> None:
    m = parse_mountinfo(V1_SEPARATE)
    assert m.v1 == {
        "cpu": "/sys/fs/cgroup/cpu",
        "cpuacct": "/sys/fs/cgroup/cpuacct",
        "memory": "/sys/fs/cgroup/memory",
        "pids": "/sys/fs/cgroup/pids",
    }
    assert m.v2 is None


def test_mountinfo_hybrid_with_comounted_controllers() -> None:
    m = parse_mountinfo(HYBRID_COMOUNTED)
    assert m.v1["cpu"] == m.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert m.v1["memory"] == "/sys/fs/cgroup/memory"
    assert m.v1["net_prio"] == "/sys/fs/cgroup/net_cls,net_prio"
    assert "name=systemd" not in m.v1 and "xattr" not in m.v1
    assert m.v2 == "/sys/fs/cgroup/unified"


def test_mountinfo_v2_only() -> None:
    m = parse_mountinfo(V2_ONLY)
    assert m.v1 == {}
    assert (m.v2, m.v2_root) == ("/sys/fs/cgroup", "/")


def test_mountinfo_escapes_and_preferred_location() -> None:
    text = (
        "50 1 0:40 / /mnt/my\\040cg rw - cgroup cgroup rw,memory\n"
        "51 1 0:40 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "52 1 0:41 / /elsewhere rw - cgroup cgroup rw,cpu\n"
        "53 1 0:42 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
        "garbage line\n"
    )
    m = parse_mountinfo(text)
    assert m.v1 == {"memory": "/sys/fs/cgroup/memory", "cpu": "/elsewhere"}
    assert (m.v2, m.v2_root) == ("/sys/fs/cgroup", "/docker/abc")
    assert parse_mountinfo(text, prefer_under="/mnt").v1["memory"] == "/mnt/my cg"


# ----------------------------------------------------------------- v1, fake tree


def fake_v1(tmp_path: Path, comounted: bool) -> tuple[CgroupsV1, dict[str, Path]]:
    dirs = {c: tmp_path / c for c in ("memory", "cpu", "cpuacct", "pids")}
    if comounted:
        dirs["cpu"] = dirs["cpuacct"] = tmp_path / "cpu,cpuacct"
    return CgroupsV1({c: str(d) for c, d in dirs.items()}, "mz", fake=True), dirs


@pytest.mark.parametrize("comounted", [False, True])
def test_v1_fake_prepare_writes_limits(tmp_path: Path, comounted: bool) -> None:
    iso, dirs = fake_v1(tmp_path, comounted)
    c = cid()
    # memsw exists only with swap accounting: pre-create it to see it written.
    (dirs["memory"] / "mz" / c).mkdir(parents=True)
    (dirs["memory"] / "mz" / c / "memory.memsw.limit_in_bytes").write_text("max")
    procs = iso.prepare(c, Limits(cpus=1.5, cpu_hard_limit=True, mem_bytes=64 * MiB,
                                  pids_max=100))
    unique = list(dict.fromkeys(dirs[k] for k in ("memory", "cpu", "cpuacct", "pids")))
    assert procs == [str(d / "mz" / c / "cgroup.procs") for d in unique]
    assert len(procs) == (3 if comounted else 4)
    cpu, mem = dirs["cpu"] / "mz" / c, dirs["memory"] / "mz" / c
    assert read(cpu / "cpu.shares") == "1536"
    assert read(cpu / "cpu.cfs_period_us") == "100000"
    assert read(cpu / "cpu.cfs_quota_us") == "150000"
    assert read(mem / "memory.limit_in_bytes") == str(64 * MiB)
    assert read(mem / "memory.memsw.limit_in_bytes") == str(64 * MiB)
    assert read(dirs["pids"] / "mz" / c / "pids.max") == "100"
    assert iso.containers() == [c]
    iso.destroy(c)
    assert iso.containers() == []
    assert not any((d / "mz" / c).exists() for d in unique)
    iso.destroy(c)  # idempotent


def test_v1_looks_for_swap_accounting_once(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether memory cgroups have memsw files is the host's (decided at boot): the
    first container's say so for the next ones, without a look at each."""
    iso, dirs = fake_v1(tmp_path, False)
    first, second = cid(), cid()
    (dirs["memory"] / "mz" / first).mkdir(parents=True)
    (dirs["memory"] / "mz" / first / "memory.memsw.limit_in_bytes").write_text("max")
    looked: list[str] = []
    exists = os.path.exists

    def counting(path: str) -> bool:
        if path.endswith("memsw.limit_in_bytes"):
            looked.append(path)
        return exists(path)

    monkeypatch.setattr(os.path, "exists", counting)
    for c in (first, second):
        iso.prepare(c, Limits(mem_bytes=64 * MiB))
    assert len(looked) == 1
    second_memsw = dirs["memory"] / "mz" / second / "memory.memsw.limit_in_bytes"
    assert read(second_memsw) == str(64 * MiB)


def test_v1_fake_soft_cpu_and_small_shares(tmp_path: Path) -> None:
    iso, dirs = fake_v1(tmp_path, False)
    c = cid()
    iso.prepare(c, Limits(cpus=0.001, mem_bytes=MiB))
    cpu, mem = dirs["cpu"] / "mz" / c, dirs["memory"] / "mz" / c
    assert read(cpu / "cpu.shares") == "2"  # the kernel minimum
    assert read(cpu / "cpu.cfs_quota_us") == "-1"
    assert not (mem / "memory.memsw.limit_in_bytes").exists()
    assert not (dirs["pids"] / "mz" / c / "pids.max").exists()


def test_v1_fake_usage_oom_and_pids(tmp_path: Path) -> None:
    iso, dirs = fake_v1(tmp_path, True)
    c = cid()
    assert iso.usage(c, None) is None
    iso.prepare(c, Limits(mem_bytes=64 * MiB))
    mem, acct = dirs["memory"] / "mz" / c, dirs["cpuacct"] / "mz" / c
    (acct / "cpuacct.usage").write_text("2500000000\n")
    (mem / "memory.stat").write_text("cache 4096\nrss 1000\ntotal_cache 8192\n"
                                     "total_rss 5242880\ntotal_mapped_file 0\n")
    (mem / "memory.max_usage_in_bytes").write_text("9437184\n")
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    (mem / "cgroup.procs").write_text("12\n7\n")
    (acct / "cgroup.procs").write_text("7\n")
    assert iso.usage(c, None) == Usage(cpu_seconds=2.5, rss_bytes=5 * MiB,
                                       peak_bytes=9 * MiB)
    assert iso.pids(c) == [7, 12]
    assert iso.oom_killed(c) is False
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert iso.oom_killed(c) is True
    # Kernels before 4.13 have no oom_kill line: fall back to failcnt/under_oom.
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    (mem / "memory.failcnt").write_text("0\n")
    assert iso.oom_killed(c) is False
    (mem / "memory.failcnt").write_text("3\n")
    assert iso.oom_killed(c) is True
    iso.destroy(c)
    assert iso.usage(c, None) is None


def test_v1_write_error_names_the_file(tmp_path: Path) -> None:
    iso, dirs = fake_v1(tmp_path, False)
    c = cid()
    # A directory where a limit file should be: the write fails with EISDIR.
    (dirs["cpu"] / "mz" / c / "cpu.shares").mkdir(parents=True)
    with pytest.raises(IsolationError) as info:
        iso.prepare(c, Limits(cpus=1))
    assert isinstance(info.value, MesosZmqError)
    assert "cpu.shares" in str(info.value) and info.value.strerror
    assert iso.containers() == []  # a failed prepare leaves nothing behind


@pytest.mark.parametrize("comounted", [False, True])
def test_v1_homes_are_this_process_cgroups_per_hierarchy(tmp_path: Path,
                                                         comounted: bool) -> None:
    """Where a shared supervisor goes back to after starting a task in its cgroups:
    per directory of containers, the cgroup.procs of its own cgroup in that hierarchy
    (each controller's line of /proc/<pid>/cgroup; co-mounted ones share one)."""
    iso, dirs = fake_v1(tmp_path, comounted)
    proc_cgroup = tmp_path / "cgroup"
    proc_cgroup.write_text("12:pids:/user.slice\n"
                           f"4:{'cpu,cpuacct' if comounted else 'cpu'}:/\n"
                           + ("" if comounted else "5:cpuacct:/\n")
                           + "3:memory:/system.slice/agent.service\n"
                           "1:name=systemd:/system.slice/agent.service\n0::/\n")
    homes = iso.homes(str(proc_cgroup))
    expected = {str(dirs["pids"] / "mz"): str(dirs["pids"] / "user.slice" / "cgroup.procs"),
                str(dirs["cpu"] / "mz"): str(dirs["cpu"] / "cgroup.procs"),
                str(dirs["cpuacct"] / "mz"): str(dirs["cpuacct"] / "cgroup.procs"),
                str(dirs["memory"] / "mz"): str(dirs["memory"] / "system.slice"
                                                / "agent.service" / "cgroup.procs")}
    assert homes == expected
    # Every cgroup a task joins has a way back.
    procs = iso.prepare(cid(), Limits(mem_bytes=1 << 20, pids_max=10))
    assert {os.path.dirname(os.path.dirname(p)) for p in procs} <= homes.keys()
    assert iso.homes(str(tmp_path / "missing")) == {}


# ----------------------------------------------------------------- v2, fake tree


def fake_v2(tmp_path: Path, own: str = "system.slice/agent.service") -> Path:
    mount = tmp_path / "cg2"
    d = mount / own
    d.mkdir(parents=True)
    (mount / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (d / "cgroup.controllers").write_text("cpu io memory pids\n")
    (d / "cgroup.procs").write_text("4242\n4243\n")
    return mount


def test_v2_fake_setup_moves_agent_and_enables_controllers(tmp_path: Path) -> None:
    mount = fake_v2(tmp_path)
    own = mount / "system.slice/agent.service"
    iso = CgroupsV2(str(mount), "/system.slice/agent.service", "mz", fake=True)
    iso.setup()
    assert read(own / "agent" / "cgroup.procs").split() == ["4242", "4243"]
    assert read(own / "cgroup.procs") == ""
    assert read(own / "cgroup.subtree_control") == "+cpu +memory +pids"
    assert read(own / "mz" / "cgroup.subtree_control") == "+cpu +memory +pids"


def test_v2_fake_prepare_usage_oom_destroy(tmp_path: Path) -> None:
    mount = fake_v2(tmp_path)
    parent = mount / "system.slice/agent.service" / "mz"
    iso = CgroupsV2(str(mount), "system.slice/agent.service", "mz", fake=True)
    c = cid()
    # memory.swap.max exists only with swap accounting: pre-create it to see it written.
    (parent / c).mkdir(parents=True)
    (parent / c / "memory.swap.max").write_text("max")
    procs = iso.prepare(c, Limits(cpus=1.0, cpu_hard_limit=True, mem_bytes=128 * MiB,
                                  pids_max=64))
    d = parent / c
    assert procs == [str(d / "cgroup.procs")]
    assert read(d / "cpu.weight") == "39"  # 1024 shares, the runc/systemd mapping
    assert read(d / "cpu.max") == "100000 100000"
    assert read(d / "memory.max") == str(128 * MiB)
    assert read(d / "memory.swap.max") == "0"
    assert read(d / "pids.max") == "64"

    (d / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n"
                                "system_usec 500000\n")
    (d / "memory.stat").write_text("anon 3145728\nfile 8192\n")
    (d / "memory.current").write_text("4194304\n")
    assert iso.usage(c, None) == Usage(cpu_seconds=1.5, rss_bytes=3 * MiB,
                                       peak_bytes=4 * MiB)
    (d / "memory.peak").write_text("10485760\n")
    assert iso.usage(c, None) == Usage(1.5, 3 * MiB, 10 * MiB)

    (d / "memory.events").write_text("low 0\nhigh 0\nmax 5\noom 1\noom_kill 0\n")
    assert iso.oom_killed(c) is False
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n")
    assert iso.oom_killed(c) is True

    other = cid()
    iso.prepare(other, Limits(cpus=0.5))
    assert read(parent / other / "cpu.max") == "max 100000"
    assert read(parent / other / "cpu.weight") == "20"
    assert not (parent / other / "memory.swap.max").exists()
    assert iso.containers() == sorted([c, other])
    iso.destroy(c)
    iso.destroy(c)
    assert iso.containers() == [other]
    assert iso.usage(c, None) is None
    iso.destroy(other)


def test_v2_home_is_the_agents_leaf_or_the_root(tmp_path: Path) -> None:
    """Never the agent's own (inner) cgroup, where no process may be once controllers
    are enabled below it: the leaf setup moved the agent into, or the root."""
    mount = fake_v2(tmp_path)
    proc_cgroup = tmp_path / "cgroup"
    proc_cgroup.write_text("0::/system.slice/agent.service/agent\n")
    iso = CgroupsV2(str(mount), "system.slice/agent.service", "mz", fake=True)
    own = mount / "system.slice" / "agent.service"
    assert iso.homes(str(proc_cgroup)) == {str(own / "mz"): str(own / "agent" / "cgroup.procs")}
    root = fake_v2(tmp_path / "r", own="")
    at_root = CgroupsV2(str(root), "/", "mz", fake=True)
    proc_cgroup.write_text("0::/\n")
    assert at_root.homes(str(proc_cgroup)) == {str(root / "mz"): str(root / "cgroup.procs")}
    proc_cgroup.write_text("3:memory:/\n")  # no v2 line: no way back known
    assert iso.homes(str(proc_cgroup)) == {}


def test_v2_weight_bounds(tmp_path: Path) -> None:
    mount = fake_v2(tmp_path, own="")
    iso = CgroupsV2(str(mount), "/", "mz", fake=True)
    c = cid()
    iso.prepare(c, Limits(cpus=10_000))
    assert read(mount / "mz" / c / "cpu.weight") == "10000"
    # In the root cgroup there is no inner-node problem: nothing is moved.
    assert not (mount / "agent").exists()
    assert read(mount / "cgroup.subtree_control") == "+cpu +memory +pids"


def test_v2_requires_cpu_and_memory(tmp_path: Path) -> None:
    mount = fake_v2(tmp_path)
    (mount / "system.slice/agent.service" / "cgroup.controllers").write_text("io pids\n")
    iso = CgroupsV2(str(mount), "system.slice/agent.service", "mz", fake=True)
    with pytest.raises(IsolationError, match="cpu and memory"):
        iso.prepare(cid(), Limits())


# ------------------------------------------------------------------------- detect


def write_mountinfo(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "mountinfo"
    path.write_text("".join(f"{i + 30} 1 0:{i} {ln}\n" for i, ln in enumerate(lines)))
    return str(path)


def test_detect_v1_on_fake_tree(tmp_path: Path) -> None:
    cg = tmp_path / "cg"
    for d in ("cpu,cpuacct", "memory"):
        (cg / d).mkdir(parents=True)
    mi = write_mountinfo(tmp_path, [
        f"/ {cg}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
        f"/ {cg}/memory rw - cgroup cgroup rw,memory",
    ])
    iso = detect_isolator("mz", cgroup_mount=str(cg), mountinfo=mi, fake=True)
    assert isinstance(iso, CgroupsV1) and iso.kind == "cgroups-v1"
    assert (cg / "memory" / "mz").is_dir() and (cg / "cpu,cpuacct" / "mz").is_dir()
    assert iso.containers() == []  # the probe directory is gone


def test_detect_v2_on_fake_tree(tmp_path: Path) -> None:
    mount = fake_v2(tmp_path)
    mi = write_mountinfo(tmp_path, [f"/ {mount} rw - cgroup2 cgroup2 rw"])
    pc = tmp_path / "cgroup"
    pc.write_text("0::/system.slice/agent.service\n")
    def detect(prefer: str) -> Isolator:
        return detect_isolator("mz", prefer, cgroup_mount=str(mount), mountinfo=mi,
                               proc_cgroup=str(pc), fake=True)

    iso = detect("cgroups-v2")
    assert isinstance(iso, CgroupsV2)
    assert iso.own == str(mount / "system.slice/agent.service")
    # Detecting again from inside the leaf finds the same delegated cgroup.
    pc.write_text("0::/system.slice/agent.service/agent\n")
    again = detect("auto")
    assert isinstance(again, CgroupsV2) and again.own == iso.own


def test_detect_falls_back_to_posix_with_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mi = write_mountinfo(tmp_path, ["/ /proc rw - proc proc rw"])
    with caplog.at_level(logging.WARNING):
        iso = detect_isolator("mz", mountinfo=mi, proc_cgroup=str(tmp_path / "none"))
    assert iso.kind == "posix"
    assert "falling back to posix isolation" in caplog.text


def test_detect_explicit_choice_must_work(tmp_path: Path) -> None:
    mi = write_mountinfo(tmp_path, ["/ /proc rw - proc proc rw"])
    with pytest.raises(ConfigError, match=r"cgroups-v1 isolation unusable.*not mounted"):
        detect_isolator("mz", "cgroups-v1", mountinfo=mi)
    with pytest.raises(ConfigError, match=r"cgroups-v2.*Delegate=yes"):
        detect_isolator("mz", "cgroups-v2", mountinfo=mi)
    with pytest.raises(ConfigError, match="unknown isolation"):
        detect_isolator("mz", "docker")
    with pytest.raises(ConfigError):
        detect_isolator("../etc", "posix")
    assert detect_isolator("mz", "posix").kind == "posix"


# ------------------------------------------------------------------ real cgroup v1


def real_v1_isolator(root: str) -> Isolator:
    """An isolator on this host's real cgroup v1 controllers under ``root``; the test is
    skipped where there are none it may write (not root, or cgroup v2 only)."""
    if os.geteuid() != 0:
        pytest.skip("real cgroup tests need root")
    iso = detect_isolator(root)
    if iso.kind != "cgroups-v1":
        pytest.skip(f"real cgroup v1 not usable here (detected {iso.kind})")
    return iso


@pytest.fixture
def real_v1() -> Iterator[Isolator]:
    yield real_v1_isolator(TEST_ROOT)


def spawn(procs: list[str], code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code],
                            preexec_fn=lambda: join_cgroups(procs))


def test_real_v1_oom_kill(real_v1: Isolator) -> None:
    c = cid()
    child = None
    try:
        procs = real_v1.prepare(c, Limits(mem_bytes=64 * MiB))
        child = spawn(procs, "x = b'x' * (300 * 1024 * 1024)\nimport time; time.sleep(30)")
        assert child.wait(timeout=10) == -signal.SIGKILL
        assert real_v1.oom_killed(c) is True
        usage = real_v1.usage(c, None)
        assert usage is not None and 32 * MiB < usage.peak_bytes <= 64 * MiB
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        real_v1.destroy(c)


def test_real_v1_usage_pids_and_destroy(real_v1: Isolator) -> None:
    assert isinstance(real_v1, CgroupsV1)
    c = cid()
    child = None
    try:
        procs = real_v1.prepare(c, Limits(cpus=1, mem_bytes=256 * MiB, pids_max=32))
        child = spawn(procs, "import time; print(flush=True); time.sleep(30)")
        deadline = time.monotonic() + 5
        while real_v1.pids(c) != [child.pid] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert real_v1.pids(c) == [child.pid]
        time.sleep(0.2)  # let the interpreter start up and touch some memory
        usage = real_v1.usage(c, child.pid)
        assert usage is not None
        assert usage.rss_bytes > 0 and usage.peak_bytes >= usage.rss_bytes
        assert usage.cpu_seconds > 0
        assert real_v1.oom_killed(c) is False
        assert c in real_v1.containers()
        real_v1.destroy(c)
        assert child.wait(timeout=5) == -signal.SIGKILL
        assert c not in real_v1.containers()
        assert not any(os.path.exists(os.path.dirname(p)) for p in procs)
        assert real_v1.usage(c, child.pid) is None
        assert real_v1.pids(c) == []
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        real_v1.destroy(c)


def test_real_v1_cpu_hard_limit(real_v1: Isolator) -> None:
    c = cid()
    child = None
    try:
        procs = real_v1.prepare(c, Limits(cpus=0.5, cpu_hard_limit=True))
        child = spawn(procs, "import time\nend = time.time() + 2\n"
                             "while time.time() < end: pass")
        assert child.wait(timeout=10) == 0
        usage = real_v1.usage(c, None)
        assert usage is not None
        print(f"cpu_seconds for 2 s of busy loop at cpus=0.5 hard: {usage.cpu_seconds:.3f}")
        assert 0.6 <= usage.cpu_seconds <= 1.4
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        real_v1.destroy(c)


# -------------------------------------------------------------------------- posix


def test_posix_enforce_kills_over_limit() -> None:
    iso = Posix()
    c = cid()
    limits = Limits(mem_bytes=50 * MiB)
    assert iso.prepare(c, limits) == []
    child = subprocess.Popen(
        [sys.executable, "-c", "x = b'x' * (200 * 1024 * 1024)\nimport time; time.sleep(30)"],
        start_new_session=True)
    try:
        usage = iso.usage(c, child.pid)
        assert usage is not None and usage.cpu_seconds >= 0
        killed = False
        deadline = time.monotonic() + 10
        while not killed and time.monotonic() < deadline:
            killed = iso.enforce(c, child.pid, limits)
            if not killed:
                time.sleep(0.05)
        assert killed
        assert child.wait(timeout=5) == -signal.SIGKILL
        assert iso.oom_killed(c) is True
        assert iso.usage(c, child.pid) is None  # reaped: gone
        assert iso.pids(c) == [] and iso.containers() == []
        assert iso.enforce(c, child.pid, limits) is False
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        iso.destroy(c)
    assert iso.oom_killed(c) is False


def test_posix_usage_tracks_peak_and_leaves_small_tasks_alone() -> None:
    iso = Posix()
    c = cid()
    iso.prepare(c, Limits(mem_bytes=1024 * MiB))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.1)
        assert iso.enforce(c, child.pid, Limits(mem_bytes=1024 * MiB)) is False
        assert iso.enforce(c, child.pid, Limits()) is False
        usage = iso.usage(c, child.pid)
        assert usage is not None and usage.rss_bytes > 0
        assert usage.peak_bytes >= usage.rss_bytes
        assert iso.oom_killed(c) is False
    finally:
        child.kill()
        child.wait()
        iso.destroy(c)
    assert iso.usage(c, None) is None


def test_real_v1_destroy_removes_empty_and_nested_containers(real_v1: Isolator) -> None:
    """An ended container goes with one rmdir per cgroup; one whose task made cgroups of
    its own and left a process in one is killed and removed all the same."""
    assert isinstance(real_v1, CgroupsV1)
    empty, nested = cid(), cid()
    child = None
    try:
        done = real_v1.prepare(empty, Limits(cpus=1, mem_bytes=64 * MiB, pids_max=32))
        assert spawn(done, "pass").wait(timeout=10) == 0
        real_v1.destroy(empty)
        assert not any(os.path.exists(os.path.dirname(p)) for p in done)
        procs = real_v1.prepare(nested, Limits(cpus=1, mem_bytes=64 * MiB))
        inner = [os.path.join(os.path.dirname(p), "inner", "cgroup.procs") for p in procs]
        for p in inner:
            os.mkdir(os.path.dirname(p))
        child = spawn(inner, "import time; time.sleep(30)")
        deadline = time.monotonic() + 5
        while real_v1.pids(nested) != [child.pid] and time.monotonic() < deadline:
            time.sleep(0.02)
        real_v1.destroy(nested)
        assert child.wait(timeout=5) == -signal.SIGKILL
        assert nested not in real_v1.containers() and empty not in real_v1.containers()
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        real_v1.destroy(nested)
        real_v1.destroy(empty)


def test_real_v1_soft_cpu_after_a_hard_quota(real_v1: Isolator) -> None:
    """The quota is written only when the cgroup has one (a container prepared again,
    after a crash, with other limits): a new cgroup keeps the kernel's "no quota"."""
    assert isinstance(real_v1, CgroupsV1)
    c = cid()
    quota = os.path.join(real_v1.mounts["cpu"], TEST_ROOT, c, "cpu.cfs_quota_us")
    try:
        real_v1.prepare(c, Limits(cpus=0.5, cpu_hard_limit=True))
        assert Path(quota).read_text().strip() == "50000"
        real_v1.prepare(c, Limits(cpus=0.5))
        assert Path(quota).read_text().strip() == "-1"
    finally:
        real_v1.destroy(c)

"""Host detection: GPUs through nvidia-smi (faked here: these machines have none)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mesos_zmq.agent.host_resources import detect_gpus, detect_resources


def fake_nvidia_smi(tmp_path: Path, body: str) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)


def test_gpus_are_the_indices_nvidia_smi_lists(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(tmp_path, 'echo "$@" > "$(dirname "$0")/args"; printf "0\\n1\\n3\\n"')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert detect_gpus() == ["0", "1", "3"]
    assert "--query-gpu=index" in (tmp_path / "args").read_text()
    res = detect_resources(str(tmp_path), "cpus:2;mem:512", gpus=3)
    assert res.scalar("gpus") == 3


def test_no_or_failing_nvidia_smi_means_no_gpus(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_gpus() == []
    fake_nvidia_smi(tmp_path, "echo 'NVIDIA-SMI has failed' >&2; exit 9")
    assert detect_gpus() == []
    assert detect_resources(str(tmp_path), "cpus:2;mem:512").scalar("gpus") == 0


def test_a_given_zero_is_honoured_not_replaced_by_the_detected_amount(tmp_path: Path) -> None:
    # `cpus:0` used to vanish in parsing (zeros are dropped), so the detected cpus
    # stayed: the agent offered every cpu of the host. As Mesos: a name written in
    # --resources is never detected, whatever its amount.
    res = detect_resources(str(tmp_path), "cpus:0;mem:512")
    assert res.scalar("cpus") == 0 and "cpus" not in res.names()
    assert res.scalar("mem") == 512 and res.scalar("disk") > 0
    assert detect_resources(str(tmp_path), "mem:512").scalar("cpus") >= 1

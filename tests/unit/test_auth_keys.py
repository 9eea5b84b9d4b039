"""Key files (mesos-zmq keygen) and the master's credentials file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import zmq.auth

from mesos_zmq.auth.credentials import Credentials, credentials_json
from mesos_zmq.auth.keys import client_keys, generate, load_public, load_secret
from mesos_zmq.auth.principal import Principal
from mesos_zmq.auth.zap import principal_of
from mesos_zmq.errors import AuthError


def test_keygen_writes_a_pair_zeromq_can_read_with_the_secret_private(tmp_path: Path) -> None:
    public_path, secret_path = generate("m1", tmp_path)
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    public, secret = zmq.auth.load_certificate(str(secret_path))
    pair = load_secret(secret_path)
    assert (pair.public, pair.secret) == (public, secret)
    assert load_public(public_path) == public == load_public(public.decode())
    with pytest.raises(AuthError, match="exists"):
        generate("m1", tmp_path)  # never replaces a pair that may be pinned already
    with pytest.raises(AuthError, match="key name"):
        generate("../evil", tmp_path)


def test_a_secret_others_can_read_is_refused(tmp_path: Path) -> None:
    _, secret_path = generate("m1", tmp_path)
    os.chmod(secret_path, 0o644)
    with pytest.raises(AuthError, match="chmod 600"):
        load_secret(secret_path)
    with pytest.raises(AuthError, match="no secret key"):
        load_secret(tmp_path / "m1.key")


@pytest.mark.parametrize("text,needle", [("short", "neither a key file"), ("~" * 40, "not Z85"),
                                         ("#" * 40, "not Z85")])
def test_a_bad_public_key_says_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(AuthError, match=needle):
        load_public(text)


def test_credentials_map_keys_to_principals(tmp_path: Path) -> None:
    generate("agent1", tmp_path)
    generate("fw", tmp_path)
    fw_public = load_public(tmp_path / "fw.key").decode()
    path = tmp_path / "credentials.json"
    path.write_text(credentials_json([("agent-1", "agent", "agent1.key"),  # relative path
                                      ("analytics", "framework", fw_public)]))
    creds = Credentials.load(path)
    assert creds.by_key(load_public(tmp_path / "agent1.key")) == Principal("agent-1", "agent")
    assert creds.by_key(fw_public.encode()) == Principal("analytics", "framework")
    assert creds.by_key(b"x" * 40) is None and len(creds) == 2


@pytest.mark.parametrize("entries,needle", [
    ([{"principal": "a", "kind": "root", "public_key": "K"}], "kind must be one of"),
    ([{"principal": "a b", "kind": "agent", "public_key": "K"}], "use letters"),
    ([{"principal": "a", "kind": "agent", "public_key": "K"},
      {"principal": "b", "kind": "agent", "public_key": "K"}], "both 'a' and 'b'"),
    ([{"principal": "a", "kind": "agent", "public_key": "K"},
      {"principal": "a", "kind": "operator", "public_key": "L"}], "both agent and operator"),
    ([{"principal": "a", "kind": "agent"}], "exactly principal, kind and public_key"),
    ([{"principal": "a", "kind": "agent", "public_key": "K", "secret": "s"}], "exactly"),
])
def test_a_bad_credentials_file_is_refused_with_the_reason(
        tmp_path: Path, entries: list[dict[str, str]], needle: str) -> None:
    generate("k", tmp_path)
    generate("l", tmp_path)
    keys = {"K": load_public(tmp_path / "k.key").decode(),
            "L": load_public(tmp_path / "l.key").decode()}
    for entry in entries:
        if "public_key" in entry:
            entry["public_key"] = keys[entry["public_key"]]
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"credentials": entries}))
    with pytest.raises(AuthError, match=needle):
        Credentials.load(path)
    path.write_text("[not json")
    with pytest.raises(AuthError, match="not JSON"):
        Credentials.load(path)


def test_client_keys_come_from_options_or_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, secret = generate("me", tmp_path)
    master_public, _ = generate("master", tmp_path)
    monkeypatch.delenv("MESOS_ZMQ_KEY", raising=False)
    monkeypatch.delenv("MESOS_ZMQ_MASTER_KEY", raising=False)
    assert client_keys() is None
    keys = client_keys(str(secret), str(master_public))
    assert keys is not None and keys.master_public == load_public(master_public)
    monkeypatch.setenv("MESOS_ZMQ_KEY", str(secret))
    with pytest.raises(AuthError, match="--master-key"):
        client_keys()
    monkeypatch.setenv("MESOS_ZMQ_MASTER_KEY", str(master_public))
    assert client_keys() == keys


def test_the_zap_user_id_names_kind_and_principal() -> None:
    assert principal_of("framework/analytics") == Principal("analytics", "framework")
    # the key follows, and Z85 keys may hold '/'
    assert principal_of("agent/a1/x/Y+z.w") == Principal("a1", "agent")
    assert principal_of(None) is None and principal_of("") is None

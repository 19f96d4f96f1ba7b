"""Docker's config.json: what ``moorage login`` writes and what the client reads."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from moorage.client.auth import (
    Credentials,
    docker_config_path,
    load_credentials,
    parse_challenge,
    registry_hostname,
    save_credentials,
)


def test_docker_config_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert docker_config_path() == tmp_path / "config.json"
    monkeypatch.delenv("DOCKER_CONFIG")
    assert docker_config_path() == Path.home() / ".docker" / "config.json"


def test_save_then_load_keeps_other_settings(tmp_path: Path) -> None:
    path = tmp_path / "docker" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"auths": {"other.example": {"auth": "eDp5"}}, "credsStore": "desktop"}))
    save_credentials("r.example:5000", Credentials("alice", "p:a:ss"), path)
    config = json.loads(path.read_text())
    assert config["credsStore"] == "desktop"
    assert config["auths"]["other.example"] == {"auth": "eDp5"}
    assert base64.b64decode(config["auths"]["r.example:5000"]["auth"]) == b"alice:p:a:ss"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_credentials("r.example:5000", path) == Credentials("alice", "p:a:ss")
    assert load_credentials("r.example", path) is None
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary file left


def test_load_reads_url_keys_and_plain_fields(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    token = base64.b64encode(b"bob:secret").decode()
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://r.example/v1/": {"auth": token},
                    "other.example": {"username": "carol", "password": "pw"},
                    "broken.example": {"auth": "!!!"},
                }
            }
        )
    )
    assert load_credentials("r.example", path) == Credentials("bob", "secret")
    assert load_credentials("other.example", path) == Credentials("carol", "pw")
    assert load_credentials("broken.example", path) is None
    assert load_credentials("r.example", tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert load_credentials("r.example", tmp_path / "bad.json") is None


def test_registry_hostname() -> None:
    assert registry_hostname("https://r.example:5000/v2/") == "r.example:5000"
    assert registry_hostname("r.example") == "r.example"


def test_parse_challenge() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://r.example/auth/token",service="moorage",scope="repository:lab/web:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://r.example/auth/token",
        "service": "moorage",
        "scope": "repository:lab/web:pull",
    }

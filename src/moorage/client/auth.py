"""Client-side registry credentials: Docker's ``config.json`` and token-auth challenges."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def registry_hostname(key: str) -> str:
    """The ``host[:port]`` a ``config.json`` ``auths`` key names (Docker also writes URLs there)."""
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key.split("/", 1)[0]


def load_credentials(host: str, path: Path | None = None) -> Credentials | None:
    """Credentials for ``host`` from a Docker ``config.json`` (``auths.<host>.auth``, or ``username`` and
    ``password``); an exact key wins over a URL key such as ``https://host/v1/``. Credential helpers
    (``credsStore``, ``credHelpers``) are not consulted."""
    path = path or docker_config_path()
    try:
        config = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        return None
    keys = [host] + [k for k in auths if k != host and registry_hostname(k) == host]
    for key in keys:
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, sep, secret = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            if sep:
                return Credentials(user, secret)
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Credentials(entry["username"], entry["password"])
    return None


def save_credentials(host: str, creds: Credentials, path: Path | None = None) -> Path:
    """Store credentials the way ``docker login`` does (readable by Docker and skopeo too); the
    file is written whole under a temporary name, readable by its owner only, then renamed."""
    path = path or docker_config_path()
    try:
        config = json.loads(path.read_text())
        if not isinstance(config, dict):
            config = {}
    except (FileNotFoundError, ValueError):
        config = {}
    auths = config.get("auths")
    if not isinstance(auths, dict):
        auths = config["auths"] = {}
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    auths[host] = {"auth": token}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(config, indent=2) + "\n")
    tmp.replace(path)
    return path


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``WWW-Authenticate: Bearer realm="…",service="…"`` -> ("bearer", {realm, service, …})."""
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))

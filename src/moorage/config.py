"""One typed settings object.

Precedence, highest first: explicit overrides (CLI flags), ``MOORAGE_*`` environment
variables, the TOML file (``--config`` / ``MOORAGE_CONFIG``), then the defaults below,
which are the embedded mode: SQLite and a local filesystem under ``data_dir``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: How ``moorage serve`` hands its settings to server worker processes.
SETTINGS_ENV = "MOORAGE_SETTINGS_JSON"

MiB = 1 << 20
GiB = 1 << 30


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOORAGE_", extra="forbid", validate_default=True)

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(5000, ge=0, le=65535, description="Port to listen on.")
    data_dir: Path = Field(Path("./moorage-data"), description="Directory for the database and blobs.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite+aiosqlite:///<data_dir>/moorage.db. "
        "PostgreSQL: postgresql+asyncpg://user@host:5432/db",
    )
    database_schema: str | None = Field(None, description="PostgreSQL schema to use (search_path).")
    storage_dir: Path | None = Field(None, description="Blob directory; default <data_dir>/storage.")
    durable_writes: bool = Field(True, description="fsync blobs before they become visible.")
    sqlite_synchronous: Literal["normal", "full"] = Field(
        "normal",
        description="SQLite only. normal: a crash of the process loses nothing, a power loss may lose "
        "the last commits (their blobs, already on disk, are then collected by GC). full: every "
        "commit survives a power loss, at one more fsync per write.",
    )
    workers: int = Field(1, ge=1, le=64, description="Server worker processes.")
    server: str = Field("uvicorn", pattern="^(uvicorn|granian)$", description="ASGI server.")
    fqdn: str | None = Field(None, description="Name clients reach the registry by.")
    tls_cert: Path | None = Field(
        None, description="Server certificate (PEM; may be followed by intermediates)."
    )
    tls_key: Path | None = Field(None, description="Private key of tls_cert (PEM, unencrypted).")
    tls_ca: Path | None = Field(None, description="CA certificate that signed tls_cert, served at GET /ca.")
    tls_allow_invalid: bool = Field(
        False,
        description="Start even when the certificate is expired, not yet valid, or does not cover fqdn "
        "(testing only; a missing file or a key that is not the certificate's always refuses to start).",
    )
    max_manifest_size: int = Field(4 * MiB, ge=1024, description="Largest manifest accepted, bytes.")
    max_upload_size: int = Field(64 * GiB, ge=1, description="Largest blob accepted, bytes.")
    upload_expiry_hours: float = Field(24.0, gt=0, description="Idle uploads older than this are discarded.")
    scan_concurrency: int = Field(
        2, ge=0, le=64, description="Scans run at once by this process; 0: this process runs no scans."
    )
    scan_on_push_default: bool = Field(
        True, description="Scan what is pushed, for repositories that do not set scan_on_push themselves."
    )
    scan_max_unpacked_bytes: int = Field(
        8 * GiB,
        ge=1,
        description="Largest unpacked size of one layer the scanner reads (decompression bombs).",
    )
    pull_events: bool = Field(
        True, description="Record TAG_PULL / MANIFEST_PULL events (written in batches, not per pull)."
    )
    job_concurrency: int = Field(4, ge=0, le=64, description="Background jobs run at once by each process.")
    gc_schedule: str | None = Field(
        None,
        description="Cron expression of scheduled garbage collection (e.g. '0 4 * * 0'); applied at start. "
        "Unset: no schedule unless one is set through the API (docs/gc.md).",
    )
    gc_grace_hours: float = Field(
        24.0, ge=0, le=8784, description="Garbage collection keeps what is newer than this (docs/gc.md)."
    )
    external_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="Base URL others reach this registry at (webhook payloads link to it); "
        "default https://<fqdn> (http:// without tls_cert), else http://<host>:<port>.",
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="How long one webhook delivery may take (connect, send, answer)."
    )
    webhook_max_attempts: int = Field(
        6, ge=1, le=50, description="Attempts per webhook delivery before it is given up."
    )
    webhook_backoff_seconds: float = Field(
        10.0, gt=0, le=3600, description="Wait before a delivery's first retry; doubled after each."
    )
    scan_max_files: int = Field(2_000_000, ge=1, description="Most entries in one layer the scanner reads.")
    log_level: str = Field("info", pattern="^(critical|error|warning|info|debug)$")
    admin_password: str | None = Field(
        None,
        description="Password of the first administrator, 'admin', created on first start "
        "(generated and printed once when unset).",
    )
    create_repository_on_push: bool = Field(
        True, description="A push into a namespace the pusher administers may create the repository."
    )
    token_service: str | None = Field(
        None, description="Service name (audience) of registry tokens; default fqdn."
    )
    token_ttl_seconds: int = Field(300, ge=30, le=86400, description="Lifetime of registry bearer tokens.")
    login_max_failures: int = Field(5, ge=1, description="Failed sign-ins per user before a lockout.")
    login_window_seconds: int = Field(900, ge=1, description="Window in which failed sign-ins are counted.")
    login_lockout_seconds: int = Field(300, ge=1, description="How long a lockout lasts.")
    password_hash_time_cost: int = Field(3, ge=1, le=20, description="Argon2id passes over memory.")
    password_hash_memory_kib: int = Field(
        65536, ge=1024, le=4 * 1024 * 1024, description="Argon2id memory, KiB."
    )
    password_hash_parallelism: int = Field(4, ge=1, le=64, description="Argon2id lanes.")
    auth_cache_seconds: float = Field(
        10.0, ge=0, le=300, description="How long a checked credential is trusted."
    )

    @property
    def resolved_token_service(self) -> str:
        return self.token_service or self.fqdn or "moorage"

    @property
    def resolved_external_url(self) -> str:
        """``external_url`` without a trailing ``/``, or what ``fqdn`` / ``host``:``port`` imply."""
        if self.external_url:
            return self.external_url.rstrip("/")
        if self.fqdn:
            return f"{'https' if self.tls_cert else 'http'}://{self.fqdn}"
        return f"http://{self.host}:{self.port}"

    @field_validator("data_dir", "storage_dir", "tls_cert", "tls_key", "tls_ca")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'moorage.db').resolve()}"

    @property
    def resolved_storage_dir(self) -> Path:
        return self.storage_dir if self.storage_dir is not None else self.data_dir / "storage"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from a TOML file, the environment and explicit overrides (``None`` = unset)."""
    file_values: dict[str, Any] = {}
    path = config_file or (Path(os.environ["MOORAGE_CONFIG"]) if os.environ.get("MOORAGE_CONFIG") else None)
    if path is not None:
        try:
            with path.open("rb") as fh:
                file_values = tomllib.load(fh)
        except FileNotFoundError:
            raise SystemExit(f"moorage: config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SystemExit(f"moorage: config file {path} is not valid TOML: {exc}") from None
    env_keys = {name for name in Settings.model_fields if f"MOORAGE_{name.upper()}" in os.environ}
    # Environment beats the file: drop file values the environment sets.
    merged = {k: v for k, v in file_values.items() if k not in env_keys}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**merged)

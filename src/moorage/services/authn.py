"""Authentication: passwords and access tokens, throttled, audited and briefly cached.

Argon2 verification is deliberately slow, so a successful check is cached for a short
time (``cache_seconds``) keyed by a digest of the credentials; deactivating or deleting a
user clears this process's cache at once and every other process's within that time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field

from moorage.db import accounts as qa
from moorage.db.engine import Database
from moorage.oci.errors import TooManyRequests, Unauthorized
from moorage.services.access import Principal
from moorage.services.audit import AuditLog
from moorage.services.clock import Clock
from moorage.services.passwords import (
    MAX_SECRET_LENGTH,
    PERSONAL_TOKEN_PREFIX,
    REFRESH_TOKEN_PREFIX,
    PasswordHashing,
    secret_digest,
)


@dataclass
class Throttle:
    max_failures: int = 5
    window_seconds: int = 900
    lockout_seconds: int = 300


@dataclass
class Authenticator:
    db: Database
    audit: AuditLog
    clock: Clock
    throttle: Throttle
    passwords: PasswordHashing
    cache_seconds: float = 10.0
    _cache: dict[str, tuple[float, Principal]] = field(default_factory=dict)
    _by_name: dict[str, tuple[float, Principal | None]] = field(default_factory=dict)

    def forget(self, username: str | None = None) -> None:
        """Drop cached authentications (all, or one user's) after an account change."""
        if username is None:
            self._cache.clear()
            self._by_name.clear()
            return
        self._cache = {k: v for k, v in self._cache.items() if v[1].username != username}
        self._by_name.pop(username, None)

    async def principal(self, username: str) -> Principal | None:
        """The active user ``username`` (for bearer tokens, whose subject is a username)."""
        hit = self._by_name.get(username)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with self.db.read() as conn:
            user = await qa.user_by_name(conn, username)
        principal = (
            Principal(user.id, user.username, user.is_admin, user.namespace_id)
            if user is not None and user.is_active
            else None
        )
        self._by_name[username] = (time.monotonic() + self.cache_seconds, principal)
        return principal

    async def password(self, username: str, secret: str, remote_addr: str | None) -> Principal:
        """Check a username with a password or personal access token."""
        if not username or not secret or len(username) > 255 or len(secret) > MAX_SECRET_LENGTH:
            raise Unauthorized("invalid credentials")
        if "\x00" in username:  # no user has one, and PostgreSQL refuses it in a query
            raise Unauthorized("invalid credentials")
        key = hashlib.sha256(f"{username}\0{secret}".encode()).hexdigest()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        await self._check_throttle(username, remote_addr)
        principal = await self._verify(username, secret)
        if principal is None:
            await self._fail(username, remote_addr)
            raise Unauthorized("invalid username or password")
        async with self.db.write() as conn:
            await qa.clear_login_failures(conn, f"user:{username}")
            await self.audit.record(
                "login",
                actor=username,
                remote_addr=remote_addr,
                conn=conn,
                detail={"method": "token" if secret.startswith(PERSONAL_TOKEN_PREFIX) else "password"},
            )
        self._cache[key] = (time.monotonic() + self.cache_seconds, principal)
        return principal

    async def _verify(self, username: str, secret: str) -> Principal | None:
        async with self.db.read() as conn:
            user = await qa.user_by_name(conn, username)
            token = (
                await qa.token_by_hash(conn, secret_digest(secret))
                if secret.startswith(PERSONAL_TOKEN_PREFIX)
                else None
            )
        if token is not None:
            token_id, user_id, active, kind = token
            if user is None or user_id != user.id or not active or kind != "personal" or not user.is_active:
                return None
            async with self.db.write() as conn:
                await qa.touch_token(conn, token_id, self.clock())
            return Principal(user.id, user.username, user.is_admin, user.namespace_id)
        if (
            not self.passwords.verify(user.password_hash if user else None, secret)
            or user is None
            or not user.is_active
        ):
            return None
        return Principal(user.id, user.username, user.is_admin, user.namespace_id)

    async def refresh_token(self, secret: str, remote_addr: str | None) -> Principal:
        """The user a refresh token (``offline_token``) was issued to."""
        if not secret.startswith(REFRESH_TOKEN_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
            raise Unauthorized("invalid refresh token")
        async with self.db.read() as conn:
            token = await qa.token_by_hash(conn, secret_digest(secret))
            user = await qa.user_by_id(conn, token[1]) if token is not None else None
        if token is None or user is None or not token[2] or token[3] != "refresh" or not user.is_active:
            await self.audit.record(
                "login.failed", actor=None, remote_addr=remote_addr, detail={"method": "refresh"}
            )
            raise Unauthorized("invalid refresh token")
        async with self.db.write() as conn:
            await qa.touch_token(conn, token[0], self.clock())
        return Principal(user.id, user.username, user.is_admin, user.namespace_id)

    async def _check_throttle(self, username: str, remote_addr: str | None) -> None:
        now = self.clock()
        async with self.db.read() as conn:
            for key in self._keys(username, remote_addr):
                row = await qa.login_failure(conn, key)
                if row is not None and row[2] is not None and _aware(row[2]) > now:
                    wait = int((_aware(row[2]) - now).total_seconds()) + 1
                    raise TooManyRequests(
                        f"too many failed sign-ins; try again in {wait} seconds", {"retryAfter": wait}
                    )

    async def _fail(self, username: str, remote_addr: str | None) -> None:
        now = self.clock()
        async with self.db.write() as conn:
            for key in self._keys(username, remote_addr):
                row = await qa.login_failure(conn, key)
                window_start = _aware(row[1]) if row is not None else now
                failures = row[0] if row is not None else 0
                if (now - window_start).total_seconds() > self.throttle.window_seconds:
                    window_start, failures = now, 0
                failures += 1
                # Per-address limits are looser: many users may share an address.
                limit = self.throttle.max_failures * (1 if key.startswith("user:") else 4)
                locked = (
                    now + dt.timedelta(seconds=self.throttle.lockout_seconds) if failures >= limit else None
                )
                await qa.set_login_failure(conn, key, failures, window_start, locked)
            await self.audit.record("login.failed", actor=username[:255], remote_addr=remote_addr, conn=conn)

    @staticmethod
    def _keys(username: str, remote_addr: str | None) -> list[str]:
        keys = [f"user:{username[:255]}"]
        if remote_addr:
            keys.append(f"addr:{remote_addr}")
        return keys


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; everything Moorage stores is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)

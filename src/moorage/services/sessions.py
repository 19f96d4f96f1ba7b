"""Web UI sessions: a browser signs in once and holds an opaque cookie, revocable server-side.

The cookie carries a random secret; the database stores only its SHA-256, with the user and
a per-session CSRF token. Signing out deletes the row, so a copied cookie stops working at once;
a deactivated or deleted user's sessions stop working too (checked on every request).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from moorage.db import sessions as qs
from moorage.db.engine import Database
from moorage.services.access import Principal
from moorage.services.clock import Clock

#: Longest cookie value looked at; longer ones are ignored unread.
MAX_SESSION_SECRET = 128


@dataclass(frozen=True, slots=True)
class WebSession:
    principal: Principal
    csrf_token: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass
class SessionService:
    db: Database
    clock: Clock
    lifetime: dt.timedelta = dt.timedelta(hours=12)

    async def create(self, principal: Principal) -> tuple[str, WebSession]:
        """A new session for a user who just proved who they are; returns the cookie secret once."""
        secret = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.clock()
        async with self.db.write() as conn:
            await qs.delete_expired(conn, now)
            await qs.insert_session(conn, _digest(secret), principal.user_id, csrf, now, now + self.lifetime)
        return secret, WebSession(principal, csrf)

    async def resolve(self, secret: str | None) -> WebSession | None:
        """The live session a cookie names: ``None`` when unknown, expired, or its user is inactive."""
        if not secret or len(secret) > MAX_SESSION_SECRET:
            return None
        async with self.db.read() as conn:
            row = await qs.session_by_id(conn, _digest(secret))
        if row is None or not row.is_active or _aware(row.expires_at) <= self.clock():
            return None
        return WebSession(
            Principal(row.user_id, row.username, row.is_admin, row.namespace_id), row.csrf_token
        )

    async def revoke(self, secret: str | None) -> None:
        if not secret or len(secret) > MAX_SESSION_SECRET:
            return
        async with self.db.write() as conn:
            await qs.delete_session(conn, _digest(secret))

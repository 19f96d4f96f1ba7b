"""Registry bearer tokens (JWT, ES256) as the Docker token-auth spec describes them.

Signing keys live in the database so every process and replica verifies every token.
The newest unretired key signs; retired keys keep verifying until their tokens expire.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from moorage.db import accounts as qa
from moorage.db.engine import Database
from moorage.oci.errors import Unauthorized
from moorage.services.clock import Clock

ISSUER = "moorage"
ALGORITHM = "ES256"
_VERIFIED_CACHE_MAX = 20000
KEY_RELOAD_SECONDS = 60.0


def _kid(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b32encode(hashlib.sha256(der).digest()[:15]).decode().rstrip("=")


@dataclass
class TokenService:
    db: Database
    clock: Clock
    service: str  # the audience: the registry's service name
    ttl_seconds: int
    _signing: tuple[str, Any] | None = None
    _verifying: dict[str, Any] = field(default_factory=dict)
    _verified: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _loaded_at: float = 0.0

    async def ensure_key(self) -> str:
        """Create the first signing key if there is none; returns the signing key id."""
        async with self.db.write() as conn:
            keys = await qa.signing_keys_all(conn)
            if not any(retired is None for _, _, _, retired in keys):
                kid, pem = self._new_key()
                await qa.insert_signing_key(conn, kid, pem, self.clock())
        await self._load()
        assert self._signing is not None
        return self._signing[0]

    async def rotate(self) -> str:
        """Make a new signing key; older keys stop signing but verify until their tokens expire."""
        kid, pem = self._new_key()
        async with self.db.write() as conn:
            await qa.insert_signing_key(conn, kid, pem, self.clock())
            await qa.retire_signing_keys(conn, kid, self.clock())
        await self._load()
        return kid

    @staticmethod
    def _new_key() -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return _kid(key), pem

    async def _load(self) -> None:
        async with self.db.read() as conn:
            keys = await qa.signing_keys_all(conn)
        now = self.clock()
        verifying: dict[str, Any] = {}
        signing: tuple[str, Any] | None = None
        for kid, pem, _created, retired in keys:
            if retired is not None and retired.tzinfo is None:
                retired = retired.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC datetimes
            if retired is not None and (now - retired).total_seconds() > self.ttl_seconds + 60:
                continue
            key = serialization.load_pem_private_key(pem.encode(), password=None)
            verifying[kid] = key.public_key()
            if retired is None:
                signing = (kid, key)
        self._verifying = verifying
        self._signing = signing
        self._loaded_at = time.monotonic()

    async def issue(
        self, subject: str | None, access: list[dict[str, Any]], user_id: int | None = None
    ) -> tuple[str, int, int]:
        """A signed token for ``subject`` (``None``: anonymous) with ``access`` claims:
        ``(token, expires_in, issued_at)``."""
        # Pick up a key rotated by another process (``moorage admin rotate-keys``) within a minute.
        if self._signing is None:
            await self.ensure_key()
        elif time.monotonic() - self._loaded_at > KEY_RELOAD_SECONDS:
            await self._load()
        assert self._signing is not None
        kid, key = self._signing
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject or "",
            "aud": self.service,
            "iat": now,
            "nbf": now - 5,
            "exp": now + self.ttl_seconds,
            "jti": secrets.token_urlsafe(16),
            "access": access,
        }
        if user_id is not None:
            # The account, not just its name: a user deleted and re-created under the same
            # name does not inherit the old account's tokens.
            claims["uid"] = user_id
        token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})
        return token, self.ttl_seconds, now

    async def verify(self, token: str) -> dict[str, Any]:
        """Claims of a valid token for this registry; ``Unauthorized`` for anything else."""
        cached = self._verified.get(token)
        if cached is not None and cached[0] > time.time():
            return cached[1]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed bearer token") from None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise Unauthorized("bearer token is not signed the way this registry signs")
        if kid not in self._verifying:
            await self._load()
        key = self._verifying.get(kid)
        if key is None:
            raise Unauthorized("bearer token was signed by an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.service,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "aud", "iss", "sub"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("bearer token has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("bearer token is for another service") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid bearer token: {exc}") from None
        if not isinstance(claims.get("access"), list):
            raise Unauthorized("bearer token carries no access claims")
        if len(self._verified) >= _VERIFIED_CACHE_MAX:
            self._verified.clear()
        self._verified[token] = (float(claims["exp"]), claims)
        return claims


def granted(claims: dict[str, Any], kind: str, name: str) -> set[str]:
    """Actions a verified token grants on one resource."""
    out: set[str] = set()
    for entry in claims.get("access", []):
        if isinstance(entry, dict) and entry.get("type") == kind and entry.get("name") == name:
            actions = entry.get("actions")
            if isinstance(actions, list):
                out.update(a for a in actions if isinstance(a, str))
    return out

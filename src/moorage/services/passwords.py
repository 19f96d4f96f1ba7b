"""Password hashing (argon2id) and high-entropy secrets (access and refresh tokens)."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("moorage-timing-equaliser")

#: Prefixes make a leaked secret recognisable (secret scanners) and tell tokens from passwords.
PERSONAL_TOKEN_PREFIX = "mrg_pat_"
REFRESH_TOKEN_PREFIX = "mrg_rt_"
MIN_PASSWORD_LENGTH = 8
MAX_SECRET_LENGTH = 1024


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant-shape check: a missing user costs the same as a wrong password."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(30)


def secret_digest(secret: str) -> str:
    """Tokens carry 240 random bits, so a fast hash is safe to store and look up by."""
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_password() -> str:
    return secrets.token_urlsafe(18)

"""Password hashing (argon2id) and high-entropy secrets (access and refresh tokens)."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

#: Prefixes make a leaked secret recognisable (secret scanners) and tell tokens from passwords.
PERSONAL_TOKEN_PREFIX = "mrg_pat_"  # noqa: S105 (a prefix, not a secret)
REFRESH_TOKEN_PREFIX = "mrg_rt_"  # noqa: S105
MIN_PASSWORD_LENGTH = 8
MAX_SECRET_LENGTH = 1024


class PasswordHashing:
    """Argon2id with the cost an operator chose (settings ``password_hash_*``).

    The defaults are argon2-cffi's (RFC 9106's low-memory choice: 3 passes over 64 MiB,
    4 lanes); a test suite or a small machine may lower them.
    """

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._dummy = self._hasher.hash("moorage-timing-equaliser")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Constant-shape check: a missing user costs the same as a wrong password."""
        try:
            return self._hasher.verify(stored_hash or self._dummy, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(30)


def secret_digest(secret: str) -> str:
    """Tokens carry 240 random bits, so a fast hash is safe to store and look up by."""
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_password() -> str:
    return secrets.token_urlsafe(18)

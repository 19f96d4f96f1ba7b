"""Passwords, personal access and refresh tokens, login throttling and the audit log."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select
from tests.conftest import ADMIN_PASSWORD

from moorage.app import MoorageApp
from moorage.db.tables import access_tokens
from moorage.oci.errors import TooManyRequests, Unauthorized
from moorage.services import passwords
from moorage.services.access import Principal
from moorage.services.errors import InvalidInput

PASSWORD = "correct horse battery"


# -- passwords and secrets --------------------------------------------------------------------
def test_argon2_hashes_and_verifies_at_production_cost() -> None:
    hashing = passwords.PasswordHashing()  # the defaults a registry runs with
    stored = hashing.hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PASSWORD not in stored
    assert stored != hashing.hash(PASSWORD)  # salted
    assert hashing.verify(stored, PASSWORD)
    assert not hashing.verify(stored, PASSWORD + "x")
    assert not hashing.verify(stored, "")


def test_verify_password_never_raises() -> None:
    hashing = passwords.PasswordHashing(time_cost=1, memory_kib=1024, parallelism=1)
    assert not hashing.verify(None, PASSWORD)
    assert not hashing.verify(None, "moorage-timing-equaliser")  # the dummy hash's own password
    assert not hashing.verify("not a hash", PASSWORD)
    assert not hashing.verify("", PASSWORD)
    assert not hashing.verify("$argon2id$v=19$m=8,t=1,p=1$garbage", PASSWORD)


def test_settings_choose_the_cost(app: MoorageApp) -> None:
    stored = app.services.accounts.passwords.hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")  # tests.conftest.CHEAP_PASSWORD_HASHING


def test_secrets_and_their_digests() -> None:
    pat = passwords.new_secret(passwords.PERSONAL_TOKEN_PREFIX)
    refresh = passwords.new_secret(passwords.REFRESH_TOKEN_PREFIX)
    assert pat.startswith("mrg_pat_")
    assert refresh.startswith("mrg_rt_")
    assert len(pat) - len("mrg_pat_") >= 40  # 240 random bits, url-safe base64
    assert pat != passwords.new_secret(passwords.PERSONAL_TOKEN_PREFIX)
    digest = passwords.secret_digest(pat)
    assert digest == hashlib.sha256(pat.encode()).hexdigest() == passwords.secret_digest(pat)
    assert pat not in digest
    assert passwords.secret_digest(pat + "x") != digest
    assert len(passwords.generate_password()) >= passwords.MIN_PASSWORD_LENGTH


# -- the authenticator, on both databases ---------------------------------------------------
async def _admin(app: MoorageApp) -> Principal:
    return await app.services.authn.password("admin", ADMIN_PASSWORD, None)


async def _user(app: MoorageApp, name: str = "alice") -> Principal:
    await app.services.accounts.create_user(await _admin(app), name, PASSWORD)
    return await app.services.authn.password(name, PASSWORD, None)


async def _audit(app: MoorageApp, action: str) -> list[dict[str, object]]:
    entries, _ = await app.services.audit.entries(0, 1000)
    return [e for e in entries if e["action"] == action]


async def test_password_checks(app: MoorageApp) -> None:
    authn = app.services.authn
    alice = await _user(app)
    assert alice.username == "alice"
    assert not alice.is_admin
    admin = await _admin(app)
    assert admin.is_admin
    bad = [
        ("alice", PASSWORD + "x"),
        ("alice", ""),
        ("", PASSWORD),
        ("nobody", PASSWORD),
        ("ALICE", PASSWORD),
        ("alice", "x" * (passwords.MAX_SECRET_LENGTH + 1)),
        ("a" * 256, PASSWORD),
    ]
    for username, secret in bad:
        with pytest.raises(Unauthorized):
            await authn.password(username, secret, "10.0.0.1")
    failed = await _audit(app, "login.failed")
    assert {e["actor"] for e in failed} == {"alice", "nobody", "ALICE"}
    assert all(e["remoteAddr"] == "10.0.0.1" for e in failed)
    assert {e["actor"] for e in await _audit(app, "login")} >= {"alice", "admin"}


@pytest.mark.parametrize("bad", ["short", "mrg_pat_" + "x" * 40, "mrg_rt_" + "x" * 40])
async def test_passwords_that_are_refused(app: MoorageApp, bad: str) -> None:
    with pytest.raises(InvalidInput):
        await app.services.accounts.create_user(await _admin(app), "alice", bad)
    with pytest.raises(Unauthorized):
        await app.services.authn.password("alice", bad, None)


async def test_deactivated_user_is_refused_at_once(app: MoorageApp) -> None:
    authn = app.services.authn
    await _user(app)
    assert await authn.principal("alice") is not None
    await app.services.accounts.update_user(await _admin(app), "alice", is_active=False)
    with pytest.raises(Unauthorized):
        await authn.password("alice", PASSWORD, None)  # the cached success is forgotten
    assert await authn.principal("alice") is None
    await app.services.accounts.update_user(await _admin(app), "alice", is_active=True)
    assert (await authn.password("alice", PASSWORD, None)).username == "alice"


async def test_personal_access_tokens(app: MoorageApp) -> None:
    c = app.services
    alice = await _user(app)
    bob = await _user(app, "bob")
    token, secret = await c.accounts.create_token(alice, "ci")
    assert token.label == "ci"
    assert token.is_active
    assert token.last_used_at is None
    assert secret.startswith(passwords.PERSONAL_TOKEN_PREFIX)
    assert secret[len(passwords.PERSONAL_TOKEN_PREFIX) :].startswith(token.prefix)

    # Stored hashed: the secret appears nowhere in the table.
    async with c.db.read() as conn:
        rows = (await conn.execute(select(access_tokens))).mappings().all()
    assert all(secret not in str(dict(row)) for row in rows)
    assert any(row["token_hash"] == passwords.secret_digest(secret) for row in rows)

    assert (await c.authn.password("alice", secret, None)).user_id == alice.user_id
    [listed] = await c.accounts.list_tokens(alice)
    assert listed.last_used_at is not None
    # Only with its own user's name; not as a refresh token.
    with pytest.raises(Unauthorized):
        await c.authn.password("bob", secret, None)
    with pytest.raises(Unauthorized):
        await c.authn.refresh_token(secret, None)
    assert await c.accounts.list_tokens(bob) == []

    await c.accounts.update_token(alice, token.id, is_active=False)
    with pytest.raises(Unauthorized):
        await c.authn.password("alice", secret, None)
    await c.accounts.update_token(alice, token.id, is_active=True)
    assert (await c.authn.password("alice", secret, None)).username == "alice"
    await c.accounts.delete_token(alice, token.id)
    with pytest.raises(Unauthorized):
        await c.authn.password("alice", secret, None)


async def test_refresh_tokens(app: MoorageApp) -> None:
    c = app.services
    alice = await _user(app)
    secret = await c.accounts.issue_refresh_token(alice)
    assert secret.startswith(passwords.REFRESH_TOKEN_PREFIX)
    assert (await c.authn.refresh_token(secret, None)).username == "alice"
    assert await c.accounts.list_tokens(alice) == []  # not listed among personal tokens
    with pytest.raises(Unauthorized):
        await c.authn.password("alice", secret, None)  # not a password
    for bad in ["", "mrg_rt_nope", secret + "x", "x" * 5000]:
        with pytest.raises(Unauthorized):
            await c.authn.refresh_token(bad, None)
    await c.accounts.update_user(await _admin(app), "alice", is_active=False)
    with pytest.raises(Unauthorized):
        await c.authn.refresh_token(secret, None)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


async def test_login_throttling(app: MoorageApp) -> None:
    authn = app.services.authn
    authn.cache_seconds = 0
    clock = Clock()
    authn.clock = clock
    await _user(app)
    limit = authn.throttle.max_failures
    for _ in range(limit):
        with pytest.raises(Unauthorized):
            await authn.password("alice", "wrong password", "10.0.0.7")
    # Locked: even the right password is refused, and says when to retry.
    with pytest.raises(TooManyRequests) as info:
        await authn.password("alice", PASSWORD, "10.0.0.8")
    assert 0 < info.value.detail["retryAfter"] <= authn.throttle.lockout_seconds + 1
    assert len(await _audit(app, "login.failed")) == limit
    # Other users, even from the same address, are not locked out.
    await _user(app, "bob")
    assert (await authn.password("bob", PASSWORD, "10.0.0.7")).username == "bob"
    # After the lockout the right password works and clears the count.
    clock.now += dt.timedelta(seconds=authn.throttle.lockout_seconds + 1)
    assert (await authn.password("alice", PASSWORD, "10.0.0.8")).username == "alice"
    for _ in range(limit - 1):
        with pytest.raises(Unauthorized):
            await authn.password("alice", "wrong password", "10.0.0.9")
    assert (await authn.password("alice", PASSWORD, "10.0.0.9")).username == "alice"


async def test_failures_outside_the_window_are_forgotten(app: MoorageApp) -> None:
    authn = app.services.authn
    authn.cache_seconds = 0
    clock = Clock()
    authn.clock = clock
    await _user(app)
    for _ in range(authn.throttle.max_failures - 1):
        with pytest.raises(Unauthorized):
            await authn.password("alice", "wrong password", None)
    clock.now += dt.timedelta(seconds=authn.throttle.window_seconds + 1)
    with pytest.raises(Unauthorized):
        await authn.password("alice", "wrong password", None)
    assert (await authn.password("alice", PASSWORD, None)).username == "alice"


async def test_guessing_across_users_from_one_address_is_throttled(app: MoorageApp) -> None:
    authn = app.services.authn
    authn.cache_seconds = 0
    await _user(app)
    limit = authn.throttle.max_failures * 4
    for i in range(limit):
        with pytest.raises(Unauthorized):
            await authn.password(f"guess{i}", "wrong password", "10.0.0.66")
    with pytest.raises(TooManyRequests):
        await authn.password("alice", PASSWORD, "10.0.0.66")
    assert (await authn.password("alice", PASSWORD, "10.0.0.67")).username == "alice"

"""Registry bearer tokens: signing keys, rotation, retirement, and what verify refuses."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from moorage.app import MoorageApp
from moorage.db import accounts as qa
from moorage.oci.errors import Unauthorized
from moorage.services.tokens import ALGORITHM, ISSUER, TokenService, granted

ACCESS = [{"type": "repository", "name": "alice/app", "actions": ["pull"]}]


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def _service(app: MoorageApp, clock: Any = None, ttl: int = 300, service: str = "moorage") -> TokenService:
    """Another TokenService on the same database, as another process or replica would have."""
    return TokenService(app.services.db, clock or Clock(), service, ttl)


async def _private_key(app: MoorageApp, kid: str) -> Any:
    async with app.services.db.read() as conn:
        keys = {k: pem for k, pem, _, _ in await qa.signing_keys_all(conn)}
    return serialization.load_pem_private_key(keys[kid].encode(), password=None)


async def test_issue_and_verify(app: MoorageApp) -> None:
    tokens = app.services.tokens
    kid = await tokens.ensure_key()
    token, expires_in, issued_at = await tokens.issue("alice", ACCESS)
    assert expires_in == tokens.ttl_seconds
    assert jwt.get_unverified_header(token)["kid"] == kid
    assert jwt.get_unverified_header(token)["alg"] == ALGORITHM
    claims = await tokens.verify(token)
    assert claims["sub"] == "alice"
    assert claims["iss"] == ISSUER
    assert claims["aud"] == tokens.service
    assert claims["exp"] - claims["iat"] == tokens.ttl_seconds == expires_in
    assert claims["iat"] == issued_at
    assert claims["access"] == ACCESS
    # Any other process verifies it too: the keys live in the database.
    assert (await _service(app).verify(token))["sub"] == "alice"


async def test_ensure_key_is_idempotent(app: MoorageApp) -> None:
    first = await app.services.tokens.ensure_key()
    assert await app.services.tokens.ensure_key() == first
    assert await _service(app).ensure_key() == first
    async with app.services.db.read() as conn:
        assert len(await qa.signing_keys_all(conn)) == 1


async def test_rotate_keeps_old_tokens_valid(app: MoorageApp) -> None:
    tokens = app.services.tokens
    old_kid = await tokens.ensure_key()
    old_token, _, _ = await tokens.issue("alice", ACCESS)
    before = _service(app)
    await before.ensure_key()  # a process that loaded the keys before the rotation
    new_kid = await tokens.rotate()
    assert new_kid != old_kid
    new_token, _, _ = await tokens.issue("alice", ACCESS)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert (await tokens.verify(old_token))["sub"] == "alice"
    assert (await tokens.verify(new_token))["sub"] == "alice"
    # A process that started after the rotation signs with the new key and accepts both.
    other = _service(app)
    assert await other.ensure_key() == new_kid
    assert (await other.verify(old_token))["sub"] == "alice"
    assert (await other.verify(new_token))["sub"] == "alice"
    # One that loaded the keys before learns the new key on first sight of it.
    assert (await before.verify(new_token))["sub"] == "alice"
    assert (await before.verify(old_token))["sub"] == "alice"
    async with app.services.db.read() as conn:
        keys = await qa.signing_keys_all(conn)
    assert [kid for kid, _, _, retired in keys if retired is None] == [new_kid]


async def test_retired_keys_expire(app: MoorageApp) -> None:
    clock = Clock()
    tokens = _service(app, clock)
    await tokens.ensure_key()
    old_token, _, _ = await tokens.issue("alice", ACCESS)
    await tokens.rotate()
    # Still within the lifetime of the tokens the retired key signed: accepted.
    clock.now += dt.timedelta(seconds=tokens.ttl_seconds)
    assert (await _service(app, clock).verify(old_token))["sub"] == "alice"
    # Past it, the retired key is dropped; a token it signed (here still unexpired) is refused.
    clock.now += dt.timedelta(seconds=61)
    later = _service(app, clock)
    with pytest.raises(Unauthorized, match="unknown key"):
        await later.verify(old_token)
    # ... and a new token still works.
    fresh, _, _ = await later.issue("alice", ACCESS)
    assert (await later.verify(fresh))["sub"] == "alice"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": "moorage",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "access": ACCESS,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}, "expired"),
        ({"aud": "another-registry"}, "another service"),
        ({"iss": "someone-else"}, "invalid"),
        ({"access": None}, "no access"),
        ({"access": "repository:alice/app:pull"}, "no access"),
        ({"sub": None}, "invalid"),
        ({"exp": None}, "invalid"),
        ({"nbf": int(time.time()) + 3600}, "invalid"),
    ],
)
async def test_verify_refuses_bad_claims_even_when_signed(
    app: MoorageApp, overrides: dict[str, Any], message: str
) -> None:
    tokens = app.services.tokens
    kid = await tokens.ensure_key()
    token = jwt.encode(
        _claims(**overrides), await _private_key(app, kid), algorithm=ALGORITHM, headers={"kid": kid}
    )
    with pytest.raises(Unauthorized, match=message):
        await tokens.verify(token)


async def test_verify_refuses_other_keys_and_algorithms(app: MoorageApp) -> None:
    tokens = app.services.tokens
    kid = await tokens.ensure_key()
    stranger = ec.generate_private_key(ec.SECP256R1())
    refused = [
        jwt.encode(_claims(), stranger, algorithm=ALGORITHM, headers={"kid": kid}),
        jwt.encode(_claims(), stranger, algorithm=ALGORITHM, headers={"kid": "STRANGER"}),
        jwt.encode(_claims(), stranger, algorithm=ALGORITHM),
        jwt.encode(_claims(), None, algorithm="none", headers={"kid": kid}),
        jwt.encode(
            _claims(), "a shared secret of sufficient length", algorithm="HS256", headers={"kid": kid}
        ),
        "not.a.jwt",
        "",
    ]
    for token in refused:
        with pytest.raises(Unauthorized):
            await tokens.verify(token)
    # Another service name (audience) refuses this registry's tokens and vice versa.
    token, _, _ = await tokens.issue("alice", ACCESS)
    with pytest.raises(Unauthorized, match="another service"):
        await _service(app, service="elsewhere").verify(token)


def test_granted_reads_only_matching_well_formed_entries() -> None:
    claims = {
        "access": [
            {"type": "repository", "name": "a/b", "actions": ["pull"]},
            {"type": "repository", "name": "a/b", "actions": ["push", 3]},
            {"type": "repository", "name": "a/bc", "actions": ["delete"]},
            {"type": "registry", "name": "a/b", "actions": ["*"]},
            {"type": "repository", "name": "a/b", "actions": "delete"},
            "repository:a/b:*",
        ]
    }
    assert granted(claims, "repository", "a/b") == {"pull", "push"}
    assert granted(claims, "registry", "catalog") == set()
    assert granted({}, "repository", "a/b") == set()

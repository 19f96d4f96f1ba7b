"""Access levels: parsing, and how grants from every source add up."""

from __future__ import annotations

import itertools

import pytest
from tests.conftest import ADMIN_PASSWORD

from moorage.app import MoorageApp
from moorage.services.access import ACTIONS, Level, Principal
from moorage.services.errors import Forbidden, InvalidInput

PASSWORD = "correct horse battery"


# -- Level ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "level"),
    [("read-only", Level.READ_ONLY), ("read-write", Level.READ_WRITE), ("admin", Level.ADMIN)],
)
def test_level_parse_round_trips(text: str, level: Level) -> None:
    assert Level.parse(text) is level
    assert level.label == text


@pytest.mark.parametrize(
    "text", ["none", "", "Admin", "ADMIN", "read_only", "readonly", "write", " admin", "owner"]
)
def test_level_parse_refuses_unknown(text: str) -> None:
    with pytest.raises(ValueError, match="unknown access level"):
        Level.parse(text)


def test_levels_are_ordered_and_actions_grow() -> None:
    assert Level.NONE < Level.READ_ONLY < Level.READ_WRITE < Level.ADMIN
    ordered = sorted(Level)
    for lower, higher in itertools.pairwise(ordered):
        assert ACTIONS[lower] < ACTIONS[higher]
    assert ACTIONS[Level.NONE] == frozenset()
    assert ACTIONS[Level.READ_ONLY] == {"pull"}
    assert ACTIONS[Level.READ_WRITE] == {"pull", "push", "delete"}
    assert "*" in ACTIONS[Level.ADMIN]


# -- the access service, on both databases --------------------------------------------------
async def _admin(app: MoorageApp) -> Principal:
    return await app.services.authn.password("admin", ADMIN_PASSWORD, None)


async def _user(app: MoorageApp, name: str) -> Principal:
    await app.services.accounts.create_user(await _admin(app), name, PASSWORD)
    return await app.services.authn.password(name, PASSWORD, None)


@pytest.fixture
async def world(app: MoorageApp) -> dict[str, Principal]:
    """Organization ``acme`` owned by ``owner`` with repositories ``acme/priv`` and ``acme/pub``,
    and users ``carol`` (member, no team), ``dave`` (no relation)."""
    c = app.services
    people = {name: await _user(app, name) for name in ("owner", "carol", "dave")}
    await c.accounts.create_organization(people["owner"], "acme")
    await c.accounts.set_member(people["owner"], "acme", "carol", "member")
    repos = c.repositories
    await repos.create(people["owner"], "acme/priv", visibility="private")
    await repos.create(people["owner"], "acme/pub", visibility="public")
    for team in ("readers", "writers", "admins"):
        await c.accounts.create_team(people["owner"], "acme", team, None)
    people["admin"] = await _admin(app)
    return people


async def _level(app: MoorageApp, who: Principal | None, repo: str) -> Level:
    return (await app.services.access.repository(who, repo)).level


async def test_baseline_levels(app: MoorageApp, world: dict[str, Principal]) -> None:
    carol, dave, owner, admin = world["carol"], world["dave"], world["owner"], world["admin"]
    assert await _level(app, None, "acme/priv") is Level.NONE
    assert await _level(app, None, "acme/pub") is Level.READ_ONLY
    assert await _level(app, dave, "acme/priv") is Level.NONE
    assert await _level(app, dave, "acme/pub") is Level.READ_ONLY
    # Plain organization membership grants nothing by itself.
    assert await _level(app, carol, "acme/priv") is Level.NONE
    assert await _level(app, owner, "acme/priv") is Level.ADMIN
    assert await _level(app, admin, "acme/priv") is Level.ADMIN
    # A user administers its own namespace, not a namespace that merely starts with its name.
    assert await _level(app, dave, "dave/anything") is Level.ADMIN
    assert await _level(app, dave, "dave2/anything") is Level.NONE
    assert await _level(app, dave, "owner/anything") is Level.NONE


async def test_team_grants_are_additive(app: MoorageApp, world: dict[str, Principal]) -> None:
    c = app.services
    owner, carol = world["owner"], world["carol"]
    await c.accounts.add_team_member(owner, "acme", "readers", "carol")
    await c.accounts.grant_repository(owner, "acme", "readers", "acme/priv", "read-only")
    assert await _level(app, carol, "acme/priv") is Level.READ_ONLY
    assert await _level(app, carol, "acme/pub") is Level.READ_ONLY

    # A namespace grant of another team raises the level on every repository of the namespace.
    await c.accounts.add_team_member(owner, "acme", "writers", "carol")
    await c.accounts.grant_namespace(owner, "acme", "writers", "read-write")
    assert await _level(app, carol, "acme/priv") is Level.READ_WRITE
    assert await _level(app, carol, "acme/pub") is Level.READ_WRITE

    # The highest wins, whatever the order: admin on one repository only.
    await c.accounts.add_team_member(owner, "acme", "admins", "carol")
    await c.accounts.grant_repository(owner, "acme", "admins", "acme/priv", "admin")
    assert await _level(app, carol, "acme/priv") is Level.ADMIN
    assert await _level(app, carol, "acme/pub") is Level.READ_WRITE

    # A lower grant from one team does not lower another team's.
    await c.accounts.grant_repository(owner, "acme", "readers", "acme/pub", "read-only")
    assert await _level(app, carol, "acme/pub") is Level.READ_WRITE

    # Revoking takes each grant away, down to what remains.
    await c.accounts.revoke_repository(owner, "acme", "admins", "acme/priv")
    assert await _level(app, carol, "acme/priv") is Level.READ_WRITE
    await c.accounts.revoke_namespace(owner, "acme", "writers")
    assert await _level(app, carol, "acme/priv") is Level.READ_ONLY
    await c.accounts.remove_team_member(owner, "acme", "readers", "carol")
    assert await _level(app, carol, "acme/priv") is Level.NONE
    assert await _level(app, carol, "acme/pub") is Level.READ_ONLY  # public


async def test_grants_of_other_users_teams_do_not_leak(app: MoorageApp, world: dict[str, Principal]) -> None:
    c = app.services
    await c.accounts.add_team_member(world["owner"], "acme", "admins", "carol")
    await c.accounts.grant_namespace(world["owner"], "acme", "admins", "admin")
    assert await _level(app, world["dave"], "acme/priv") is Level.NONE
    assert await _level(app, None, "acme/priv") is Level.NONE


async def test_granted_actions_are_a_subset(app: MoorageApp, world: dict[str, Principal]) -> None:
    c = app.services
    owner, carol = world["owner"], world["carol"]
    await c.accounts.add_team_member(owner, "acme", "readers", "carol")
    await c.accounts.grant_repository(owner, "acme", "readers", "acme/priv", "read-only")
    access = c.access
    assert await access.granted_actions(carol, "acme/priv", {"pull", "push"}) == {"pull"}
    assert await access.granted_actions(carol, "acme/priv", {"push", "delete"}) == set()
    # '*' stands for what the caller holds.
    assert await access.granted_actions(carol, "acme/priv", {"*"}) == {"pull"}
    assert await access.granted_actions(None, "acme/priv", {"*"}) == set()
    assert await access.granted_actions(None, "acme/pub", {"pull", "push", "*"}) == {"pull"}
    assert await access.granted_actions(owner, "acme/priv", {"*"}) == {"pull", "push", "delete", "*"}
    assert await access.granted_actions(world["dave"], "acme/priv", {"pull"}) == set()


async def test_namespace_level(app: MoorageApp, world: dict[str, Principal]) -> None:
    access = app.services.access
    assert await access.namespace_level(world["owner"], "acme") is Level.ADMIN
    assert await access.namespace_level(world["admin"], "acme") is Level.ADMIN
    assert await access.namespace_level(world["carol"], "acme") is Level.NONE
    assert await access.namespace_level(None, "acme") is Level.NONE
    assert await access.namespace_level(world["dave"], "dave") is Level.ADMIN
    assert await access.namespace_level(world["dave"], "nonexistent") is Level.NONE


async def test_only_repository_admins_manage_access(app: MoorageApp, world: dict[str, Principal]) -> None:
    c = app.services
    owner, carol = world["owner"], world["carol"]
    await c.accounts.add_team_member(owner, "acme", "writers", "carol")
    await c.accounts.grant_repository(owner, "acme", "writers", "acme/priv", "read-write")
    with pytest.raises(Forbidden):
        await c.accounts.grant_repository(carol, "acme", "writers", "acme/priv", "admin")
    with pytest.raises(Forbidden):
        await c.accounts.grant_namespace(carol, "acme", "writers", "admin")
    with pytest.raises(Forbidden):
        await c.accounts.grant_repository(None, "acme", "writers", "acme/priv", "admin")
    assert await _level(app, carol, "acme/priv") is Level.READ_WRITE
    with pytest.raises(InvalidInput):
        await c.accounts.grant_repository(owner, "acme", "writers", "acme/priv", "superuser")
    # Teams are granted repositories of their own organization only.
    await c.repositories.create(world["dave"], "dave/own")
    with pytest.raises(InvalidInput):
        await c.accounts.grant_repository(world["admin"], "acme", "writers", "dave/own", "admin")
    assert await _level(app, carol, "dave/own") is Level.NONE


async def test_permission_changes_are_audited(app: MoorageApp, world: dict[str, Principal]) -> None:
    c = app.services
    await c.accounts.grant_repository(world["owner"], "acme", "readers", "acme/priv", "read-only")
    await c.accounts.revoke_repository(world["owner"], "acme", "readers", "acme/priv")
    entries, _ = await c.audit.entries(0, 500)
    grants = [e for e in entries if e["action"] in ("access.grant", "access.revoke")]
    assert {(e["action"], e["actor"], e["target"]) for e in grants} == {
        ("access.grant", "owner", "acme/priv"),
        ("access.revoke", "owner", "acme/priv"),
    }

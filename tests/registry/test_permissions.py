"""The permission matrix: every access level x visibility x registry operation, over basic
credentials and over bearer tokens, against an explicit table of expected outcomes (issue 3).

Rules the table encodes: read-only may pull; read-write may also push and delete; admin may do
everything; anonymous callers may pull public repositories only; the catalog lists only what
the caller may pull; mounting needs pull on the source (and push on the target).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from tests.conftest import ADMIN_PASSWORD, POSTGRES_URL, Backend, make_settings
from tests.registry.imagekit import MANIFEST_TYPE, sha256
from tests.registry.imagekit import push_image as push_one_image

from moorage.app import MoorageApp, create_app
from moorage.services.access import Principal

PASSWORD = "correct horse battery"
BASE = "http://moorage.test"

LEVELS = ("anonymous", "nogrant", "read-only", "read-write", "admin-team", "owner", "sysadmin")
#: The user each level signs in as (sysadmin is the first administrator).
USERS = {
    "nogrant": "nogrant",
    "read-only": "ro",
    "read-write": "rw",
    "admin-team": "adm",
    "owner": "owner",
    "sysadmin": "admin",
}

# Expected outcome per cell: one letter per level, in LEVELS order (Y allowed, N refused).
#                  anonymous, nogrant, read-only, read-write, admin-team, owner, sysadmin
EXPECTED: dict[str, dict[str, str]] = {
    "pull manifest": {"public": "YYYYYYY", "private": "NNYYYYY"},
    "pull blob": {"public": "YYYYYYY", "private": "NNYYYYY"},
    "list tags": {"public": "YYYYYYY", "private": "NNYYYYY"},
    "catalog": {"public": "YYYYYYY", "private": "NNYYYYY"},
    "mount from": {"public": "NYYYYYY", "private": "NNYYYYY"},
    "push blob": {"public": "NNNYYYY", "private": "NNNYYYY"},
    "push manifest": {"public": "NNNYYYY", "private": "NNNYYYY"},
    "delete tag": {"public": "NNNYYYY", "private": "NNNYYYY"},
    "delete manifest": {"public": "NNNYYYY", "private": "NNNYYYY"},
    "delete blob": {"public": "NNNYYYY", "private": "NNNYYYY"},
}


@dataclass
class Content:
    repo: str
    manifest: bytes
    manifest_digest: str
    layer: bytes
    layer_digest: str


async def push_image(
    client: httpx.AsyncClient, repo: str, tag: str = "v1", layer: bytes | None = None
) -> Content:
    layer = layer if layer is not None else f"layer of {repo}".encode()
    manifest = await push_one_image(client, repo, tag, layer)
    return Content(repo, manifest, sha256(manifest), layer, sha256(layer))


def assert_refused(r: httpx.Response, anonymous: bool) -> None:
    if anonymous:
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].startswith(f'Bearer realm="{BASE}/auth/token",service="moorage"')
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    else:
        assert r.status_code == 403, r.text
        assert r.json()["errors"][0]["code"] == "DENIED"


# -- the world: one registry per database, shared by every cell ---------------------------------
@dataclass
class World:
    app: MoorageApp
    admin: Principal
    clients: dict[str, httpx.AsyncClient]
    counter: itertools.count[int] = field(default_factory=itertools.count)
    shared: dict[str, tuple[Content, int]] = field(default_factory=dict)

    def client(self, level: str) -> httpx.AsyncClient:
        return self.clients[level]

    async def repository(self, visibility: str, fresh: bool) -> tuple[Content, int]:
        """A repository of organization ``acme`` with an image tagged v1, and the teams of each
        level granted on it: a new one for operations that change it, else one shared per visibility."""
        if not fresh and visibility in self.shared:
            return self.shared[visibility]
        n = next(self.counter)
        name = f"acme/c{n:04d}"
        c = self.app.services
        await c.repositories.create(self.admin, name, visibility=visibility)
        for team, level in (("readers", "read-only"), ("writers", "read-write"), ("admins", "admin")):
            await c.accounts.grant_repository(self.admin, "acme", team, name, level)
        made = await push_image(self.clients["sysadmin"], name), n
        if not fresh:
            self.shared[visibility] = made
        return made


async def _pg(statement: str) -> None:
    engine = create_async_engine(POSTGRES_URL)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    backend = Backend("sqlite", None, None)
    if request.param == "postgresql":
        await _pg(f'CREATE SCHEMA "{schema}"')
        backend = Backend("postgresql", POSTGRES_URL, schema)
    data: Path = tmp_path_factory.mktemp("matrix") / "data"
    app = create_app(make_settings(data, backend, auth_cache_seconds=300))
    await app.services.prepare()
    c = app.services
    admin = await c.authn.password("admin", ADMIN_PASSWORD, None)
    for user in ("nogrant", "ro", "rw", "adm", "owner"):
        await c.accounts.create_user(admin, user, PASSWORD)
    owner = await c.authn.password("owner", PASSWORD, None)
    await c.accounts.create_organization(owner, "acme")
    for team, member in (("readers", "ro"), ("writers", "rw"), ("admins", "adm")):
        await c.accounts.create_team(owner, "acme", team, None)
        await c.accounts.add_team_member(owner, "acme", team, member)
    transport = httpx.ASGITransport(app=app)
    clients = {"anonymous": httpx.AsyncClient(transport=transport, base_url=BASE)}
    for level, user in USERS.items():
        secret = ADMIN_PASSWORD if user == "admin" else PASSWORD
        clients[level] = httpx.AsyncClient(transport=transport, base_url=BASE, auth=(user, secret))
    try:
        yield World(app, admin, clients)
    finally:
        for client in clients.values():
            await client.aclose()
        await app.services.db.close()
        if backend.schema:
            await _pg(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- calling as a level, with basic credentials or a bearer token -------------------------------
async def call(
    world: World, level: str, mode: str, method: str, url: str, scopes: list[str], **kwargs: Any
) -> httpx.Response:
    client = world.client(level)
    if mode == "basic":
        return await client.request(method, url, **kwargs)
    r = await client.get("/auth/token", params={"service": "moorage", "scope": scopes})
    assert r.status_code == 200, r.text
    headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {r.json()['token']}"}
    return await world.clients["anonymous"].request(method, url, headers=headers, **kwargs)


_mount_targets = itertools.count()


def _mount_target(level: str) -> str:
    n = next(_mount_targets)
    return f"acme/m{n:04d}" if level == "anonymous" else f"{USERS[level]}/m{n:04d}"


Op = Callable[[World, str, str, Content, int], Awaitable[bool]]


async def _pull_manifest(world: World, level: str, mode: str, c: Content, n: int) -> bool:
    r = await call(
        world,
        level,
        mode,
        "GET",
        f"/v2/{c.repo}/manifests/v1",
        [f"repository:{c.repo}:pull"],
        headers={"Accept": MANIFEST_TYPE},
    )
    if r.status_code == 200:
        assert r.content == c.manifest
        return True
    assert_refused(r, level == "anonymous")
    return False


async def _pull_blob(world: World, level: str, mode: str, c: Content, n: int) -> bool:
    r = await call(
        world, level, mode, "GET", f"/v2/{c.repo}/blobs/{c.layer_digest}", [f"repository:{c.repo}:pull"]
    )
    if r.status_code == 200:
        assert r.content == c.layer
        return True
    assert_refused(r, level == "anonymous")
    return False


async def _list_tags(world: World, level: str, mode: str, c: Content, n: int) -> bool:
    r = await call(world, level, mode, "GET", f"/v2/{c.repo}/tags/list", [f"repository:{c.repo}:pull"])
    if r.status_code == 200:
        assert r.json() == {"name": c.repo, "tags": ["v1"]}
        return True
    assert_refused(r, level == "anonymous")
    return False


async def _catalog(world: World, level: str, mode: str, c: Content, n: int) -> bool:
    # Page from just before this cell's repository, so the listing stays short as repositories pile up.
    r = await call(
        world,
        level,
        mode,
        "GET",
        "/v2/_catalog",
        ["registry:catalog:*"],
        params={"n": 1, "last": f"acme/c{n - 1:04d}"},
    )
    assert r.status_code == 200, r.text
    return c.repo in r.json()["repositories"]


async def _mount(world: World, level: str, mode: str, c: Content, n: int) -> bool:
    target = _mount_target(level)
    r = await call(
        world,
        level,
        mode,
        "POST",
        f"/v2/{target}/blobs/uploads/",
        [f"repository:{target}:pull,push", f"repository:{c.repo}:pull"],
        params={"mount": c.layer_digest, "from": c.repo},
    )
    if r.status_code == 201:
        assert r.headers["docker-content-digest"] == c.layer_digest
        got = await world.clients["sysadmin"].get(f"/v2/{target}/blobs/{c.layer_digest}")
        assert got.content == c.layer
        return True
    if level == "anonymous":
        assert_refused(r, True)
    else:
        assert r.status_code == 202, r.text  # an ordinary upload instead of a mount
        got = await world.clients["sysadmin"].head(f"/v2/{target}/blobs/{c.layer_digest}")
        assert got.status_code == 404
    return False


async def _push_blob(world: World, level: str, mode: str, c: Content, n: int) -> bool:
    data = f"new blob {n}".encode()
    r = await call(
        world,
        level,
        mode,
        "POST",
        f"/v2/{c.repo}/blobs/uploads/",
        [f"repository:{c.repo}:pull,push"],
        params={"digest": sha256(data)},
        content=data,
    )
    present = (await world.clients["sysadmin"].head(f"/v2/{c.repo}/blobs/{sha256(data)}")).status_code == 200
    if r.status_code == 201:
        assert present
        return True
    assert_refused(r, level == "anonymous")
    assert not present
    return False


async def _push_manifest(world: World, level: str, mode: str, c: Content, n: int) -> bool:
    r = await call(
        world,
        level,
        mode,
        "PUT",
        f"/v2/{c.repo}/manifests/v2",
        [f"repository:{c.repo}:pull,push"],
        content=c.manifest,
        headers={"Content-Type": MANIFEST_TYPE},
    )
    tags = (await world.clients["sysadmin"].get(f"/v2/{c.repo}/tags/list")).json()["tags"]
    if r.status_code == 201:
        assert tags == ["v1", "v2"]
        return True
    assert_refused(r, level == "anonymous")
    assert tags == ["v1"]
    return False


async def _delete(world: World, level: str, mode: str, c: Content, url: str) -> bool:
    # skopeo asks for '*' to delete; the token carries what the caller holds.
    r = await call(world, level, mode, "DELETE", url, [f"repository:{c.repo}:*"])
    if r.status_code == 202:
        return True
    assert_refused(r, level == "anonymous")
    admin = world.clients["sysadmin"]
    assert (await admin.get(f"/v2/{c.repo}/tags/list")).json()["tags"] == ["v1"]
    assert (await admin.head(f"/v2/{c.repo}/manifests/{c.manifest_digest}")).status_code == 200
    assert (await admin.head(f"/v2/{c.repo}/blobs/{c.layer_digest}")).status_code == 200
    return False


async def _delete_tag(world: World, level: str, mode: str, c: Content, n: int) -> bool:
    done = await _delete(world, level, mode, c, f"/v2/{c.repo}/manifests/v1")
    if done:
        admin = world.clients["sysadmin"]
        assert (await admin.get(f"/v2/{c.repo}/tags/list")).json()["tags"] == []
        assert (await admin.head(f"/v2/{c.repo}/manifests/{c.manifest_digest}")).status_code == 200
    return done


async def _delete_manifest(world: World, level: str, mode: str, c: Content, n: int) -> bool:
    done = await _delete(world, level, mode, c, f"/v2/{c.repo}/manifests/{c.manifest_digest}")
    if done:
        admin = world.clients["sysadmin"]
        assert (await admin.head(f"/v2/{c.repo}/manifests/{c.manifest_digest}")).status_code == 404
    return done


async def _delete_blob(world: World, level: str, mode: str, c: Content, n: int) -> bool:
    done = await _delete(world, level, mode, c, f"/v2/{c.repo}/blobs/{c.layer_digest}")
    if done:
        assert (
            await world.clients["sysadmin"].head(f"/v2/{c.repo}/blobs/{c.layer_digest}")
        ).status_code == 404
    return done


OPS: dict[str, Op] = {
    "pull manifest": _pull_manifest,
    "pull blob": _pull_blob,
    "list tags": _list_tags,
    "catalog": _catalog,
    "mount from": _mount,
    "push blob": _push_blob,
    "push manifest": _push_manifest,
    "delete tag": _delete_tag,
    "delete manifest": _delete_manifest,
    "delete blob": _delete_blob,
}


#: Operations that leave the source repository as it was (their cells share one per visibility).
READ_ONLY_OPS = frozenset({"pull manifest", "pull blob", "list tags", "catalog", "mount from"})


def test_expected_table_covers_every_cell() -> None:
    assert EXPECTED.keys() == OPS.keys()
    for row in EXPECTED.values():
        assert row.keys() == {"public", "private"}
        assert all(len(cells) == len(LEVELS) and set(cells) <= {"Y", "N"} for cells in row.values())


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("mode", ["basic", "token"])
@pytest.mark.parametrize("visibility", ["public", "private"])
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("op", list(OPS))
async def test_permission_matrix(world: World, op: str, level: str, visibility: str, mode: str) -> None:
    content, n = await world.repository(visibility, fresh=op not in READ_ONLY_OPS)
    expected = EXPECTED[op][visibility][LEVELS.index(level)] == "Y"
    allowed = await OPS[op](world, level, mode, content, n)
    assert allowed == expected, (
        f"{level} {'could' if allowed else 'could not'} {op} a {visibility} repository"
    )


# -- the catalog as a whole, and creating repositories on push ------------------------------------
@pytest.fixture
async def make_app(tmp_path: Path, backend: Backend) -> AsyncIterator[Callable[..., Awaitable[MoorageApp]]]:
    apps: list[MoorageApp] = []

    async def build(**overrides: object) -> MoorageApp:
        app = create_app(make_settings(tmp_path / f"data{len(apps)}", backend, **overrides))
        await app.services.prepare()
        apps.append(app)
        return app

    try:
        yield build
    finally:
        for app in apps:
            await app.services.db.close()


def _client(app: MoorageApp, user: str | None = None) -> httpx.AsyncClient:
    auth = None if user is None else (user, ADMIN_PASSWORD if user == "admin" else PASSWORD)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, auth=auth)


async def _people(app: MoorageApp) -> Principal:
    """Users alice (owner of org ``acme``), bob (in team ``writers``: read-write on all of acme), carol."""
    c = app.services
    admin = await c.authn.password("admin", ADMIN_PASSWORD, None)
    for user in ("alice", "bob", "carol"):
        await c.accounts.create_user(admin, user, PASSWORD)
    alice = await c.authn.password("alice", PASSWORD, None)
    await c.accounts.create_organization(alice, "acme")
    await c.accounts.create_team(alice, "acme", "writers", None)
    await c.accounts.add_team_member(alice, "acme", "writers", "bob")
    await c.accounts.grant_namespace(alice, "acme", "writers", "read-write")
    return admin


async def test_catalog_lists_only_visible_repositories(
    make_app: Callable[..., Awaitable[MoorageApp]],
) -> None:
    app = await make_app()
    admin = await _people(app)
    repos = app.services.repositories
    alice = await app.services.authn.password("alice", PASSWORD, None)
    carol = await app.services.authn.password("carol", PASSWORD, None)
    await repos.create(alice, "acme/private")
    await repos.create(alice, "acme/public", visibility="public")
    await repos.create(carol, "carol/secret")
    await repos.create(admin, "admin/tools")
    expected = {
        None: ["acme/public"],
        "alice": ["acme/private", "acme/public"],
        "bob": ["acme/private", "acme/public"],
        "carol": ["acme/public", "carol/secret"],
        "admin": ["acme/private", "acme/public", "admin/tools", "carol/secret"],
    }
    for user, names in expected.items():
        async with _client(app, user) as client:
            r = await client.get("/v2/_catalog")
            assert r.status_code == 200, r.text
            assert r.json()["repositories"] == names, user
            # Paging never reveals a hidden name either.
            seen: list[str] = []
            last = ""
            while True:
                page = (await client.get("/v2/_catalog", params={"n": 1, "last": last})).json()[
                    "repositories"
                ]
                if not page:
                    break
                seen += page
                last = page[-1]
            assert seen == names, user


@pytest.mark.parametrize("on", [True, False])
async def test_create_repository_on_push(make_app: Callable[..., Awaitable[MoorageApp]], on: bool) -> None:
    app = await make_app(create_repository_on_push=on)
    await _people(app)
    access = app.services.access
    # Pushes into namespaces the pusher administers: its own, an organization it owns, any (system admin).
    for user, repo in (("alice", "alice/new"), ("alice", "acme/new"), ("admin", "carol/new")):
        async with _client(app, user) as client:
            r = await client.post(f"/v2/{repo}/blobs/uploads/")
            if on:
                assert r.status_code == 202, r.text
                await push_image(client, repo)
                assert (await access.repository(None, repo)).exists
                info = await app.services.repositories.get(
                    await app.services.authn.password(
                        user, ADMIN_PASSWORD if user == "admin" else PASSWORD, None
                    ),
                    repo,
                )
                assert info.visibility == "private"
            else:
                assert r.status_code == 403, r.text
                [error] = r.json()["errors"]
                assert error["code"] == "DENIED"
                assert "create it first" in error["message"]
                manifest = await client.put(
                    f"/v2/{repo}/manifests/v1", content=b"{}", headers={"Content-Type": MANIFEST_TYPE}
                )
                assert manifest.status_code == 403
                assert not (await access.repository(None, repo)).exists


@pytest.mark.parametrize("on", [True, False])
async def test_push_creates_only_for_namespace_administrators(
    make_app: Callable[..., Awaitable[MoorageApp]], on: bool
) -> None:
    """Read-write on a whole namespace is not administering it: no new repositories by push."""
    app = await make_app(create_repository_on_push=on)
    await _people(app)
    async with _client(app, "bob") as bob, _client(app, "carol") as carol, _client(app) as anonymous:
        for client, repo in (
            (bob, "acme/by-bob"),
            (carol, "acme/by-carol"),
            (carol, "alice/by-carol"),
            (carol, "nonexistent/x"),
        ):
            r = await client.post(f"/v2/{repo}/blobs/uploads/")
            assert r.status_code == 403, r.text
            assert r.json()["errors"][0]["code"] == "DENIED"
        r = await anonymous.post("/v2/acme/anon/blobs/uploads/")
        assert r.status_code == 401
    repos = app.services.repositories
    alice = await app.services.authn.password("alice", PASSWORD, None)
    bob_p = await app.services.authn.password("bob", PASSWORD, None)
    assert await repos.catalog(None, 100, bob_p) == []
    assert await repos.catalog(None, 100, alice) == []
    # Once created through the API, the team's read-write grant lets bob push.
    await repos.create(alice, "acme/by-bob")
    async with _client(app, "bob") as bob:
        await push_image(bob, "acme/by-bob")


async def test_create_first_then_push_when_off(make_app: Callable[..., Awaitable[MoorageApp]]) -> None:
    app = await make_app(create_repository_on_push=False)
    await _people(app)
    alice = await app.services.authn.password("alice", PASSWORD, None)
    await app.services.repositories.create(alice, "alice/made")
    async with _client(app, "alice") as client:
        content = await push_image(client, "alice/made")
        r = await client.get(f"/v2/alice/made/manifests/{content.manifest_digest}")
        assert r.status_code == 200
    # With a bearer token: the push action is not granted for a repository that does not exist.
    async with _client(app, "alice") as client:
        r = await client.get(
            "/auth/token", params={"service": "moorage", "scope": "repository:alice/other:pull,push"}
        )
        assert r.status_code == 200
        token = r.json()["token"]
        assert jwt.decode(token, options={"verify_signature": False})["access"] == [
            {"type": "repository", "name": "alice/other", "actions": ["pull"]}
        ]
    async with _client(app) as client:
        r = await client.post("/v2/alice/other/blobs/uploads/", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403
        assert "create it first" in r.json()["errors"][0]["message"]

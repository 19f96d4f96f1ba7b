"""``moorage admin``: users and signing keys, straight in the database the settings name."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from typer.testing import CliRunner, Result

from conftest import ADMIN_PASSWORD, Backend, backend_env, make_settings
from moorage.cli.main import app
from moorage.config import Settings
from moorage.oci.errors import Unauthorized
from moorage.services.container import Services, build_services

runner = CliRunner()
T = TypeVar("T")


def with_components(settings: Settings, action: Callable[[Services], Awaitable[T]]) -> T:
    async def main() -> T:
        components = build_services(settings)
        try:
            await components.prepare()
            return await action(components)
        finally:
            await components.db.close()

    return asyncio.run(main())


@pytest.fixture
def registry(tmp_path: Path, backend: Backend) -> Iterator[tuple[Settings, dict[str, str]]]:
    """An initialised registry (as after its first start) and the environment that names its database."""
    settings = make_settings(tmp_path / "data", backend)

    async def nothing(c: Services) -> None:
        return None

    with_components(settings, nothing)
    return settings, backend_env(backend)


def admin(registry: tuple[Settings, dict[str, str]], *args: str, stdin: str | None = None) -> Result:
    settings, env = registry
    return runner.invoke(app, ["admin", *args, "--data-dir", str(settings.data_dir)], input=stdin, env=env)


def sign_in(settings: Settings, username: str, password: str) -> bool:
    async def action(c: Services) -> bool:
        try:
            await c.authn.password(username, password, None)
        except Unauthorized:
            return False
        return True

    return with_components(settings, action)


def test_create_user_with_password_from_stdin(registry: tuple[Settings, dict[str, str]]) -> None:
    result = admin(
        registry,
        "create-user",
        "alice",
        "--password-stdin",
        "--full-name",
        "Alice A",
        "--email",
        "alice@example.com",
        stdin="alice-secret-1\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created user 'alice'" in result.output
    settings = registry[0]

    async def get(c: Services) -> tuple[str | None, str | None, bool]:
        user = await c.accounts.get_user("alice")
        return user.full_name, user.email, user.is_admin

    assert with_components(settings, get) == ("Alice A", "alice@example.com", False)
    assert sign_in(settings, "alice", "alice-secret-1")
    assert not sign_in(settings, "alice", "alice-secret-1\n")


def test_create_an_administrator_with_a_prompted_password(registry: tuple[Settings, dict[str, str]]) -> None:
    result = admin(registry, "create-user", "ops", "--admin", stdin="ops-password-1\nops-password-1\n")
    assert result.exit_code == 0, result.output
    assert "(administrator)" in result.output

    async def get(c: Services) -> bool:
        return (await c.accounts.get_user("ops")).is_admin

    assert with_components(registry[0], get) is True
    assert sign_in(registry[0], "ops", "ops-password-1")


def test_create_user_with_password_option(registry: tuple[Settings, dict[str, str]]) -> None:
    assert admin(registry, "create-user", "bob", "--password", "bob-secret-1").exit_code == 0
    assert sign_in(registry[0], "bob", "bob-secret-1")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["create-user", "admin", "--password", "long-enough-1"], None, "the name 'admin' is taken"),
        (["create-user", "Bad/Name", "--password", "long-enough-1"], None, "invalid user name 'Bad/Name'"),
        (["create-user", "carol", "--password", "short"], None, "a password needs 8 to"),
        (["create-user", "carol", "--password", "x" * 12, "--password-stdin"], "y" * 12, "not both"),
        (["create-user", "carol", "--password-stdin"], "\n", "no password on stdin"),
        (["set-password", "nobody", "--password", "long-enough-1"], None, "user 'nobody' does not exist"),
        (["set-password", "admin", "--password", "short"], None, "a password needs 8 to"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    registry: tuple[Settings, dict[str, str]], args: list[str], stdin: str | None, message: str
) -> None:
    result = admin(registry, *args, stdin=stdin)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output

    async def users(c: Services) -> list[str]:
        from moorage.services.access import Principal

        found, _ = await c.accounts.list_users(Principal(0, "t", True, 0), 0, 100)
        return [u.username for u in found]

    assert with_components(registry[0], users) == ["admin"]
    assert sign_in(registry[0], "admin", ADMIN_PASSWORD)


def test_set_password(registry: tuple[Settings, dict[str, str]]) -> None:
    result = admin(registry, "set-password", "admin", "--password-stdin", stdin="a-new-password\n")
    assert result.exit_code == 0, result.output
    assert sign_in(registry[0], "admin", "a-new-password")
    assert not sign_in(registry[0], "admin", ADMIN_PASSWORD)


def test_rotate_keys_makes_a_new_signing_key(registry: tuple[Settings, dict[str, str]]) -> None:
    settings = registry[0]

    async def current(c: Services) -> str:
        return await c.tokens.ensure_key()

    before = with_components(settings, current)
    result = admin(registry, "rotate-keys")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    after = with_components(settings, current)
    assert after != before
    assert after in result.output


def test_changes_are_audited_as_the_cli(registry: tuple[Settings, dict[str, str]]) -> None:
    assert admin(registry, "create-user", "dave", "--password", "dave-secret-1").exit_code == 0

    async def entries(c: Services) -> list[dict[str, object]]:
        return (await c.audit.entries(0, 50))[0]

    created = [e for e in with_components(registry[0], entries) if e["target"] == "dave"]
    assert created
    assert str(created[0]["actor"]).startswith("cli:")


def test_a_data_dir_without_a_database_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["admin", "rotate-keys", "--data-dir", str(tmp_path / "typo")])
    assert result.exit_code == 1
    assert "no Moorage database" in result.output
    assert not (tmp_path / "typo").exists()

"""``moorage admin``: manage accounts and keys directly in a registry's database.

These commands open the database the settings name (``--data-dir`` / ``--config``, as for
``moorage serve``) and act through the services as the operator: whoever can read the data
directory is its superuser. Each change is in the audit log as ``cli:<os user>``.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from moorage.cli.options import ConfigOption, DataDirOption, fail
from moorage.config import Settings, load_settings
from moorage.services.errors import ServiceError

if TYPE_CHECKING:  # the app (SQLAlchemy and all) is imported only when a command runs
    from moorage.services.access import Principal
    from moorage.services.container import Services

admin_app = typer.Typer(
    help="Manage users and signing keys in the registry's database.", no_args_is_help=True
)

T = TypeVar("T")

PasswordOption = Annotated[
    str | None,
    typer.Option("--password", help="The password (visible to other local users: prefer --password-stdin)."),
]
PasswordStdinOption = Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")]


def operator() -> Principal:
    """The CLI's principal: an administrator that is no account (``:`` cannot be in a user name)."""
    from moorage.services.access import Principal

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Principal(user_id=0, username=f"cli:{who}", is_admin=True, namespace_id=0)


def _settings(config: Path | None, data_dir: Path | None) -> Settings:
    settings = load_settings(config, data_dir=data_dir)
    if settings.database_url is None and not (settings.data_dir / "moorage.db").exists():
        raise fail(
            f"no Moorage database in {settings.data_dir.resolve()}: pass the --data-dir (or --config) the registry "
            "runs with; `moorage serve` creates the database on its first start"
        )
    return settings


def run(settings: Settings, action: Callable[[Services], Awaitable[T]]) -> T:
    """Open the registry's database (migrating it if needed), run ``action``, close."""
    from moorage.services.container import build_services

    async def main() -> T:
        components = build_services(settings)
        try:
            generated = await components.prepare()
            if generated:
                typer.echo(f"Created the administrator 'admin' with password: {generated}  (shown once)")
            return await action(components)
        finally:
            await components.db.close()

    try:
        return asyncio.run(main())
    except ServiceError as exc:
        raise fail(exc.message) from None


def read_password(password: str | None, password_stdin: bool) -> str:
    if password is not None and password_stdin:
        raise fail("give --password or --password-stdin, not both")
    if password is not None:
        return password
    if password_stdin:
        line = sys.stdin.readline()
        value = line.removesuffix("\n").removesuffix("\r")
        if not value:
            raise fail("no password on stdin")
        return value
    value = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    assert isinstance(value, str)
    return value


@admin_app.command("create-user")
def create_user(
    username: Annotated[
        str, typer.Argument(help="Lowercase letters and digits, separated by '.', '_' or '-'.")
    ],
    password: PasswordOption = None,
    password_stdin: PasswordStdinOption = False,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user a system administrator.")] = False,
    full_name: Annotated[str | None, typer.Option("--full-name", help="Display name.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="E-mail address.")] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a local user (prompts for the password unless --password-stdin or --password)."""
    settings = _settings(config, data_dir)
    secret = read_password(password, password_stdin)

    async def action(c: Services) -> None:
        await c.accounts.create_user(
            operator(), username, secret, full_name=full_name, email=email, is_admin=admin
        )

    run(settings, action)
    typer.echo(f"Created user {username!r}{' (administrator)' if admin else ''}.")


@admin_app.command("set-password")
def set_password(
    username: Annotated[str, typer.Argument(help="The user whose password to set.")],
    password: PasswordOption = None,
    password_stdin: PasswordStdinOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Set a user's password (prompts unless --password-stdin or --password)."""
    settings = _settings(config, data_dir)
    secret = read_password(password, password_stdin)

    async def action(c: Services) -> None:
        await c.accounts.update_user(operator(), username, password=secret)

    run(settings, action)
    typer.echo(f"Set the password of {username!r}.")


@admin_app.command("rotate-keys")
def rotate_keys(data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Make a new registry token signing key; older keys verify the tokens they signed until those expire."""
    settings = _settings(config, data_dir)

    async def action(c: Services) -> str:
        return await c.tokens.rotate()

    kid = run(settings, action)
    typer.echo(f"New token signing key {kid}. Running servers sign with it within a minute.")

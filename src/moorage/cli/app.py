"""``moorage app push|pull|inspect`` and ``moorage login``: the application client (what
``docker app`` was), over Moorage's own OCI client.

Output lines go to stdout (``HOST/NS/REPO:TAG-invoc``, ``Successfully pushed bundle to …``);
progress bars and errors to stderr. An error is one clear message and a non-zero exit, never a
traceback: x509 failures name their cause and both fixes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from moorage.cli.options import fail
from moorage.client.apppull import AppInfo, AppPullError, inspect_app, pull_app
from moorage.client.apppush import AppPushError, load_app_source, push_app
from moorage.client.auth import Credentials, registry_hostname, save_credentials
from moorage.client.dockerapp import AppInvalid
from moorage.client.invocation import PlatformInvalid, parse_platform
from moorage.client.progress import Task
from moorage.client.references import ImageRef, ReferenceInvalid, parse_image_ref
from moorage.client.registries import Registries, split_hosts
from moorage.client.registry import ClientError, RegistryClient

app_app = typer.Typer(
    help="Applications (CNAB bundles): push a docker-app or a bundle.json, pull and inspect them.",
    no_args_is_help=True,
)

T = TypeVar("T")

InsecureOption = Annotated[
    list[str] | None,
    typer.Option(
        "--insecure-registries",
        help="Registries (HOST[:PORT], comma-separated or repeated) to reach without verifying TLS, "
        "or over plain HTTP. For testing only.",
    ),
]
CaFileOption = Annotated[
    Path | None, typer.Option("--ca-file", help="CA certificate (PEM) to trust for the registry (its /ca).")
]


class RichReporter:
    """Progress bars on stderr (when it is a terminal); output lines on stdout."""

    def __init__(self) -> None:
        console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def line(self, text: str) -> None:
        typer.echo(text)

    def task(self, description: str, total: int | None) -> Task:
        return _RichTask(self.progress, self.progress.add_task(description, total=total))


class _RichTask:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress, self.id = progress, task

    def advance(self, amount: int) -> None:
        self.progress.advance(self.id, amount)

    def finish(self) -> None:
        self.progress.remove_task(self.id)


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run a workflow; every error it can meet becomes ``moorage: MESSAGE`` and exit status 1."""
    try:
        return asyncio.run(work)
    except (AppInvalid, AppPushError, AppPullError) as exc:
        raise fail(exc.message) from None
    except (ClientError, ReferenceInvalid, PlatformInvalid) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


def _ref(text: str, what: str) -> ImageRef:
    try:
        return parse_image_ref(text)
    except ReferenceInvalid as exc:
        raise fail(f"{what}: {exc}") from None


@app_app.command("push")
def push(
    app: Annotated[
        str, typer.Argument(help="A docker-app directory (NAME.dockerapp/, or NAME) or a bundle.json.")
    ],
    tag: Annotated[str, typer.Option("--tag", "-t", help="Where to push: HOST/NAMESPACE/REPO:TAG.")],
    insecure_registries: InsecureOption = None,
    platform: Annotated[
        str | None,
        typer.Option("--platform", help="OS/ARCH[/VARIANT] of the invocation image [default: linux/amd64]."),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Image to build the invocation image on (HOST/NS/REPO:TAG, or NS/REPO:TAG "
            "in the target registry).",
        ),
    ] = None,
    ca_file: CaFileOption = None,
) -> None:
    """Push an application: its invocation image as TAG-invoc, its service images into the
    repository by digest, and the bundle as TAG."""
    target = _ref(tag, "--tag")
    try:
        wanted = parse_platform(platform) if platform else None
    except PlatformInvalid as exc:
        raise fail(str(exc)) from None
    try:
        source = load_app_source(app)
    except AppInvalid as exc:
        raise fail(exc.message) from None

    async def work() -> None:
        async with Registries(split_hosts(insecure_registries), ca_file) as registries:
            with RichReporter() as reporter:
                await push_app(source, target, registries, reporter, platform=wanted, base=base)

    _run(work())


@app_app.command("pull")
def pull(
    ref: Annotated[str, typer.Argument(help="The application: HOST/NAMESPACE/REPO:TAG (or @DIGEST).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Directory to write into [default: ./NAME of the bundle]."),
    ] = None,
    insecure_registries: InsecureOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Write bundle.json and the app's files into OUT, and the invocation image as OUT/invocation-image."""
    reference = _ref(ref, "REF")

    async def work() -> None:
        async with Registries(split_hosts(insecure_registries), ca_file) as registries:
            directory = out
            if directory is None:
                directory = Path((await inspect_app(registries, reference)).bundle.name)
            with RichReporter() as reporter:
                result = await pull_app(registries, reference, directory, reporter)
            typer.echo(f"Pulled {reference}. Digest is {result.info.digest}.")
            typer.echo(f"Wrote {', '.join(_summarize(result.files))} into {result.out}")
            inv = result.info.invocation
            typer.echo(f"Invocation image {reference.name}@{inv.digest} saved in {result.layout}")

    _run(work())


def _summarize(files: tuple[str, ...]) -> list[str]:
    """``bundle.json``, ``hello.dockerapp/`` … (top-level entries)."""
    seen: dict[str, None] = {}
    for f in files:
        head, sep, _ = f.partition("/")
        seen[head + sep] = None
    return list(seen)


@app_app.command("inspect")
def inspect(
    ref: Annotated[str, typer.Argument(help="The application: HOST/NAMESPACE/REPO:TAG (or @DIGEST).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    insecure_registries: InsecureOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Print the bundle, its invocation image and its components, with digests and platforms."""
    reference = _ref(ref, "REF")

    async def work() -> AppInfo:
        async with Registries(split_hosts(insecure_registries), ca_file) as registries:
            return await inspect_app(registries, reference)

    info = _run(work())
    if as_json:
        typer.echo(json.dumps(info.as_json(), indent=2))
        return
    for line in describe(info):
        typer.echo(line)


def describe(info: AppInfo) -> list[str]:
    b = info.bundle
    lines = [
        f"Application: {info.reference}",
        f"Digest:      {info.digest}",
        f"Name:        {b.name}",
        f"Version:     {b.version}",
    ]
    if b.description:
        lines.append(f"Description: {b.description}")
    for i, m in enumerate(b.maintainers):
        contact = f" <{m.email}>" if m.email else ""
        lines.append(f"{'Maintainers:' if i == 0 else '':<13}{m.name}{contact}")
    inv = info.invocation
    lines += [
        "",
        "Invocation image:",
        f"  {inv.digest}  {_platforms(inv.platforms)}  {inv.media_type}"
        + (f"  ({info.reference.name}:{inv.tag})" if inv.tag else ""),
        "",
        f"Components ({len(info.components)}):",
    ]
    width = max((len(c.name or "") for c in info.components), default=0)
    for c in info.components:
        lines.append(
            f"  {c.name or '':<{width}}  {c.digest}  {_platforms(c.platforms)}  {c.original or ''}".rstrip()
        )
    return lines


def _platforms(platforms: tuple[Any, ...]) -> str:
    return ",".join(str(p) for p in platforms) or "-"


def login(
    host: Annotated[str, typer.Argument(help="The registry: HOST[:PORT].")],
    username: Annotated[str | None, typer.Option("--username", "-u", help="User name.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    insecure_registries: InsecureOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Sign in to a registry; the credentials go to Docker's config.json (in $DOCKER_CONFIG or ~/.docker)."""
    host = registry_hostname(host)
    if not username:
        username = typer.prompt("Username")
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True)
    if not password:
        raise fail("a password is required (use --password-stdin to read it from stdin)")
    credentials = Credentials(username, password)
    insecure = Registries(split_hosts(insecure_registries)).is_insecure(host)

    async def check() -> None:
        async with RegistryClient(
            host, credentials=credentials, insecure=insecure, ca_file=ca_file
        ) as client:
            await client.ping()

    _run(check())
    path = save_credentials(host, credentials)
    typer.echo(f"Credentials stored in {path}")
    typer.echo("Login Succeeded")


def register(main: typer.Typer) -> None:
    """Add ``moorage app …`` and ``moorage login`` to the ``moorage`` command."""
    main.add_typer(app_app, name="app")
    main.command("login")(login)

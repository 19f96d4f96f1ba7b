"""``moorage gc``: garbage collection on the registry's database and blob store.

Works like the ``admin`` commands: it opens the database and the storage the settings name
(``--data-dir`` / ``--config``), as the operator. It is safe while the registry serves
pushes (services/gc.py): the run is recorded with the others (``GET /api/v1/system/gc/runs``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated

import typer

from moorage.cli.admin import _settings, operator, run
from moorage.cli.options import ConfigOption, DataDirOption, fail

if TYPE_CHECKING:
    from moorage.db.gc import GcRunRow
    from moorage.services.container import Services
    from moorage.services.gc import GcReport

gc_app = typer.Typer(help="Remove blobs and untagged manifests nothing references.", no_args_is_help=True)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``90s``, ``15m``, ``1h``, ``2d``, ``0`` (a bare number is seconds)."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration: use e.g. 30s, 15m, 1h, 2d or 0")
    return dt.timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@gc_app.command("run")
def run_gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what would be freed; change nothing.")
    ] = False,
    grace: Annotated[
        str | None,
        typer.Option(
            "--grace",
            help="Keep what is newer than this (30s, 15m, 1h, 2d, 0) [default: the gc_grace_hours setting].",
        ),
    ] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Collect garbage now (safe while the registry serves pushes)."""
    period = parse_duration(grace) if grace is not None else None
    settings = _settings(config, data_dir)

    async def progress(line: str) -> None:
        typer.echo(line)

    async def action(c: Services) -> tuple[GcRunRow, GcReport]:
        from moorage.services.jobs import PermanentFailure

        try:
            return await c.gc.run_now(
                dry_run=dry_run, grace=period, requested_by=operator().username, progress=progress
            )
        except PermanentFailure as exc:
            raise fail(f"garbage collection failed: {exc}") from None

    record, report = run(settings, action)
    verb = "would free" if dry_run else "freed"
    typer.echo(
        f"Run {record.id}: {report.manifests} manifests, {report.blob_links} blob links, "
        f"{report.blobs + report.orphan_files} blobs; {verb} {_size(report.bytes_freed)}."
    )


@gc_app.command("runs")
def list_runs(
    limit: Annotated[int, typer.Option("--limit", min=1, max=200, help="How many, newest first.")] = 20,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List garbage collection runs, newest first."""
    settings = _settings(config, data_dir)

    async def action(c: Services) -> list[GcRunRow]:
        rows, _ = await c.gc.runs(operator(), 0, limit)
        return rows

    for r in run(settings, action):
        when = r.started_at or r.created_at
        typer.echo(
            f"{r.id:>5}  {when:%Y-%m-%d %H:%M:%S}  {r.status:<9} {'dry-run' if r.dry_run else 'sweep  '}  "
            f"{r.trigger:<8} manifests {r.manifests_deleted}, blobs {r.blobs_deleted}, {_size(r.bytes_freed)}"
            + (f"  error: {r.error}" if r.error else "")
        )

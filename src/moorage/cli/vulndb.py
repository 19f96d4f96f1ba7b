"""``moorage vulndb``: import OSV records into a registry's vulnerability database, show its status.

Opens the database the settings name (``--data-dir`` / ``--config``, as for ``moorage serve``).
A running server reads the new data on its next match: no restart needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from moorage.cli.admin import run
from moorage.cli.options import ConfigOption, DataDirOption, fail
from moorage.config import Settings, load_settings

if TYPE_CHECKING:
    from moorage.services.container import Services
    from moorage.services.vulndb import ImportReport, VulnDbStatus

vulndb_app = typer.Typer(
    help="Import and inspect the offline vulnerability database (OSV).", no_args_is_help=True
)

_SHOWN_INVALID = 20


def _settings(config: Path | None, data_dir: Path | None) -> Settings:
    settings = load_settings(config, data_dir=data_dir)
    if settings.database_url is None and not (settings.data_dir / "moorage.db").exists():
        raise fail(
            f"no Moorage database in {settings.data_dir.resolve()}: pass the --data-dir (or --config) the registry "
            "runs with; `moorage serve` creates the database on its first start"
        )
    return settings


@vulndb_app.command("import")
def import_(
    path: Annotated[
        Path, typer.Argument(help="A directory of OSV .json files, an osv.dev all.zip, a .tar.gz or a .json.")
    ],
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Import OSV records (idempotent; a newer 'modified' replaces; atomic)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from moorage.scanner.osv import count_files

    if not path.exists():
        raise fail(f"{path}: no such file or directory")
    settings = _settings(config, data_dir)
    total = count_files(path)
    columns = [TextColumn("Importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, transient=True, disable=total is not None and total < 2000) as bar:
        task = bar.add_task("import", total=total)

        async def action(c: Services) -> tuple[ImportReport, int]:
            imported = await c.vulndb.import_path(path, progress=lambda n: bar.update(task, completed=n))
            return imported, await c.scanning.rescan_all()  # re-match from stored inventories

        report, rematched = run(settings, action)
    _print_report(report)
    typer.echo(f"re-matched {rematched} scans against the new data")


def _print_report(report: ImportReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        "ecosystem", "records", title=f"Imported {report.records} records in {report.seconds:.1f} s"
    )
    for ecosystem, count in report.ecosystems.items():
        table.add_row(ecosystem, str(count))
    console.print(table)
    console.print(
        f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
        f"withdrawn {report.withdrawn}, invalid {len(report.invalid)}"
    )
    console.print(f"database version {report.version}")
    for item in report.invalid[:_SHOWN_INVALID]:
        typer.echo(f"invalid: {item}", err=True)
    if len(report.invalid) > _SHOWN_INVALID:
        typer.echo(f"invalid: ... and {len(report.invalid) - _SHOWN_INVALID} more", err=True)


@vulndb_app.command("status")
def status(data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Show the database's version, import time and records per ecosystem."""
    settings = _settings(config, data_dir)

    async def action(c: Services) -> VulnDbStatus:
        return await c.vulndb.status()

    info = run(settings, action)
    if info.version is None:
        typer.echo("No vulnerability data imported yet: run `moorage vulndb import PATH`.")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("ecosystem", "records")
    for ecosystem, count in info.ecosystems.items():
        table.add_row(ecosystem, str(count))
    console = Console()
    console.print(f"version {info.version}")
    console.print(f"imported at {info.imported_at.isoformat()}")
    console.print(f"records {info.records} (withdrawn {info.withdrawn})")
    console.print(table)

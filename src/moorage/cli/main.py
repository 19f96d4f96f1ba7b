"""Entry point of the ``moorage`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moorage import __version__
from moorage.config import load_settings

app = typer.Typer(help="Moorage: a secure, self-hosted OCI registry.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file (also MOORAGE_CONFIG).")
]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (database and blobs).")]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 5000].")] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: 1].")] = None,
    server: Annotated[str | None, typer.Option(help="ASGI server: uvicorn or granian.")] = None,
) -> None:
    """Run the registry (embedded default: SQLite and local files under the data directory)."""
    from moorage.cli.serve import serve as run

    run(load_settings(config, host=host, port=port, data_dir=data_dir, workers=workers, server=server))


@app.command()
def version() -> None:
    """Print Moorage's version."""
    typer.echo(__version__)


def main() -> None:
    app()

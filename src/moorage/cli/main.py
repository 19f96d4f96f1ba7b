"""Entry point of the ``moorage`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moorage import __version__
from moorage.cli.admin import admin_app
from moorage.cli.app import register as register_app_client
from moorage.cli.certs import certs_app
from moorage.cli.gc import gc_app
from moorage.cli.options import ConfigOption, DataDirOption
from moorage.cli.vulndb import vulndb_app
from moorage.config import load_settings

app = typer.Typer(help="Moorage: a secure, self-hosted OCI registry.", no_args_is_help=True)
app.add_typer(certs_app, name="certs")
app.add_typer(admin_app, name="admin")
app.add_typer(gc_app, name="gc")
app.add_typer(vulndb_app, name="vulndb")
register_app_client(app)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 5000].")] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: 1].")] = None,
    server: Annotated[str | None, typer.Option(help="ASGI server: uvicorn or granian.")] = None,
    fqdn: Annotated[str | None, typer.Option(help="Name clients reach the registry by.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate (PEM): serve HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Private key of --tls-cert (PEM).")] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="CA certificate served at /ca.")] = None,
) -> None:
    """Run the registry (embedded default: SQLite and local files under the data directory)."""
    from moorage.cli.serve import serve as run

    run(
        load_settings(
            config,
            host=host,
            port=port,
            data_dir=data_dir,
            workers=workers,
            server=server,
            fqdn=fqdn,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_ca=tls_ca,
        )
    )


@app.command()
def version() -> None:
    """Print Moorage's version."""
    typer.echo(__version__)


def main() -> None:
    app()

"""Options every command that opens a registry's settings shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file (also MOORAGE_CONFIG).")
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (database and blobs).")
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``moorage: MESSAGE`` on stderr; returns the ``Exit`` to raise."""
    typer.echo(f"moorage: {message}", err=True)
    return typer.Exit(code)

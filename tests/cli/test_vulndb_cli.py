"""``moorage vulndb import`` and ``status`` on a registry's database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.conftest import SHARED, Backend, backend_env, make_settings
from typer.testing import CliRunner

from moorage.cli.main import app
from moorage.config import Settings
from moorage.services.container import build_services

OSV = SHARED / "testdata" / "osv"
runner = CliRunner()


@pytest.fixture
def registry(tmp_path: Path, backend: Backend) -> tuple[Settings, dict[str, str]]:
    settings = make_settings(tmp_path / "data", backend)

    async def prepare() -> None:
        services = build_services(settings)
        try:
            await services.prepare()
        finally:
            await services.close()

    asyncio.run(prepare())
    return settings, backend_env(backend)


def test_import_and_status(registry: tuple[Settings, dict[str, str]]) -> None:
    settings, env = registry
    args = ["--data-dir", str(settings.data_dir)]
    empty = runner.invoke(app, ["vulndb", "status", *args], env=env)
    assert empty.exit_code == 0, empty.output
    assert "No vulnerability data imported yet" in empty.output

    result = runner.invoke(app, ["vulndb", "import", str(OSV / "npm" / "all.zip"), *args], env=env)
    assert result.exit_code == 0, result.output
    assert "npm" in result.output
    assert "added 3" in result.output

    status = runner.invoke(app, ["vulndb", "status", *args], env=env)
    assert status.exit_code == 0, status.output
    assert "version sha256:" in status.output
    assert "records 3" in status.output


def test_invalid_records_are_listed(registry: tuple[Settings, dict[str, str]]) -> None:
    settings, env = registry
    result = runner.invoke(
        app,
        ["vulndb", "import", str(OSV / "PyPI" / "all.zip"), "--data-dir", str(settings.data_dir)],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "invalid 7" in result.output
    assert "PYSEC-2019-155.json: affected[0].ranges[0].events[1].fixed" in result.output


def test_bad_archive_and_missing_database(registry: tuple[Settings, dict[str, str]], tmp_path: Path) -> None:
    settings, env = registry
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04 garbage")
    result = runner.invoke(
        app, ["vulndb", "import", str(corrupt), "--data-dir", str(settings.data_dir)], env=env
    )
    assert result.exit_code == 1
    assert "not applied" in result.output
    assert "corrupt.zip" in result.output
    missing = runner.invoke(app, ["vulndb", "status", "--data-dir", str(tmp_path / "nowhere")], env={})
    assert missing.exit_code == 1
    assert "no Moorage database" in missing.output

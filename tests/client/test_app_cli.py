"""``moorage app …`` errors that need no registry: one message, the right file and line, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from moorage.cli.main import app

from .test_dockerapp import write_app

runner = CliRunner()


def test_bad_app_file_is_one_message_with_file_and_line(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path, metadata_yml="name: hello\nversion: [1\n")
    result = runner.invoke(app, ["app", "push", str(app_dir), "--tag", "r.example/lab/hello:1"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"moorage: {app_dir / 'metadata.yml'}:3:")
    assert "Traceback" not in result.output + result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--tag", "lab/hello:1"],
            "moorage: --tag: invalid reference 'lab/hello:1': it must start with the registry",
        ),
        (["--tag", "r.example/lab/hello:1", "--platform", "amd64"], "moorage: invalid platform 'amd64'"),
    ],
)
def test_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["app", "push", str(write_app(tmp_path)), *args])
    assert result.exit_code == 1
    assert result.stderr.startswith(message), result.stderr


def test_bundle_json_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text('{"name": "x",\n "version": }')
    result = runner.invoke(app, ["app", "push", str(path), "--tag", "r.example/lab/x:1"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"moorage: {path}:2:13: invalid JSON")


def test_other_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.yml"
    path.write_text("x: 1\n")
    result = runner.invoke(app, ["app", "push", str(path), "--tag", "r.example/lab/x:1"])
    assert result.exit_code == 1
    assert "expected a docker-app directory (NAME.dockerapp/) or a bundle.json file" in result.stderr


def test_unreachable_registry_is_a_clean_error(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens there.
    result = runner.invoke(app, ["app", "inspect", "127.0.0.1:9/lab/x:1"])
    assert result.exit_code == 1
    assert result.stderr.startswith("moorage: cannot reach 127.0.0.1:9")
    assert "Traceback" not in result.stderr

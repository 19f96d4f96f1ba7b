"""``moorage gc``: garbage collection on the data directory's database and store, with progress."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from typer.testing import CliRunner, Result

from conftest import Backend, backend_env, make_settings
from moorage.cli.admin import operator
from moorage.cli.main import app
from moorage.config import Settings
from moorage.db import content as q
from moorage.oci.digest import compute
from moorage.services.container import Services, build_services

runner = CliRunner()
T = TypeVar("T")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def with_services(settings: Settings, action: Callable[[Services], Awaitable[T]]) -> T:
    async def main() -> T:
        services = build_services(settings)
        try:
            await services.prepare()
            return await action(services)
        finally:
            await services.close()

    return asyncio.run(main())


async def _push(s: Services, repo: str, seed: str, tag: str | None) -> tuple[str, list[str]]:
    config_bytes = json.dumps({"os": "linux", "architecture": "amd64"}).encode()
    config = await s.blobs.put_small(repo, config_bytes)
    layer_bytes = f"layer {seed}".encode()
    layer = await s.blobs.put_small(repo, layer_bytes)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config,
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer,
                    "size": len(layer_bytes),
                }
            ],
        }
    ).encode()
    digest = str(compute(manifest))
    pushed = await s.manifests.put(repo, tag or digest, manifest, OCI_MANIFEST)
    assert pushed.digest == digest
    return digest, [config, layer]


@pytest.fixture
def registry(tmp_path: Path, backend: Backend) -> tuple[Settings, dict[str, str], dict[str, str]]:
    """A registry with a tagged image and an untagged one; returns settings, env and digests."""
    settings = make_settings(tmp_path / "data", backend)

    async def content(s: Services) -> dict[str, str]:
        kept, _ = await _push(s, "lab/cli", "kept", "v1")
        gone, blobs = await _push(s, "lab/cli", "gone", None)
        return {"kept": kept, "gone": gone, "gone_layer": blobs[1]}

    return settings, backend_env(backend), with_services(settings, content)


def gc(settings: Settings, env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, ["gc", *args, "--data-dir", str(settings.data_dir)], env=env)


def _state(settings: Settings, digests: dict[str, str]) -> tuple[bool, bool, bool, int]:
    async def action(s: Services) -> tuple[bool, bool, bool, int]:
        async with s.db.read() as conn:
            kept = await q.manifest_by_digest(conn, "lab/cli", digests["kept"]) is not None
            gone = await q.manifest_by_digest(conn, "lab/cli", digests["gone"]) is not None
        layer = await s.store.stat(digests["gone_layer"]) is not None
        _, total = await s.gc.runs(operator(), 0, 50)
        return kept, gone, layer, total

    return with_services(settings, action)


def test_dry_run_then_run_then_nothing_left(
    registry: tuple[Settings, dict[str, str], dict[str, str]],
) -> None:
    settings, env, digests = registry

    dry = gc(settings, env, "run", "--dry-run", "--grace", "0")
    assert dry.exit_code == 0, dry.output
    assert "mark: cutoff" in dry.output
    assert "dry run" in dry.output
    assert "1 manifests, 1 blob links, 1 blobs; would free" in dry.output
    assert _state(settings, digests) == (True, True, True, 1)

    default = gc(settings, env, "run")  # the default grace (24h) keeps what was just pushed
    assert default.exit_code == 0, default.output
    assert "0 manifests, 0 blob links, 0 blobs; freed 0 B" in default.output

    real = gc(settings, env, "run", "--grace", "0s")
    assert real.exit_code == 0, real.output
    assert "sweep: deleted 1 manifests" in real.output
    assert "1 manifests, 1 blob links, 1 blobs; freed" in real.output
    assert _state(settings, digests) == (True, False, False, 3)

    listed = gc(settings, env, "runs")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.strip().splitlines()
    assert len(lines) == 3
    assert all(word in lines[0] for word in ("succeeded", "sweep", "cli"))
    assert "dry-run" in lines[2]


@pytest.mark.parametrize("grace", ["soon", "-1h", "1w", ""])
def test_a_bad_grace_is_refused_and_nothing_runs(
    registry: tuple[Settings, dict[str, str], dict[str, str]], grace: str
) -> None:
    settings, env, digests = registry
    result = gc(settings, env, "run", "--grace", grace)
    assert result.exit_code == 2
    assert "not a duration" in result.output
    assert _state(settings, digests) == (True, True, True, 0)


def test_without_a_registry_it_says_where_it_looked(tmp_path: Path) -> None:
    result = runner.invoke(app, ["gc", "run", "--data-dir", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "no Moorage database" in result.output

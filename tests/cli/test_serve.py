"""``moorage serve``: what it sets up around the ASGI server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from conftest import make_settings  # tests/conftest.py
from moorage.cli import serve as serve_module
from moorage.cli.zerocopy import BufferedHttpProtocol


def _serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw, environ=dict(os.environ)))
    monkeypatch.setattr(serve_module, "prepare", lambda settings: None)
    monkeypatch.delenv(serve_module.SETTINGS_ENV, raising=False)
    serve_module.serve(make_settings(tmp_path / "data", None))
    return seen


def test_uvicorn_runs_the_buffered_zero_copy_protocol(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert _serve(monkeypatch, tmp_path)["http"] is BufferedHttpProtocol


def test_workers_inherit_the_allocator_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    environ = _serve(monkeypatch, tmp_path)["environ"]
    assert environ["MALLOC_MMAP_THRESHOLD_"] == str(serve_module.MMAP_THRESHOLD)
    assert environ["MALLOC_TRIM_THRESHOLD_"] == str(serve_module.TRIM_THRESHOLD)


def test_the_operators_allocator_settings_are_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "not-a-number")
    environ = _serve(monkeypatch, tmp_path)["environ"]
    assert environ["MALLOC_MMAP_THRESHOLD_"] == "131072"
    assert environ["MALLOC_TRIM_THRESHOLD_"] == "not-a-number"


def test_tuned_allocator_reuses_freed_buffers() -> None:
    """Buffers of 64-400 KiB, a dozen alive at a time, each freed after the next arrive, as an
    upload's chunks are: with the setting, a warm process takes (almost) no new page faults;
    with glibc's defaults it maps, trims and faults pages all along."""
    probe = (
        "import random, resource, sys\n"
        "from moorage.cli.serve import tune_allocator\n"
        "if sys.argv[1] == 'tuned':\n"
        "    tune_allocator()\n"
        "rng = random.Random(1)\n"
        "sizes = [rng.randrange(64 << 10, 400 << 10) for _ in range(4096)]\n"
        "def churn(n):\n"
        "    live = []\n"
        "    for i in range(n):\n"
        "        live.append(bytes(sizes[i % len(sizes)]))\n"
        "        if len(live) > 12:\n"
        "            live.pop(0)\n"
        "churn(200)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "churn(3000)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    faults = {
        mode: int(
            subprocess.run(
                [sys.executable, "-c", probe, mode], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for mode in ("default", "tuned")
    }
    assert faults["tuned"] < 1000
    assert faults["default"] > 5 * faults["tuned"]

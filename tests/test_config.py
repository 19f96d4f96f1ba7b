"""Settings: the SQLite durability level, from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from moorage.config import Settings


def test_sqlite_synchronous_defaults_to_normal(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).sqlite_synchronous == "normal"


def test_sqlite_synchronous_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOORAGE_SQLITE_SYNCHRONOUS", "full")
    assert Settings(data_dir=tmp_path).sqlite_synchronous == "full"


def test_an_unknown_sqlite_synchronous_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="sqlite_synchronous"):
        Settings(data_dir=tmp_path, sqlite_synchronous="off")  # type: ignore[arg-type]

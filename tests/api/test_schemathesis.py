"""Property-based run of schemathesis against the checked-in OpenAPI document.

Every operation gets 25 generated requests (valid and invalid ones, derandomized), sent as
the administrator to one in-process app per database (SQLite, PostgreSQL); every response
must be a documented, schema-conforming, non-5xx answer, and schemathesis' own probes
(requests without or with wrong credentials, unsupported methods) must be refused properly.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.python import asgi
from tests.conftest import ADMIN_PASSWORD, POSTGRES_URL, Backend, _pg_schema, make_settings

from moorage.app import MoorageApp, create_app

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_text()))
schema.config.update(base_url="http://testserver/api/v1", basic_auth=("admin", ADMIN_PASSWORD))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def st_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", None, None)
        return
    pg_schema = f"t_{uuid.uuid4().hex[:16]}"
    asyncio.run(_pg_schema("create", pg_schema))
    try:
        yield Backend("postgresql", POSTGRES_URL, pg_schema)
    finally:
        asyncio.run(_pg_schema("drop", pg_schema))


@pytest.fixture(scope="module")
def st_app(tmp_path_factory: pytest.TempPathFactory, st_backend: Backend) -> Iterator[MoorageApp]:
    """One app per database for the whole run (schemathesis starts its lifespan: migrate, create admin)."""
    app = create_app(
        make_settings(
            tmp_path_factory.mktemp("schemathesis") / "data",
            st_backend,
            auth_cache_seconds=300,  # the administrator's password is checked once
            login_max_failures=100_000,  # schemathesis probes with invalid credentials on purpose
            # the lifespan runs on schemathesis' own event loop, requests on another: no scan worker
            scan_concurrency=0,
        )
    )
    yield app
    asgi.shutdown_lifespans()


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any], st_app: MoorageApp) -> None:
    # Requests, and schemathesis' own probes, go to the app in-process.
    case.operation.app = case.operation.schema.app = st_app
    case.call_and_validate()

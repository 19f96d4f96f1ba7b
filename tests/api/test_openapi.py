"""The OpenAPI document is generated and checked in: a contract change is a visible change."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from tests.api.helpers import API

from moorage.api.openapi import render

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REGENERATE = "regenerate it with: python -m moorage.api.openapi > docs/openapi.json"


async def test_live_document_matches_the_checked_in_one(anonymous: httpx.AsyncClient) -> None:
    live = (await anonymous.get(f"{API}/openapi.json")).json()
    assert live == json.loads(CHECKED_IN.read_text()), f"the API contract changed: {REGENERATE}"


def test_checked_in_document_is_the_generated_text() -> None:
    assert CHECKED_IN.read_text() == render(), REGENERATE


def test_every_operation_is_authenticated_and_documents_its_errors() -> None:
    document = json.loads(CHECKED_IN.read_text())
    assert document["servers"] == [{"url": "/api/v1"}]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["security"] == [{"basic": []}], (method, path)
            assert {"401", "403", "404", "422"} <= set(operation["responses"]), (method, path)

"""Webhooks through the management API: a real ``moorage serve`` delivering pushes to a receiver
that checks signatures and fails at first; management, the test action, bad input."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.helpers import API, UserFactory, make_repository
from tests.conftest import Backend, backend_env, start_server
from tests.registry.imagekit import push_image, sha256
from tests.services.test_webhooks import Receiver, signature_ok

EXTERNAL = "https://moorage.example.test"


@pytest.fixture
def hooks(tmp_path: Path) -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for r in started:
        r.stop()


def start_receiver(started: list[Receiver], tmp: Path, **kwargs: object) -> Receiver:
    r = Receiver(**kwargs).start(tmp)  # type: ignore[arg-type]
    started.append(r)
    return r


async def test_a_real_server_delivers_signed_events_and_retries_failures(
    tmp_path: Path, backend: Backend, hooks: list[Receiver]
) -> None:
    env = {
        **backend_env(backend),
        "MOORAGE_EXTERNAL_URL": EXTERNAL,
        "MOORAGE_WEBHOOK_BACKOFF_SECONDS": "0.3",
        "MOORAGE_WEBHOOK_MAX_ATTEMPTS": "4",
        "MOORAGE_SCAN_ON_PUSH_DEFAULT": "false",
    }
    server = start_server(tmp_path / "data", env)
    try:
        async with httpx.AsyncClient(
            base_url=server.url, auth=(server.username, server.password), timeout=30
        ) as client:
            await make_repository(client, "admin/shipped")
            r = await client.post(
                f"{API}/repositories/admin/shipped/webhooks",
                json={"url": "http://127.0.0.1:1/", "eventTypes": ["TAG_PUSH", "MANIFEST_PUSH"]},
            )
            assert r.status_code == 201, r.text
            created = r.json()
            secret = created["secret"]
            # the receiver checks signatures with the secret shown at creation, and fails twice
            target = start_receiver(hooks, tmp_path, fail_first=2, fail_status=502, secret=secret)
            r = await client.patch(
                f"{API}/repositories/admin/shipped/webhooks/{created['id']}", json={"url": target.url}
            )
            assert r.status_code == 200, r.text
            assert r.json()["secret"] is None  # shown once, at creation

            manifest = await push_image(client, "admin/shipped", "1.0")
            digest = sha256(manifest)

            deadline = time.monotonic() + 60
            while (
                len({t for t, rs in target.by_type().items() if len(rs) > 0}) < 2 or len(target.received) < 4
            ):
                assert time.monotonic() < deadline, f"deliveries: {[r.headers for r in target.received]}"
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # nothing more comes: each event succeeds once

            assert target.bad_signatures == 0
            assert len(target.received) == 4
            by_type = target.by_type()
            assert set(by_type) == {"TAG_PUSH", "MANIFEST_PUSH"}
            for requests in by_type.values():
                assert all(signature_ok(secret, x) for x in requests)
                assert len({x.body for x in requests}) == 1  # a retry sends the same signed body
                attempts = [int(x.headers["x-moorage-attempt"]) for x in requests]
                assert attempts == list(range(1, len(attempts) + 1))
                for a, b in itertools.pairwise(requests):
                    assert b.at - a.at >= 0.3 * 2 ** (int(a.headers["x-moorage-attempt"]) - 1) - 0.05
            tag_push = by_type["TAG_PUSH"][-1].json()
            assert tag_push["location"] == f"{EXTERNAL}/v2/admin/shipped/manifests/{digest}"
            assert tag_push["contents"]["imageName"] == "admin/shipped:1.0"
            assert tag_push["contents"]["architecture"] == "amd64"

            r = await client.get(f"{API}/repositories/admin/shipped/webhooks/{created['id']}/deliveries")
            assert r.status_code == 200, r.text
            page = r.json()
            assert page["total"] == 4
            log = sorted(page["items"], key=lambda d: d["id"])
            assert [d["status"] for d in log].count("failed") == 2
            assert all(d["responseCode"] == 502 for d in log if d["status"] == "failed")
            assert all(d["responseCode"] == 204 for d in log if d["status"] == "succeeded")
            assert {d["eventType"] for d in log if d["status"] == "succeeded"} == {
                "TAG_PUSH",
                "MANIFEST_PUSH",
            }
            assert all(d["durationMs"] >= 0 and d["jobId"] for d in log)
            for event_type in ("TAG_PUSH", "MANIFEST_PUSH"):
                # per event: failed attempts 1..k, then attempt k+1 succeeded
                mine = [d for d in log if d["eventType"] == event_type]
                assert [d["attempt"] for d in mine] == list(range(1, len(mine) + 1))
                assert [d["status"] for d in mine] == ["failed"] * (len(mine) - 1) + ["succeeded"]
                assert len({d["jobId"] for d in mine}) == 1
            assert any(d["attempt"] > 1 for d in log)
    finally:
        server.stop()


async def test_webhook_management_and_the_test_action(
    client: httpx.AsyncClient, hooks: list[Receiver], tmp_path: Path
) -> None:
    target = start_receiver(hooks, tmp_path)
    r = await client.post(
        f"{API}/namespaces/admin/webhooks",
        json={"url": target.url, "eventTypes": ["REPO_CREATED"], "name": "ci", "format": "cloudevents"},
    )
    assert r.status_code == 201, r.text
    hook = r.json()
    item = f"{API}/namespaces/admin/webhooks/{hook['id']}"
    assert hook["scope"] == "namespace"
    assert hook["namespace"] == "admin"
    assert hook["active"] is True
    assert len(hook["secret"]) >= 32

    r = await client.get(item)
    assert r.status_code == 200
    assert "secret" not in r.json()
    r = await client.get(f"{API}/namespaces/admin/webhooks")
    assert r.json()["total"] == 1
    assert r.json()["items"][0]["name"] == "ci"

    r = await client.patch(item, json={"active": False, "secret": "a-brand-new-secret-value"})
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    assert r.json()["secret"] == "a-brand-new-secret-value"

    r = await client.post(f"{item}/test")
    assert r.status_code == 200, r.text
    delivery = r.json()
    assert delivery == delivery | {"eventType": "WEBHOOK_TEST", "status": "succeeded", "responseCode": 204}
    assert delivery["eventId"] is None
    assert delivery["attempt"] == 1
    (received,) = target.received
    assert signature_ok("a-brand-new-secret-value", received)
    assert received.json()["type"] == "io.moorage.webhook.test"
    r = await client.get(f"{item}/deliveries")
    assert [d["id"] for d in r.json()["items"]] == [delivery["id"]]

    # the namespace's webhook is not reachable through another scope's routes
    assert (await client.get(f"{API}/webhooks/{hook['id']}")).status_code == 404
    r = await client.delete(item)
    assert r.status_code == 204
    assert (await client.get(item)).status_code == 404
    assert (await client.get(f"{API}/namespaces/nobody/webhooks")).status_code == 404


async def test_bad_input_is_refused_with_nothing_changed(
    client: httpx.AsyncClient, new_user: UserFactory
) -> None:
    await make_repository(client, "admin/guarded")
    base = {"url": "https://hooks.example.com/in", "eventTypes": ["TAG_PUSH"]}
    for url in ("http://h.example.com/x", "https://h.example.com/y"):
        assert (await client.post(f"{API}/webhooks", json={**base, "url": url})).status_code == 201
    before = (await client.get(f"{API}/webhooks")).json()

    cases = [
        ("/repositories/admin/guarded/webhooks", {**base, "url": "ftp://hooks.example.com/in"}, 422, "url"),
        ("/repositories/admin/guarded/webhooks", {**base, "url": "file:///etc/passwd"}, 422, "url"),
        ("/namespaces/admin/webhooks", {**base, "eventTypes": ["TAG_PUSH", "TAG_SMASH"]}, 422, "eventTypes"),
        ("/webhooks", {**base, "eventTypes": []}, 422, "eventTypes"),
        ("/webhooks", {**base, "skipVerify": True, "caCert": "-----BEGIN CERTIFICATE-----\n"}, 422, "caCert"),
        ("/webhooks", {**base, "secret": "short"}, 422, "secret"),
    ]
    for path, body, status, field in cases:
        r = await client.post(f"{API}{path}", json=body)
        assert (r.status_code, r.json()["field"]) == (status, field), (path, body, r.text)
    r = await client.patch(
        f"{API}/webhooks/{before['items'][0]['id']}", json={"url": "gopher://x/", "active": False}
    )
    assert (r.status_code, r.json()["field"]) == (422, "url")

    bob = await new_user("bob")
    r = await bob.post(f"{API}/webhooks", json=base)
    assert r.status_code == 403, r.text
    assert "administrators" in r.json()["message"]
    assert (await bob.get(f"{API}/webhooks")).status_code == 403
    assert (await bob.post(f"{API}/namespaces/admin/webhooks", json=base)).status_code == 403
    assert (await bob.post(f"{API}/repositories/admin/guarded/webhooks", json=base)).status_code == 404
    assert (await bob.post(f"{API}/namespaces/bob/webhooks", json=base)).status_code == 201

    assert (await client.get(f"{API}/webhooks")).json() == before
    assert (await client.get(f"{API}/repositories/admin/guarded/webhooks")).json()["total"] == 0
    assert (await client.get(f"{API}/namespaces/admin/webhooks")).json()["total"] == 0

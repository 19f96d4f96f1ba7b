"""Webhooks end to end in one process: pushes through /v2 become events, the ``webhooks``
consumer queues deliveries, the job queue runs them against a real HTTP(S) receiver on
loopback that checks every signature; retries, backoff, the delivery log, CloudEvents, TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import http.server
import itertools
import json
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import ADMIN_PASSWORD, Backend, make_settings
from tests.registry.imagekit import push_image, sha256

from moorage.app import MoorageApp, create_app
from moorage.db import jobs as qj
from moorage.services import events as ev
from moorage.services.access import Principal
from moorage.services.certificates import GeneratedChain, generate_chain
from moorage.services.errors import Forbidden, InvalidInput, NotFound
from moorage.services.webhooks import JOB_KIND, HookScope

BASE_URL = "https://registry.example.test"


# -- a webhook receiver ---------------------------------------------------------------------------
@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP(S) server on 127.0.0.1 in a thread. It answers ``fail_status`` to the first
    ``fail_first`` requests, 204 after; with ``secret`` it checks each request's signature
    (a wrong one is answered 401 and counted in ``bad_signatures``)."""

    fail_first: int = 0
    fail_status: int = 503
    secret: str | None = None
    tls: GeneratedChain | None = None
    received: list[Received] = field(default_factory=list)
    bad_signatures: int = 0
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, tmp: Path) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._answer(Received(self.path, headers, body, time.monotonic()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            (tmp / "receiver.crt").write_bytes(self.tls.server_cert)
            (tmp / "receiver.key").write_bytes(self.tls.server_key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tmp / "receiver.crt", tmp / "receiver.key")
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def _answer(self, request: Received) -> int:
        with self._lock:
            if self.secret is not None:
                expected = (
                    "sha256=" + hmac.new(self.secret.encode(), request.body, hashlib.sha256).hexdigest()
                )
                if not hmac.compare_digest(expected, request.headers.get("x-moorage-signature", "")):
                    self.bad_signatures += 1
                    return 401
            self.received.append(request)
            return self.fail_status if len(self.received) <= self.fail_first else 204

    @property
    def url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}/hook"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def by_type(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for r in self.received:
            out.setdefault(r.headers["x-moorage-event"], []).append(r)
        return out


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[list[Receiver]]:
    """Receivers started by a test are stopped after it (append them)."""
    started: list[Receiver] = []
    yield started
    for r in started:
        r.stop()


def receiver(started: list[Receiver], tmp: Path, **kwargs: Any) -> Receiver:
    r = Receiver(**kwargs).start(tmp)
    started.append(r)
    return r


def signature_ok(secret: str, request: Received) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers["x-moorage-signature"])


# -- an app whose background work the tests drive ---------------------------------------------------
@pytest.fixture
async def hooks_app(tmp_path: Path, backend: Backend) -> AsyncIterator[MoorageApp]:
    application = create_app(
        make_settings(
            tmp_path / "data",
            backend,
            external_url=BASE_URL + "/",
            webhook_backoff_seconds=0.2,
            webhook_max_attempts=3,
            webhook_timeout_seconds=5.0,
            scan_on_push_default=False,
        )
    )
    await application.services.prepare()
    try:
        yield application
    finally:
        await application.services.db.close()


@pytest.fixture
async def registry(hooks_app: MoorageApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=hooks_app),
        base_url="http://moorage.test",
        auth=("admin", ADMIN_PASSWORD),
    ) as c:
        yield c


async def admin(app: MoorageApp) -> Principal:
    return await app.services.authn.password("admin", ADMIN_PASSWORD, None)


async def deliver_due(app: MoorageApp) -> int:
    """Hand new events to the webhooks consumer, then run every delivery job that is due."""
    await app.services.events.dispatch("webhooks")
    ran = 0
    while (job := await app.services.jobs.claim_next()) is not None:
        await app.services.jobs.run(job)
        ran += 1
    return ran


async def delivery_jobs(app: MoorageApp) -> list[qj.JobRow]:
    jobs, _ = await app.services.jobs.jobs(kinds=(JOB_KIND,), limit=200)
    return sorted(jobs, key=lambda j: j.id)


async def create_repo(registry: httpx.AsyncClient, name: str) -> None:
    r = await registry.post("/api/v1/repositories", json={"name": name})
    assert r.status_code == 201, r.text


# -- tests --------------------------------------------------------------------------------------------
async def test_push_delivers_signed_tag_and_manifest_push(
    hooks_app: MoorageApp, registry: httpx.AsyncClient, receivers: list[Receiver], tmp_path: Path
) -> None:
    svc = hooks_app.services.webhooks
    principal = await admin(hooks_app)
    await create_repo(registry, "admin/app")
    target = receiver(receivers, tmp_path)
    hook = await svc.create(
        principal,
        HookScope.repository("admin/app"),
        url=target.url,
        event_types=[ev.TAG_PUSH, ev.MANIFEST_PUSH],
    )
    assert hook.secret
    assert len(hook.secret) >= 32
    assert (await svc.get(principal, HookScope.repository("admin/app"), hook.id)).secret is None

    manifest = await push_image(registry, "admin/app", "1.0")
    digest = sha256(manifest)
    assert await deliver_due(hooks_app) == 2

    got = target.by_type()
    assert set(got) == {ev.TAG_PUSH, ev.MANIFEST_PUSH}
    for requests in got.values():
        assert len(requests) == 1
        assert signature_ok(hook.secret, requests[0])
        assert requests[0].headers["content-type"] == "application/json"
        assert requests[0].path == "/hook"
    tag_push = got[ev.TAG_PUSH][0].json()
    assert set(tag_push) == {"type", "createdAt", "contents", "location"}
    assert tag_push["type"] == ev.TAG_PUSH
    assert tag_push["location"] == f"{BASE_URL}/v2/admin/app/manifests/{digest}"
    contents = tag_push["contents"]
    assert contents == contents | {
        "namespace": "admin",
        "repository": "admin/app",
        "tag": "1.0",
        "digest": digest,
        "imageName": "admin/app:1.0",
        "os": "linux",
        "architecture": "amd64",
        "artifactKind": "image",
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "author": "admin",
    }
    pushed_at = dt.datetime.fromisoformat(contents["pushedAt"])
    assert abs(pushed_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    manifest_push = got[ev.MANIFEST_PUSH][0].json()
    assert "tag" not in manifest_push["contents"]
    assert manifest_push["contents"]["imageName"] == f"admin/app@{digest}"
    # the event id header names the outbox event, whose contents are what was sent
    events, _ = await hooks_app.services.events.recent(repository="admin/app", types=[ev.TAG_PUSH])
    assert got[ev.TAG_PUSH][0].headers["x-moorage-event-id"] == str(events[0].id)
    assert events[0].contents == contents

    log, total = await svc.deliveries(principal, HookScope.repository("admin/app"), hook.id)
    assert total == 2
    assert {(d.event_type, d.status, d.response_code, d.attempt) for d in log} == {
        (ev.TAG_PUSH, "succeeded", 204, 1),
        (ev.MANIFEST_PUSH, "succeeded", 204, 1),
    }
    assert all(d.duration_ms >= 0 and d.error is None and d.job_id is not None for d in log)

    # the same events are never delivered twice: the consumer's cursor moved, the jobs are done
    assert await deliver_due(hooks_app) == 0
    assert len(target.received) == 2


async def test_failed_deliveries_are_retried_with_exponential_backoff(
    hooks_app: MoorageApp, registry: httpx.AsyncClient, receivers: list[Receiver], tmp_path: Path
) -> None:
    svc = hooks_app.services.webhooks
    principal = await admin(hooks_app)
    await create_repo(registry, "admin/flaky")
    target = receiver(receivers, tmp_path, fail_first=2, fail_status=503, secret="a-shared-secret-of-ours")
    hook = await svc.create(
        principal,
        HookScope.repository("admin/flaky"),
        url=target.url,
        event_types=[ev.TAG_PUSH],
        secret="a-shared-secret-of-ours",
    )
    await push_image(registry, "admin/flaky", "v1")
    await hooks_app.services.events.dispatch("webhooks")
    (job,) = await delivery_jobs(hooks_app)
    assert job.max_attempts == 3
    assert job.backoff_seconds == 0.2
    assert job.dedupe_key is not None
    assert job.dedupe_key.startswith(f"webhook:{hook.id}:")

    # attempt 1 fails; the job waits 0.2 s, attempt 2 fails, waits 0.4 s, attempt 3 succeeds
    deadline = time.monotonic() + 20
    while (await hooks_app.services.jobs.get(job.id)).status not in (qj.SUCCEEDED, qj.FAILED):
        assert time.monotonic() < deadline, "the delivery never finished"
        await deliver_due(hooks_app)
        await asyncio.sleep(0.02)
    done = await hooks_app.services.jobs.get(job.id)
    assert done.status == qj.SUCCEEDED
    assert done.attempts == 3

    assert target.bad_signatures == 0
    assert [r.headers["x-moorage-attempt"] for r in target.received] == ["1", "2", "3"]
    assert len({r.body for r in target.received}) == 1  # the same signed body each time
    assert len({r.headers["x-moorage-event-id"] for r in target.received}) == 1
    gaps = [b.at - a.at for a, b in itertools.pairwise(target.received)]
    assert gaps[0] >= 0.2, gaps
    assert gaps[1] >= 0.4, gaps

    log, total = await svc.deliveries(principal, HookScope.repository("admin/flaky"), hook.id)
    assert total == 3
    assert [(d.attempt, d.status, d.response_code) for d in reversed(log)] == [
        (1, "failed", 503),
        (2, "failed", 503),
        (3, "succeeded", 204),
    ]
    assert log[-1].error == "HTTP 503"
    assert "attempt 1 failed" in done.log


async def test_a_delivery_gives_up_after_max_attempts(
    hooks_app: MoorageApp, registry: httpx.AsyncClient, receivers: list[Receiver], tmp_path: Path
) -> None:
    principal = await admin(hooks_app)
    await create_repo(registry, "admin/down")
    target = receiver(receivers, tmp_path, fail_first=1000, fail_status=500)
    hook = await hooks_app.services.webhooks.create(
        principal, HookScope.namespace("admin"), url=target.url, event_types=[ev.MANIFEST_PUSH]
    )
    await push_image(registry, "admin/down", "v1")
    await hooks_app.services.events.dispatch("webhooks")
    (job,) = await delivery_jobs(hooks_app)
    deadline = time.monotonic() + 20
    while (await hooks_app.services.jobs.get(job.id)).status != qj.FAILED:
        assert time.monotonic() < deadline
        await deliver_due(hooks_app)
        await asyncio.sleep(0.02)
    assert len(target.received) == 3
    log, _ = await hooks_app.services.webhooks.deliveries(principal, HookScope.namespace("admin"), hook.id)
    assert [(d.attempt, d.status, d.response_code) for d in log] == [(3, "failed", 500), (2, "failed", 500), (1, "failed", 500)]  # fmt: skip


async def test_cloudevents_format(
    hooks_app: MoorageApp, registry: httpx.AsyncClient, receivers: list[Receiver], tmp_path: Path
) -> None:
    principal = await admin(hooks_app)
    target = receiver(receivers, tmp_path)
    hook = await hooks_app.services.webhooks.create(
        principal, HookScope.global_(), url=target.url, event_types=[ev.TAG_PUSH], format="cloudevents"
    )
    manifest = await push_image(registry, "admin/ce", "2.0")
    await deliver_due(hooks_app)
    (request,) = target.received
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert hook.secret is not None
    assert signature_ok(hook.secret, request)
    event = request.json()
    events, _ = await hooks_app.services.events.recent(repository="admin/ce", types=[ev.TAG_PUSH])
    assert event["specversion"] == "1.0"
    assert event["type"] == "io.moorage.tag.push"
    assert event["id"] == str(events[0].id)
    assert event["source"] == f"{BASE_URL}/v2/admin/ce"
    assert event["subject"] == "admin/ce:2.0"
    assert event["datacontenttype"] == "application/json"
    assert dt.datetime.fromisoformat(event["time"]) == events[0].created_at
    assert event["location"] == f"{BASE_URL}/v2/admin/ce/manifests/{sha256(manifest)}"
    assert event["data"] == events[0].contents


async def test_scopes_types_and_activity_decide_who_hears_what(
    hooks_app: MoorageApp, registry: httpx.AsyncClient, receivers: list[Receiver], tmp_path: Path
) -> None:
    svc = hooks_app.services.webhooks
    principal = await admin(hooks_app)
    r = await registry.post("/api/v1/organizations", json={"name": "acme"})
    assert r.status_code == 201, r.text
    for name in ("admin/one", "admin/two", "acme/three"):
        await create_repo(registry, name)
    repo_one = receiver(receivers, tmp_path)
    ns_admin = receiver(receivers, tmp_path)
    everywhere = receiver(receivers, tmp_path)
    deletes_only = receiver(receivers, tmp_path)
    paused = receiver(receivers, tmp_path)
    await svc.create(
        principal, HookScope.repository("admin/one"), url=repo_one.url, event_types=[ev.TAG_PUSH]
    )
    await svc.create(principal, HookScope.namespace("admin"), url=ns_admin.url, event_types=[ev.TAG_PUSH])
    await svc.create(principal, HookScope.global_(), url=everywhere.url, event_types=[ev.TAG_PUSH])
    await svc.create(principal, HookScope.global_(), url=deletes_only.url, event_types=[ev.TAG_DELETE])
    off = await svc.create(
        principal, HookScope.global_(), url=paused.url, event_types=[ev.TAG_PUSH], active=False
    )
    for name in ("admin/one", "admin/two", "acme/three"):
        await push_image(registry, name, "v1")
    await deliver_due(hooks_app)

    def repos(r: Receiver) -> list[str]:
        return sorted(x.json()["contents"]["repository"] for x in r.received)

    assert repos(repo_one) == ["admin/one"]
    assert repos(ns_admin) == ["admin/one", "admin/two"]
    assert repos(everywhere) == ["acme/three", "admin/one", "admin/two"]
    assert repos(deletes_only) == []
    assert repos(paused) == []

    # activated again, it hears what comes next; deactivated with a delivery queued, it hears nothing
    await svc.update(principal, HookScope.global_(), off.id, active=True)
    await push_image(registry, "admin/two", "v2", layer=b"another layer")
    await hooks_app.services.events.dispatch("webhooks")
    await svc.update(principal, HookScope.global_(), off.id, active=False)
    await deliver_due(hooks_app)
    assert repos(paused) == []
    queued = [j for j in await delivery_jobs(hooks_app) if j.payload["webhook"] == off.id]
    assert len(queued) == 1
    assert queued[0].status == qj.SUCCEEDED
    assert queued[0].result == {"skipped": "the webhook is inactive"}
    assert (await svc.deliveries(principal, HookScope.global_(), off.id))[1] == 0

    # the global webhook only answers to its own scope's routes
    with pytest.raises(NotFound):
        await svc.get(principal, HookScope.repository("admin/one"), off.id)


async def test_https_endpoint_with_custom_ca_or_skip_verify(
    hooks_app: MoorageApp, receivers: list[Receiver], tmp_path: Path
) -> None:
    svc = hooks_app.services.webhooks
    principal = await admin(hooks_app)
    chain = generate_chain("localhost", ["127.0.0.1"], now=dt.datetime.now(dt.UTC))
    target = receiver(receivers, tmp_path, tls=chain)
    assert target.url.startswith("https://")
    scope = HookScope.global_()
    trusted = await svc.create(
        principal, scope, url=target.url, event_types=[ev.TAG_PUSH], ca_cert=chain.ca_cert.decode()
    )
    untrusted = await svc.create(principal, scope, url=target.url, event_types=[ev.TAG_PUSH])
    skipping = await svc.create(principal, scope, url=target.url, event_types=[ev.TAG_PUSH], skip_verify=True)
    other_ca = generate_chain("localhost", ["127.0.0.1"], now=dt.datetime.now(dt.UTC)).ca_cert.decode()
    wrong_ca = await svc.create(principal, scope, url=target.url, event_types=[ev.TAG_PUSH], ca_cert=other_ca)

    ok = await svc.send_test(principal, scope, trusted.id)
    assert (ok.status, ok.response_code, ok.event_type, ok.event_id) == (
        "succeeded",
        204,
        "WEBHOOK_TEST",
        None,
    )
    refused = await svc.send_test(principal, scope, untrusted.id)
    assert refused.status == "failed"
    assert refused.response_code is None
    assert refused.error is not None
    assert "certificate" in refused.error.lower()
    skipped = await svc.send_test(principal, scope, skipping.id)
    assert skipped.status == "succeeded"
    wrong = await svc.send_test(principal, scope, wrong_ca.id)
    assert wrong.status == "failed"
    assert wrong.error is not None
    assert "certificate" in wrong.error.lower()

    assert len(target.received) == 2
    test_event = target.received[0].json()
    assert test_event["type"] == "WEBHOOK_TEST"
    assert test_event["contents"]["webhookId"] == trusted.id
    assert trusted.secret is not None
    assert signature_ok(trusted.secret, target.received[0])
    log, total = await svc.deliveries(principal, scope, untrusted.id)
    assert total == 1
    assert log[0].id == refused.id


async def test_a_receiver_that_does_not_answer_in_time_fails_the_attempt(
    tmp_path: Path, backend: Backend
) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections, never answers
    app = create_app(make_settings(tmp_path / "data", backend, webhook_timeout_seconds=0.5))
    await app.services.prepare()
    try:
        principal = await admin(app)
        port = listener.getsockname()[1]
        hook = await app.services.webhooks.create(
            principal, HookScope.global_(), url=f"http://127.0.0.1:{port}/", event_types=[ev.TAG_PUSH]
        )
        started = time.monotonic()
        result = await app.services.webhooks.send_test(principal, HookScope.global_(), hook.id)
        assert time.monotonic() - started < 5
        assert result.status == "failed"
        assert result.response_code is None
        assert result.error is not None
        assert "timed out" in result.error
    finally:
        listener.close()
        await app.services.db.close()


async def test_bad_input_is_refused_and_changes_nothing(
    hooks_app: MoorageApp, registry: httpx.AsyncClient
) -> None:
    svc = hooks_app.services.webhooks
    principal = await admin(hooks_app)
    await create_repo(registry, "admin/strict")
    scope = HookScope.repository("admin/strict")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "example.com/hook"}, "url"),
        ({"url": "http:///nohost"}, "url"),
        ({"url": "http://user:pw@example.com/"}, "url"),
        ({"url": "http://example.com:99999/"}, "url"),
        ({"event_types": ["TAG_PUSH", "TAG_EXPLODED"]}, "eventTypes"),
        ({"event_types": []}, "event_types"),
        ({"format": "xml"}, "format"),
        ({"secret": "short"}, "secret"),
        ({"ca_cert": "not a certificate"}, "ca_cert"),
        ({"ca_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "ca_cert"),
    ]
    for change, field_name in cases:
        args: dict[str, Any] = {"url": "https://example.com/hook", "event_types": [ev.TAG_PUSH], **change}
        with pytest.raises(InvalidInput) as caught:
            await svc.create(principal, scope, **args)
        assert caught.value.field == field_name, (change, caught.value)
    assert (await svc.list_webhooks(principal, scope))[1] == 0

    # an update with a bad field changes nothing, not even the good fields given with it
    hook = await svc.create(principal, scope, url="https://example.com/hook", event_types=[ev.TAG_PUSH])
    with pytest.raises(InvalidInput):
        await svc.update(principal, scope, hook.id, event_types=[ev.TAG_DELETE], url="gopher://x/")
    unchanged = await svc.get(principal, scope, hook.id)
    assert (unchanged.url, unchanged.event_types) == ("https://example.com/hook", [ev.TAG_PUSH])

    with pytest.raises(NotFound):
        await svc.create(principal, HookScope.repository("admin/nothere"), url="https://e.com/", event_types=["TAG_PUSH"])  # fmt: skip
    with pytest.raises(NotFound):
        await svc.create(principal, HookScope.namespace("nobody"), url="https://e.com/", event_types=["TAG_PUSH"])  # fmt: skip


async def test_who_may_manage_which_webhooks(hooks_app: MoorageApp, registry: httpx.AsyncClient) -> None:
    svc = hooks_app.services.webhooks
    root = await admin(hooks_app)
    for username in ("olga", "mona"):
        r = await registry.post(
            "/api/v1/users", json={"username": username, "password": "correct-horse-battery"}
        )
        assert r.status_code == 201, r.text
    olga = await hooks_app.services.authn.password("olga", "correct-horse-battery", None)
    mona = await hooks_app.services.authn.password("mona", "correct-horse-battery", None)
    r = await registry.post("/api/v1/organizations", json={"name": "acme"})
    assert r.status_code == 201, r.text
    r = await registry.put("/api/v1/organizations/acme/members/olga", json={"role": "owner"})
    assert r.status_code == 200, r.text
    r = await registry.put("/api/v1/organizations/acme/members/mona", json={"role": "member"})
    assert r.status_code == 200, r.text
    await create_repo(registry, "acme/web")
    args: dict[str, Any] = {"url": "https://example.com/hook", "event_types": [ev.TAG_PUSH]}

    # an organization's owner manages its namespace's and repositories' webhooks, not global ones
    await svc.create(olga, HookScope.namespace("acme"), **args)
    await svc.create(olga, HookScope.repository("acme/web"), **args)
    with pytest.raises(Forbidden):
        await svc.create(olga, HookScope.global_(), **args)
    # a user administers its own namespace
    await svc.create(mona, HookScope.namespace("mona"), **args)
    # a plain member does not administer the organization, and cannot see its private repository
    with pytest.raises(Forbidden):
        await svc.create(mona, HookScope.namespace("acme"), **args)
    with pytest.raises(NotFound):
        await svc.create(mona, HookScope.repository("acme/web"), **args)
    with pytest.raises(Forbidden):
        await svc.list_webhooks(mona, HookScope.global_())
    with pytest.raises(Forbidden):
        await svc.create(olga, HookScope.namespace("mona"), **args)
    assert (await svc.list_webhooks(root, HookScope.global_()))[1] == 0
    assert (await svc.list_webhooks(root, HookScope.namespace("acme")))[1] == 1

"""The events outbox: every change writes its event in its own transaction, and consumers see each once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection
from tests.conftest import Backend, make_settings
from tests.oci import fixtures_cnab as fx
from tests.registry.imagekit import push_image, sha256
from tests.services.test_artifacts import admin, push, push_bundle

from moorage.app import MoorageApp, create_app
from moorage.db import events as qe
from moorage.db.events import EventRow
from moorage.jobs.runner import EventDispatcher
from moorage.services import events as ev
from moorage.services.errors import InvalidInput


async def _types(app: MoorageApp, repository: str | None = None) -> list[tuple[str, str | None]]:
    rows, _ = await app.services.events.recent(repository=repository, limit=500)
    return [(r.type, r.tag) for r in reversed(rows)]


async def test_push_emits_repo_created_manifest_push_and_tag_push_with_contents(
    app: MoorageApp, client: httpx.AsyncClient
) -> None:
    manifest = await push_image(client, "lab/events", "v1")
    assert await _types(app, "lab/events") == [
        (ev.REPO_CREATED, None),
        (ev.MANIFEST_PUSH, None),
        (ev.TAG_PUSH, "v1"),
    ]
    rows, total = await app.services.events.recent(repository="lab/events", types=[ev.TAG_PUSH])
    assert total == 1
    c = rows[0].contents
    assert c["namespace"] == "lab"
    assert c["repository"] == "lab/events"
    assert c["tag"] == "v1"
    assert c["digest"] == sha256(manifest)
    assert c["imageName"] == "lab/events:v1"
    assert c["author"] == "admin"
    assert c["os"] == "linux"
    assert c["architecture"] == "amd64"
    assert c["artifactKind"] == "image"
    assert c["pushedAt"]


async def test_refused_push_writes_no_event(app: MoorageApp, client: httpx.AsyncClient) -> None:
    await push_image(client, "lab/refused", "v1")
    before = await _types(app)
    r = await client.put(
        "/v2/lab/refused/manifests/v2",
        content=b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'
        + b"0" * 64
        + b'","size":2},"layers":[]}',
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert r.status_code == 400
    assert await _types(app) == before


async def test_tag_delete_and_manifest_delete(app: MoorageApp, client: httpx.AsyncClient) -> None:
    manifest = await push_image(client, "lab/del", "a")
    digest = sha256(manifest)
    for tag in ("b", "c"):
        r = await client.put(
            f"/v2/lab/del/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert r.status_code == 201
    assert (await client.delete("/v2/lab/del/manifests/a")).status_code == 202
    rows, _ = await app.services.events.recent(repository="lab/del", types=[ev.TAG_DELETE])
    assert [(r.tag, r.digest, r.actor) for r in rows] == [("a", digest, "admin")]
    assert rows[0].contents["deletedAt"]
    assert (await client.delete(f"/v2/lab/del/manifests/{digest}")).status_code == 202
    # Deleting by digest takes the remaining tags with it: one TAG_DELETE each, then MANIFEST_DELETE.
    assert (await _types(app, "lab/del"))[-3:] == [
        (ev.TAG_DELETE, "b"),
        (ev.TAG_DELETE, "c"),
        (ev.MANIFEST_DELETE, None),
    ]
    # Deleting what is not there changes nothing and writes nothing.
    before = await _types(app)
    assert (await client.delete(f"/v2/lab/del/manifests/{digest}")).status_code == 404
    assert await _types(app) == before


async def test_pulls_are_buffered_then_written(app: MoorageApp, client: httpx.AsyncClient) -> None:
    manifest = await push_image(client, "lab/pulls", "v1")
    assert (await client.get("/v2/lab/pulls/manifests/v1")).status_code == 200
    assert (await client.head(f"/v2/lab/pulls/manifests/{sha256(manifest)}")).status_code == 200
    assert ev.TAG_PULL not in {t for t, _ in await _types(app, "lab/pulls")}
    assert await app.services.events.flush_pulls() == 2
    rows, _ = await app.services.events.recent(repository="lab/pulls", types=[ev.TAG_PULL, ev.MANIFEST_PULL])
    assert sorted((r.type, r.tag, r.actor) for r in rows) == [
        (ev.MANIFEST_PULL, None, "admin"),
        (ev.TAG_PULL, "v1", "admin"),
    ]


async def test_repository_management_events(app: MoorageApp, client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/repositories", json={"name": "admin/managed", "visibility": "private"})
    assert r.status_code == 201, r.text
    r = await client.patch("/api/v1/repositories/admin/managed", json={"description": "hello"})
    assert r.status_code == 200, r.text
    assert (await client.delete("/api/v1/repositories/admin/managed")).status_code == 204
    rows, _ = await app.services.events.recent(repository="admin/managed")
    assert [(r.type, r.actor) for r in reversed(rows)] == [
        (ev.REPO_CREATED, "admin"),
        (ev.REPO_UPDATED, "admin"),
        (ev.REPO_DELETED, "admin"),
    ]
    assert rows[1].contents["description"] == "hello"


async def test_scan_outcome_is_an_event(app: MoorageApp, client: httpx.AsyncClient) -> None:
    image = fx.image(seed="scan-event")
    await push(client, "lab/scanned", image, "v1")
    await app.services.scanning.work_pending()
    rows, _ = await app.services.events.recent(
        repository="lab/scanned", types=[ev.SCAN_COMPLETED, ev.SCAN_FAILED]
    )
    assert [r.digest for r in rows] == [image.digest]
    c = rows[0].contents
    assert c["status"] in ("completed", "failed")
    assert set(c["scanSummary"]) == {"critical", "high", "medium", "low", "unknown"}


async def test_consumer_sees_each_event_once_in_order_and_atomically(
    app: MoorageApp, client: httpx.AsyncClient
) -> None:
    events = app.services.events
    seen: list[int] = []
    fail_on: set[int] = set()

    async def consumer(event: EventRow, conn: AsyncConnection) -> None:
        # What a consumer writes commits with "handled": a job per event, deduplicated by event id.
        await app.services.jobs.enqueue(
            "test.noop", {"event": event.id}, conn=conn, dedupe_key=f"t:{event.id}"
        )
        if event.id in fail_on:
            raise RuntimeError("consumer failed")
        seen.append(event.id)

    events.subscribe("test", consumer)
    await events.start_consumers()
    await push_image(client, "lab/consumed", "v1")
    await push_image(client, "lab/consumed", "v2", layer=b"other")
    assert await events.dispatch("test") == 5  # REPO_CREATED, 2 x (MANIFEST_PUSH, TAG_PUSH)
    assert seen == sorted(seen)
    assert len(seen) == 5
    assert await events.dispatch("test") == 0

    # A failing consumer: its writes roll back, the cursor stays, and the event comes again.
    await push_image(client, "lab/consumed", "v3", layer=b"third")
    rows, _ = await events.recent(repository="lab/consumed", limit=2)
    fail_on.add(rows[-1].id)
    with pytest.raises(RuntimeError):
        await events.dispatch("test")
    jobs, _ = await app.services.jobs.jobs(kinds=("test.noop",))
    assert rows[-1].id not in {j.payload["event"] for j in jobs}
    fail_on.clear()
    assert await events.dispatch("test") == 2
    jobs, total = await app.services.jobs.jobs(kinds=("test.noop",), limit=100)
    assert total == 7 == len({j.payload["event"] for j in jobs})


async def test_a_bad_event_is_skipped_after_repeated_failures(
    app: MoorageApp, client: httpx.AsyncClient
) -> None:
    events = app.services.events
    handled: list[str | None] = []

    async def consumer(event: EventRow, conn: AsyncConnection) -> None:
        if event.type == ev.REPO_CREATED:
            raise ValueError("cannot handle this one")
        handled.append(event.type)

    events.subscribe("picky", consumer)
    await events.start_consumers()
    await push_image(client, "lab/picky", "v1")
    for _ in range(ev.MAX_CONSUMER_ATTEMPTS):
        with pytest.raises(ValueError, match="cannot handle"):
            await events.dispatch("picky")
    assert await events.dispatch("picky") == 3  # skipped (logged), then the other two
    assert handled == [ev.MANIFEST_PUSH, ev.TAG_PUSH]


async def test_two_processes_share_a_consumer_without_handling_an_event_twice(
    tmp_path: Path, backend: Backend, app: MoorageApp, client: httpx.AsyncClient, settings: object
) -> None:
    """A second app on the same database and data directory stands in for a second process."""
    other = create_app(make_settings(app.services.settings.data_dir, backend))
    await other.services.prepare()
    try:
        counts: dict[str, int] = {}

        def consumer_for(name: str) -> ev.Consumer:
            async def consumer(event: EventRow, conn: AsyncConnection) -> None:
                key = f"shared:{event.id}"
                job_id = await app.services.jobs.enqueue("test.noop", {"by": name}, conn=conn, dedupe_key=key)
                assert job_id is not None, "an event was handled twice"
                counts[name] = counts.get(name, 0) + 1

            return consumer

        app.services.events.subscribe("shared", consumer_for("one"))
        other.services.events.subscribe("shared", consumer_for("two"))
        await app.services.events.start_consumers()
        for i in range(4):
            await push_image(client, "lab/shared", f"v{i}", layer=f"layer {i}".encode())
        total = 0
        for _ in range(6):
            total += await app.services.events.dispatch("shared", batch=2)
            total += await other.services.events.dispatch("shared", batch=2)
        assert total == 9 == sum(counts.values())
    finally:
        await other.services.close()


async def test_application_push_events_carry_its_kind(app: MoorageApp, client: httpx.AsyncClient) -> None:
    bundle = fx.bundle_json_bundle()
    await push_bundle(client, "lab/appev", bundle, "1.0")
    rows, _ = await app.services.events.recent(repository="lab/appev", types=[ev.TAG_PUSH])
    kinds = {r.tag: r.contents["artifactKind"] for r in rows}
    assert kinds == {"1.0": "application", "1.0-invoc": "image"}
    assert await admin(app)


def test_unknown_event_types_are_refused() -> None:
    assert ev.validate_types([ev.TAG_PUSH, ev.TAG_PUSH]) == [ev.TAG_PUSH]
    with pytest.raises(InvalidInput) as info:
        ev.validate_types(["TAG_PUSHED"])
    assert info.value.field == "eventTypes"


async def test_an_idle_consumer_passes_over_events_without_a_write_each_time(
    app: MoorageApp, client: httpx.AsyncClient
) -> None:
    """While a consumer has nothing configured, events are passed over and its cursor written
    now and then; once it is active, it gets the events that come after."""
    events = app.services.events
    configured = False
    seen: list[int] = []

    async def active(conn: AsyncConnection) -> bool:
        return configured

    async def consumer(event: EventRow, conn: AsyncConnection) -> None:
        seen.append(event.id)

    events.subscribe("idle", consumer, types=[ev.TAG_PUSH], active=active)
    await events.start_consumers()

    async def stored_cursor() -> int | None:
        async with app.services.db.read() as conn:
            return await qe.cursor_position(conn, "idle")

    start = await stored_cursor()
    await push_image(client, "lab/idle", "v1")
    assert await events.dispatch("idle") == 3
    first_write = await stored_cursor()
    assert first_write is not None
    assert start is not None
    assert first_write > start  # the first pass writes
    await push_image(client, "lab/idle", "v2", layer=b"two")
    assert await events.dispatch("idle") == 2
    assert await stored_cursor() == first_write  # passed over, not written (within LAZY_SECONDS)
    assert await events.dispatch("idle") == 0  # and not handed over again
    assert seen == []

    configured = True
    await push_image(client, "lab/idle", "v3", layer=b"three")
    assert await events.dispatch("idle") == 2
    rows, _ = await events.recent(repository="lab/idle", types=[ev.TAG_PUSH], limit=1)
    assert seen == [rows[0].id]  # only the new push: the ones passed over stay passed over
    assert await stored_cursor() == rows[0].id


async def test_whether_a_consumer_is_active_is_asked_only_for_events_of_its_types(app: MoorageApp) -> None:
    events = app.services.events
    asked: list[bool] = []

    async def active(conn: AsyncConnection) -> bool:
        asked.append(True)
        return True

    async def consumer(event: EventRow, conn: AsyncConnection) -> None:
        pass

    events.subscribe("pushes", consumer, types=[ev.TAG_PUSH], active=active)
    await events.start_consumers()
    async with app.services.db.write() as conn:
        await events.emit(conn, ev.REPO_CREATED, repository="lab/types")
    assert await events.dispatch("pushes") == 1  # passed over
    assert asked == []
    async with app.services.db.write() as conn:
        await _emit_tag(conn, app, "v1")
    assert await events.dispatch("pushes") == 1
    assert asked == [True]


async def _emit_tag(conn: AsyncConnection, app: MoorageApp, tag: str) -> None:
    log = app.services.events
    await log.emit_all(conn, [log.event(ev.TAG_PUSH, repository="lab/order", tag=tag, digest=None)])


async def _rolled_back_event(app: MoorageApp) -> None:
    """An event inserted, then rolled back: on PostgreSQL its id is taken for good (a gap)."""

    async def doomed() -> None:
        async with app.services.db.write() as conn:
            await _emit_tag(conn, app, "rolled back")
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        await doomed()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_an_event_that_commits_after_a_newer_one_is_still_handed_over_in_order(
    app: MoorageApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL hands out event ids at insert time, and transactions commit in any order:
    the consumer waits at the gap instead of moving its cursor past an event still in flight."""
    seen: list[str] = []

    async def consumer(event: EventRow, conn: AsyncConnection) -> None:
        seen.append(str(event.tag))

    log = app.services.events
    log.subscribe("order", consumer, types=[ev.TAG_PUSH])
    await log.dispatch("order")  # the cursor starts at the present
    async with app.services.db.write() as slow:
        await _emit_tag(slow, app, "first")  # takes the lower id, commits last
        async with app.services.db.write() as fast:
            await _emit_tag(fast, app, "second")
        assert await log.dispatch("order") == 0  # "second" waits for the id before it
        assert seen == []
        assert log.waiting == {"order"}
    assert await log.dispatch("order") == 2
    assert seen == ["first", "second"]
    assert log.waiting == set()
    # A gap that never fills (a rolled-back insert) is passed over once its grace is over.
    monkeypatch.setattr(ev, "GAP_GRACE_SECONDS", 0.0)
    await _rolled_back_event(app)
    async with app.services.db.write() as conn:
        await _emit_tag(conn, app, "third")
    assert await log.dispatch("order") == 1
    assert seen == ["first", "second", "third"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_gap_in_its_grace_period_holds_the_events_after_it(app: MoorageApp) -> None:
    seen: list[str] = []

    async def consumer(event: EventRow, conn: AsyncConnection) -> None:
        seen.append(str(event.tag))

    log = app.services.events
    log.subscribe("order", consumer, types=[ev.TAG_PUSH])
    await log.dispatch("order")
    await _rolled_back_event(app)
    async with app.services.db.write() as conn:
        await _emit_tag(conn, app, "after")
    assert await log.dispatch("order") == 0  # within GAP_GRACE_SECONDS
    assert seen == []
    assert log.waiting == {"order"}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_consumer_ahead_does_not_make_one_behind_wait_for_a_gap_again(
    app: MoorageApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ev, "GAP_GRACE_SECONDS", 0.3)
    log = app.services.events
    seen: dict[str, list[str]] = {"ahead": [], "behind": []}
    for name in seen:

        async def consumer(event: EventRow, conn: AsyncConnection, name: str = name) -> None:
            seen[name].append(str(event.tag))

        log.subscribe(name, consumer, types=[ev.TAG_PUSH])
        await log.dispatch(name)
    await _rolled_back_event(app)
    async with app.services.db.write() as conn:
        await _emit_tag(conn, app, "one")
    assert await log.dispatch("ahead") == 0
    assert await log.dispatch("behind") == 0
    await asyncio.sleep(0.35)  # the gap's grace is over
    assert await log.dispatch("ahead") == 1
    async with app.services.db.write() as conn:
        await _emit_tag(conn, app, "two")
    assert await log.dispatch("ahead") == 1  # now well past the gap
    assert await log.dispatch("behind") == 2  # passes the same gap at once
    assert seen == {"ahead": ["one", "two"], "behind": ["one", "two"]}


async def test_consumers_at_one_position_share_one_read_of_the_events_per_pass(
    app: MoorageApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pass of the dispatcher reads (and parses) new events once, not once per consumer;
    outside a pass, each dispatch reads for itself."""
    events = app.services.events
    seen: dict[str, list[int]] = {name: [] for name in ("first", "second", "third")}
    for name in seen:

        async def consumer(event: EventRow, conn: AsyncConnection, name: str = name) -> None:
            seen[name].append(event.id)

        events.subscribe(name, consumer)
    await events.start_consumers()
    async with app.services.db.write() as conn:
        for tag in ("v1", "v2"):
            await _emit_tag(conn, app, tag)
    reads: list[int] = []
    events_after = qe.events_after

    async def counting(conn: AsyncConnection, after_id: int, limit: int) -> list[EventRow]:
        reads.append(after_id)
        return await events_after(conn, after_id, limit)

    monkeypatch.setattr(qe, "events_after", counting)
    assert await EventDispatcher(events).step(list(seen)) == 6
    assert len(reads) == 1
    rows, _ = await events.recent(repository="lab/order", limit=2)
    assert all(ids == sorted(r.id for r in rows) for ids in seen.values())

    async with app.services.db.write() as conn:
        await _emit_tag(conn, app, "v3")
    for name in seen:
        assert await events.dispatch(name) == 1
    assert len(reads) == 4
    assert len({len(ids) for ids in seen.values()}) == 1

"""/events, /repositories/…/events, /jobs and /schedules: who may read what, filters, paging."""

from __future__ import annotations

import httpx
from tests.api.helpers import API, UserFactory, make_repository
from tests.registry.imagekit import push_image, sha256

from moorage.app import MoorageApp
from moorage.services.jobs import JobContext


async def test_repository_activity_lists_pushes_and_deletes(
    app: MoorageApp, client: httpx.AsyncClient
) -> None:
    manifest = await push_image(client, "admin/act", "v1")
    assert (await client.delete("/v2/admin/act/manifests/v1")).status_code == 202
    r = await client.get(f"{API}/repositories/admin/act/events")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["type"] for e in body["items"]] == ["TAG_DELETE", "TAG_PUSH", "MANIFEST_PUSH", "REPO_CREATED"]
    assert body["items"][1]["digest"] == sha256(manifest)
    assert body["items"][1]["contents"]["imageName"] == "admin/act:v1"
    assert body["items"][1]["actor"] == "admin"
    r = await client.get(f"{API}/repositories/admin/act/events", params={"type": "TAG_PUSH", "perPage": 1})
    assert [e["type"] for e in r.json()["items"]] == ["TAG_PUSH"]
    r = await client.get(f"{API}/repositories/admin/act/events", params={"perPage": 2})
    assert r.json()["total"] == 4
    assert 'rel="next"' in r.headers["link"]


async def test_unknown_event_type_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{API}/events", params={"type": "TAG_PUSHED"})
    assert r.status_code == 422


async def test_events_are_private_like_their_repository(
    app: MoorageApp, client: httpx.AsyncClient, new_user: UserFactory
) -> None:
    await make_repository(client, "admin/secret", visibility="private")
    await make_repository(client, "admin/open", visibility="public")
    bob = await new_user("bob")
    assert (await bob.get(f"{API}/repositories/admin/secret/events")).status_code == 404
    assert (await bob.get(f"{API}/events", params={"repository": "admin/secret"})).status_code == 404
    r = await bob.get(f"{API}/repositories/admin/open/events")
    assert r.status_code == 200
    assert [e["type"] for e in r.json()["items"]] == ["REPO_CREATED"]
    assert (await bob.get(f"{API}/events")).status_code == 403
    assert (await bob.get(f"{API}/events", params={"namespace": "admin"})).status_code == 403
    r = await client.get(f"{API}/events", params={"namespace": "admin"})
    assert {e["repository"] for e in r.json()["items"]} == {"admin/secret", "admin/open"}


async def test_jobs_and_their_logs_for_administrators(
    app: MoorageApp, client: httpx.AsyncClient, new_user: UserFactory
) -> None:
    jobs = app.services.jobs

    async def handler(ctx: JobContext) -> dict[str, int]:
        await ctx.log("working")
        return {"ok": 1}

    jobs.handle("test.api", handler)
    done_id = await jobs.enqueue("test.api", {"a": 1})
    waiting_id = await jobs.enqueue("test.api", {"a": 2})
    job = await jobs.claim_next()
    assert job is not None
    assert job.id == done_id
    await jobs.run(job)

    r = await client.get(f"{API}/jobs", params={"kind": "test.api"})
    assert r.status_code == 200
    assert [(j["id"], j["status"]) for j in r.json()["items"]] == [
        (waiting_id, "pending"),
        (done_id, "succeeded"),
    ]
    r = await client.get(f"{API}/jobs/{done_id}")
    assert r.json()["result"] == {"ok": 1}
    assert "working" in r.json()["log"]
    r = await client.post(f"{API}/jobs/{waiting_id}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    r = await client.post(f"{API}/jobs/{done_id}/cancel")
    assert r.status_code == 409
    assert "only pending" in r.json()["message"]
    r = await client.get(f"{API}/jobs/status")
    assert r.json()["kinds"]["test.api"] == {"succeeded": 1, "cancelled": 1}
    assert (await client.get(f"{API}/jobs/999999")).status_code == 404

    bob = await new_user("bob")
    for path in ("/jobs", f"/jobs/{done_id}", "/jobs/status", "/schedules"):
        assert (await bob.get(API + path)).status_code == 403, path


async def test_schedules_are_listed(app: MoorageApp, client: httpx.AsyncClient) -> None:
    await app.services.jobs.schedule("test:nightly", "test.api", "0 3 * * *", {"x": 1})
    r = await client.get(f"{API}/schedules")
    assert r.status_code == 200
    found = [s for s in r.json() if s["name"] == "test:nightly"]
    assert found
    assert found[0]["cron"] == "0 3 * * *"
    assert found[0]["enabled"] is True


async def test_scan_queue_and_rescan_as_a_job(
    app: MoorageApp, client: httpx.AsyncClient, new_user: UserFactory
) -> None:
    await push_image(client, "admin/scanq", "v1")
    r = await client.get(f"{API}/system/scans")
    assert r.status_code == 200
    assert r.json() == {"pending": 1, "scanning": 0, "completed": 0, "failed": 0}
    await app.services.scanning.work_pending()
    counts = (await client.get(f"{API}/system/scans")).json()
    assert counts["pending"] == 0
    assert counts["completed"] + counts["failed"] == 1
    r = await client.post(f"{API}/system/rescan")
    assert r.status_code == 202
    job_id = r.json()["jobId"]
    assert (await client.post(f"{API}/system/rescan")).json()["jobId"] == job_id  # one waiting rescan
    job = await app.services.jobs.claim_next()
    assert job is not None
    await app.services.jobs.run(job)
    r = await client.get(f"{API}/jobs/{job_id}")
    assert r.json()["status"] == "succeeded"
    assert r.json()["result"] == {"rematched": counts["completed"]}
    bob = await new_user("bob")
    assert (await bob.get(f"{API}/system/scans")).status_code == 403
    assert (await bob.post(f"{API}/system/rescan")).status_code == 403


async def test_other_methods_on_repository_sub_resources_answer_405(client: httpx.AsyncClient) -> None:
    """``/repositories/{namespace}/{name:path}`` must not take ``…/events`` as a repository name."""
    await make_repository(client, "admin/guarded")
    for method, path, allow in [
        ("PATCH", "/repositories/admin/guarded/events", "GET"),
        ("DELETE", "/repositories/admin/guarded/webhooks", "GET, POST"),
        ("PUT", "/repositories/admin/guarded/promotion-policies", "GET, POST"),
        ("GET", "/repositories/admin/guarded/push-mirrors/1/sync", "POST"),
    ]:
        r = await client.request(method, API + path, json={})
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers["allow"] == allow
        assert r.json()["code"] == "method_not_allowed"

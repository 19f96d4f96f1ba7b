"""Mirroring between two real ``moorage serve`` processes, with skopeo on both ends.

The source server's own background loops do the work: skopeo pushes into it, its outbox
consumer queues push jobs, its job runner sends the content to the target server. A pull
mirror on the target, run with "sync now", copies it back in. Digests are checked with
skopeo (``inspect --raw``, ``copy --all`` back into an OCI layout) against the layouts that
were pushed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Backend, ServerProcess, backend_env, docker_ref, run_skopeo, start_server
from .layouts import Layout, multi_platform_layout, sha256, single_platform_layout

pytestmark = pytest.mark.e2e

API = "/api/v1"


@pytest.fixture
def source(tmp_path: Path, backend: Backend) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path / "source", backend_env(backend))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path / "target")
    try:
        yield proc
    finally:
        proc.stop()


def api(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url + API, auth=(server.username, server.password), timeout=60)


def wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def raw(server: ServerProcess, name: str) -> bytes:
    return run_skopeo(server, "inspect", "--raw", docker_ref(server, name)).stdout.encode()


def finished_job(server: ServerProcess, job_id: int) -> dict[str, Any]:
    with api(server) as http:

        def done() -> dict[str, Any] | None:
            job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
            return job if job["status"] in ("succeeded", "failed") else None

        result: dict[str, Any] = wait_for(f"job {job_id}", done)
        return result


def test_push_mirror_and_pull_mirror_between_two_servers(
    source: ServerProcess, target: ServerProcess, tmp_path: Path
) -> None:
    with api(source) as http:
        assert http.post("/repositories", json={"name": "admin/app"}).status_code == 201
        r = http.post(
            "/repositories/admin/app/push-mirrors",
            json={
                "url": target.url,
                "remoteRepository": "admin/copies",
                "username": target.username,
                "password": target.password,
                "tagTemplate": "mirror-%n",
            },
        )
        assert r.status_code == 201, r.text
        mirror_id = r.json()["id"]

    single, image = single_platform_layout(tmp_path / "single", tag="v1", layers=3)
    multi, index = multi_platform_layout(tmp_path / "multi", tag="multi")
    run_skopeo(source, "copy", f"oci:{single.root}:v1", docker_ref(source, "admin/app:v1"))
    run_skopeo(source, "copy", "--all", f"oci:{multi.root}:multi", docker_ref(source, "admin/app:multi"))

    # The source's runner sends both to the target, by itself.
    with httpx.Client(base_url=target.url, auth=(target.username, target.password)) as v2:

        def mirrored() -> bool:
            r = v2.get("/v2/admin/copies/tags/list")
            return r.status_code == 200 and {"mirror-v1", "mirror-multi"} <= set(r.json()["tags"])

        wait_for("the mirrored tags", mirrored)
    assert sha256(raw(target, "admin/copies:mirror-v1")) == image.digest
    assert raw(target, "admin/copies:mirror-multi") == multi.blob(index.digest)
    back = Layout(tmp_path / "back")
    run_skopeo(target, "copy", "--all", docker_ref(target, "admin/copies:mirror-multi"), f"oci:{back.root}:m")
    assert list(back.walk(index.digest)) == list(multi.walk(index.digest))
    for _, digest in multi.walk(index.digest):
        assert back.blob(digest) == multi.blob(digest)

    with api(source) as http:
        got = wait_for(
            "the mirror's status",
            lambda: (
                (m := http.get(f"/repositories/admin/app/push-mirrors/{mirror_id}").json())["lastStatus"]
                and m
            ),
        )
        assert got["lastStatus"] == "succeeded"
        job = http.get(f"/jobs/{got['lastJobId']}").json()
        assert job["kind"] == "mirror.push"
        assert "sent as admin/copies:mirror-" in job["log"]
        events = http.get("/events", params={"repository": "admin/app", "type": "PUSH_MIRRORING"}).json()
        assert sorted(e["contents"]["remoteTag"] for e in events["items"]) == ["mirror-multi", "mirror-v1"]
        assert {e["contents"]["status"] for e in events["items"]} == {"succeeded"}

    # A pull mirror on the target copies the source's repository in: sync now.
    with api(target) as http:
        assert http.post("/repositories", json={"name": "admin/pulled"}).status_code == 201
        r = http.post(
            "/repositories/admin/pulled/pull-mirrors",
            json={
                "url": source.url,
                "remoteRepository": "admin/app",
                "username": source.username,
                "password": source.password,
                "cron": "0 3 * * *",
            },
        )
        assert r.status_code == 201, r.text
        pull_id = r.json()["id"]
        schedules = {s["name"]: s for s in http.get("/schedules").json()}
        assert schedules[f"mirror:pull:{pull_id}"]["kind"] == "mirror.pull"
        r = http.post(f"/repositories/admin/pulled/pull-mirrors/{pull_id}/sync")
        assert r.status_code == 202, r.text
        job = finished_job(target, r.json()["jobId"])
        assert job["status"] == "succeeded", job
        assert sorted(job["result"]["mirrored"]) == ["multi", "v1"]
    assert sha256(raw(target, "admin/pulled:v1")) == image.digest
    assert raw(target, "admin/pulled:multi") == multi.blob(index.digest)

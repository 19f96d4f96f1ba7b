"""Durability and concurrency: uploads that outlive a crashed server, many clients pushing
the same content at once, and two server processes sharing one data directory and database."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from .conftest import (
    Backend,
    ServerProcess,
    backend_env,
    docker_ref,
    expect,
    finish_upload,
    patch_chunk,
    pull_blob,
    pull_manifest,
    push_blob,
    push_blob_chunked,
    push_image,
    push_manifest,
    registry_client,
    run_skopeo,
    start_server,
    start_upload,
    tags_of,
)
from .layouts import (
    OCI_INDEX,
    PLATFORMS,
    Image,
    build_image,
    canonical_json,
    layer_files,
    sha256,
    single_platform_layout,
)

pytestmark = pytest.mark.e2e

T = TypeVar("T")
KiB, MiB = 1 << 10, 1 << 20
CLIENTS = 16


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def upload_size(response: httpx.Response) -> int:
    """Bytes an upload holds, from its ``Range: 0-<last>`` header."""
    return int(response.headers["range"].split("-")[1]) + 1


def concurrently(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0..count-1)`` in ``count`` threads released together; re-raise the first failure."""
    barrier = threading.Barrier(count)

    def run(i: int) -> T:
        barrier.wait(timeout=60)
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


# -- (a) uploads survive a crash -------------------------------------------------------------
def test_uploads_survive_a_killed_server(server: ServerProcess, backend: Backend) -> None:
    """SIGKILL with two uploads in progress: one between chunks, one in the middle of a
    streamed PATCH. A new server on the same data reports how much each holds (``Range``)
    and both complete; what was pushed before the crash is intact."""
    image = build_image(PLATFORMS[0])
    between = payload(3 * MiB + 12345, seed=1)
    chunk = MiB + 7
    cut = payload(5 * MiB, seed=2)
    first = MiB
    sent_part, release = threading.Event(), threading.Event()
    outcome: list[BaseException | None] = []

    def streamed_body() -> Iterator[bytes]:
        yield cut[first : first + 3 * MiB]  # more than the server's 1 MiB write buffer
        sent_part.set()
        release.wait(timeout=30)  # then the connection breaks

    def interrupted_patch(location: str) -> None:
        with registry_client(server) as streaming:
            try:
                streaming.patch(location, content=streamed_body())
                outcome.append(None)
            except httpx.TransportError as exc:
                outcome.append(exc)

    with registry_client(server) as client:
        push_image(client, "lab/crash", image, tags=["before"])
        location = start_upload(client, "lab/crash")
        assert patch_chunk(client, location, between[:chunk], 0) == chunk
        cut_location = start_upload(client, "lab/crash")
        patch_chunk(client, cut_location, cut[:first], 0)

    thread = threading.Thread(target=interrupted_patch, args=(cut_location,))
    thread.start()
    assert sent_part.wait(timeout=30)
    # Give the server a moment to write some of the streamed chunk; the test holds whatever it wrote.
    # The store names an upload by its id and a hash of its repository (services/blobs.py).
    [upload_file] = (server.data_dir / "storage" / "uploads").glob(cut_location.rsplit("/", 1)[1] + "-*")
    for _ in range(100):
        if upload_file.exists() and upload_file.stat().st_size > first:
            break
        time.sleep(0.02)
    server.stop(kill=True)  # SIGKILL: no shutdown, no cleanup
    release.set()
    thread.join(timeout=30)
    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx.TransportError), "the streamed PATCH should have been cut off"

    restarted = start_server(server.data_dir, backend_env(backend))
    try:
        with registry_client(restarted) as client:
            assert pull_manifest(client, "lab/crash", "before").content == image.manifest
            for digest, data in image.blobs.items():
                assert pull_blob(client, "lab/crash", digest) == data

            r = expect(client.get(location), 204)
            assert upload_size(r) == chunk
            assert r.headers["docker-upload-uuid"] == location.rsplit("/", 1)[1]
            assert r.headers["location"] == location
            # A chunk that does not start where the upload ends is refused (416) and changes nothing.
            expect(
                client.patch(location, content=b"x", headers={"Content-Range": f"{chunk + 1}-{chunk + 1}"}),
                416,
            )
            offset = patch_chunk(client, location, between[chunk : 2 * chunk], chunk)
            finish_upload(client, location, sha256(between), between[offset:])
            assert pull_blob(client, "lab/crash", sha256(between)) == between
            expect(client.get(location), 404)  # a finished upload is gone

            # The cut-off upload holds a prefix of what was streamed; the client resumes there.
            held = upload_size(expect(client.get(cut_location), 204))
            assert first <= held <= first + 3 * MiB
            finish_upload(client, cut_location, sha256(cut), cut[held:])
            assert pull_blob(client, "lab/crash", sha256(cut)) == cut
    finally:
        restarted.stop()


# -- (b) many clients pushing the same content at once ----------------------------------------
def three_images() -> list[Image]:
    """One image per platform; the first layer is the same in all three."""
    return [build_image(p, layer_files(p, 3, salt="concurrent")) for p in PLATFORMS]


def index_of(images: list[Image]) -> bytes:
    return canonical_json(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [i.descriptor.as_json() for i in images]}
    )


def push_everything(client: httpx.Client, repo: str, i: int, images: list[Image], big: bytes) -> None:
    """Client ``i``'s share: every image (starting at a different one than its neighbours),
    half the clients monolithic and half chunked, then the index and the tags."""
    chunked = i % 2 == 1
    for k in range(len(images)):
        image = images[(i + k) % len(images)]
        push_image(client, repo, image, chunk_size=8 * KiB if chunked else None)
    if chunked:
        push_blob_chunked(client, repo, big, 256 * KiB)
    else:
        push_blob(client, repo, big)
    index = index_of(images)
    push_manifest(client, repo, "multi", index, OCI_INDEX)
    own = images[i % len(images)]
    push_manifest(client, repo, f"client-{i:02d}", own.manifest, own.descriptor.media_type)
    push_manifest(client, repo, "latest", own.manifest, own.descriptor.media_type)


def verify_everything(client: httpx.Client, repo: str, images: list[Image], big: bytes) -> None:
    index = index_of(images)
    for image in images:
        assert pull_manifest(client, repo, image.digest).content == image.manifest
        for digest, data in image.blobs.items():
            assert pull_blob(client, repo, digest) == data
    assert pull_blob(client, repo, sha256(big)) == big
    assert pull_manifest(client, repo, "multi").content == index
    expected_tags = sorted(["multi", "latest", *(f"client-{i:02d}" for i in range(CLIENTS))])
    assert tags_of(client, repo) == expected_tags
    for i in range(CLIENTS):
        assert pull_manifest(client, repo, f"client-{i:02d}").content == images[i % len(images)].manifest
    # The race for "latest" has one winner, and the tag points at a whole, stored manifest.
    latest = pull_manifest(client, repo, "latest")
    assert latest.content in {image.manifest for image in images}


def no_upload_left(server: ServerProcess) -> None:
    leftovers = list((server.data_dir / "storage" / "uploads").iterdir())
    assert leftovers == [], f"upload files left behind: {leftovers[:5]}"


def test_sixteen_clients_push_the_same_content_at_once(server: ServerProcess) -> None:
    images, big = three_images(), payload(MiB + 17, seed=3)

    def client_work(i: int) -> None:
        with registry_client(server) as client:
            push_everything(client, "lab/race", i, images, big)

    concurrently(CLIENTS, client_work)
    with registry_client(server) as client:
        verify_everything(client, "lab/race", images, big)
        assert expect(client.get("/v2/_catalog"), 200).json()["repositories"].count("lab/race") == 1
    no_upload_left(server)


# -- (c) two servers, one data directory and database -----------------------------------------
@contextmanager
def two_servers_started_at_once(
    data_dir: Path, env: dict[str, str]
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes started at the same moment on one (new) data directory and database:
    both migrate or wait for the other, and both create the administrator or find it made."""
    data_dir.mkdir(parents=True, exist_ok=True)
    started: list[ServerProcess] = []
    errors: list[Exception] = []
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(start_server, data_dir, env) for _ in range(2)]:
                try:
                    started.append(future.result())
                except Exception as exc:
                    errors.append(exc)
        assert not errors, errors
        yield started[0], started[1]
    finally:
        for proc in started:
            proc.stop()


def test_two_servers_share_one_registry(tmp_path: Path, backend: Backend) -> None:
    """Two processes on one data directory and database: what one does, the other sees, and
    sixteen clients spread over both pushing the same content leave one consistent registry."""
    with two_servers_started_at_once(tmp_path / "data", backend_env(backend)) as (a, b):
        image = build_image(PLATFORMS[1])
        with registry_client(a) as via_a, registry_client(b) as via_b:
            push_image(via_a, "lab/shared", image, tags=["v1"])
            assert pull_manifest(via_b, "lab/shared", "v1").content == image.manifest
            for digest, data in image.blobs.items():
                assert pull_blob(via_b, "lab/shared", digest) == data

            # One upload, its chunks sent through both servers in turn.
            data = payload(MiB + 999, seed=4)
            location = start_upload(via_a, "lab/shared")
            offset = patch_chunk(via_a, location, data[: 300 * KiB], 0)
            assert upload_size(expect(via_b.get(location), 204)) == offset
            offset = patch_chunk(via_b, location, data[offset : 700 * KiB], offset)
            finish_upload(via_a, location, sha256(data), data[offset:])
            assert pull_blob(via_b, "lab/shared", sha256(data)) == data

            # Deleting through one is seen through the other.
            expect(via_b.delete("/v2/lab/shared/manifests/v1"), 202)
            expect(via_a.get("/v2/lab/shared/manifests/v1"), 404)

        layout, pushed = single_platform_layout(tmp_path / "layout", tag="v1")
        run_skopeo(b, "copy", f"oci:{layout.root}:v1", docker_ref(b, "lab/skopeo:v1"))
        raw = run_skopeo(a, "inspect", "--raw", docker_ref(a, "lab/skopeo:v1")).stdout.encode()
        assert raw == layout.blob(pushed.digest)

        images, big = three_images(), payload(MiB + 3, seed=5)
        servers = [a, b]

        def client_work(i: int) -> None:
            with registry_client(servers[i % 2]) as client:
                push_everything(client, "lab/both", i, images, big)

        concurrently(CLIENTS, client_work)
        for each in servers:
            with registry_client(each) as client:
                verify_everything(client, "lab/both", images, big)
        no_upload_left(a)

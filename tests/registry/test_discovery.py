"""Content discovery: tag lists, the catalog and the referrers API (end-8, end-12, ``_catalog``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest

from moorage.oci import mediatypes as mt

REPO = "lab/words"
SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    (entry,) = r.json()["errors"]
    assert entry["code"] == code, entry
    assert entry["message"]
    return entry  # type: ignore[no-any-return]


async def push_blob(client: httpx.AsyncClient, data: bytes, repo: str = REPO) -> dict[str, Any]:
    r = await client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data)
    assert r.status_code == 201, r.text
    return {"digest": sha256(data), "size": len(data)}


async def push_manifest(
    client: httpx.AsyncClient, reference: str | None, document: dict[str, Any], repo: str = REPO
) -> tuple[str, bytes]:
    content = json.dumps(document).encode()
    media_type = document["mediaType"]
    r = await client.put(
        f"/v2/{repo}/manifests/{reference or sha256(content)}",
        content=content,
        headers={"Content-Type": media_type},
    )
    assert r.status_code == 201, r.text
    return r.headers["docker-content-digest"], content


async def push_image(
    client: httpx.AsyncClient, tag: str | None, repo: str = REPO, seed: str = ""
) -> tuple[str, bytes]:
    config = await push_blob(
        client, json.dumps({"os": "linux", "architecture": "amd64", "seed": seed}).encode(), repo
    )
    layer = await push_blob(client, b"layer" + seed.encode(), repo)
    return await push_manifest(
        client,
        tag,
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, **config},
            "layers": [{"mediaType": mt.OCI_LAYER_GZIP, **layer}],
        },
        repo,
    )


# -- tags ----------------------------------------------------------------------------
TAGS = ["1.0", "10", "2", "A", "B_", "a", "latest", "v1", "v10", "v2"]  # byte order ("ASCIIbetical")


@pytest.fixture
async def tagged(client: httpx.AsyncClient) -> httpx.AsyncClient:
    digest, _ = await push_image(client, None)
    for tag in reversed(TAGS):
        r = await client.put(
            f"/v2/{REPO}/manifests/{tag}",
            content=(await client.get(f"/v2/{REPO}/manifests/{digest}")).content,
            headers={"Content-Type": mt.OCI_MANIFEST},
        )
        assert r.status_code == 201
    return client


async def test_tags_list(tagged: httpx.AsyncClient) -> None:
    r = await tagged.get(f"/v2/{REPO}/tags/list")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"name": REPO, "tags": TAGS}
    assert "link" not in r.headers


async def test_tags_pagination(tagged: httpx.AsyncClient) -> None:
    r = await tagged.get(f"/v2/{REPO}/tags/list", params={"n": 3})
    assert r.json() == {"name": REPO, "tags": TAGS[:3]}
    assert r.headers["link"] == f'</v2/{REPO}/tags/list?n=3&last=2>; rel="next"'
    # Follow the Link headers to the end.
    seen = list(r.json()["tags"])
    pages = 1
    while "link" in r.headers:
        url = r.headers["link"].split(";")[0].strip("<>")
        r = await tagged.get(url)
        assert r.status_code == 200
        assert len(r.json()["tags"]) <= 3
        seen += r.json()["tags"]
        pages += 1
    assert seen == TAGS
    assert pages == 4


async def test_tags_last_and_n(tagged: httpx.AsyncClient) -> None:
    r = await tagged.get(f"/v2/{REPO}/tags/list", params={"last": "a"})
    assert r.json()["tags"] == TAGS[TAGS.index("a") + 1 :]
    assert "link" not in r.headers
    r = await tagged.get(f"/v2/{REPO}/tags/list", params={"n": 2, "last": "B_"})
    assert r.json()["tags"] == ["a", "latest"]
    assert r.headers["link"] == f'</v2/{REPO}/tags/list?n=2&last=latest>; rel="next"'
    r = await tagged.get(f"/v2/{REPO}/tags/list", params={"n": 100})
    assert r.json()["tags"] == TAGS
    assert "link" not in r.headers
    r = await tagged.get(f"/v2/{REPO}/tags/list", params={"n": len(TAGS)})
    assert r.json()["tags"] == TAGS
    assert "link" not in r.headers
    r = await tagged.get(f"/v2/{REPO}/tags/list", params={"last": "v2"})
    assert r.json() == {"name": REPO, "tags": []}


async def test_tags_n_zero(tagged: httpx.AsyncClient) -> None:
    r = await tagged.get(f"/v2/{REPO}/tags/list", params={"n": 0})
    assert r.status_code == 200
    assert r.json() == {"name": REPO, "tags": []}
    assert "link" not in r.headers


async def test_tags_invalid_n(tagged: httpx.AsyncClient) -> None:
    for n in ("-1", "abc", "1.5"):
        # Only the spec's codes go on the wire (not distribution's PAGINATION_NUMBER_INVALID).
        entry = error(await tagged.get(f"/v2/{REPO}/tags/list", params={"n": n}), 400, "UNSUPPORTED")
        assert "n must be" in entry["message"]
        error(await tagged.get("/v2/_catalog", params={"n": n}), 400, "UNSUPPORTED")


async def test_tags_of_empty_and_unknown_repositories(client: httpx.AsyncClient) -> None:
    await push_blob(client, b"only a blob")
    r = await client.get(f"/v2/{REPO}/tags/list")
    assert r.json() == {"name": REPO, "tags": []}
    entry = error(await client.get("/v2/lab/nothing/tags/list"), 404, "NAME_UNKNOWN")
    assert entry["detail"] == {"name": "lab/nothing"}


async def test_nested_repository_names(client: httpx.AsyncClient) -> None:
    for repo in ("a", "a/b", "a/b/c/d"):
        await push_image(client, "v1", repo)
    for repo in ("a", "a/b", "a/b/c/d"):
        assert (await client.get(f"/v2/{repo}/tags/list")).json() == {"name": repo, "tags": ["v1"]}


# -- catalog -------------------------------------------------------------------------
REPOS = ["a/b", "a/b/c", "lab/one", "lab/two", "z"]


async def test_catalog(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/_catalog")).json() == {"repositories": []}
    for repo in reversed(REPOS):
        await push_blob(client, repo.encode(), repo)
    r = await client.get("/v2/_catalog")
    assert r.status_code == 200
    assert r.json() == {"repositories": REPOS}
    assert "link" not in r.headers


async def test_catalog_pagination(client: httpx.AsyncClient) -> None:
    for repo in REPOS:
        await push_blob(client, repo.encode(), repo)
    r = await client.get("/v2/_catalog", params={"n": 2})
    assert r.json() == {"repositories": REPOS[:2]}
    assert r.headers["link"] == '</v2/_catalog?n=2&last=a%2Fb%2Fc>; rel="next"'
    seen = list(r.json()["repositories"])
    while "link" in r.headers:
        r = await client.get(r.headers["link"].split(";")[0].strip("<>"))
        seen += r.json()["repositories"]
    assert seen == REPOS
    r = await client.get("/v2/_catalog", params={"last": "lab/one"})
    assert r.json() == {"repositories": ["lab/two", "z"]}
    r = await client.get("/v2/_catalog", params={"n": 0})
    assert r.json() == {"repositories": []}
    assert "link" not in r.headers


# -- referrers -----------------------------------------------------------------------
async def push_referrer(
    client: httpx.AsyncClient,
    subject: tuple[str, bytes],
    artifact_type: str | None,
    annotations: dict[str, str],
    seed: str,
    config_type: str = mt.OCI_EMPTY,
) -> tuple[str, bytes]:
    config = await push_blob(
        client, b"{}" if config_type == mt.OCI_EMPTY else b'{"os":"linux","architecture":"arm"}'
    )
    layer = await push_blob(client, seed.encode())
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": config_type, **config},
        "layers": [{"mediaType": "application/octet-stream", **layer}],
        "subject": {"mediaType": mt.OCI_MANIFEST, "digest": subject[0], "size": len(subject[1])},
        "annotations": annotations,
    }
    if artifact_type:
        document["artifactType"] = artifact_type
    content = json.dumps(document).encode()
    r = await client.put(
        f"/v2/{REPO}/manifests/{sha256(content)}", content=content, headers={"Content-Type": mt.OCI_MANIFEST}
    )
    assert r.status_code == 201, r.text
    assert r.headers["oci-subject"] == subject[0]
    return sha256(content), content


def referrers_of(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == mt.OCI_INDEX
    body = r.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == mt.OCI_INDEX
    return body["manifests"]  # type: ignore[no-any-return]


async def test_referrers(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, "v1")
    sbom = await push_referrer(client, subject, SBOM, {"org.example.format": "spdx"}, "sbom")
    sig = await push_referrer(client, subject, SIGNATURE, {"org.example.key": "abcd"}, "sig")
    await push_referrer(client, await push_image(client, "other", seed="o"), SBOM, {}, "unrelated")
    found = referrers_of(await client.get(f"/v2/{REPO}/referrers/{subject[0]}"))
    assert sorted(found, key=lambda d: d["digest"]) == sorted(
        [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": sbom[0],
                "size": len(sbom[1]),
                "artifactType": SBOM,
                "annotations": {"org.example.format": "spdx"},
            },
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": sig[0],
                "size": len(sig[1]),
                "artifactType": SIGNATURE,
                "annotations": {"org.example.key": "abcd"},
            },
        ],
        key=lambda d: d["digest"],
    )


async def test_referrers_filtered_by_artifact_type(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, "v1")
    sbom = await push_referrer(client, subject, SBOM, {}, "sbom")
    await push_referrer(client, subject, SIGNATURE, {}, "sig")
    r = await client.get(f"/v2/{REPO}/referrers/{subject[0]}", params={"artifactType": SBOM})
    assert [d["digest"] for d in referrers_of(r)] == [sbom[0]]
    assert r.headers["oci-filters-applied"] == "artifactType"
    r = await client.get(f"/v2/{REPO}/referrers/{subject[0]}", params={"artifactType": "application/none"})
    assert referrers_of(r) == []
    assert r.headers["oci-filters-applied"] == "artifactType"
    r = await client.get(f"/v2/{REPO}/referrers/{subject[0]}")
    assert "oci-filters-applied" not in r.headers
    assert len(referrers_of(r)) == 2


@pytest.mark.parametrize("config_type", [mt.OCI_EMPTY, mt.OCI_CONFIG])
async def test_referrer_without_artifact_type_reports_config_media_type(
    client: httpx.AsyncClient, config_type: str
) -> None:
    """Spec: if artifactType is missing in an image manifest, report the config's mediaType."""
    subject = await push_image(client, "v1")
    referrer = await push_referrer(client, subject, None, {}, "plain", config_type)
    (found,) = referrers_of(await client.get(f"/v2/{REPO}/referrers/{subject[0]}"))
    assert found["digest"] == referrer[0]
    assert found["artifactType"] == config_type
    r = await client.get(f"/v2/{REPO}/referrers/{subject[0]}", params={"artifactType": config_type})
    assert [d["digest"] for d in referrers_of(r)] == [referrer[0]]


async def test_index_referrer(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, "v1")
    child = await push_image(client, None, seed="child")
    index_digest, index = await push_manifest(
        client,
        None,
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": child[0], "size": len(child[1])}],
            "subject": {"mediaType": mt.OCI_MANIFEST, "digest": subject[0], "size": len(subject[1])},
            "annotations": {"k": "v"},
        },
    )
    (found,) = referrers_of(await client.get(f"/v2/{REPO}/referrers/{subject[0]}"))
    # An index without artifactType has none in its descriptor.
    assert found == {
        "mediaType": mt.OCI_INDEX,
        "digest": index_digest,
        "size": len(index),
        "annotations": {"k": "v"},
    }


async def test_referrers_before_the_subject_exists(client: httpx.AsyncClient) -> None:
    await push_blob(client, b"x")
    missing = sha256(b"subject to come")
    sig = await push_referrer(client, (missing, b"0123456789"), SIGNATURE, {}, "early")
    assert [d["digest"] for d in referrers_of(await client.get(f"/v2/{REPO}/referrers/{missing}"))] == [
        sig[0]
    ]


async def test_referrers_of_unknown_subject_and_errors(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, "v1")
    assert referrers_of(await client.get(f"/v2/{REPO}/referrers/{sha256(b'nobody')}")) == []
    assert referrers_of(await client.get(f"/v2/{REPO}/referrers/{subject[0]}")) == []
    error(await client.get(f"/v2/{REPO}/referrers/sha256:abc"), 400, "DIGEST_INVALID")
    error(await client.get(f"/v2/{REPO}/referrers/latest"), 400, "DIGEST_INVALID")
    error(await client.get(f"/v2/lab/nothing/referrers/{subject[0]}"), 404, "NAME_UNKNOWN")


async def test_referrers_are_scoped_to_the_repository(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, "v1")
    await push_referrer(client, subject, SBOM, {}, "sbom")
    await push_blob(client, b"x", "lab/other")
    assert referrers_of(await client.get(f"/v2/lab/other/referrers/{subject[0]}")) == []


async def test_deleting_a_referrer_removes_it(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, "v1")
    sbom = await push_referrer(client, subject, SBOM, {}, "sbom")
    assert (await client.delete(f"/v2/{REPO}/manifests/{sbom[0]}")).status_code == 202
    assert referrers_of(await client.get(f"/v2/{REPO}/referrers/{subject[0]}")) == []

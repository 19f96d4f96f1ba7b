"""OCI 1.1 referrers: artifacts whose ``subject`` is an image, pushed with plain HTTP and
with the oras SDK, listed by ``GET /v2/<name>/referrers/<digest>`` (optionally filtered
by ``artifactType``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import (
    ServerProcess,
    expect,
    oras_registry,
    pull_manifest,
    push_blob,
    push_image,
    push_manifest,
    registry_client,
)
from .layouts import ARM64, OCI_INDEX, OCI_MANIFEST, Descriptor, build_image, canonical_json, sha256

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(shared_server: ServerProcess) -> ServerProcess:
    """Every test here works in repositories of its own, so they share a server per backend."""
    return shared_server


EMPTY_CONFIG = b"{}"
EMPTY = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(EMPTY_CONFIG), "size": 2}
SBOM = "application/vnd.example.sbom.v1+json"
SIGNATURE = "application/vnd.example.signature.v1"
ATTESTATION_CONFIG = "application/vnd.example.attestation.config.v1+json"


def push_artifact(
    client: httpx.Client,
    repo: str,
    subject: Descriptor | None,
    artifact_type: str | None,
    payload: bytes,
    annotations: dict[str, str] | None = None,
    config: tuple[str, bytes] | None = None,
) -> tuple[Descriptor, httpx.Response]:
    """Push an artifact manifest (empty config unless ``config`` = (media type, bytes)) by digest."""
    if config is None:
        push_blob(client, repo, EMPTY_CONFIG)
        config_desc = EMPTY
    else:
        config_desc = {
            "mediaType": config[0],
            "digest": push_blob(client, repo, config[1]),
            "size": len(config[1]),
        }
    layer = {
        "mediaType": "application/vnd.example.payload",
        "digest": push_blob(client, repo, payload),
        "size": len(payload),
    }
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": [layer],
    }
    if artifact_type:
        manifest["artifactType"] = artifact_type
    if subject is not None:
        manifest["subject"] = {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        }
    if annotations:
        manifest["annotations"] = annotations
    data = canonical_json(manifest)
    response = push_manifest(client, repo, sha256(data), data, OCI_MANIFEST)
    return Descriptor(OCI_MANIFEST, sha256(data), len(data)), response


def referrers(
    client: httpx.Client, repo: str, digest: str, artifact_type: str | None = None
) -> httpx.Response:
    params = {"artifactType": artifact_type} if artifact_type else None
    r = expect(client.get(f"/v2/{repo}/referrers/{digest}", params=params), 200)
    assert r.headers["content-type"] == OCI_INDEX
    document = r.json()
    assert document["schemaVersion"] == 2
    assert document["mediaType"] == OCI_INDEX
    return r


def listed(response: httpx.Response) -> list[dict[str, Any]]:
    return sorted(response.json()["manifests"], key=lambda d: d["digest"])


def entry(desc: Descriptor, artifact_type: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A referrers-list descriptor as the spec describes it."""
    out: dict[str, Any] = {
        "mediaType": desc.media_type,
        "digest": desc.digest,
        "size": desc.size,
        "artifactType": artifact_type,
    }
    if annotations:
        out["annotations"] = annotations
    return out


def test_referrers_over_http(server: ServerProcess) -> None:
    repo = "lab/app"
    image = build_image(ARM64)
    with registry_client(server) as client:
        push_image(client, repo, image, tags=["v1"])
        subject = image.descriptor

        created = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
        sbom, r = push_artifact(client, repo, subject, SBOM, b'{"packages": []}', annotations=created)
        assert r.headers["oci-subject"] == image.digest
        assert r.headers["location"].endswith(f"/v2/{repo}/manifests/{sbom.digest}")
        signature, r = push_artifact(client, repo, subject, SIGNATURE, b"signature bytes")
        assert r.headers["oci-subject"] == image.digest
        # No artifactType: the referrers API reports the config's media type instead.
        attestation, _ = push_artifact(
            client, repo, subject, None, b"attestation", config=(ATTESTATION_CONFIG, b'{"kind": "test"}')
        )
        # An index can refer to a subject too.
        index_doc = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": SBOM,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sbom.digest, "size": sbom.size}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest)},
        }
        index_bytes = canonical_json(index_doc)
        r = push_manifest(client, repo, "sbom-index", index_bytes, OCI_INDEX)
        assert r.headers["oci-subject"] == image.digest
        index = Descriptor(OCI_INDEX, sha256(index_bytes), len(index_bytes))
        # A signature of the SBOM refers to the SBOM, not to the image.
        sbom_signature, _ = push_artifact(client, repo, sbom, SIGNATURE, b"sbom signature")
        # Without a subject: no OCI-Subject header, and listed nowhere.
        _, r = push_artifact(client, repo, None, SIGNATURE, b"unattached")
        assert "oci-subject" not in r.headers

        everything = referrers(client, repo, image.digest)
        assert "oci-filters-applied" not in everything.headers
        assert listed(everything) == sorted(
            [
                entry(sbom, SBOM, created),
                entry(signature, SIGNATURE),
                entry(attestation, ATTESTATION_CONFIG),
                entry(index, SBOM),
            ],
            key=lambda d: d["digest"],
        )

        only_sboms = referrers(client, repo, image.digest, SBOM)
        assert only_sboms.headers["oci-filters-applied"] == "artifactType"
        assert listed(only_sboms) == sorted(
            [entry(sbom, SBOM, created), entry(index, SBOM)], key=lambda d: d["digest"]
        )
        only_attestations = referrers(client, repo, image.digest, ATTESTATION_CONFIG)
        assert listed(only_attestations) == [entry(attestation, ATTESTATION_CONFIG)]
        none = referrers(client, repo, image.digest, "application/vnd.example.nothing")
        assert none.headers["oci-filters-applied"] == "artifactType"
        assert listed(none) == []

        assert listed(referrers(client, repo, sbom.digest)) == [entry(sbom_signature, SIGNATURE)]
        # A digest nothing refers to (or that is not even stored) has an empty list, not a 404.
        assert listed(referrers(client, repo, sha256(b"nothing"))) == []

        # Referrers are per repository.
        push_image(client, "lab/other", image)
        assert listed(referrers(client, "lab/other", image.digest)) == []

        # A deleted referrer leaves the list.
        expect(client.delete(f"/v2/{repo}/manifests/{signature.digest}"), 202)
        assert signature.digest not in {d["digest"] for d in listed(referrers(client, repo, image.digest))}


def test_artifact_may_be_pushed_before_its_subject(server: ServerProcess) -> None:
    repo = "lab/early"
    image = build_image(ARM64, annotations={"purpose": "pushed after its signature"})
    with registry_client(server) as client:
        signature, r = push_artifact(client, repo, image.descriptor, SIGNATURE, b"early signature")
        assert r.headers["oci-subject"] == image.digest
        expect(client.get(f"/v2/{repo}/manifests/{image.digest}"), 404)
        assert listed(referrers(client, repo, image.digest)) == [entry(signature, SIGNATURE)]
        push_image(client, repo, image, tags=["late"])
        assert listed(referrers(client, repo, image.digest)) == [entry(signature, SIGNATURE)]


def test_referrers_with_oras(server: ServerProcess, tmp_path: Path) -> None:
    import oras.oci

    repo = "lab/oras"
    image = build_image(ARM64)
    with registry_client(server) as client:
        push_image(client, repo, image, tags=["v1"])

    sbom_file = tmp_path / "sbom.spdx.json"
    sbom_file.write_bytes(b'{"spdxVersion": "SPDX-2.3", "packages": []}')
    config_file = tmp_path / "config.json"
    config_file.write_bytes(b"{}")
    registry = oras_registry(server)
    response = registry.push(
        target=f"{server.host}/{repo}:sbom",
        files=[f"{sbom_file}:application/spdx+json"],
        manifest_config=f"{config_file}:{SBOM}",
        manifest_annotations={"org.example.tool": "oras"},
        subject=oras.oci.Subject(OCI_MANIFEST, image.digest, len(image.manifest)),
        disable_path_validation=True,
        quiet=True,
    )
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == image.digest
    artifact_digest = response.headers["Docker-Content-Digest"]

    with registry_client(server) as client:
        pushed = json.loads(pull_manifest(client, repo, "sbom").content)
        assert pushed["subject"]["digest"] == image.digest
        found = listed(referrers(client, repo, image.digest))
        assert [(d["digest"], d["artifactType"]) for d in found] == [(artifact_digest, SBOM)]
        assert found[0]["annotations"] == {"org.example.tool": "oras"}
        assert listed(referrers(client, repo, image.digest, SBOM)) == found

    out = tmp_path / "pulled"
    files = registry.pull(target=f"{server.host}/{repo}@{artifact_digest}", outdir=str(out))
    assert [Path(f).read_bytes() for f in files] == [sbom_file.read_bytes()]

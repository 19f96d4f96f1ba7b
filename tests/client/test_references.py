from __future__ import annotations

import pytest

from moorage.client.references import ImageRef, ReferenceInvalid, is_host, parse_image_ref

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("registry.example.com/lab/web:1", ImageRef("registry.example.com", "lab/web", "1")),
        ("127.0.0.1:5000/lab/web", ImageRef("127.0.0.1:5000", "lab/web", "latest")),
        ("localhost/web:v2", ImageRef("localhost", "web", "v2")),
        ("[::1]:5000/lab/web:1", ImageRef("[::1]:5000", "lab/web", "1")),
        (f"r.example/lab/web@{DIGEST}", ImageRef("r.example", "lab/web", None, DIGEST)),
        (f"r.example/lab/web:1@{DIGEST}", ImageRef("r.example", "lab/web", "1", DIGEST)),
        ("lab/web:1", ImageRef("default:5000", "lab/web", "1")),  # relative: the target registry
        ("nginx", ImageRef("default:5000", "nginx", "latest")),
    ],
)
def test_parse(text: str, expected: ImageRef) -> None:
    assert parse_image_ref(text, default_host="default:5000") == expected


def test_str_and_helpers() -> None:
    ref = parse_image_ref("r.example/lab/app:1.0")
    assert str(ref) == "r.example/lab/app:1.0"
    assert ref.reference == "1.0"
    assert str(ref.with_tag("1.0-invoc")) == "r.example/lab/app:1.0-invoc"
    assert str(ref.with_digest(DIGEST)) == f"r.example/lab/app@{DIGEST}"
    assert ref.with_digest(DIGEST).reference == DIGEST
    assert ref.name == "r.example/lab/app"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lab/web:1", "must start with the registry"),
        ("r.example/Lab/web", "invalid repository name"),
        ("r.example/lab/web:-bad", "not a valid tag"),
        ("r.example/lab/web@sha256:short", "invalid"),
        ("", "cannot be empty"),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(ReferenceInvalid, match=message):
        parse_image_ref(text)


def test_is_host() -> None:
    for host in ("r.example", "host:5000", "localhost", "[::1]:5000"):
        assert is_host(host)
    for name in ("lab", "bad_host.example"):
        assert not is_host(name)

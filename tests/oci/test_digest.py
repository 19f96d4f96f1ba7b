"""Digests: parsing, validation and hashing (``moorage.oci.digest``)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.oci.digest import ALGORITHMS, Digest, compute, is_digest, new_hasher, parse_digest
from moorage.oci.errors import DigestInvalid, RegistryError, Unsupported

HEX = "0123456789abcdef"
SHA256_EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_parse_sha256() -> None:
    d = parse_digest(SHA256_EMPTY)
    assert d == Digest("sha256", SHA256_EMPTY.split(":")[1])
    assert str(d) == SHA256_EMPTY
    assert d.short == "sha256:e3b0c44298fc"


def test_parse_sha512() -> None:
    encoded = hashlib.sha512(b"x").hexdigest()
    d = parse_digest(f"sha512:{encoded}")
    assert (d.algorithm, d.encoded) == ("sha512", encoded)
    assert len(d.encoded) == 128


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,  # registered algorithms are lowercase hex
        "sha256:" + "g" * 64,
        "sha512:" + "a" * 64,  # sha512 needs 128 characters
        "SHA256:" + "a" * 64,
        "sha256:" + "a" * 64 + "\n",
        "sha256:" + "a" * 64 + " ",
        " sha256:" + "a" * 64,
        "sha256:../../../etc/passwd",
        "sha256:" + "a" * 32 + "/" + "a" * 31,
        "sha256::" + "a" * 64,
        "sha256+:" + "a" * 64,
    ],
)
def test_invalid_digests_are_refused(value: str) -> None:
    with pytest.raises(DigestInvalid) as info:
        parse_digest(value)
    assert info.value.code == "DIGEST_INVALID"
    assert info.value.message


@pytest.mark.parametrize(
    "value",
    [
        "md5:" + "a" * 32,
        "sha384:" + "a" * 96,
        "blake3:" + "a" * 64,
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g",
    ],
)
def test_unknown_algorithms_are_unsupported(value: str) -> None:
    with pytest.raises(Unsupported) as info:
        parse_digest(value)
    assert info.value.code == "UNSUPPORTED"
    assert "not supported" in info.value.message
    assert value.split(":")[0] in info.value.message


def test_error_detail_is_truncated() -> None:
    with pytest.raises(DigestInvalid) as info:
        parse_digest("x" * 10_000)
    assert len(info.value.detail["digest"]) == 200
    assert len(info.value.message) < 300


def test_is_digest_is_syntactic_only() -> None:
    assert is_digest(SHA256_EMPTY)
    assert is_digest("md5:abc")  # any algorithm: parse_digest decides support
    assert not is_digest("latest")
    assert not is_digest("v1.0")
    assert not is_digest("sha256:" + "a" * 64 + "\n")


def test_compute_matches_hashlib() -> None:
    assert str(compute(b"")) == SHA256_EMPTY
    assert compute(b"abc", "sha512").encoded == hashlib.sha512(b"abc").hexdigest()


def test_hasher_is_incremental_and_copyable() -> None:
    h = parse_digest(SHA256_EMPTY).hasher()
    h.update(b"ab")
    snapshot = h.copy()
    h.update(b"c")
    assert h.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    assert snapshot.hexdigest() == hashlib.sha256(b"ab").hexdigest()


def test_new_hasher_refuses_unknown_algorithm() -> None:
    with pytest.raises(Unsupported):
        new_hasher("md5")


# -- properties ------------------------------------------------------------------------
algorithms = st.sampled_from(sorted(ALGORITHMS))


@st.composite
def valid_digests(draw: st.DrawFn) -> str:
    algorithm = draw(algorithms)
    encoded = draw(st.text(HEX, min_size=ALGORITHMS[algorithm], max_size=ALGORITHMS[algorithm]))
    return f"{algorithm}:{encoded}"


@given(valid_digests())
def test_valid_digests_round_trip(value: str) -> None:
    d = parse_digest(value)
    assert str(d) == value
    assert parse_digest(str(d)) == d
    assert is_digest(value)


@given(st.binary(max_size=512), algorithms)
def test_computed_digests_parse(data: bytes, algorithm: str) -> None:
    d = compute(data, algorithm)
    assert parse_digest(str(d)) == d
    assert d.encoded == hashlib.new(algorithm, data).hexdigest()


@given(st.text(max_size=200))
def test_parse_never_crashes_and_accepts_only_canonical_digests(value: str) -> None:
    try:
        d = parse_digest(value)
    except RegistryError as exc:
        code = exc.code
        assert code in ("DIGEST_INVALID", "UNSUPPORTED")
        return
    # Anything accepted is exactly its canonical form: no extra characters survive.
    assert str(d) == value
    assert d.algorithm in ALGORITHMS
    assert len(d.encoded) == ALGORITHMS[d.algorithm]
    assert set(d.encoded) <= set(HEX)


@given(valid_digests(), st.sampled_from(["\n", "\r", " ", "/", "/..", "\x00", "\t"]))
def test_trailing_junk_is_refused(value: str, junk: str) -> None:
    with pytest.raises(DigestInvalid):
        parse_digest(value + junk)


@given(st.from_regex(r"[a-z0-9]{1,10}([+._-][a-z0-9]{1,5}){0,2}", fullmatch=True), st.text(HEX, min_size=1))
def test_unregistered_algorithms_are_unsupported(algorithm: str, encoded: str) -> None:
    if algorithm in ALGORITHMS:
        return
    with pytest.raises(Unsupported):
        parse_digest(f"{algorithm}:{encoded}")

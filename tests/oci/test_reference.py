"""Repository names and tags (``moorage.oci.reference``)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.oci.errors import NameInvalid, TagInvalid
from moorage.oci.reference import MAX_NAME_LENGTH, is_valid_tag, validate_name, validate_tag

# The distribution-spec's regular expressions, verbatim, as the oracle.
SPEC_NAME = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")
SPEC_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "library/ubuntu",
        "lab/words",
        "a/b/c/d/e/f",
        "my-org/team.x/app_1",
        "a__b",
        "a--b",
        "a---b",
        "a.b.c",
        "0/1/2",
        "x" * MAX_NAME_LENGTH,
    ],
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "Lab/words",
        "a/",
        "/a",
        "a//b",
        "../x",
        "a/../b",
        "..",
        ".",
        "a/./b",
        "a/..",
        "-a",
        "a-",
        "a_",
        "_a",
        "a___b",
        "a._b",
        "a..b",
        "a b",
        "a\nb",
        "abc\n",
        "a\\b",
        "a%2fb",
        "a:b",
        "a@b",
        "é",
        "x" * (MAX_NAME_LENGTH + 1),
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(NameInvalid) as info:
        validate_name(name)
    assert info.value.code == "NAME_INVALID"
    assert "repository name" in info.value.message


def test_name_error_detail_is_bounded() -> None:
    with pytest.raises(NameInvalid) as info:
        validate_name("A" * 5000)
    assert len(info.value.detail["name"]) <= 300


@pytest.mark.parametrize("tag", ["latest", "v1", "1.0.0", "V1_rc-2", "_x", "a" * 128, "0"])
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) == tag
    assert is_valid_tag(tag)


@pytest.mark.parametrize(
    "tag", ["", ".x", "-x", "a" * 129, "a/b", "a:b", "a b", "v1\n", "x\x00", "sha256:" + "a" * 64, "ü", "a+b"]
)
def test_invalid_tags(tag: str) -> None:
    assert not is_valid_tag(tag)
    with pytest.raises(TagInvalid) as info:
        validate_tag(tag)
    assert info.value.code == "TAG_INVALID"
    assert "invalid tag" in info.value.message


# -- properties: the validators agree with the spec's regular expressions ------------------
component = st.from_regex(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*", fullmatch=True)
names = st.lists(component, min_size=1, max_size=6).map("/".join).filter(lambda n: len(n) <= MAX_NAME_LENGTH)


@given(names)
def test_generated_names_are_valid(name: str) -> None:
    assert SPEC_NAME.fullmatch(name)
    assert validate_name(name) == name


@given(st.text(alphabet="abcAB0._-/\n%:", max_size=40))
def test_name_validation_agrees_with_spec_regex(name: str) -> None:
    spec_ok = SPEC_NAME.fullmatch(name) is not None and len(name) <= MAX_NAME_LENGTH
    try:
        validate_name(name)
        ours = True
    except NameInvalid:
        ours = False
    assert ours == spec_ok


@given(names, st.sampled_from(["../", "/..", "//", "/", "\n", "A", "./", "%2e"]))
def test_path_tricks_make_names_invalid(name: str, trick: str) -> None:
    for candidate in (trick + name, name + trick):
        with pytest.raises(NameInvalid):
            validate_name(candidate)


@given(st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", fullmatch=True))
def test_generated_tags_are_valid(tag: str) -> None:
    assert validate_tag(tag) == tag


@given(st.text(max_size=140))
def test_tag_validation_agrees_with_spec_regex(tag: str) -> None:
    assert is_valid_tag(tag) == (SPEC_TAG.fullmatch(tag) is not None)

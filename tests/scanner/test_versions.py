"""Version ordering per ecosystem, checked against the ecosystems' own tools."""

from __future__ import annotations

import itertools
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.version import Version as PepVersion

from moorage.scanner.versions import (
    UnorderableVersion,
    base_ecosystem,
    compare,
    normalize_name,
    parse,
    parse_semver,
)


@pytest.mark.parametrize(
    ("ecosystem", "lower", "higher"),
    [
        ("Debian:11", "1.1.1n-0+deb11u3", "1.1.1n-0+deb11u4"),
        ("Debian:11", "2.0-1", "1:1.0-1"),  # epoch
        ("Debian:7", "1.2.1-2.2+wheezy2", "1.2.1-2.2+wheezy3"),
        ("Debian:12", "1.0~rc1-1", "1.0-1"),  # tilde sorts before everything
        ("Ubuntu:22.04:LTS", "2.5-2", "2.5-2ubuntu0.1"),
        ("Alpine:v3.11", "1.2.3_rc1-r0", "1.2.3-r0"),
        ("Alpine:v3.11", "6.9.10.37-r0", "6.9.10.39-r0"),
        ("Alpine:v3.11", "1.0-r2", "1.0-r10"),
        ("AlmaLinux:9", "4.9.4-0.1.el9", "2:4.6.1-5.el9"),  # epoch wins
        ("AlmaLinux:9", "2:4.6.1-5.el9", "2:4.6.1-7.el9_3"),
        ("PyPI", "1.0rc1", "1.0"),
        ("PyPI", "1.0", "1.0.post1"),
        ("PyPI", "1.9", "1.10"),
        ("npm", "4.17.20", "4.17.21"),
        ("npm", "1.0.0-alpha", "1.0.0"),
        ("Go", "v1.2.3", "v1.2.4"),
        ("Go", "go1.20", "1.20.1"),
        ("Go", "go1.21rc2", "go1.21.0"),
        ("Go", "go1.21rc2", "go1.21rc10"),
        ("Go", "v2.0.0+incompatible", "2.0.1"),
        ("Go", "0.0.0-20200101000000-abcdefabcdef", "0.0.0-20210520170846-37e1c6afe023"),
        ("Maven", "1.0-SNAPSHOT", "1.0"),
        ("Maven", "1.0-alpha-1", "1.0-beta-1"),
    ],
)
def test_ordering(ecosystem: str, lower: str, higher: str) -> None:
    assert compare(ecosystem, lower, higher) == -1
    assert compare(ecosystem, higher, lower) == 1
    assert compare(ecosystem, lower, lower) == 0


def test_equal_spellings() -> None:
    assert compare("PyPI", "1.0", "1.0.0") == 0
    assert compare("Go", "v1.2.3", "1.2.3") == 0
    assert compare("Go", "v2.0.0+incompatible", "2.0.0") == 0
    assert compare("Go", "go1.21", "1.21.0") == 0


@pytest.mark.parametrize(("ecosystem", "text"), [("PyPI", "foo-bar"), ("PyPI", ""), ("Go", "not a version")])
def test_unorderable(ecosystem: str, text: str) -> None:
    with pytest.raises(UnorderableVersion):
        parse(ecosystem, text)


def test_unknown_ecosystem_is_unorderable() -> None:
    with pytest.raises(UnorderableVersion):
        parse("Hackage", "1.0")


def test_names_and_ecosystems() -> None:
    assert base_ecosystem("Ubuntu:Pro:14.04:LTS") == "Ubuntu"
    assert base_ecosystem("npm") == "npm"
    assert normalize_name("PyPI", "Zope.Interface__x") == "zope-interface-x"
    assert normalize_name("Debian:11", "Foo_Bar") == "Foo_Bar"
    assert parse_semver("v1.2.3") == parse_semver("1.2.3")


# Property tests ------------------------------------------------------------------------

_alnum = st.text("abcxyz0123456789", min_size=1, max_size=4)
_digits = st.integers(min_value=0, max_value=30).map(str)
_upstream = st.builds(
    lambda first, rest: first + "".join(rest),
    _digits,
    st.lists(st.tuples(st.sampled_from([".", "+", "~"]), _alnum).map("".join), max_size=3),
)
_debian = st.builds(
    lambda epoch, upstream, revision: f"{epoch}{upstream}{revision}",
    st.sampled_from(["", "", "1:", "2:"]),
    _upstream,
    st.sampled_from(["", "-1", "-2", "-1+deb11u1", "-0ubuntu1", "-1~bpo1", "-10"]),
)

DPKG = shutil.which("dpkg")


def _dpkg_cmp(a: str, b: str) -> int:
    def holds(op: str) -> bool:
        return subprocess.run([DPKG or "dpkg", "--compare-versions", a, op, b], check=False).returncode == 0

    return -1 if holds("lt") else (0 if holds("eq") else 1)


@pytest.mark.skipif(DPKG is None, reason="dpkg is not on PATH")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_debian, _debian)
def test_debian_order_agrees_with_dpkg(a: str, b: str) -> None:
    assert compare("Debian:12", a, b) == _dpkg_cmp(a, b), (a, b)


_pep440 = st.builds(
    lambda release, pre, post, dev: release + pre + post + dev,
    st.lists(st.integers(0, 20), min_size=1, max_size=4).map(lambda xs: ".".join(map(str, xs))),
    st.sampled_from(["", "a1", "b2", "rc1", "rc10"]),
    st.sampled_from(["", ".post1", ".post2"]),
    st.sampled_from(["", ".dev0", ".dev3"]),
)


@settings(max_examples=300, deadline=None)
@given(_pep440, _pep440)
def test_pypi_order_agrees_with_packaging(a: str, b: str) -> None:
    pa, pb = PepVersion(a), PepVersion(b)
    assert compare("PyPI", a, b) == (-1 if pa < pb else (1 if pa > pb else 0))


@settings(max_examples=200, deadline=None)
@given(st.lists(_debian, min_size=3, max_size=3))
def test_debian_order_is_a_total_order(xs: list[str]) -> None:
    a, b, c = (parse("Debian:12", x) for x in xs)
    assert (a < b) + (a == b) + (a > b) == 1  # exactly one holds
    if a <= b and b <= c:
        assert a <= c
    assert compare("Debian:12", xs[0], xs[1]) == -compare("Debian:12", xs[1], xs[0])


_semver = st.builds(
    lambda core, pre: ".".join(map(str, core)) + pre,
    st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 12)),
    st.sampled_from(["", "-alpha", "-alpha.1", "-beta", "-rc.1", "-rc.2", "-0.3"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_semver, min_size=3, max_size=3))
def test_semver_sort_is_consistent(xs: list[str]) -> None:
    ordered = sorted(xs, key=lambda x: parse("npm", x))
    for lo, hi in itertools.pairwise(ordered):
        assert compare("npm", lo, hi) <= 0
    # Go's spelling of the same versions orders the same way.
    assert sorted(xs, key=lambda x: parse("Go", "v" + x)) == ordered

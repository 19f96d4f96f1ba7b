"""Range evaluation (the OSV specification's semantics) and findings against the real shared data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tests.conftest import SHARED

from moorage.scanner.matching import Component, Matcher, MemorySource, affected, fixed_versions, lookup_name
from moorage.scanner.osv import Affected, Event, InvalidRecord, Package, Range, Vulnerability, read_records

OSV = SHARED / "testdata" / "osv"


def _entry(ecosystem: str, *ranges: Range, versions: tuple[str, ...] = (), name: str = "pkg") -> Affected:
    return Affected(Package(ecosystem, name), ranges, versions)


def _range(*events: tuple[str, str], kind: str = "ECOSYSTEM") -> Range:
    return Range(kind, tuple(Event(k, v) for k, v in events))


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.1", True),
        ("1.0", True),
        ("1.4.9", True),
        ("1.5", False),
        ("1.9", False),
        ("2.0", True),
        ("2.3.1", False),
        ("3.0", False),
    ],
)
def test_multiple_introduced_fixed_pairs(version: str, expected: bool) -> None:
    entry = _entry(
        "PyPI", _range(("introduced", "0"), ("fixed", "1.5"), ("introduced", "2.0"), ("fixed", "2.3"))
    )
    assert affected(entry, "PyPI", "pkg", version) is expected


def test_events_out_of_order_are_sorted() -> None:
    entry = _entry(
        "PyPI", _range(("fixed", "2.3"), ("introduced", "2.0"), ("fixed", "1.5"), ("introduced", "0"))
    )
    assert affected(entry, "PyPI", "pkg", "2.1")
    assert not affected(entry, "PyPI", "pkg", "1.6")


def test_last_affected_is_inclusive_and_limit_caps() -> None:
    entry = _entry("npm", _range(("introduced", "1.0.0"), ("last_affected", "1.2.0")))
    assert [affected(entry, "npm", "pkg", v) for v in ("0.9.0", "1.0.0", "1.2.0", "1.2.1")] == [
        False,
        True,
        True,
        False,
    ]
    limited = _entry("npm", _range(("introduced", "0"), ("limit", "2.0.0")))
    assert affected(limited, "npm", "pkg", "1.9.9")
    assert not affected(limited, "npm", "pkg", "2.0.0")


def test_introduced_only_means_every_later_version() -> None:
    entry = _entry("Go", _range(("introduced", "0"), kind="SEMVER"), name="example.com/m")
    assert affected(entry, "Go", "example.com/m", "v9.9.9")


def test_semver_range_with_go_spellings() -> None:
    entry = _entry("Go", _range(("introduced", "1.20.0"), ("fixed", "1.20.4"), kind="SEMVER"), name="stdlib")
    assert affected(entry, "Go", "stdlib", "go1.20")
    assert affected(entry, "Go", "stdlib", "go1.20.3")
    assert not affected(entry, "Go", "stdlib", "go1.20.4")
    assert not affected(entry, "Go", "stdlib", "go1.20rc1")  # before 1.20.0
    mod = _entry("Go", _range(("introduced", "0"), ("fixed", "2.1.0"), kind="SEMVER"), name="example.com/m")
    assert affected(mod, "Go", "example.com/m", "v2.0.0+incompatible")


def test_explicit_versions_and_unorderable_pypi_versions() -> None:
    entry = _entry("PyPI", _range(("introduced", "0"), ("fixed", "2.0")), versions=("1.0", "weird-1"))
    assert affected(entry, "PyPI", "pkg", "weird-1")  # not PEP 440: only the list can say so
    assert not affected(entry, "PyPI", "pkg", "weird-2")
    assert affected(entry, "PyPI", "pkg", "1.0.0")  # the same version as the listed 1.0
    listed_only = _entry("Debian:11", versions=("1.0-1",))
    assert affected(listed_only, "Debian:11", "pkg", "1.0-1")
    assert not affected(listed_only, "Debian:11", "pkg", "1.0-2")


def test_ecosystems_with_releases_match_exactly_and_names_normalize() -> None:
    entry = _entry("Debian:11", _range(("introduced", "0"), ("fixed", "2.0-1")))
    assert affected(entry, "Debian:11", "pkg", "1.0-1")
    assert not affected(entry, "Debian:12", "pkg", "1.0-1")
    assert not affected(entry, "Debian", "pkg", "1.0-1")
    pypi = _entry("PyPI", _range(("introduced", "0"), ("fixed", "2.0")), name="Zope.Interface")
    assert affected(pypi, "PyPI", "zope-interface", "1.0")
    assert not affected(pypi, "PyPI", "zope-interfaces", "1.0")


def test_git_ranges_are_not_evaluated() -> None:
    git = Range("GIT", (Event("introduced", "0"), Event("fixed", "a" * 40)), "https://example.org/r")
    assert not affected(_entry("PyPI", git), "PyPI", "pkg", "1.0")
    assert fixed_versions(_entry("PyPI", git, _range(("introduced", "0"), ("fixed", "2.0")))) == ("2.0",)


def test_lookup_by_source_name_for_os_packages() -> None:
    assert lookup_name(Component("libssl3", "3.0.11-1", "Debian:12", source_name="openssl")) == "openssl"
    assert (
        lookup_name(Component("libcrypto3", "3.1.4-r0", "Alpine:v3.19", source_name="openssl")) == "openssl"
    )
    assert lookup_name(Component("podman", "4.9.4", "AlmaLinux:9", source_name="podman-src")) == "podman"
    assert lookup_name(Component("django", "3.2", "PyPI", source_name="Django")) == "django"


def test_withdrawn_records_do_not_match() -> None:
    entry = _entry("npm", _range(("introduced", "0")))
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    live = Vulnerability("LIVE-1", now, affected=(entry,))
    gone = Vulnerability("GONE-1", now, withdrawn=now, affected=(entry,))
    findings = Matcher(MemorySource([live, gone])).match([Component("pkg", "1.0.0", "npm")])
    assert [f.id for f in findings] == ["LIVE-1"]


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    records = []
    for sub in ("PyPI", "Go", "npm", "Debian", "Alpine", "AlmaLinux"):
        records.extend(r for r in read_records(OSV / sub) if not isinstance(r, InvalidRecord))
    return Matcher(MemorySource(records))


def _ids(matcher: Matcher, component: Component) -> set[str]:
    return {f.id for f in matcher.match_component(component)}


def test_real_pypi_advisory(matcher: Matcher) -> None:
    # PYSEC-2021-7 (CVE-2021-31542, path traversal in uploaded file names) is fixed in Django 3.2.1.
    assert "PYSEC-2021-7" in _ids(matcher, Component("Django", "3.2.0", "PyPI"))
    assert "PYSEC-2021-7" not in _ids(matcher, Component("django", "3.2.1", "PyPI"))
    (finding,) = [
        f for f in matcher.match_component(Component("django", "3.2", "PyPI")) if f.id == "PYSEC-2021-7"
    ]
    assert "CVE-2021-31542" in finding.aliases
    assert "3.2.1" in finding.fixed_versions
    assert finding.package == "django"
    assert finding.version == "3.2"
    assert finding.ecosystem == "PyPI"


def test_real_go_stdlib_vulnerability(matcher: Matcher) -> None:
    old = _ids(matcher, Component("stdlib", "go1.20", "Go"))
    assert "GO-2023-1568" in old  # fixed in 1.19.6 and 1.20.1
    assert "GO-2023-1568" not in _ids(matcher, Component("stdlib", "go1.20.1", "Go"))


def test_real_debian_dsa_by_source_package(matcher: Matcher) -> None:
    libssl = Component("libssl1.1", "1.1.1d-0+deb10u3", "Debian:10", source_name="openssl")
    assert "DSA-4807-1" in _ids(matcher, libssl)  # fixed in 1.1.1d-0+deb10u4
    assert "DSA-4807-1" not in _ids(
        matcher, Component("libssl1.1", "1.1.1d-0+deb10u4", "Debian:10", source_name="openssl")
    )
    assert not _ids(
        matcher, Component("libssl1.1", "1.1.1d-0+deb10u3", "Debian:11", source_name="openssl")
    ) & {"DSA-4807-1"}
    nginx = {f.id: f for f in matcher.match_component(Component("nginx", "1.2.1-2.2+wheezy2", "Debian:7"))}
    assert nginx["DSA-3029-1"].fixed_versions == ("1.2.1-2.2+wheezy3",)


def test_real_alpine_secfix_by_origin(matcher: Matcher) -> None:
    ids = _ids(matcher, Component("libcrypto1.1", "1.1.1d-r2", "Alpine:v3.11", source_name="openssl"))
    assert "ALPINE-CVE-2019-1551" in ids  # fixed in 1.1.1d-r3
    assert "ALPINE-CVE-2019-1547" not in ids  # fixed in 1.1.1d-r1


def test_real_almalinux_and_npm_with_severity(matcher: Matcher) -> None:
    alma = {f.id: f for f in matcher.match_component(Component("podman", "2:4.6.1-5.el9", "AlmaLinux:9"))}
    assert alma["ALSA-2024:2193"].severity == "medium"  # "Moderate: podman security update"
    lodash = {f.id: f for f in matcher.match_component(Component("lodash", "4.17.15", "npm"))}
    assert (lodash["GHSA-35jh-r3h4-6jhm"].severity, lodash["GHSA-35jh-r3h4-6jhm"].score) == ("high", 7.2)
    assert not _ids(matcher, Component("lodash", "4.17.21", "npm"))
    assert "https://nvd.nist.gov/vuln/detail/CVE-2021-23337" in lodash["GHSA-35jh-r3h4-6jhm"].references


def test_data_path_exists() -> None:
    assert Path(OSV / "README.md").exists()

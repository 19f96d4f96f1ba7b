"""CVSS base scores (checked against NVD's published scores) and label mapping."""

from __future__ import annotations

import datetime as dt

import pytest

from moorage.scanner.osv import Affected, Package, Severity, Vulnerability
from moorage.scanner.severity import (
    InvalidVector,
    cvss2_base_score,
    cvss3_base_score,
    label_level,
    msr_level,
    rate,
    score_level,
)


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
        ("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", 7.2),  # CVE-2021-23337 (lodash)
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", 5.3),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 8.8),
        ("CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 6.5),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N", 0.0),
    ],
)
def test_cvss3(vector: str, score: float) -> None:
    assert cvss3_base_score(vector) == score


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
        ("AV:N/AC:M/Au:N/C:N/I:P/A:N", 4.3),
        ("AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0),
        ("AV:L/AC:L/Au:N/C:P/I:N/A:N", 2.1),
    ],
)
def test_cvss2(vector: str, score: float) -> None:
    assert cvss2_base_score(vector) == score


@pytest.mark.parametrize(
    "vector",
    ["CVSS:3.1/AV:N/AC:L", "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "AV:N/AC:L/Au:N/C:P/I:P/A:P", ""],
)
def test_bad_vectors(vector: str) -> None:
    with pytest.raises(InvalidVector):
        cvss3_base_score(vector)


def test_levels() -> None:
    assert [score_level(s) for s in (9.8, 7.0, 6.9, 4.0, 0.1, 0.0)] == [
        "critical", "high", "medium", "medium", "low", None,
    ]  # fmt: skip
    assert score_level(9.8, version=2) == "high"
    assert [label_level(x) for x in ("CRITICAL", "MODERATE", "Important", "negligible", "untriaged", 3)] == [
        "critical", "medium", "high", "low", None, None,
    ]  # fmt: skip
    assert [msr_level(x) for x in ("critical", "high", "medium", "low", None)] == [
        "critical", "critical", "major", "minor", None,
    ]  # fmt: skip


def _vuln(**kwargs: object) -> Vulnerability:
    return Vulnerability(id="X-1", modified=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), **kwargs)  # type: ignore[arg-type]


def test_rate_prefers_the_computed_vector_over_the_label() -> None:
    vuln = _vuln(
        severity=(Severity("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),),
        database_specific={"severity": "LOW"},
    )
    rating = rate(vuln)
    assert (rating.severity, rating.score, rating.source) == ("critical", 9.8, "CVSS_V3")


def test_rate_from_labels() -> None:
    assert rate(_vuln(database_specific={"severity": "MODERATE"})).severity == "medium"
    assert rate(_vuln(summary="Important: kernel security update")).severity == "high"
    ubuntu = _vuln(severity=(Severity("Ubuntu", "medium"),))
    assert rate(ubuntu).severity == "medium"
    entry = Affected(Package("Debian:11", "x"), ecosystem_specific={"severity": "high"})
    assert rate(_vuln(affected=(entry,)), entry).severity == "high"
    assert rate(_vuln(severity=(Severity("CVSS_V4", "CVSS:4.0/AV:N"),))).severity is None
    assert rate(_vuln()).severity is None

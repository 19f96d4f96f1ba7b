"""CVSS base scores (checked against NVD's and FIRST's published scores, and exhaustively against
the ``cvss`` package), label mapping, and the ratings of the real shared OSV data."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter

import pytest
from cvss import CVSS2, CVSS3
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import SHARED

from moorage.scanner.osv import Affected, Package, Severity, Vulnerability, read_records
from moorage.scanner.severity import (
    BUCKETS,
    UNKNOWN,
    InvalidVector,
    bucket,
    cvss2_base_score,
    cvss3_base_score,
    cvss4_base_score,
    label_level,
    msr_level,
    rate,
    score_level,
)

OSV = SHARED / "testdata" / "osv"


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


# FIRST's own examples (the v2 guide, the v3.0/v3.1 and v4.0 "Examples" documents): base scores.
@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("AV:N/AC:L/Au:N/C:N/I:N/A:C", 7.8),  # CVE-2002-0392
        ("AV:N/AC:L/Au:N/C:C/I:C/A:C/E:F/RL:OF/RC:C", 10.0),  # CVE-2003-0818, temporal metrics ignored
        ("AV:L/AC:H/Au:N/C:C/I:C/A:C", 6.2),  # CVE-2003-0062
        ("CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N", 3.1),  # POODLE
        ("CVSS:3.0/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),  # CVE-2012-1516
        ("CVSS:3.0/AV:L/AC:L/PR:H/UI:N/S:U/C:L/I:L/A:L", 4.2),  # CVE-2009-0783
        ("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:C/C:N/I:H/A:N", 6.8),  # Kaminsky
        ("CVSS:3.0/AV:A/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:H", 9.3),  # CVE-2013-6014
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:H/I:H/A:H", 9.0),  # CVE-2019-7551
        ("CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N", 4.6),  # CVE-2014-2019
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:L/I:N/A:N", 5.8),  # CVE-2010-0467
    ],
)
def test_first_examples_v2_v3(vector: str, score: float) -> None:
    scorer = cvss3_base_score if vector.startswith("CVSS:3") else cvss2_base_score
    assert scorer(vector) == score


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:4.0/AV:L/AC:L/AT:P/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 7.3),  # CVE-2022-41741
        ("CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 7.7),  # CVE-2020-3549
        ("CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:L/VA:L/SC:N/SI:N/SA:N", 8.3),  # CVE-2023-3089
        ("CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N", 4.6),  # CVE-2021-44714
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:A/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N", 5.1),  # CVE-2022-21830
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N", 6.9),  # CVE-2022-22186
        ("CVSS:4.0/AV:L/AC:L/AT:N/PR:H/UI:N/VC:N/VI:N/VA:N/SC:H/SI:N/SA:N", 5.9),  # CVE-2023-21989
        ("CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H", 9.4),  # CVE-2020-3947
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:H/VA:N/SC:H/SI:H/SA:H", 9.3),  # CVE-2023-48228
        ("CVSS:4.0/AV:P/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:H/SA:N/S:P/V:D", 8.3),  # CVE-2023-30560
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3),  # log4shell
        ("CVSS:4.0/AV:A/AC:L/AT:N/PR:N/UI:N/VC:N/VI:L/VA:N/SC:H/SI:N/SA:H", 6.4),  # CVE-2013-6014
        ("CVSS:4.0/AV:L/AC:L/AT:N/PR:H/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/R:I", 8.4),  # CVE-2016-5729
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:L/SC:N/SI:N/SA:N", 6.9),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:N/VI:L/VA:N/SC:N/SI:N/SA:N", 5.3),  # CVE-2024-7657 (NVD)
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H", 10.0),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N", 0.0),
    ],
)
def test_cvss4_first_examples(vector: str, score: float) -> None:
    assert cvss4_base_score(vector) == score


def test_cvss4_counts_base_metrics_only() -> None:
    base = "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    # FIRST rates the same vector with E:U 5.2 (CVSS-BT); the base score stays 7.7.
    assert cvss4_base_score(base + "/E:U") == cvss4_base_score(base) == 7.7
    assert cvss4_base_score(base + "/CR:H/MAV:P/MVC:N/U:Red") == 7.7


@pytest.mark.parametrize(
    "vector",
    [
        "CVSS:4.0/AV:N",
        "CVSS:4.0/AV:X/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:NN",
        "CVSS:4.0/AV:N/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        "",
    ],
)
def test_bad_cvss4_vectors(vector: str) -> None:
    with pytest.raises(InvalidVector):
        cvss4_base_score(vector)


def test_v3_and_v2_agree_with_the_cvss_package_on_every_base_vector() -> None:
    """The hand-written formulas against Red Hat's ``cvss`` package, exhaustively."""
    mismatches = []
    for version in ("3.0", "3.1"):
        for av, ac, pr, ui, s, c, i, a in itertools.product(
            "NALP", "LH", "NLH", "NR", "UC", "HLN", "HLN", "HLN"
        ):
            vector = f"CVSS:{version}/AV:{av}/AC:{ac}/PR:{pr}/UI:{ui}/S:{s}/C:{c}/I:{i}/A:{a}"
            if cvss3_base_score(vector) != float(CVSS3(vector).base_score):
                mismatches.append(vector)
    for av, ac, au, c, i, a in itertools.product("LAN", "HML", "MSN", "NPC", "NPC", "NPC"):
        vector = f"AV:{av}/AC:{ac}/Au:{au}/C:{c}/I:{i}/A:{a}"
        if cvss2_base_score(vector) != float(CVSS2(vector).base_score):
            mismatches.append(vector)
    assert mismatches == []


# From the least to the most severe value of each CVSS v4 base metric.
_V4_ORDER = {
    "AV": "PLAN",
    "AC": "HL",
    "AT": "PN",
    "PR": "HLN",
    "UI": "APN",
    "VC": "NLH",
    "VI": "NLH",
    "VA": "NLH",
    "SC": "NLH",
    "SI": "NLH",
    "SA": "NLH",
}
_v4_metrics = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in _V4_ORDER.items()})


def _v4(metrics: dict[str, str]) -> str:
    return "CVSS:4.0/" + "/".join(f"{k}:{metrics[k]}" for k in _V4_ORDER)


@settings(max_examples=300, deadline=None)
@given(_v4_metrics, st.sampled_from(sorted(_V4_ORDER)))
def test_cvss4_is_monotone_in_every_base_metric(metrics: dict[str, str], key: str) -> None:
    """A more severe value of any one metric never lowers the score (true of FIRST's lookup table
    over all 104,976 base vectors); scores are in 0..10 with one decimal."""
    score = cvss4_base_score(_v4(metrics))
    assert 0.0 <= score <= 10.0
    assert round(score, 1) == score
    order = _V4_ORDER[key]
    position = order.index(metrics[key])
    if position + 1 < len(order):
        worse = {**metrics, key: order[position + 1]}
        assert cvss4_base_score(_v4(worse)) >= score


@settings(max_examples=200, deadline=None)
@given(_v4_metrics, st.randoms(use_true_random=False))
def test_cvss4_ignores_metric_order_and_undefined_extras(metrics: dict[str, str], rnd: object) -> None:
    parts = [f"{k}:{v}" for k, v in metrics.items()] + ["E:X", "CR:X", "MAV:X", "S:X"]
    rnd.shuffle(parts)  # type: ignore[attr-defined]
    assert cvss4_base_score("CVSS:4.0/" + "/".join(parts)) == cvss4_base_score(_v4(metrics))


@settings(max_examples=200, deadline=None)
@given(_v4_metrics)
def test_cvss4_without_impact_scores_zero_and_rates_unknown(metrics: dict[str, str]) -> None:
    none = {**metrics, **dict.fromkeys(("VC", "VI", "VA", "SC", "SI", "SA"), "N")}
    assert cvss4_base_score(_v4(none)) == 0.0
    rating = rate(_vuln(severity=(Severity("CVSS_V4", _v4(none)),)))
    assert (rating.severity, rating.score) == (None, 0.0)
    assert bucket(rating.severity) == UNKNOWN


@settings(max_examples=200, deadline=None)
@given(_v4_metrics)
def test_rating_of_a_v4_vector_follows_the_qualitative_scale(metrics: dict[str, str]) -> None:
    vector = _v4(metrics)
    rating = rate(_vuln(severity=(Severity("CVSS_V4", vector),)))
    assert rating.score == cvss4_base_score(vector)
    assert rating.severity == score_level(rating.score)


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
    assert [label_level(x) for x in ("low**", "medium*", "not yet assigned", "end-of-life")] == [
        "low", "medium", None, None,
    ]  # fmt: skip
    assert [bucket(x) for x in ("critical", "low", None, "", "bogus")] == [
        "critical", "low", UNKNOWN, UNKNOWN, UNKNOWN,
    ]  # fmt: skip
    assert BUCKETS == ("critical", "high", "medium", "low", "unknown")


def _vuln(**kwargs: object) -> Vulnerability:
    return Vulnerability(id="X-1", modified=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), **kwargs)  # type: ignore[arg-type]


def test_rate_prefers_the_computed_vector_over_the_label() -> None:
    vuln = _vuln(
        severity=(Severity("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),),
        database_specific={"severity": "LOW"},
    )
    rating = rate(vuln)
    assert (rating.severity, rating.score, rating.source) == ("critical", 9.8, "CVSS_V3")


def test_rate_prefers_v4_over_v3_over_v2() -> None:
    v2 = Severity("CVSS_V2", "AV:N/AC:L/Au:N/C:C/I:C/A:C")
    v3 = Severity("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H")
    v4 = Severity("CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:A/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N")
    rating = rate(_vuln(severity=(v2, v3, v4)))
    assert (rating.severity, rating.score, rating.source) == ("medium", 5.1, "CVSS_V4")
    assert rate(_vuln(severity=(v2, v3))).source == "CVSS_V3"
    # A v4 vector that does not parse falls back to the next version, not to "unknown".
    broken = Severity("CVSS_V4", "CVSS:4.0/AV:N")
    assert (rate(_vuln(severity=(broken, v3))).score, rate(_vuln(severity=(broken, v3))).source) == (
        7.5,
        "CVSS_V3",
    )


def test_rate_from_labels() -> None:
    assert rate(_vuln(database_specific={"severity": "MODERATE"})).severity == "medium"
    assert rate(_vuln(summary="Important: kernel security update")).severity == "high"
    ubuntu = _vuln(severity=(Severity("Ubuntu", "medium"),))
    assert rate(ubuntu).severity == "medium"
    entry = Affected(Package("Debian:11", "x"), ecosystem_specific={"severity": "high"})
    assert rate(_vuln(affected=(entry,)), entry).severity == "high"
    debian = Affected(Package("Debian:12", "x"), ecosystem_specific={"urgency": "low**"})
    assert rate(_vuln(affected=(debian,)), debian).severity == "low"
    assert rate(_vuln(severity=(Severity("CVSS_V4", "CVSS:4.0/AV:N"),))).severity is None
    assert rate(_vuln()).severity is None
    assert bucket(rate(_vuln()).severity) == UNKNOWN


def test_ratings_of_the_shared_data() -> None:
    """Every record with a vector is scored from it; GitHub's labels and AlmaLinux's summaries
    rate others; what carries nothing (Go, Alpine, Debian DSAs) is unknown, never dropped."""
    by_source: Counter[tuple[str, str | None]] = Counter()
    levels: Counter[tuple[str, str]] = Counter()
    for name in ("PyPI", "npm", "Go", "AlmaLinux", "Ubuntu"):
        for record in read_records(OSV / name / "all.zip"):
            if not isinstance(record, Vulnerability):
                continue
            rating = rate(record)
            by_source[name, rating.source] += 1
            levels[name, bucket(rating.severity)] += 1
            if any(s.type.startswith("CVSS") for s in record.severity):
                assert rating.score is not None, record.id
    assert by_source["PyPI", "CVSS_V3"] >= 200
    assert by_source["npm", "CVSS_V3"] == 3
    assert by_source["Go", None] == sum(n for (eco, _), n in by_source.items() if eco == "Go")
    assert levels["Go", UNKNOWN] > 4000
    assert by_source["AlmaLinux", "label"] > 1000  # "Important: ..." / "Moderate: ..." security advisories
    assert by_source["Ubuntu", "CVSS_V3"] + by_source["Ubuntu", "label"] >= 7
    assert sum(levels.values()) == sum(by_source.values())

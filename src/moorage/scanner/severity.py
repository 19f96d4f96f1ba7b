"""Severity of an OSV record: computed from CVSS vectors, else from the labels the data carries.

Order of preference: a CVSS v4.0 vector (base score from FIRST's macrovector algorithm, as
implemented by the ``cvss`` package that Red Hat maintains with the FIRST calculator), a CVSS
v3.x vector (base score computed here with the specification's formula), a CVSS v2 vector
(same), then labels: ``database_specific.severity`` (GitHub: CRITICAL/HIGH/MODERATE/LOW), the
affected entry's ``ecosystem_specific`` / ``database_specific`` severity or Debian ``urgency``,
Ubuntu's priority (``severity[type=Ubuntu]``) and the AlmaLinux/Rocky/Red Hat rating that
prefixes the summary ("Important: ..."). Only base metrics count: threat and environmental
metrics in a vector are ignored, as for v3 temporal metrics.

The v2/v3 formulas here agree with the ``cvss`` package on every base vector (5,184 v3.0/v3.1
and 729 v2; ``tests/scanner/test_severity.py`` checks all of them).

Levels are critical / high / medium / low; a record that none of its data rates (most Debian
DSAs, Go and Alpine records carry no rating at all) is ``unknown``: every summary counts it in
that bucket so the counts add up to the findings. ``msr_level`` maps the levels to MSR's
critical / major / minor (CVSS 7.0-10 critical, 4.0-6.9 major, below minor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from cvss import CVSS4, CVSSError

from moorage.scanner.osv import Affected, Vulnerability

__all__ = [
    "BUCKETS",
    "LEVELS",
    "UNKNOWN",
    "Rating",
    "bucket",
    "cvss2_base_score",
    "cvss3_base_score",
    "cvss4_base_score",
    "label_level",
    "msr_level",
    "rate",
    "score_level",
]

LEVELS = ("critical", "high", "medium", "low")
UNKNOWN = "unknown"
#: Every severity a finding is counted under: the levels, then ``unknown`` for unrated records.
BUCKETS = (*LEVELS, UNKNOWN)


class InvalidVector(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Rating:
    severity: str | None  # critical | high | medium | low, or None when nothing rates it
    score: float | None  # a CVSS base score when a vector was computed
    source: str | None = None  # CVSS_V4 | CVSS_V3 | CVSS_V2 | label


def _metrics(vector: str, prefix: str | None, required: set[str]) -> dict[str, str]:
    parts = vector.strip().split("/")
    if prefix is not None:
        if not parts or not parts[0].startswith(prefix):
            raise InvalidVector(f"not a {prefix} vector: {vector!r}")
        parts = parts[1:]
    values: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition(":")
        if not sep or key in values:
            raise InvalidVector(f"bad metric {part!r} in {vector!r}")
        values[key] = value
    missing = required - values.keys()
    if missing:
        raise InvalidVector(f"missing {', '.join(sorted(missing))} in {vector!r}")
    return values


_V3_AV = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}
_V3_AC = {"L": 0.77, "H": 0.44}
_V3_PR_U = {"N": 0.85, "L": 0.62, "H": 0.27}
_V3_PR_C = {"N": 0.85, "L": 0.68, "H": 0.5}
_V3_UI = {"N": 0.85, "R": 0.62}
_V3_CIA = {"H": 0.56, "L": 0.22, "N": 0.0}


def _roundup_31(value: float) -> float:
    """CVSS v3.1 Roundup: the smallest one-decimal number >= value, free of float noise."""
    scaled = round(value * 100000)
    if scaled % 10000 == 0:
        return scaled / 100000.0
    return (math.floor(scaled / 10000) + 1) / 10.0


def _roundup_30(value: float) -> float:
    return math.ceil(value * 10) / 10


def cvss3_base_score(vector: str) -> float:
    """The base score of a ``CVSS:3.0/...`` or ``CVSS:3.1/...`` vector."""
    m = _metrics(vector, "CVSS:3.", {"AV", "AC", "PR", "UI", "S", "C", "I", "A"})
    try:
        scope_changed = {"U": False, "C": True}[m["S"]]
        av, ac, ui = _V3_AV[m["AV"]], _V3_AC[m["AC"]], _V3_UI[m["UI"]]
        pr = (_V3_PR_C if scope_changed else _V3_PR_U)[m["PR"]]
        c, i, a = _V3_CIA[m["C"]], _V3_CIA[m["I"]], _V3_CIA[m["A"]]
    except KeyError as exc:
        raise InvalidVector(f"bad value {exc} in {vector!r}") from None
    roundup = _roundup_31 if vector.startswith("CVSS:3.1") else _roundup_30
    iss = 1 - (1 - c) * (1 - i) * (1 - a)
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if scope_changed else 6.42 * iss
    exploitability = 8.22 * av * ac * pr * ui
    if impact <= 0:
        return 0.0
    if scope_changed:
        return roundup(min(1.08 * (impact + exploitability), 10))
    return roundup(min(impact + exploitability, 10))


_V2_AV = {"L": 0.395, "A": 0.646, "N": 1.0}
_V2_AC = {"H": 0.35, "M": 0.61, "L": 0.71}
_V2_AU = {"M": 0.45, "S": 0.56, "N": 0.704}
_V2_CIA = {"N": 0.0, "P": 0.275, "C": 0.660}


def cvss2_base_score(vector: str) -> float:
    """The base score of a CVSS v2 vector (``AV:N/AC:L/Au:N/C:P/I:P/A:P``, optionally ``(...)``)."""
    text = vector.strip().strip("()")
    text = text.removeprefix("CVSS:2.0/")
    m = _metrics(text, None, {"AV", "AC", "Au", "C", "I", "A"})
    try:
        av, ac, au = _V2_AV[m["AV"]], _V2_AC[m["AC"]], _V2_AU[m["Au"]]
        c, i, a = _V2_CIA[m["C"]], _V2_CIA[m["I"]], _V2_CIA[m["A"]]
    except KeyError as exc:
        raise InvalidVector(f"bad value {exc} in {vector!r}") from None
    impact = 10.41 * (1 - (1 - c) * (1 - i) * (1 - a))
    exploitability = 20 * av * ac * au
    f = 0.0 if impact == 0 else 1.176
    raw = ((0.6 * impact) + (0.4 * exploitability) - 1.5) * f
    return float(Decimal(str(raw)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


_V4_BASE = {
    "AV": "NALP",
    "AC": "LH",
    "AT": "NP",
    "PR": "NLH",
    "UI": "NPA",
    "VC": "HLN",
    "VI": "HLN",
    "VA": "HLN",
    "SC": "HLN",
    "SI": "HLN",
    "SA": "HLN",
}


def cvss4_base_score(vector: str) -> float:
    """The CVSS-B score of a ``CVSS:4.0/...`` vector: its base metrics only (threat and
    environmental metrics, if any, are left out)."""
    if not vector.strip().startswith("CVSS:4.0/"):
        raise InvalidVector(f"not a CVSS:4.0 vector: {vector!r}")
    m = _metrics(vector, "CVSS:4.0", set(_V4_BASE))
    for key, allowed in _V4_BASE.items():
        if len(m[key]) != 1 or m[key] not in allowed:
            raise InvalidVector(f"bad value {m[key]!r} for {key} in {vector!r}")
    return _cvss4_base("CVSS:4.0/" + "/".join(f"{key}:{m[key]}" for key in _V4_BASE))


@lru_cache(maxsize=4096)
def _cvss4_base(base_vector: str) -> float:
    try:
        return float(CVSS4(base_vector).base_score)
    except CVSSError as exc:  # the values were checked above; kept so a library change fails clearly
        raise InvalidVector(f"{base_vector!r}: {exc}") from None


def bucket(severity: str | None) -> str:
    """The summary bucket of a finding's severity: its level, or ``unknown``."""
    if severity is not None and severity in LEVELS:
        return severity
    return UNKNOWN


def score_level(score: float, version: int = 3) -> str | None:
    """The qualitative rating of a base score (v3 scale; v2 has no 'critical')."""
    if version == 2:
        return "high" if score >= 7.0 else "medium" if score >= 4.0 else "low" if score > 0 else None
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    if score > 0:
        return "low"
    return None


_LABELS = {
    "critical": "critical",
    "urgent": "critical",
    "high": "high",
    "important": "high",
    "moderate": "medium",
    "medium": "medium",
    "low": "low",
    "negligible": "low",
    "unimportant": "low",
    "minor": "low",
}


def label_level(label: object) -> str | None:
    """A vendor label (GitHub, Ubuntu, Red Hat/AlmaLinux, Debian urgency) as a level.

    Debian's tracker marks some urgencies with ``*`` / ``**`` (set from the CVE's description,
    not reviewed); the level is the same.
    """
    if not isinstance(label, str):
        return None
    return _LABELS.get(label.strip().rstrip("*").strip().lower())


def msr_level(level: str | None) -> str | None:
    """MSR's critical / major / minor for a level."""
    return {"critical": "critical", "high": "critical", "medium": "major", "low": "minor"}.get(level or "")


def _from_vectors(severities: tuple[object, ...]) -> Rating | None:
    """The highest-scoring vector of the newest CVSS version the record carries."""
    best: Rating | None = None
    for kind in ("CVSS_V4", "CVSS_V3", "CVSS_V2"):
        for sev in severities:
            if getattr(sev, "type", None) != kind:
                continue
            try:
                if kind == "CVSS_V4":
                    score = cvss4_base_score(sev.score)  # type: ignore[attr-defined]
                    rating = Rating(score_level(score), score, kind)
                elif kind == "CVSS_V3":
                    score = cvss3_base_score(sev.score)  # type: ignore[attr-defined]
                    rating = Rating(score_level(score), score, kind)
                else:
                    score = cvss2_base_score(sev.score)  # type: ignore[attr-defined]
                    rating = Rating(score_level(score, 2), score, kind)
            except InvalidVector:
                continue
            if best is None or (rating.score or 0) > (best.score or 0):
                best = rating
        if best is not None:
            return best
    return None


def _from_labels(vuln: Vulnerability, affected: Affected | None) -> str | None:
    entries = [affected] if affected is not None else list(vuln.affected)
    candidates: list[object] = [(vuln.database_specific or {}).get("severity")]
    for entry in entries:
        for extra in (entry.ecosystem_specific, entry.database_specific):
            if extra:
                candidates.extend((extra.get("severity"), extra.get("urgency")))
        candidates.extend(s.score for s in entry.severity if s.type == "Ubuntu")
    candidates.extend(s.score for s in vuln.severity if s.type == "Ubuntu")
    if vuln.summary and ":" in vuln.summary:  # "Important: kernel security update"
        candidates.append(vuln.summary.split(":", 1)[0])
    for candidate in candidates:
        level = label_level(candidate)
        if level is not None:
            return level
    return None


def rate(vuln: Vulnerability, affected: Affected | None = None) -> Rating:
    """The severity of ``vuln`` (for one of its affected entries, when given)."""
    vectors = tuple(affected.severity if affected is not None else ()) + vuln.severity
    rating = _from_vectors(vectors)
    if rating is not None and rating.severity is not None:
        return rating
    level = _from_labels(vuln, affected)
    if level is not None:
        return Rating(level, rating.score if rating else None, "label")
    return rating or Rating(None, None, None)

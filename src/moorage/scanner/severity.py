"""Severity of an OSV record: computed from CVSS vectors, else from the labels the data carries.

Order of preference: a CVSS v3.x vector (base score computed here with the specification's
formula), a CVSS v2 vector (same), then labels: ``database_specific.severity`` (GitHub:
CRITICAL/HIGH/MODERATE/LOW), the affected entry's ``ecosystem_specific`` /
``database_specific`` severity, Ubuntu's priority (``severity[type=Ubuntu]``) and the
AlmaLinux/Red Hat rating that prefixes the summary ("Important: ..."). CVSS v4 vectors are
not scored (no v4 calculator yet): a record with only a v4 vector is rated by its label.

Levels are critical / high / medium / low; ``msr_level`` maps them to MSR's critical / major /
minor (CVSS 7.0-10 critical, 4.0-6.9 major, below minor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from moorage.scanner.osv import Affected, Vulnerability

__all__ = [
    "LEVELS",
    "Rating",
    "cvss2_base_score",
    "cvss3_base_score",
    "label_level",
    "msr_level",
    "rate",
    "score_level",
]

LEVELS = ("critical", "high", "medium", "low")


class InvalidVector(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Rating:
    severity: str | None  # critical | high | medium | low, or None when nothing rates it
    score: float | None  # a CVSS base score when a vector was computed
    source: str | None = None  # CVSS_V3 | CVSS_V2 | label


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
    """A vendor label (GitHub, Ubuntu, Red Hat/AlmaLinux, Debian urgency) as a level."""
    if not isinstance(label, str):
        return None
    return _LABELS.get(label.strip().lower())


def msr_level(level: str | None) -> str | None:
    """MSR's critical / major / minor for a level."""
    return {"critical": "critical", "high": "critical", "medium": "major", "low": "minor"}.get(level or "")


def _from_vectors(severities: tuple[object, ...]) -> Rating | None:
    best: Rating | None = None
    for kind in ("CVSS_V3", "CVSS_V2"):
        for sev in severities:
            if getattr(sev, "type", None) != kind:
                continue
            try:
                if kind == "CVSS_V3":
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
                candidates.append(extra.get("severity"))
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

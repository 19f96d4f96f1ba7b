"""The rule language of promotion and pruning policies: parsing, validation, evaluation, tag templates.

Pure functions over plain data, no I/O: the policies and pruning services gather the facts of a
tag (its name, push time, scan summary, components, licenses) and ask ``evaluate``.

A rule is ``{"field": ..., "operator": ..., "value": ...}``; a policy's rules all must match.

========================================  =====================================  ====================
field                                     operators                              value
========================================  =====================================  ====================
``tag``                                   eq, startswith, endswith, contains     a string
``tag``                                   oneof, noneof                          a list of strings
``tag``                                   matches (whole tag, RE2 syntax)        a regular expression
``component.name``, ``license.name``      oneof, noneof (case-insensitive)       a list of strings
``vulnerability.all|critical|high|        gte, gt, eq, neq, lte, lt              an integer >= 0
medium|low``
``pushed``                                before, after                          an ISO 8601 time
``pushed``                                olderthan                              a duration: ``30d``,
                                                                                 ``12h``, ``1w2d``…
========================================  =====================================  ====================

Rules over vulnerabilities, components and licenses are *scan rules*: they can be decided only
once every image the tagged manifest consists of (each platform of a multi-arch image, an
application's invocation and component images) has been scanned. Until then ``evaluate`` answers
``WAITING`` — unless a rule that needs no scan already fails, which decides ``NO_MATCH`` at once.

``matches`` patterns are RE2's (Go's ``regexp``, as other registries' tag filters): matching takes
time linear in the tag whatever the pattern, so a repository admin cannot stall the event loop with
a backtracking one such as ``(a+)+$``. RE2 has no backreferences or lookaround.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import re2

from moorage.oci.reference import is_valid_tag
from moorage.services.errors import InvalidInput

TAG = "tag"
COMPONENT_NAME = "component.name"
LICENSE_NAME = "license.name"
PUSHED = "pushed"
SEVERITY_FIELDS = ("all", "critical", "high", "medium", "low")
VULNERABILITY_FIELDS = tuple(f"vulnerability.{s}" for s in SEVERITY_FIELDS)

_TEXT_OPS = ("eq", "startswith", "endswith", "contains")
_LIST_OPS = ("oneof", "noneof")
_COUNT_OPS = ("gte", "gt", "eq", "neq", "lte", "lt")
_TIME_OPS = ("before", "after")
_DURATION_OPS = ("olderthan",)

#: Operators each field accepts, in the order error messages list them.
OPERATORS: dict[str, tuple[str, ...]] = {
    TAG: (*_TEXT_OPS, *_LIST_OPS, "matches"),
    COMPONENT_NAME: _LIST_OPS,
    LICENSE_NAME: _LIST_OPS,
    **{f: _COUNT_OPS for f in VULNERABILITY_FIELDS},
    PUSHED: (*_TIME_OPS, *_DURATION_OPS),
}
SCAN_FIELDS = frozenset({COMPONENT_NAME, LICENSE_NAME, *VULNERABILITY_FIELDS})

MAX_RULES = 50
MAX_LIST_ITEMS = 500
MAX_TEXT = 255
MAX_PATTERN = 512
#: Longest duration accepted (``olderthan``): about 100 years.
MAX_DURATION = dt.timedelta(days=36_600)

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # refused patterns are reported to the user, not to stderr

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^(?:\d{1,6}[smhdw])+$")
_DURATION_PART = re.compile(r"(\d{1,6})([smhdw])")


class Outcome(enum.Enum):
    MATCH = "match"
    NO_MATCH = "no-match"
    WAITING = "waiting"  # a scan rule, and the scans are not complete


@dataclass(frozen=True, slots=True)
class Rule:
    field: str
    operator: str
    #: Normalized: ``str`` (text, regex, ISO time, duration), ``tuple[str, ...]`` (lists), ``int``.
    value: str | int | tuple[str, ...]

    @property
    def needs_scan(self) -> bool:
        return self.field in SCAN_FIELDS

    def to_json(self) -> dict[str, Any]:
        value: Any = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"field": self.field, "operator": self.operator, "value": value}

    def describe(self) -> str:
        value = ", ".join(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.field} {self.operator} {value}"


@dataclass(frozen=True, slots=True)
class Facts:
    """What rules are evaluated against, for one tag.

    ``scanned`` is true once every image of the tagged manifest has a completed scan; only then
    are ``vulnerabilities`` (counts per severity bucket, overrides applied), ``components`` and
    ``licenses`` (names, any case) looked at.
    """

    tag: str
    pushed_at: dt.datetime
    now: dt.datetime
    scanned: bool = False
    vulnerabilities: Mapping[str, int] | None = None
    components: frozenset[str] = frozenset()
    licenses: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    #: The first rule that failed (``NO_MATCH``), for job logs and dry runs.
    failed: Rule | None = None


def _bad(index: int, message: str) -> InvalidInput:
    return InvalidInput(f"rules[{index}]: {message}", "rules")


def _text(index: int, value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise _bad(index, f"{what} must be a string")
    if not value or len(value) > limit or "\x00" in value:
        raise _bad(index, f"{what} must be 1 to {limit} characters (no NUL)")
    return value


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``1w2d``, ``90m``, ``45s``; ``ValueError`` otherwise."""
    if not _DURATION.match(text):
        raise ValueError(
            f"duration {text[:50]!r} must be numbers with units s, m, h, d or w, such as 30d or 1w2d"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
    duration = dt.timedelta(seconds=seconds)
    if duration > MAX_DURATION:
        raise ValueError(f"duration {text!r} is longer than {MAX_DURATION.days} days")
    return duration


@functools.lru_cache(maxsize=512)
def tag_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (cached: policies are evaluated on every push). ``ValueError``
    with RE2's reason when it refuses the pattern (a syntax error, a backreference, lookaround)."""
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        raise ValueError(reason.decode() if isinstance(reason, bytes) else str(reason)) from None


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time; one without a zone is UTC. ``ValueError`` otherwise."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _value(index: int, field: str, operator: str, value: Any) -> str | int | tuple[str, ...]:
    if operator in _LIST_OPS:
        if not isinstance(value, list | tuple) or not value:
            raise _bad(index, f"{field} {operator} needs a non-empty list of strings")
        if len(value) > MAX_LIST_ITEMS:
            raise _bad(index, f"at most {MAX_LIST_ITEMS} values")
        return tuple(_text(index, v, "each value") for v in value)
    if operator in _COUNT_OPS and field in VULNERABILITY_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 10**9:
            raise _bad(index, f"{field} {operator} needs a whole number of vulnerabilities (0 or more)")
        return value
    if operator == "matches":
        pattern = _text(index, value, "the regular expression", MAX_PATTERN)
        try:
            tag_pattern(pattern)
        except ValueError as exc:
            raise _bad(index, f"invalid regular expression {pattern[:80]!r}: {exc}") from None
        return pattern
    if operator in _TIME_OPS:
        text = _text(index, value, "the time")
        try:
            parse_time(text)
        except ValueError:
            raise _bad(index, f"{text[:50]!r} is not an ISO 8601 time such as 2026-01-31T12:00:00Z") from None
        return text
    if operator in _DURATION_OPS:
        text = _text(index, value, "the duration", 32)
        try:
            parse_duration(text)
        except ValueError as exc:
            raise _bad(index, str(exc)) from None
        return text
    return _text(index, value, "the value")


def parse_rule(data: Any, index: int = 0) -> Rule:
    """One rule from its JSON form; ``InvalidInput`` (field ``rules``) saying what is wrong."""
    if isinstance(data, Rule):
        return data
    if not isinstance(data, Mapping):
        raise _bad(index, "a rule is an object {field, operator, value}")
    unknown = sorted(set(data) - {"field", "operator", "value"})
    if unknown:
        raise _bad(index, f"unknown key {unknown[0]!r}; a rule has field, operator and value")
    field = data.get("field")
    operator = data.get("operator")
    if not isinstance(field, str) or field not in OPERATORS:
        raise _bad(index, f"unknown field {str(field)[:80]!r}; known: {', '.join(OPERATORS)}")
    if not isinstance(operator, str) or operator not in OPERATORS[field]:
        raise _bad(
            index,
            f"unknown operator {str(operator)[:80]!r} for {field}; use one of {', '.join(OPERATORS[field])}",
        )
    if "value" not in data:
        raise _bad(index, "the value is missing")
    return Rule(field, operator, _value(index, field, operator, data["value"]))


def parse_rules(data: Any) -> list[Rule]:
    if data is None:
        return []
    if not isinstance(data, list | tuple):
        raise InvalidInput("rules must be a list", "rules")
    if len(data) > MAX_RULES:
        raise InvalidInput(f"at most {MAX_RULES} rules", "rules")
    return [parse_rule(item, i) for i, item in enumerate(data)]


def needs_scan(rules: Iterable[Rule]) -> bool:
    return any(r.needs_scan for r in rules)


def _compare(operator: str, actual: int, expected: int) -> bool:
    return {
        "gte": actual >= expected,
        "gt": actual > expected,
        "eq": actual == expected,
        "neq": actual != expected,
        "lte": actual <= expected,
        "lt": actual < expected,
    }[operator]


def _in(operator: str, names: Iterable[str], wanted: tuple[str, ...]) -> bool:
    folded = {w.casefold() for w in wanted}
    hit = any(n.casefold() in folded for n in names)
    return hit if operator == "oneof" else not hit


def matches(rule: Rule, facts: Facts) -> bool:
    """Whether one rule holds (a scan rule is only meaningful once ``facts.scanned``)."""
    op, value = rule.operator, rule.value
    if rule.field == TAG:
        tag = facts.tag
        if op == "eq":
            return tag == value
        if op == "startswith":
            return tag.startswith(str(value))
        if op == "endswith":
            return tag.endswith(str(value))
        if op == "contains":
            return str(value) in tag
        if op == "matches":
            try:
                return tag_pattern(str(value)).fullmatch(tag) is not None
            except ValueError:  # stored before patterns were RE2's; such a rule matches nothing
                return False
        assert isinstance(value, tuple)
        return (tag in value) == (op == "oneof")
    if rule.field == PUSHED:
        if op == "olderthan":
            return facts.now - facts.pushed_at > parse_duration(str(value))
        at = parse_time(str(value))
        return facts.pushed_at < at if op == "before" else facts.pushed_at > at
    if rule.field in (COMPONENT_NAME, LICENSE_NAME):
        assert isinstance(value, tuple)
        names = facts.components if rule.field == COMPONENT_NAME else facts.licenses
        return _in(op, names, value)
    severity = rule.field.split(".", 1)[1]
    counts = facts.vulnerabilities or {}
    actual = sum(counts.values()) if severity == "all" else counts.get(severity, 0)
    assert isinstance(value, int)
    return _compare(op, actual, value)


def evaluate(rules: Sequence[Rule], facts: Facts) -> Verdict:
    """All rules together: rules that need no scan first, so one that fails decides at once."""
    for rule in rules:
        if not rule.needs_scan and not matches(rule, facts):
            return Verdict(Outcome.NO_MATCH, rule)
    scan_rules = [r for r in rules if r.needs_scan]
    if scan_rules and not facts.scanned:
        return Verdict(Outcome.WAITING)
    for rule in scan_rules:
        if not matches(rule, facts):
            return Verdict(Outcome.NO_MATCH, rule)
    return Verdict(Outcome.MATCH)


# -- tag templates --------------------------------------------------------------------------

#: What a template may hold besides the characters of a tag.
TEMPLATE_FIELDS = {
    "n": "the source tag",
    "D": "the first 12 hex digits of the source manifest's digest",
    "Y": "year (4 digits) of the promotion time, UTC",
    "m": "month (01-12)",
    "d": "day of the month (01-31)",
    "H": "hour (00-23)",
    "M": "minute (00-59)",
    "S": "second (00-59)",
}
_SAMPLE_DIGEST = "sha256:" + "0" * 64


def render_template(template: str, *, tag: str, digest: str, at: dt.datetime) -> str:
    """The target tag; ``InvalidInput`` (field ``tagTemplate``) for an unknown field or an invalid tag."""
    out: list[str] = []
    i = 0
    utc = at.astimezone(dt.UTC)
    while i < len(template):
        ch = template[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        code = template[i + 1] if i + 1 < len(template) else ""
        if code == "n":
            out.append(tag)
        elif code == "D":
            out.append(digest.split(":", 1)[-1][:12])
        elif code in ("Y", "m", "d", "H", "M", "S"):
            out.append(utc.strftime(f"%{code}"))
        else:
            known = ", ".join(f"%{k}" for k in TEMPLATE_FIELDS)
            raise InvalidInput(
                f"tag template {template[:80]!r}: unknown field %{code} at position {i}; known: {known}",
                "tag_template",
            )
        i += 2
    result = "".join(out)
    if not is_valid_tag(result):
        raise InvalidInput(
            f"tag template {template[:80]!r} makes {result[:130]!r}, which is not a valid tag "
            "(at most 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-')",
            "tag_template",
        )
    return result


def validate_template(template: str) -> str:
    """The template, if it renders a valid tag for a typical source tag; ``InvalidInput`` otherwise."""
    if not isinstance(template, str) or not template:
        raise InvalidInput("the tag template must not be empty (use %n for the source tag)", "tag_template")
    render_template(
        template, tag="latest", digest=_SAMPLE_DIGEST, at=dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    )
    return template

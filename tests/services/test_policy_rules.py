"""The policy rule language: parsing refuses what it cannot evaluate, evaluation follows the operators."""

from __future__ import annotations

import datetime as dt
import operator
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.oci.reference import is_valid_tag
from moorage.services import policy_rules as pr
from moorage.services.errors import InvalidInput

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
TAG_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
tags = st.from_regex(r"\A[a-zA-Z0-9_][a-zA-Z0-9._-]{0,40}\Z")
texts = st.text(alphabet=TAG_CHARS, min_size=1, max_size=8)
names = st.lists(st.text(alphabet="abcdefgh-", min_size=1, max_size=6), max_size=6)
counts = st.fixed_dictionaries(
    {s: st.integers(0, 30) for s in ("critical", "high", "medium", "low", "unknown")}
)


def facts(**kw: Any) -> pr.Facts:
    base: dict[str, Any] = {"tag": "v1", "pushed_at": NOW - dt.timedelta(days=1), "now": NOW}
    base.update(kw)
    return pr.Facts(**base)


def rule(field: str, op: str, value: Any) -> pr.Rule:
    return pr.parse_rule({"field": field, "operator": op, "value": value})


# -- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"field": "colour", "operator": "eq", "value": "x"}, "unknown field 'colour'"),
        ({"field": "tag", "operator": "like", "value": "x"}, "unknown operator 'like' for tag"),
        (
            {"field": "component.name", "operator": "eq", "value": "x"},
            "unknown operator 'eq' for component.name",
        ),
        ({"field": "vulnerability.critical", "operator": "startswith", "value": 1}, "unknown operator"),
        ({"field": "vulnerability.severe", "operator": "gt", "value": 1}, "unknown field"),
        ({"field": "tag", "operator": "matches", "value": "v(1"}, "invalid regular expression"),
        ({"field": "tag", "operator": "matches", "value": "["}, "invalid regular expression"),
        ({"field": "tag", "operator": "matches", "value": r"(v)\d+-\1"}, "invalid escape sequence"),
        ({"field": "tag", "operator": "matches", "value": "(?!latest).*"}, "invalid perl operator"),
        ({"field": "tag", "operator": "oneof", "value": []}, "non-empty list"),
        ({"field": "tag", "operator": "oneof", "value": "v1"}, "non-empty list"),
        ({"field": "vulnerability.high", "operator": "gt", "value": -1}, "whole number"),
        ({"field": "vulnerability.high", "operator": "gt", "value": "3"}, "whole number"),
        ({"field": "vulnerability.high", "operator": "gt", "value": True}, "whole number"),
        ({"field": "pushed", "operator": "before", "value": "yesterday"}, "not an ISO 8601 time"),
        ({"field": "pushed", "operator": "olderthan", "value": "30 days"}, "units s, m, h, d or w"),
        ({"field": "pushed", "operator": "olderthan", "value": "999999w"}, "longer than"),
        ({"field": "tag", "operator": "eq"}, "value is missing"),
        ({"field": "tag", "operator": "eq", "value": "x", "extra": 1}, "unknown key 'extra'"),
        ({"field": "tag", "operator": "eq", "value": ""}, "1 to 255 characters"),
        ("tag == v1", "a rule is an object"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(data: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        pr.parse_rules([{"field": "tag", "operator": "eq", "value": "ok"}, data])
    assert info.value.field == "rules"
    assert info.value.message.startswith("rules[1]: ")
    assert message in info.value.message


def test_rules_must_be_a_list_of_bounded_length() -> None:
    with pytest.raises(InvalidInput, match="must be a list"):
        pr.parse_rules({"field": "tag"})
    with pytest.raises(InvalidInput, match="at most"):
        pr.parse_rules([{"field": "tag", "operator": "eq", "value": "x"}] * (pr.MAX_RULES + 1))
    assert pr.parse_rules(None) == []


rule_data = st.one_of(
    st.builds(
        lambda op, v: {"field": "tag", "operator": op, "value": v},
        st.sampled_from(["eq", "startswith", "endswith", "contains"]),
        texts,
    ),
    st.builds(
        lambda op, v: {"field": "tag", "operator": op, "value": v},
        st.sampled_from(["oneof", "noneof"]),
        st.lists(texts, min_size=1, max_size=4),
    ),
    st.builds(
        lambda f, op, v: {"field": f, "operator": op, "value": v},
        st.sampled_from(["component.name", "license.name"]),
        st.sampled_from(["oneof", "noneof"]),
        st.lists(texts, min_size=1, max_size=4),
    ),
    st.builds(
        lambda f, op, v: {"field": f, "operator": op, "value": v},
        st.sampled_from(pr.VULNERABILITY_FIELDS),
        st.sampled_from(["gte", "gt", "eq", "neq", "lte", "lt"]),
        st.integers(0, 1000),
    ),
    st.builds(
        lambda op, v: {"field": "pushed", "operator": op, "value": v.isoformat()},
        st.sampled_from(["before", "after"]),
        st.datetimes(timezones=st.just(dt.UTC)),
    ),
    st.builds(
        lambda n, u: {"field": "pushed", "operator": "olderthan", "value": f"{n}{u}"},
        st.integers(0, 999),
        st.sampled_from("smhdw"),
    ),
)


@given(st.lists(rule_data, max_size=6))
def test_parsing_round_trips_through_json(data: list[dict[str, Any]]) -> None:
    parsed = pr.parse_rules(data)
    assert [r.to_json() for r in parsed] == data
    assert pr.parse_rules([r.to_json() for r in parsed]) == parsed


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(st.sampled_from(["field", "operator", "value", "x"]), c, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_arbitrary_input_either_parses_or_is_refused_cleanly(data: Any) -> None:
    refused: InvalidInput | None = None
    parsed: list[pr.Rule] = []
    try:
        parsed = pr.parse_rules(data if isinstance(data, list) else [data])
    except InvalidInput as exc:
        refused = exc
    if refused is not None:
        assert refused.field == "rules"
        assert refused.message
    for r in parsed:
        assert r.operator in pr.OPERATORS[r.field]


# -- evaluation --------------------------------------------------------------------------------
@given(tags, texts)
def test_text_operators_follow_python_strings(tag: str, value: str) -> None:
    f = facts(tag=tag)
    assert pr.matches(rule("tag", "eq", value), f) == (tag == value)
    assert pr.matches(rule("tag", "startswith", value), f) == tag.startswith(value)
    assert pr.matches(rule("tag", "endswith", value), f) == tag.endswith(value)
    assert pr.matches(rule("tag", "contains", value), f) == (value in tag)


@given(tags, st.lists(texts, min_size=1, max_size=5))
def test_oneof_and_noneof_are_complements(tag: str, values: list[str]) -> None:
    f = facts(tag=tag)
    one = pr.matches(rule("tag", "oneof", values), f)
    assert one == (tag in values)
    assert pr.matches(rule("tag", "noneof", values), f) == (not one)


@given(tags, st.sampled_from([r"v\d+", r"v\d+\.\d+\.\d+", r".*-rc\d*", r"[a-z]+", r"release-.+"]))
def test_matches_is_a_whole_tag_regex(tag: str, pattern: str) -> None:
    assert pr.matches(rule("tag", "matches", pattern), facts(tag=tag)) == (
        re.fullmatch(pattern, tag) is not None
    )


def test_matches_needs_the_whole_tag() -> None:
    r = rule("tag", "matches", r"v\d+")
    assert pr.matches(r, facts(tag="v12"))
    assert not pr.matches(r, facts(tag="v12-rc"))
    assert not pr.matches(r, facts(tag="xv12"))


def test_a_backtracking_pattern_is_matched_in_linear_time() -> None:
    """With Python's ``re`` this takes about 2**100 steps: the test would never end."""
    r = rule("tag", "matches", "(a+)+b")
    assert not pr.matches(r, facts(tag="a" * 100))
    assert pr.matches(r, facts(tag="a" * 100 + "b"))


def test_a_pattern_stored_before_re2_that_re2_refuses_matches_nothing() -> None:
    stored = pr.Rule("tag", "matches", "(?!latest).*")  # validated by Python's re once
    assert not pr.matches(stored, facts(tag="v1"))


@given(
    counts,
    st.sampled_from(pr.SEVERITY_FIELDS),
    st.sampled_from(["gte", "gt", "eq", "neq", "lte", "lt"]),
    st.integers(0, 60),
)
def test_vulnerability_counts_compare_like_python(
    summary: dict[str, int], severity: str, op: str, value: int
) -> None:
    f = facts(scanned=True, vulnerabilities=summary)
    actual = sum(summary.values()) if severity == "all" else summary[severity]
    compare = {
        "gte": operator.ge,
        "gt": operator.gt,
        "eq": operator.eq,
        "neq": operator.ne,
        "lte": operator.le,
        "lt": operator.lt,
    }
    assert pr.matches(rule(f"vulnerability.{severity}", op, value), f) == compare[op](actual, value)


@given(names, st.lists(texts, min_size=1, max_size=4))
def test_component_and_license_names_ignore_case(present: list[str], wanted: list[str]) -> None:
    f = facts(scanned=True, components=frozenset(n.upper() for n in present), licenses=frozenset(present))
    expected = bool({p.casefold() for p in present} & {w.casefold() for w in wanted})
    assert pr.matches(rule("component.name", "oneof", wanted), f) == expected
    assert pr.matches(rule("component.name", "noneof", wanted), f) == (not expected)
    assert pr.matches(rule("license.name", "oneof", wanted), f) == expected


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_olderthan_compares_the_age_in_minutes(age_minutes: int, limit_minutes: int) -> None:
    f = facts(pushed_at=NOW - dt.timedelta(minutes=age_minutes))
    assert pr.matches(rule("pushed", "olderthan", f"{limit_minutes}m"), f) == (age_minutes > limit_minutes)


def test_durations_and_times() -> None:
    assert pr.parse_duration("1w2d3h4m5s") == dt.timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)
    assert pr.parse_time("2026-01-01T00:00:00Z") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert pr.parse_time("2026-01-01T00:00:00") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # no zone: UTC
    f = facts(pushed_at=dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    assert pr.matches(rule("pushed", "before", "2026-06-02"), f)
    assert not pr.matches(rule("pushed", "after", "2026-06-02"), f)
    assert pr.matches(rule("pushed", "after", "2026-06-01T01:00:00+02:00"), f)  # 2026-05-31T23:00Z


def test_scan_rules_wait_for_the_scan_unless_another_rule_fails_first() -> None:
    rules = pr.parse_rules(
        [
            {"field": "tag", "operator": "startswith", "value": "v"},
            {"field": "vulnerability.critical", "operator": "eq", "value": 0},
        ]
    )
    assert pr.needs_scan(rules)
    assert pr.evaluate(rules, facts(tag="v1")).outcome is pr.Outcome.WAITING
    verdict = pr.evaluate(rules, facts(tag="latest"))
    assert verdict.outcome is pr.Outcome.NO_MATCH
    assert verdict.failed == rules[0]
    clean = facts(tag="v1", scanned=True, vulnerabilities={"critical": 0, "high": 2})
    assert pr.evaluate(rules, clean).outcome is pr.Outcome.MATCH
    dirty = facts(tag="v1", scanned=True, vulnerabilities={"critical": 1})
    assert pr.evaluate(rules, dirty) == pr.Verdict(pr.Outcome.NO_MATCH, rules[1])
    assert pr.evaluate([], facts()).outcome is pr.Outcome.MATCH
    assert not pr.needs_scan(pr.parse_rules([{"field": "pushed", "operator": "olderthan", "value": "1d"}]))


@given(st.lists(rule_data, max_size=5), tags, counts, st.booleans())
def test_evaluate_is_all_of_the_rules(
    data: list[dict[str, Any]], tag: str, summary: dict[str, int], scanned: bool
) -> None:
    rules = pr.parse_rules(data)
    f = facts(tag=tag, scanned=scanned, vulnerabilities=summary)
    verdict = pr.evaluate(rules, f)
    plain_ok = all(pr.matches(r, f) for r in rules if not r.needs_scan)
    if not plain_ok:
        assert verdict.outcome is pr.Outcome.NO_MATCH
        assert verdict.failed is not None
        assert not pr.matches(verdict.failed, f)
    elif pr.needs_scan(rules) and not scanned:
        assert verdict.outcome is pr.Outcome.WAITING
    else:
        assert (verdict.outcome is pr.Outcome.MATCH) == all(pr.matches(r, f) for r in rules)


# -- tag templates -----------------------------------------------------------------------------
DIGEST = "sha256:" + "ab12" * 16


def test_template_fields() -> None:
    at = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    out = pr.render_template("%n-%Y%m%d.%H%M%S-%D", tag="v1.2", digest=DIGEST, at=at)
    assert out == "v1.2-20260304.050607-ab12ab12ab12"
    assert pr.render_template("stable", tag="v1", digest=DIGEST, at=at) == "stable"
    # the promotion time is taken in UTC
    local = dt.datetime(2026, 3, 4, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    assert pr.render_template("%d-%H", tag="x", digest=DIGEST, at=local) == "03-20"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("%n-%q", "unknown field %q"),
        ("%n%", "unknown field %"),
        ("-%n", "not a valid tag"),
        ("%n:prod", "not a valid tag"),
        ("a" * 129, "not a valid tag"),
        ("", "must not be empty"),
    ],
)
def test_bad_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        pr.validate_template(template)
    assert info.value.field == "tag_template"
    assert message in info.value.message


@settings(max_examples=200)
@given(
    st.text(alphabet=TAG_CHARS + "%nDYmdHMSx:/ ", max_size=20), tags, st.datetimes(timezones=st.just(dt.UTC))
)
def test_a_rendered_template_is_a_valid_tag_or_refused(template: str, tag: str, at: dt.datetime) -> None:
    refused: InvalidInput | None = None
    out = ""
    try:
        out = pr.render_template(template, tag=tag, digest=DIGEST, at=at)
    except InvalidInput as exc:
        refused = exc
    if refused is not None:
        assert refused.field == "tag_template"
        return
    assert is_valid_tag(out)
    if "%" not in template:
        assert out == template

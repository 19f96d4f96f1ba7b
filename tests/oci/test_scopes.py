"""Token-auth scope strings: parsing, rendering, and refusing everything malformed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.oci.reference import MAX_NAME_LENGTH
from moorage.oci.scopes import KNOWN_ACTIONS, MAX_SCOPE_LENGTH, Scope, ScopeInvalid, parse_scope, parse_scopes

_component = st.from_regex(r"[a-z0-9]{1,8}(?:(?:\.|_|__|-{1,2})[a-z0-9]{1,8}){0,2}", fullmatch=True)
names = st.lists(_component, min_size=1, max_size=5).map("/".join).filter(lambda n: len(n) <= MAX_NAME_LENGTH)
actions = st.frozensets(st.sampled_from(sorted(KNOWN_ACTIONS)))
repository_scopes = st.builds(Scope, st.just("repository"), names, actions)
catalog_scopes = st.builds(
    Scope, st.just("registry"), st.just("catalog"), st.sampled_from([frozenset(), {"*"}]).map(frozenset)
)


@given(st.one_of(repository_scopes, catalog_scopes))
def test_valid_scopes_round_trip(scope: Scope) -> None:
    assert parse_scope(scope.render()) == scope


@given(st.lists(repository_scopes, min_size=1, max_size=4))
def test_several_scopes_in_one_parameter(scopes: list[Scope]) -> None:
    assert parse_scopes([" ".join(s.render() for s in scopes)]) == scopes


_scope_alphabet = st.sampled_from(
    [*list("repositorygcalhu:/,*.-_()AZ09 \n\t\x00é"), "repository:", "registry:catalog"]
)


@given(st.one_of(st.text(max_size=300), st.lists(_scope_alphabet, max_size=60).map("".join)))
def test_garbage_raises_only_scope_invalid(text: str) -> None:
    try:
        scope = parse_scope(text)
    except ScopeInvalid:
        return
    # Whatever is accepted is a well-formed scope that renders to an equivalent string.
    assert scope.type in ("repository", "registry")
    assert scope.actions <= KNOWN_ACTIONS
    assert parse_scope(scope.render()) == scope


@pytest.mark.parametrize(
    "text",
    [
        "",
        "repository::pull",
        "repository:A/B:pull",
        "repository:a/b",
        "registry:catalog",
        "repository:a/b:pull,push,delete,admin",
        "repository:a/b:admin",
        "repository:a/b:PULL",
        "repository:a/b:pull push",
        "repository:a/../b:pull",
        "repository:../a:pull",
        "repository:/a/b:pull",
        "repository:a/b/:pull",
        "repository:a//b:pull",
        "repository:a/b:pull\n",
        "repository:a/b:pull\x00",
        "Repository:a/b:pull",
        "user:alice:pull",
        "registry:other:*",
        "repository:a:b:pull",
        "repository:" + "a" * (MAX_NAME_LENGTH + 1) + ":pull",
        "repository:a/b:" + ",".join(["pull"] * 200),
        "repository:a/b:pull" + " " * 10 + "x" * MAX_SCOPE_LENGTH,
        "x" * 100_000,
    ],
)
def test_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(ScopeInvalid):
        parse_scope(text)


def test_parse_scopes_refuses_one_bad_among_good() -> None:
    with pytest.raises(ScopeInvalid):
        parse_scopes(["repository:a/b:pull", "repository:a/b:pull repository:X:pull"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:a/b:pull", Scope("repository", "a/b", frozenset({"pull"}))),
        ("repository:a/b:push,pull", Scope("repository", "a/b", frozenset({"pull", "push"}))),
        ("repository:a/b:pull,pull,,", Scope("repository", "a/b", frozenset({"pull"}))),
        ("repository:a/b:*", Scope("repository", "a/b", frozenset({"*"}))),
        ("repository:a/b:", Scope("repository", "a/b", frozenset())),
        ("repository(plugin):a/b:pull", Scope("repository", "a/b", frozenset({"pull"}))),
        ("registry:catalog:*", Scope("registry", "catalog", frozenset({"*"}))),
        # Only '*' means anything on the catalog.
        ("registry:catalog:pull,push", Scope("registry", "catalog", frozenset())),
    ],
)
def test_parse_known_forms(text: str, expected: Scope) -> None:
    assert parse_scope(text) == expected


def test_render_is_canonical() -> None:
    assert (
        Scope("repository", "a/b", frozenset({"push", "pull", "delete"})).render()
        == "repository:a/b:delete,pull,push"
    )

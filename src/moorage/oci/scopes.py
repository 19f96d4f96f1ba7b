"""Docker registry token-auth scopes: ``repository:NAME:ACTIONS`` and ``registry:catalog:*``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from moorage.oci.reference import validate_name

# type is "repository" or "repository(plugin)" (docker plugin push); NAME may contain ':' only via a port-less host,
# which registry names never have, so the last ':' separates the actions.
_SCOPE_RE = re.compile(r"^(?P<type>[a-z]+(?:\([a-z0-9]+\))?):(?P<name>[^:]+):(?P<actions>[a-z*,]*)\Z")
KNOWN_ACTIONS = frozenset({"pull", "push", "delete", "*"})
MAX_SCOPE_LENGTH = 512


class ScopeInvalid(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Scope:
    type: str  # "repository" or "registry"
    name: str
    actions: frozenset[str]

    def render(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def parse_scope(text: str) -> Scope:
    """Parse one scope; raise ``ScopeInvalid`` for anything malformed or unknown."""
    if len(text) > MAX_SCOPE_LENGTH:
        raise ScopeInvalid("scope too long")
    m = _SCOPE_RE.match(text)
    if m is None:
        raise ScopeInvalid(f"malformed scope {text[:100]!r}")
    kind, name = m.group("type"), m.group("name")
    actions = frozenset(a for a in m.group("actions").split(",") if a)
    unknown = actions - KNOWN_ACTIONS
    if unknown:
        raise ScopeInvalid(f"unknown action(s) {', '.join(sorted(unknown))} in scope {text[:100]!r}")
    base = kind.split("(", 1)[0]
    if base == "repository":
        try:
            validate_name(name)
        except Exception:
            raise ScopeInvalid(f"invalid repository name in scope {text[:100]!r}") from None
        return Scope("repository", name, actions)
    if base == "registry" and name == "catalog":
        return Scope("registry", "catalog", actions & {"*"})
    raise ScopeInvalid(f"unsupported scope type {kind!r}")


def parse_scopes(values: list[str]) -> list[Scope]:
    """Scopes from ``scope`` query parameters; each parameter may hold several separated by spaces."""
    out: list[Scope] = []
    for value in values:
        for part in value.split():
            out.append(parse_scope(part))
    return out

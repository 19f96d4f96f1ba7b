"""The Jinja2 environment: autoescaped templates from this package, filters and URL helpers."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from moorage import __version__


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str
    #: who sees it: "all", "user" (signed in) or "admin"
    audience: str = "all"


#: The main navigation, in order. Areas add their entry here.
NAV: list[NavItem] = [
    NavItem("Repositories", "/repositories"),
    NavItem("Accounts", "/accounts", "user"),
    NavItem("System", "/system", "admin"),
]


def filesize(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{value} B"


def short_digest(digest: str | None, length: int = 12) -> str:
    if not digest:
        return ""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:length]}" if hexpart else digest[:length]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def when(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """Relative time (``3 minutes ago``) for the recent past, a date beyond a week."""
    if value is None:
        return "—"
    value = _aware(value)
    now = now or dt.datetime.now(dt.UTC)
    seconds = int((now - value).total_seconds())
    if seconds < 0:
        return value.strftime("%Y-%m-%d %H:%M UTC")
    for limit, size, unit in (
        (60, 1, "second"),
        (3600, 60, "minute"),
        (86400, 3600, "hour"),
        (604800, 86400, "day"),
    ):
        if seconds < limit:
            n = max(seconds // size, 0)
            if unit == "second" and n < 10:
                return "just now"
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return value.strftime("%Y-%m-%d")


def isotime(value: dt.datetime | None) -> str:
    return _aware(value).isoformat(timespec="seconds") if value else ""


def repo_url(name: str, *parts: str, **query: Any) -> str:
    """``/repositories/NAME[/-/PART...][?query]``: ``/-/`` separates a repository name (which may
    hold ``/``) from what follows; no name component can be ``-``."""
    url = "/repositories/" + urllib.parse.quote(name)
    if parts:
        url += "/-/" + "/".join(urllib.parse.quote(p, safe=":") for p in parts)
    clean = {k: v for k, v in query.items() if v not in (None, "")}
    if clean:
        url += "?" + urllib.parse.urlencode(clean)
    return url


def url_with(url: str, **query: Any) -> str:
    """``url`` with query parameters replaced (``None`` removes one)."""
    parsed = urllib.parse.urlsplit(url)
    params = dict(urllib.parse.parse_qsl(parsed.query))
    for key, value in query.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    return urllib.parse.urlunsplit(parsed._replace(query=urllib.parse.urlencode(params)))


def pairs(values: list[str]) -> list[tuple[str, str]]:
    """Options for ``ui.select`` whose value and label are the same."""
    return [(v, v) for v in values]


def build_templates() -> Environment:
    env = Environment(
        loader=PackageLoader("moorage.web", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pairs=pairs, filesize=filesize, short_digest=short_digest, when=when, isotime=isotime)
    env.globals.update(nav=NAV, repo_url=repo_url, url_with=url_with, version=__version__)
    return env

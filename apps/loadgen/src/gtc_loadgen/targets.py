"""The frontends the load generator talks to: one per routing id, in the switch's order.

The ids come from the deployment (the collection's ``gtc_demo_frontends``): they are
the values of ``settings.routing`` and the ``routing`` label of every metric, so they
follow the same rule as there (lower-case letters, digits and underscores, starting
with a letter; plugins/filter/frontends.py). Nothing here knows what routing a
frontend does: the page only shows each one's title.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
# A base URL: scheme, host[:port], optional path, and not the API root itself
# (the client appends /v1/chat/completions).
URL_PATTERN = re.compile(r"^https?://[^/\s]+(/\S*)?$")


class TargetsError(ValueError):
    """A frontend the load generator cannot use; the message names it."""


def default_title(frontend_id: str) -> str:
    """The page's label when none is given: ``round_robin`` -> ``Round robin``."""
    return frontend_id.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Frontend:
    id: str
    url: str  # base URL without /v1
    title: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "url": self.url, "title": self.title}


def frontend(frontend_id: str, url: str, title: str = "") -> Frontend:
    """A checked Frontend: a valid id, an http(s) base URL without /v1."""
    if not isinstance(frontend_id, str) or not ID_PATTERN.match(frontend_id):
        raise TargetsError(f"frontend id {frontend_id!r} must be lower-case letters, digits and underscores, "
                           "starting with a letter")
    if not isinstance(url, str) or not URL_PATTERN.match(url.strip()):
        raise TargetsError(f"frontend {frontend_id}: {url!r} is not a base URL like http://host:port")
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        raise TargetsError(f"frontend {frontend_id}: give the base URL without /v1, got {url!r}")
    if title is not None and not isinstance(title, str):
        raise TargetsError(f"frontend {frontend_id}: the title must be text, got {title!r}")
    return Frontend(frontend_id, url, (title or "").strip() or default_title(frontend_id))


@dataclass(frozen=True)
class Targets:
    """Where each routing id sends its requests, the served model and the request timeout."""

    frontends: tuple[Frontend, ...]
    model: str
    request_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.frontends:
            raise TargetsError("no frontend: give at least one --frontend ID=URL (or LOADGEN_FRONTENDS)")
        seen: set[str] = set()
        for item in self.frontends:
            if item.id in seen:
                raise TargetsError(f"frontend {item.id} is given twice")
            seen.add(item.id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(f.id for f in self.frontends)

    @property
    def default_routing(self) -> str:
        return self.frontends[0].id

    def get(self, routing: str) -> Frontend:
        for item in self.frontends:
            if item.id == routing:
                return item
        raise TargetsError(f"routing {routing!r} is not a configured frontend ({', '.join(self.ids)})")

    def url(self, routing: str) -> str:
        return self.get(routing).url


def _pair(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise TargetsError(f"{flag} takes ID=VALUE, got {text!r}")
    return key.strip(), value


def from_flags(frontends: Sequence[str], titles: Sequence[str] = ()) -> tuple[Frontend, ...]:
    """``--frontend ID=URL`` (in order) and ``--frontend-title ID=TITLE`` into frontends."""
    pairs = [_pair(text, "--frontend") for text in frontends]
    named = dict(_pair(text, "--frontend-title") for text in titles)
    ids = {key for key, _url in pairs}
    stray = [key for key in named if key not in ids]
    if stray:
        raise TargetsError(f"--frontend-title names {', '.join(stray)}, which no --frontend gives")
    return tuple(frontend(key, url, named.get(key, "")) for key, url in pairs)


def from_json(text: str, source: str = "LOADGEN_FRONTENDS") -> tuple[Frontend, ...]:
    """A JSON list of {"id", "url", "title"} (title optional), in order."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TargetsError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise TargetsError(f"{source}: must be a JSON list of {{id, url, title}}")
    out = []
    for item in data:
        if not isinstance(item, dict) or set(item) - {"id", "url", "title"} or not {"id", "url"} <= set(item):
            raise TargetsError(f"{source}: each entry must be {{id, url[, title]}}, got {item!r}")
        out.append(frontend(item["id"], item["url"], item.get("title") or ""))
    return tuple(out)


def to_json(frontends: Iterable[Frontend]) -> str:
    return json.dumps([f.to_dict() for f in frontends])

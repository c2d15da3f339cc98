# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The frontends filter: checks and completes the gtc_demo_frontends mapping.

The mapping is the one definition of the demo's Dynamo frontends (roles/_common).
Every consumer (the local programs, the DynamoGraphDeployment, the monitors, the
checks, the load generator's targets) loops over the list this filter returns, so
a mistake in the mapping is reported once, here, with the entry it is in.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

# The spellings of --router-mode that Dynamo 1.6.1's frontend accepts
# (dynamo/common/configuration/groups/router_args.py, ROUTER_MODE_MAP). "direct"
# is left out: it routes to a worker the request names, which a chat client does not.
ROUTER_MODES = ("kv", "round-robin", "random", "power-of-two", "least-loaded", "device-aware-weighted")

# The id is a label value, a JSON key of the load generator and part of file names.
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
# The component becomes the Service <graph>-<component> and a pod label value: a DNS-1123
# label, short enough that the operator's longer names (<graph>-<component>-<hash>) stay
# under 63 characters.
COMPONENT_PATTERN = re.compile(r"^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$")

KEYS = frozenset(("router_mode", "title", "local_port", "component", "router_policy", "args"))


def _fail(frontend_id: str, message: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"gtc_demo_frontends.{frontend_id}: {message}")


def _port(frontend_id: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _fail(frontend_id, f"local_port must be a TCP port number, got {value!r}")
    try:
        port = int(value)
    except ValueError:
        raise _fail(frontend_id, f"local_port must be a TCP port number, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise _fail(frontend_id, f"local_port must be between 1 and 65535, got {port}")
    return port


def _entry(frontend_id: object, spec: object) -> dict:
    if not isinstance(frontend_id, str) or not ID_PATTERN.match(frontend_id):
        raise AnsibleFilterError(
            f"gtc_demo_frontends: the id {frontend_id!r} must be lower-case letters, digits and underscores, "
            "starting with a letter (it is a metric label and the load generator's routing name)")
    if not isinstance(spec, dict):
        raise _fail(frontend_id, f"must be a mapping of router_mode, local_port, ..., got {spec!r}")
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise _fail(frontend_id, f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    mode = spec.get("router_mode")
    if mode not in ROUTER_MODES:
        raise _fail(frontend_id, f"router_mode must be one of {', '.join(ROUTER_MODES)}, got {mode!r}")
    if "local_port" not in spec:
        raise _fail(frontend_id, "local_port is missing")
    component = spec.get("component") or "frontend-" + frontend_id.replace("_", "-")
    if not isinstance(component, str) or not COMPONENT_PATTERN.match(component):
        raise _fail(frontend_id, f"component must be a DNS label of at most 30 characters, got {component!r}")
    router_policy = spec.get("router_policy", mode == "kv")
    if not isinstance(router_policy, bool):
        raise _fail(frontend_id, f"router_policy must be true or false, got {router_policy!r}")
    if router_policy and mode != "kv":
        raise _fail(frontend_id, f"router_policy applies to router_mode kv only, not {mode}")
    args = spec.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in args):
        raise _fail(frontend_id, f"args must be a list of command-line words, got {args!r}")
    title = spec.get("title") or frontend_id.replace("_", " ").capitalize()
    return {
        "id": frontend_id,
        "router_mode": mode,
        "title": str(title),
        "local_port": _port(frontend_id, spec["local_port"]),
        "component": component,
        "router_policy": router_policy,
        "args": [str(a) for a in args],
    }


def frontends(mapping: object) -> list[dict]:
    """Return the frontends in the mapping's order, checked and with every field filled."""
    if not isinstance(mapping, dict) or not mapping:
        raise AnsibleFilterError(
            f"gtc_demo_frontends must map routing ids to frontends (at least one), got {mapping!r}")
    result = [_entry(frontend_id, spec) for frontend_id, spec in mapping.items()]
    for field in ("local_port", "component"):
        seen: dict = {}
        for entry in result:
            other = seen.setdefault(entry[field], entry["id"])
            if other != entry["id"]:
                raise AnsibleFilterError(
                    f"gtc_demo_frontends: {other} and {entry['id']} have the same {field} {entry[field]!r}")
    return result


class FilterModule:
    """The collection's filters over the shared inputs."""

    def filters(self) -> dict:
        return {"frontends": frontends}

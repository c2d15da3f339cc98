"""The frontends filter: the one check of gtc_demo_frontends every role relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.do_solutions.gtc_demo.plugins.filter.frontends import ROUTER_MODES, frontends

REPO = Path(__file__).resolve().parents[3]
DEFAULTS = yaml.safe_load((REPO / "roles" / "_common" / "defaults" / "main.yml").read_text())


def test_the_default_pair_completes_in_order() -> None:
    result = frontends(DEFAULTS["gtc_demo_frontends"])
    assert [f["id"] for f in result] == ["kv", "round_robin"]
    kv, rr = result
    assert kv == {"id": "kv", "router_mode": "kv", "title": "KV-aware", "local_port": 8000,
                  "component": "frontend", "router_policy": True, "args": []}
    assert (rr["router_mode"], rr["component"], rr["router_policy"], rr["local_port"]) == (
        "round-robin", "frontend-rr", False, 8001)


def test_order_is_the_mappings_and_a_third_frontend_gets_derived_fields() -> None:
    result = frontends({
        "round_robin": {"router_mode": "round-robin", "local_port": "9001"},
        "kv": {"router_mode": "kv", "local_port": 9000, "args": ["--kv-overlap-score-weight", 1.5]},
        "least_loaded": {"router_mode": "least-loaded", "local_port": 9002},
    })
    assert [f["id"] for f in result] == ["round_robin", "kv", "least_loaded"]
    assert result[0]["local_port"] == 9001 and result[0]["component"] == "frontend-round-robin"
    assert result[1]["args"] == ["--kv-overlap-score-weight", "1.5"]
    assert result[2] == {"id": "least_loaded", "router_mode": "least-loaded", "title": "Least loaded",
                         "local_port": 9002, "component": "frontend-least-loaded", "router_policy": False, "args": []}


@pytest.mark.parametrize(("mapping", "message"), [
    ({}, "at least one"),
    ([{"router_mode": "kv"}], "must map routing ids"),
    ({"KV": {"router_mode": "kv", "local_port": 1}}, "the id 'KV'"),
    ({"kv": "kv"}, "gtc_demo_frontends.kv: must be a mapping"),
    ({"kv": {"router_mode": "kv", "local_port": 1, "port": 2}}, "unknown key(s) port"),
    ({"kv": {"router_mode": "kv-aware", "local_port": 1}}, "router_mode must be one of"),
    ({"kv": {"router_mode": "kv"}}, "local_port is missing"),
    ({"kv": {"router_mode": "kv", "local_port": "eighty"}}, "local_port must be a TCP port number"),
    ({"kv": {"router_mode": "kv", "local_port": 70000}}, "between 1 and 65535"),
    ({"kv": {"router_mode": "kv", "local_port": True}}, "local_port must be a TCP port number"),
    ({"kv": {"router_mode": "kv", "local_port": 1, "component": "Front_End"}}, "component must be a DNS label"),
    ({"rr": {"router_mode": "round-robin", "local_port": 1, "router_policy": True}}, "kv only"),
    ({"kv": {"router_mode": "kv", "local_port": 1, "router_policy": "yes"}}, "router_policy must be true or false"),
    ({"kv": {"router_mode": "kv", "local_port": 1, "args": "--x"}}, "args must be a list"),
    ({"a": {"router_mode": "kv", "local_port": 5}, "b": {"router_mode": "random", "local_port": 5}},
     "a and b have the same local_port 5"),
    ({"a": {"router_mode": "kv", "local_port": 5, "component": "fe"},
      "b": {"router_mode": "random", "local_port": 6, "component": "fe"}}, "a and b have the same component 'fe'"),
])
def test_mistakes_are_refused_naming_the_entry(mapping: object, message: str) -> None:
    with pytest.raises(AnsibleFilterError) as err:
        frontends(mapping)
    assert message in str(err.value)


def test_router_modes_are_dynamo_161s_frontend_choices() -> None:
    # dynamo/common/configuration/groups/router_args.py (ai-dynamo 1.6.1): --router-mode choices,
    # less "direct" (a chat client names no worker).
    assert set(ROUTER_MODES) == {"round-robin", "random", "power-of-two", "kv", "least-loaded", "device-aware-weighted"}

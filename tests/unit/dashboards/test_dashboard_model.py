"""The dashboards against a JSON Schema of Grafana's dashboard model, and the demo's own rules for them.

The schema (grafana-dashboard.schema.json, next to this file) was written for
this project from Grafana's documented classic dashboard JSON model; it checks
the parts the dashboards use. The live queries are checked in
tests/integration/dashboards against a real Prometheus.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DASHBOARDS = sorted((REPO / "files" / "dashboards").glob("*.json"))
RULE_FILES = sorted((REPO / "files" / "prometheus" / "rules").glob("*.yml"))
SCHEMA = json.loads((Path(__file__).with_name("grafana-dashboard.schema.json")).read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
GRID_COLUMNS = 24
BOOTH_MIN_VALUE_SIZE = 80  # px: a stat value readable from a few metres away


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def _exprs(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dash) for t in p.get("targets", [])]


def _rules() -> list[dict[str, Any]]:
    return [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]


def _errors(doc: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


def test_there_is_a_dashboard() -> None:
    assert [p.name for p in DASHBOARDS] == ["gtc-demo.json"]


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_matches_grafana_schema(path: Path) -> None:
    assert _errors(_load(path)) == []


# Each mutation breaks one rule of Grafana's model: the schema must notice.
MUTATIONS = {
    "panel wider than the grid": lambda d: d["panels"][0]["gridPos"].update(w=30),
    "gridPos without height": lambda d: d["panels"][0]["gridPos"].pop("h"),
    "target without refId": lambda d: d["panels"][0]["targets"][0].pop("refId"),
    "unknown panel type": lambda d: d["panels"][0].update(type="graphz"),
    "uid too short": lambda d: d.update(uid="short"),
    "graphTooltip out of range": lambda d: d.update(graphTooltip=3),
    "threshold step without value": lambda d: d["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"][0].pop("value"),
    "stat without reduceOptions": lambda d: next(p for p in d["panels"] if p["type"] == "stat")["options"].pop("reduceOptions"),
    "refresh not a duration": lambda d: d.update(refresh="often"),
    "unknown key in a target": lambda d: d["panels"][0]["targets"][0].update(query="up"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_schema_rejects_a_broken_dashboard(name: str) -> None:
    broken = copy.deepcopy(_load(DASHBOARDS[0]))
    MUTATIONS[name](broken)
    assert _errors(broken), f"the schema accepted a dashboard with {name}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_tile_the_grid_without_overlap(path: Path) -> None:
    cells: dict[tuple[int, int], int] = {}
    for p in _load(path)["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= GRID_COLUMNS, f"panel {p['id']} runs off the grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panels {cells[(x, y)]} and {p['id']} overlap at {(x, y)}"
                cells[(x, y)] = p["id"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_ids_and_ref_ids_are_unique(path: Path) -> None:
    panels = _panels(_load(path))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(refs) == len(set(refs)), p["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_uses_the_datasource_variable(path: Path) -> None:
    """No hard-coded datasource uid: the dashboard works with whatever Prometheus Grafana has."""
    dash = _load(path)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for p in _panels(dash):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
            assert "$" not in t["expr"].replace("$__rate_interval", ""), f"unknown variable in {t['expr']}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_is_described(path: Path) -> None:
    for p in _panels(_load(path)):
        assert len(p.get("description", "")) >= 40, f"panel {p['title']!r} needs a description"


def test_issue_panels_are_there() -> None:
    """The panels issue 7 asks for, by the metrics they chart."""
    dash = _load(REPO / "files" / "dashboards" / "gtc-demo.json")
    text = "\n".join(_exprs(dash) + [r["expr"] for r in _rules()])
    for metric in (
        "dynamo_frontend_time_to_first_token_seconds_bucket",  # TTFT p50/p90 by routing
        "loadgen_ttft_seconds_bucket",  # TTFT by turn
        "dynamo_frontend_inter_token_latency_seconds_bucket",  # ITL
        "dynamo_frontend_cached_tokens_sum", "dynamo_frontend_input_sequence_tokens_sum",  # KV hit rate
        "dynamo_component_router_kv_hit_rate_sum", "dynamo_component_router_kv_hit_rate_count",
        "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED",  # GPUs
        "loadgen_active_conversations", "loadgen_requests_total",  # load
    ):
        assert metric in text, f"no panel charts {metric}"
    by_turn = [p for p in dash["panels"] if "loadgen_ttft_seconds_bucket" in json.dumps(p.get("targets"))]
    assert any("turn" in t["expr"].split("by (")[1] for p in by_turn for t in p["targets"]), "TTFT not split by turn"
    quantiles = {q for e in _exprs(dash) for q in re.findall(r"histogram_quantile\((0\.\d+)", e)}
    assert {"0.5", "0.9"} <= quantiles


def test_booth_stats_show_one_big_number_per_routing_id_whatever_the_frontends() -> None:
    """No query names a routing id: each stat shows one number per series of its rule, for any frontends.

    (Colours for the default ids kv and round_robin are field overrides by series name; another id
    takes the palette's next colour.)"""
    dash = _load(REPO / "files" / "dashboards" / "gtc-demo.json")
    assert not [e for e in _exprs(dash) if "routing=" in e.replace(" ", "")], "a query names a routing id"
    stats = {p["title"]: p for p in dash["panels"] if p["type"] == "stat"}
    for title, record in (("TTFT turn 2+ by routing", "routing:loadgen_ttft_turn2plus_seconds:p50_10m"),
                          ("KV cache hit by routing", "routing:dynamo_frontend_kv_hit_ratio:rate5m")):
        panel = stats[title]
        (target,) = panel["targets"]
        assert target["instant"] is True and target["expr"] == record
        assert target["legendFormat"] == "{{routing}}" and panel["options"]["textMode"] == "value_and_name"
    (speedup,) = stats["Speed-up, slowest ÷ fastest routing"]["targets"]
    assert speedup["expr"] == "gtc_demo:loadgen_ttft_turn2plus_speedup:p50_10m"
    for panel in stats.values():
        assert panel["options"]["text"]["valueSize"] >= BOOTH_MIN_VALUE_SIZE, panel["title"]
        assert panel["options"]["graphMode"] == "none"
        assert panel["gridPos"]["w"] >= 4 and panel["gridPos"]["h"] >= 6
        assert panel["gridPos"]["y"] == 0, "booth numbers belong at the top"


def test_gpu_panels_say_there_is_no_gpu_locally() -> None:
    dash = _load(REPO / "files" / "dashboards" / "gtc-demo.json")
    gpu = [p for p in _panels(dash) if any("DCGM_FI_" in t["expr"] for t in p.get("targets", []))]
    assert len(gpu) == 2
    for p in gpu:
        assert all("DCGM_FI_" in t["expr"] for t in p["targets"]), "a GPU panel mixes in other metrics"
        assert "local platform there is no GPU" in p["description"], p["title"]


def test_recording_rules_are_well_formed_and_used() -> None:
    rules = _rules()
    records = {r["record"] for r in rules}
    assert len(records) == len(rules)
    for r in rules:
        assert set(r) == {"record", "expr"}, r
        # Prometheus's naming convention for recorded series: level:metric:operations.
        assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+", r["record"]), r["record"]
    used = "\n".join(_exprs(_load(REPO / "files" / "dashboards" / "gtc-demo.json")))
    referenced = set(re.findall(r"\b[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+", used))
    assert referenced <= records, f"dashboard uses unrecorded series {referenced - records}"
    assert records <= referenced | {
        r["record"] for r in rules for other in rules if r["record"] in other["expr"]
    }, "a recording rule nothing uses"


def test_local_prometheus_config_names_no_target() -> None:
    """Each job reads the file_sd targets the roles write (targets/<job>.json); nothing assumes a topology."""
    text = (REPO / "files" / "prometheus" / "prometheus-local.yml").read_text()
    config = yaml.safe_load(text)
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"dynamo-frontend", "dynamo-worker", "gtc-loadgen"}
    for name, job in jobs.items():
        assert set(job) == {"job_name", "file_sd_configs"}, job
        assert [c["files"] for c in job["file_sd_configs"]] == [[f"targets/{name}.json"]]
    # No address, no port, no routing id in the scrape configuration itself.
    scrape = yaml.safe_dump(config["scrape_configs"])
    assert not re.search(r"127\.0\.0\.1|localhost|:\d{2,5}\b|routing: ", scrape), scrape
    assert config["rule_files"] == ["rules/*.yml"]

"""Every PromQL expression of every dashboard panel and recording rule, against a real Prometheus.

Debian's prometheus scrapes the local demo (both Dynamo frontends, both mocker
workers, the load generator) while the load generator runs a short load in
each routing mode; each expression must parse and return finite data. The GPU
panels are the exception on the local platform (no GPU, no dcgm-exporter):
they must parse and come back empty, as their descriptions say.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

import promlib

pytestmark = pytest.mark.integration

QUERIES = [q for d in promlib.load_dashboards().values() for q in promlib.panel_queries(d)]
RULES = promlib.recording_rules()


def _qid(q: promlib.PanelQuery) -> str:
    return f"panel{q.panel_id}-{q.ref_id}"


def test_shipped_config_and_rules_pass_promtool(prometheus_binary: str, work_dir: Path) -> None:
    promtool = str(Path(prometheus_binary).with_name("promtool"))
    rules = subprocess.run([promtool, "check", "rules", *map(str, (promlib.PROMETHEUS_DIR / "rules").glob("*.yml"))],
                           capture_output=True, text=True, check=False)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in rules.stdout
    config = work_dir / "prometheus.yml"
    demo = promlib.Targets("127.0.0.1:8000", "127.0.0.1:8001", ("127.0.0.1:9101", "127.0.0.1:9102"), "127.0.0.1:3000")
    config.write_text(yaml.safe_dump(promlib.local_config(demo)))
    checked = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_target_is_scraped(scraped_demo) -> None:
    health = scraped_demo.prometheus.targets_health()
    assert len(health) == 5, health  # 2 frontends, 2 workers, 1 load generator
    assert set(health.values()) == {"up"}, health


@pytest.mark.parametrize("query", [q for q in QUERIES if not q.gpu_only], ids=_qid)
def test_panel_query_returns_data(scraped_demo, query: promlib.PanelQuery) -> None:
    prom = scraped_demo.prometheus
    expr = promlib.grafana_expr(query.expr)
    if query.instant:
        body = prom.api("query", query=expr)
    else:
        # What Grafana sends for a time series panel: a range query over the dashboard's window.
        body = prom.api("query_range", query=expr, start=scraped_demo.load_started, end=time.time(), step=2)
    assert body["status"] == "success", f"{query.panel_title}: {expr}\n{body.get('error')}"
    values = promlib.finite_values(body["data"]["result"])
    assert values, f"{query.panel_title} ({query.ref_id}) returned no finite data: {expr}\n{body['data']['result']}"


@pytest.mark.parametrize("query", [q for q in QUERIES if q.gpu_only], ids=_qid)
def test_gpu_panel_parses_and_is_empty_on_local(scraped_demo, query: promlib.PanelQuery) -> None:
    body = scraped_demo.prometheus.api("query", query=promlib.grafana_expr(query.expr))
    assert body["status"] == "success", body.get("error")
    assert body["data"]["result"] == [], "the local platform has no dcgm-exporter, yet GPU series came back"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r["record"])
def test_recording_rule_returns_data(scraped_demo, rule: dict) -> None:
    prom = scraped_demo.prometheus
    direct = prom.api("query", query=rule["expr"])
    assert direct["status"] == "success", direct.get("error")
    assert promlib.finite_values(direct["data"]["result"]), f"{rule['expr']} returned no finite data"
    recorded = prom.api("query", query=rule["record"])
    assert promlib.finite_values(recorded["data"]["result"]), f"{rule['record']} was not recorded"


def test_booth_numbers(scraped_demo) -> None:
    """The booth stats exist for both modes and agree with the load generator's page; print them."""
    prom = scraped_demo.prometheus
    numbers = {}
    for name, expr in {
        "ttft_turn2plus_p50_kv_ms": 'routing:loadgen_ttft_turn2plus_seconds:p50_10m{routing="kv"} * 1000',
        "ttft_turn2plus_p50_rr_ms": 'routing:loadgen_ttft_turn2plus_seconds:p50_10m{routing="round_robin"} * 1000',
        "speedup_rr_over_kv": "gtc_demo:loadgen_ttft_turn2plus_speedup:p50_10m",
        "kv_hit_ratio_kv": 'routing:dynamo_frontend_kv_hit_ratio:rate5m{routing="kv"}',
        "kv_hit_ratio_rr": 'routing:dynamo_frontend_kv_hit_ratio:rate5m{routing="round_robin"}',
        "loadgen_requests": "sum(loadgen_requests_total)",
    }.items():
        values = promlib.finite_values(prom.api("query", query=expr)["data"]["result"])
        assert len(values) == 1, f"{name}: {expr} -> {values}"
        numbers[name] = round(values[0], 3)
    assert 0.0 <= numbers["kv_hit_ratio_kv"] <= 1.0 and 0.0 <= numbers["kv_hit_ratio_rr"] <= 1.0
    assert numbers["ttft_turn2plus_p50_kv_ms"] > 0 and numbers["ttft_turn2plus_p50_rr_ms"] > 0
    # The load generator's page shows the same headline numbers from its own samples
    # (reset when the load started, so both cover the same requests).
    with urllib.request.urlopen(f"{scraped_demo.loadgen_url}/api/state", timeout=10) as resp:
        page = json.loads(resp.read())["stats"]
    # Same numbers, to the histogram's resolution: the page's exact median lies
    # within one bucket of Prometheus's interpolated one.
    edges = sorted(float(s["metric"]["le"]) * 1000 for s in prom.api(
        "query", query="count by (le) (loadgen_ttft_seconds_bucket)")["data"]["result"])
    for routing, key in (("kv", "ttft_turn2plus_p50_kv_ms"), ("round_robin", "ttft_turn2plus_p50_rr_ms")):
        exact = page["followup_ttft_ms"][routing]
        i = next(n for n, le in enumerate(edges) if le >= numbers[key])
        low, high = (edges[i - 2] if i >= 2 else 0.0), (edges[i + 1] if i + 1 < len(edges) else math.inf)
        assert low <= exact <= high, f"{routing}: page says {exact} ms, dashboard {numbers[key]} ms"
    print(f"\nbooth numbers after {scraped_demo.load_seconds:.0f}s of load: {numbers}; "
          f"load generator page: followup_ttft_ms={page.get('followup_ttft_ms')} speedup={page.get('speedup')}",
          file=sys.stderr)

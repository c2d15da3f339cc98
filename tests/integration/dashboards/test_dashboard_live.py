"""Every PromQL expression of every dashboard panel and recording rule, against a real Prometheus.

Debian's prometheus runs the shipped local configuration on the file_sd targets
the roles wrote (every Dynamo frontend, every mocker worker, the load
generator) while the load generator runs a short load in each routing mode;
each expression must parse and return finite data. The GPU
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
    # Any number of frontends and workers: three of each here, as the contract's file_sd files.
    targets = promlib.write_targets(work_dir / "targets", {"round_robin": "127.0.0.1:8001", "kv": "127.0.0.1:8000",
                                                           "random": "127.0.0.1:8002"},
                                    ["127.0.0.1:9101", "127.0.0.1:9102", "127.0.0.1:9103"], "127.0.0.1:3000")
    config = work_dir / "prometheus.yml"
    config.write_text(yaml.safe_dump(promlib.local_config(targets)))
    checked = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # promtool reads the target files too: a broken one is refused.
    (targets / "dynamo-worker.json").write_text('{"targets": "127.0.0.1:9101"}')
    broken = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, check=False)
    assert broken.returncode != 0 and "dynamo-worker.json" in broken.stdout + broken.stderr


def test_every_target_is_scraped_with_its_labels(scraped_demo) -> None:
    """What the roles wrote is what Prometheus scrapes: every target up, each frontend with its routing id."""
    expected = {(job, target, group.get("labels", {}).get("routing", ""))
                for job, groups in scraped_demo.targets.items() for group in groups for target in group["targets"]}
    body = scraped_demo.prometheus.api("targets")["data"]["activeTargets"]
    seen = {(t["labels"]["job"], t["labels"]["instance"], t["labels"].get("routing", "")) for t in body}
    assert seen == expected, (seen, expected)
    assert {t["health"] for t in body} == {"up"}, body
    assert len(scraped_demo.targets["gtc-loadgen"]) == 1
    assert len(set(scraped_demo.routing_ids)) == len(scraped_demo.routing_ids) >= 1


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
    """The booth stats exist for every routing id and agree with the load generator's page; print them."""
    prom = scraped_demo.prometheus

    def by_routing(expr: str) -> dict[str, float]:
        result = prom.api("query", query=expr)["data"]["result"]
        return {r["metric"]["routing"]: float(r["value"][1]) for r in result if math.isfinite(float(r["value"][1]))}

    ttft_ms = {k: v * 1000 for k, v in by_routing("routing:loadgen_ttft_turn2plus_seconds:p50_10m").items()}
    hit = by_routing("routing:dynamo_frontend_kv_hit_ratio:rate5m")
    assert set(ttft_ms) == set(hit) == set(scraped_demo.routing_ids), (ttft_ms, hit, scraped_demo.routing_ids)
    assert all(v > 0 for v in ttft_ms.values()) and all(0.0 <= v <= 1.0 for v in hit.values())
    speedup = promlib.finite_values(prom.api("query", query="gtc_demo:loadgen_ttft_turn2plus_speedup:p50_10m")
                                    ["data"]["result"])
    if len(ttft_ms) >= 2:
        slowest_over_fastest = max(ttft_ms.values()) / min(ttft_ms.values())
        assert len(speedup) == 1 and speedup[0] == pytest.approx(slowest_over_fastest, rel=0.05)
    else:
        assert speedup == []
    assert promlib.finite_values(prom.api("query", query="sum(loadgen_requests_total)")["data"]["result"])
    # The load generator's page shows the same headline numbers from its own samples
    # (reset when the load started, so both cover the same requests).
    with urllib.request.urlopen(f"{scraped_demo.loadgen_url}/api/state", timeout=10) as resp:
        page = json.loads(resp.read())["stats"]
    # Same numbers, to the histogram's resolution: the page's exact median lies
    # within one bucket of Prometheus's interpolated one.
    edges = sorted(float(s["metric"]["le"]) * 1000 for s in prom.api(
        "query", query="count by (le) (loadgen_ttft_seconds_bucket)")["data"]["result"])
    for routing, value in ttft_ms.items():
        exact = page["followup_ttft_ms"][routing]
        i = next(n for n, le in enumerate(edges) if le >= value)
        low, high = (edges[i - 2] if i >= 2 else 0.0), (edges[i + 1] if i + 1 < len(edges) else math.inf)
        assert low <= exact <= high, f"{routing}: page says {exact} ms, dashboard {value} ms"
    print(f"\nbooth numbers after {scraped_demo.load_seconds:.0f}s of load: TTFT turn 2+ p50 ms {ttft_ms}, "
          f"KV hit {hit}, speed-up {speedup}; load generator page: followup_ttft_ms={page.get('followup_ttft_ms')} "
          f"speedup={page.get('speedup')}", file=sys.stderr)

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
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import promlib
import pytest
import yaml

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


def _cdf(values: list[float], x: float) -> float:
    return sum(1 for v in values if v <= x) / len(values)


def test_booth_numbers(scraped_demo) -> None:
    """The dashboard's headlines are the page's: same requests, same definitions (headlines.py), same window.

    The load is stopped first and Prometheus left to scrape and evaluate once more
    (ScrapedDemo.settle), so both count exactly the same follow-ups: counts must be
    equal, and ratios equal to the page's rounding. (With the load running, the page
    counted what finished after Prometheus's last scrape: a CI run on 2 busy cores saw
    4 more follow-ups on the page than in Prometheus, beyond the allowance then made.)

    Quantiles are compared as ranks: Prometheus interpolates inside a histogram bucket,
    so its p50/p90 lies in bucket (a, b] exactly when the page's own follow-ups (every
    one of them, /api/state's dots) cross that quantile between a and b. Comparing
    values instead failed at random (page median 78.7 ms, Prometheus 177 ms): round
    robin's follow-ups are bimodal (hits near 40 ms, misses near 300 ms) with about half
    of them missing, so their median sits on the gap and a few requests move it from
    one mode to the other.
    """
    prom = scraped_demo.prometheus
    scraped_demo.settle([r["record"] for r in RULES])

    def by_routing(expr: str, **params: float) -> dict[str, float]:
        result = prom.api("query", query=expr, **params)["data"]["result"]
        assert all("routing" in r["metric"] for r in result), (expr, result)
        return {r["metric"]["routing"]: float(r["value"][1]) for r in result if math.isfinite(float(r["value"][1]))}

    p50 = by_routing("routing:loadgen_followup_ttft_seconds:p50_5m")
    p90 = by_routing("routing:loadgen_followup_ttft_seconds:p90_5m")
    miss = by_routing("routing:loadgen_followup_miss:ratio_5m")
    recomputed = by_routing("routing:loadgen_recomputed_prompt_tokens:rate5m_per_minute")
    hit = by_routing("routing:dynamo_frontend_kv_hit_ratio:rate5m")
    ids = set(scraped_demo.routing_ids)
    assert set(p50) == set(p90) == set(miss) == set(recomputed) == set(hit) == ids, (p90, miss, recomputed, hit)
    assert all(0.0 <= v <= 1.0 for v in (*hit.values(), *miss.values()))
    # Follow-ups each routing got since the load began: exact counter differences.
    count = 'sum by (routing) (loadgen_ttft_seconds_count{turn!="1"})'
    now_n, start_n = by_routing(count), by_routing(count, time=scraped_demo.load_started)
    prom_n = {r: now_n[r] - start_n.get(r, 0.0) for r in now_n}
    with urllib.request.urlopen(f"{scraped_demo.loadgen_url}/api/state", timeout=10) as resp:
        page = json.loads(resp.read())["stats"]
    heads, dots = page["headlines"], page["dots"]
    edges = sorted({float(s["metric"]["le"]) for s in prom.api(
        "query", query="count by (le) (loadgen_ttft_seconds_bucket)")["data"]["result"]})
    for r in ids:
        h = heads[r]
        assert h["n"] == prom_n[r], f"{r}: page counted {h['n']} follow-ups, Prometheus {prom_n[r]}"
        assert h["measured"] == h["n"], f"{r}: the demo's frontends report cached tokens for every follow-up"
        # Same follow-ups, same test of a miss (headlines.is_miss): equal, to the page's 4 decimals.
        assert miss[r] == pytest.approx(h["miss_share"], abs=5e-5 + 1e-9), (r, miss[r], h)
        # rate() extrapolates a series' increase to the window's end by up to one scrape interval
        # (1 s) past its newest sample; the series here span the load (30 s and more), so a few %.
        assert recomputed[r] == pytest.approx(h["recomputed_per_min"], rel=0.05, abs=0.05), (r, recomputed[r], h)
        ttft = [d[1] / 1000.0 for d in dots[r] if d[0] >= scraped_demo.load_started]
        assert len(ttft) == h["n"], "the dots are every follow-up of the window"
        for q, rule in ((0.5, p50), (0.9, p90)):
            v = rule[r]
            i = next(n for n, le in enumerate(edges) if le >= v)
            low, high = (edges[i - 1] if i else 0.0), edges[i]
            # The dots are rounded to 0.1 ms: one that close to an edge may lie on either side of it.
            tol = sum(1 for t in ttft if min(abs(t - low), abs(t - high)) <= 0.00005) / len(ttft)
            assert _cdf(ttft, low) <= q + tol and _cdf(ttft, high) >= q - tol, (
                f"{r} p{q * 100:g}: Prometheus {v * 1000:.1f} ms in ({low * 1000:g}, {high * 1000:g}] ms, but the page's "
                f"follow-ups cross it at {_cdf(ttft, low):.2f}..{_cdf(ttft, high):.2f} (page p{q * 100:g} "
                f"{h['p50_ms' if q == 0.5 else 'p90_ms']} ms)")
    # The tail ratio: recorded when every routing has enough follow-ups, as the page shows it.
    ratio = promlib.finite_values(prom.api("query", query="gtc_demo:loadgen_followup_ttft_p90:ratio_5m")
                                  ["data"]["result"])
    judged = len(ids) >= 2 and min(prom_n.values()) >= 20
    if judged:
        assert len(ratio) == 1 and ratio[0] == pytest.approx(max(p90.values()) / min(p90.values()), rel=1e-6)
        assert page["tail_ratio"]["value"] is not None
        assert {page["tail_ratio"]["slow"], page["tail_ratio"]["fast"]} == ids if len(ids) == 2 else True
    else:
        assert ratio == [] and page["tail_ratio"]["value"] is None
    print(f"\nbooth numbers after {scraped_demo.load_seconds:.0f}s of load (load average {os.getloadavg()[0]:.1f}): "
          f"prometheus follow-ups {prom_n}, p50 s {p50}, p90 s {p90}, misses {miss}, recomputed/min {recomputed}, "
          f"tail ratio {ratio}, KV hit {hit}; page: "
          + "; ".join(f"{r} n={h['n']} p50={h['p50_ms']} p90={h['p90_ms']} miss={h['miss_share']} "
                      f"recomputed/min={h['recomputed_per_min']}" for r, h in heads.items())
          + f"; tail ratio {page['tail_ratio']}", file=sys.stderr)

"""gtc_demo_speculative in the local demo: the mocker's --decode-speedup-ratio
lowers the inter-token latency (ITL) by about the configured ratio.

Uses the shared ``local_demo`` fixture: measures ITL with speculation off,
reruns ``site.yml --tags dynamo -e gtc_demo_speculative=draft`` (ratio 2.0),
measures again, then reruns with ``none`` so the demo is as the other tests
expect it. ITL is measured two ways, each what one of the demo's views shows:
- client side, with the load generator's own stream parser (gtc_loadgen.measure,
  the ITL of its page and of loadgen_itl_seconds);
- server side, from the KV frontend's dynamo_frontend_inter_token_latency_seconds
  histogram (the Grafana "ITL p50 / p90 by routing mode" panel).
About 90 s, mostly the two reruns of the dynamo role.
"""

from __future__ import annotations

import http.client
import json
import re
import statistics
import time
import urllib.request
from typing import Any
from urllib.parse import urlparse

import pytest

from gtc_loadgen.chat_stream import ChatStream

pytestmark = pytest.mark.integration

REQUESTS = 6       # sequential, so the mocker decodes at batch size 1
MAX_TOKENS = 48
DRAFT_RATIO = 2.0  # dynamo_local_decode_speedup_ratio for draft (roles/dynamo/defaults/main.yml)
ITL_METRIC = "dynamo_frontend_inter_token_latency_seconds"


def stream_itl_ms(base_url: str, model: str, prompt: str) -> float:
    """One streaming chat completion; its mean ITL as the load generator computes it."""
    url = urlparse(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    body = {
        "model": model, "stream": True, "max_tokens": MAX_TOKENS,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": prompt}],
    }
    record = ChatStream()
    start = time.perf_counter()
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200, f"{resp.status} {resp.read()[:300]!r}"
        while True:
            line = resp.readline()
            if not line:
                break
            record.feed_line(line, time.perf_counter() - start)
        record.close()
    finally:
        conn.close()
    itl = record.itl_ms()
    assert record.done and itl is not None, f"stream without an ITL: {record}"
    return itl


def frontend_itl_totals(base_url: str) -> tuple[float, float]:
    """(sum of seconds, count) of the frontend's ITL histogram, over every label set."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = {"sum": 0.0, "count": 0.0}
    for kind, value in re.findall(rf"^{ITL_METRIC}_(sum|count)(?:{{[^}}]*}})? (\S+)$", text, re.M):
        total[kind] += float(value)
    return total["sum"], total["count"]


def measure(demo: Any, label: str, attempts: int = 3) -> dict[str, float]:
    """Median client ITL and the frontend's mean ITL over REQUESTS sequential streams.

    The frontend's number is a mean, so one stall of the machine (the other test
    worker, a build) inflates it while the client's median stays put: seen
    46 ms against a client median of 17 ms. Such a measurement says nothing about
    the mocker, and is taken again, up to ``attempts`` times; the ratios below
    are checked on undisturbed ones only.
    """
    for attempt in range(1, attempts + 1):
        result = _measure_once(demo, f"{label} (attempt {attempt})")
        if result["server_ms"] <= 1.5 * result["client_ms"]:
            return result
    pytest.fail(f"{label}: every measurement was disturbed (the frontend's mean ITL stayed over 1.5x the client's "
                f"median): {result}")


def _measure_once(demo: Any, label: str) -> dict[str, float]:
    before = frontend_itl_totals(demo.kv_url)
    client = [stream_itl_ms(demo.kv_url, demo.model, f"{label} question {i}: tell me about routing")
              for i in range(REQUESTS)]
    after = frontend_itl_totals(demo.kv_url)
    count = after[1] - before[1]
    assert count > 0, f"the KV frontend's {ITL_METRIC} histogram did not move"
    result = {"client_ms": statistics.median(client), "server_ms": (after[0] - before[0]) * 1000.0 / count}
    print(f"{label}: client ITL median {result['client_ms']:.2f} ms, frontend ITL mean {result['server_ms']:.2f} ms "
          f"(client samples {[round(x, 2) for x in client]})")
    return result


def rerun(demo: Any, mode: str) -> None:
    run = demo.playbook("site.yml", "--tags", "dynamo", "-e", f"gtc_demo_speculative={mode}")
    assert run.returncode == 0, f"site.yml -e gtc_demo_speculative={mode} failed:\n{run.output[-5000:]}"


def test_draft_speculation_lowers_itl_by_the_configured_ratio(local_demo) -> None:
    baseline = measure(local_demo, "none")
    try:
        rerun(local_demo, "draft")
        speculative = measure(local_demo, "draft")
    finally:
        # Leave the shared demo as it was, whatever happened above.
        rerun(local_demo, "none")
    restored = measure(local_demo, "none again")

    for key in ("client_ms", "server_ms"):
        ratio = baseline[key] / speculative[key]
        print(f"{key}: {baseline[key]:.2f} -> {speculative[key]:.2f} ms, x{ratio:.2f} (configured x{DRAFT_RATIO})")
        # Roughly the configured ratio: streaming and frontend overheads that
        # the ratio does not touch pull it a little below.
        assert 0.7 * DRAFT_RATIO <= ratio <= 1.2 * DRAFT_RATIO, (key, baseline, speculative)
        # And back where it was once speculation is off again.
        assert restored[key] == pytest.approx(baseline[key], rel=0.3), (key, baseline, restored)

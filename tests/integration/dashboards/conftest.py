"""Fixtures: a real Prometheus scraping the local demo while the load generator drives a short load."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import promlib

# A short load in each routing mode, bounded in time, on 127.0.0.1 only.
LOAD_SETTINGS = {"concurrency": 4, "rate": 0, "think_min_s": 0.2, "think_max_s": 0.5,
                 "turns_min": 3, "turns_max": 3, "max_tokens": 16}
SECONDS_PER_MODE = 15.0


def _get(demo: Any, *names: str) -> Any:
    """Read a field of the local_demo fixture, whether it is a mapping or an object."""
    for name in names:
        if isinstance(demo, Mapping) and name in demo:
            return demo[name]
        if hasattr(demo, name):
            return getattr(demo, name)
    raise AssertionError(f"local_demo has none of {names}: {demo!r}")


def demo_targets(demo: Any) -> promlib.Targets:
    workers = _get(demo, "worker_metrics_urls", "worker_metrics", "workers_metrics_urls")
    return promlib.Targets(
        kv_frontend=promlib.host_port(_get(demo, "kv_url")),
        round_robin_frontend=promlib.host_port(_get(demo, "round_robin_url", "rr_url")),
        workers=tuple(promlib.host_port(u) for u in workers),
        loadgen=promlib.host_port(_get(demo, "loadgen_url")),
    )


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@dataclass
class ScrapedDemo:
    prometheus: promlib.Prometheus
    load_started: float
    load_seconds: float
    loadgen_url: str


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    try:
        return promlib.prometheus_binary()
    except promlib.PrometheusUnavailable as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def scraped_demo(local_demo: Any, prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[ScrapedDemo]:
    """Prometheus scraping the demo while the load generator runs in KV mode, then round robin.

    The load is still running (round robin) when the tests query, as on a booth.
    The load generator's settings are put back afterwards: other tests share the demo.
    """
    targets = demo_targets(local_demo)
    loadgen_url = str(_get(local_demo, "loadgen_url")).rstrip("/")
    prom = promlib.Prometheus(prometheus_binary, tmp_path_factory.mktemp("prometheus"),
                              promlib.local_config(targets))
    before = _get_json(f"{loadgen_url}/api/state")["settings"]
    prom.start()
    try:
        # The page's own statistics then cover the same requests as this Prometheus.
        _post(f"{loadgen_url}/api/reset", {})
        t0 = time.time()
        _post(f"{loadgen_url}/api/settings", {**LOAD_SETTINGS, "routing": "kv", "running": True})
        time.sleep(SECONDS_PER_MODE)
        _post(f"{loadgen_url}/api/settings", {"routing": "round_robin"})
        time.sleep(SECONDS_PER_MODE)
        # Rules are evaluated every scrape interval: make sure the last one saw both modes.
        prom.wait_for_series('routing:loadgen_ttft_turn2plus_seconds:p50_10m{routing="round_robin"}', timeout=20)
        yield ScrapedDemo(prom, t0, time.time() - t0, loadgen_url)
    finally:
        try:
            restore = {k: before[k] for k in (*LOAD_SETTINGS, "routing", "running") if k in before}
            _post(f"{loadgen_url}/api/settings", restore)
        finally:
            prom.stop()


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboards")

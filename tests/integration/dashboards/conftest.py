"""Fixtures: a real Prometheus scraping the local demo while the load generator drives a short load.

Prometheus runs the shipped local configuration on the file_sd targets the roles
wrote into the demo's state folder (cluster_config__output.prometheus.targets_dir:
<GTC_DEMO_HOME>/prometheus/targets): as many frontends and workers as the
inventory has, each frontend labelled with its routing id.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promlib
import pytest

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


def demo_targets_dir(demo: Any) -> Path:
    """Where the roles wrote the local demo's Prometheus targets."""
    return Path(_get(demo, "home")) / "prometheus" / "targets"


def routing_ids(targets: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The routing ids of the frontends, in the order of their target groups (the switch's)."""
    return [g["labels"]["routing"] for g in targets["dynamo-frontend"]]


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _wait_quiet(loadgen_url: str, timeout: float, quiet_s: float = 3.0) -> None:
    """Until the load generator records no request for ``quiet_s``."""
    deadline = time.monotonic() + timeout
    last = _get_json(f"{loadgen_url}/api/state")["stats"]["totals"]["requests"]
    while True:
        time.sleep(quiet_s)
        now = _get_json(f"{loadgen_url}/api/state")["stats"]["totals"]["requests"]
        if now == last:
            return
        assert time.monotonic() < deadline, "requests still finishing after the load stopped"
        last = now


def stop_load(loadgen_url: str) -> None:
    """Stop the load and wait until every turn in flight has answered (retired conversations finish theirs)."""
    _post(f"{loadgen_url}/api/settings", {"running": False})
    _wait(lambda: not sum(_get_json(f"{loadgen_url}/api/state")["active"].values()), 60, "the load to drain")
    _wait_quiet(loadgen_url, 90)


def _newest_sample_times(prom: promlib.Prometheus, expr: str) -> list[float]:
    """The timestamps of the newest samples of ``expr``'s series (a scrape's, or a rule evaluation's)."""
    return [float(r["value"][1]) for r in prom.api("query", query=f"timestamp({expr})")["data"]["result"]]


@dataclass
class ScrapedDemo:
    prometheus: promlib.Prometheus
    load_started: float
    load_seconds: float
    loadgen_url: str
    targets: dict[str, list[dict[str, Any]]]
    routing_ids: list[str]

    def settle(self, rules: list[str], timeout: float = 60.0) -> None:
        """Stop the load, then wait until Prometheus's numbers are final.

        Final means: every target (the load generator, each frontend, each worker) was
        scraped after the load went quiet, and every rule in ``rules`` that has series was
        evaluated after those scrapes (a rule with none is left to the caller's
        assertions). The page and Prometheus then count the same requests, so they can be
        compared without a guessed allowance for the follow-ups that finished between a
        scrape and the page's answer (a CI run on 2 busy cores saw 4 of them, more than
        the allowance then had).
        """
        stop_load(self.loadgen_url)
        quiet_at = time.time()
        prom = self.prometheus

        def final() -> bool:
            scrapes = _newest_sample_times(prom, "up")
            if not scrapes or min(scrapes) <= quiet_at:
                return False
            newest_scrape = max(scrapes)
            return all(min(ts, default=math.inf) > newest_scrape
                       for ts in (_newest_sample_times(prom, rule) for rule in rules))

        _wait(final, timeout, "a scrape after the load went quiet, and every rule evaluated after it")


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    try:
        return promlib.prometheus_binary()
    except promlib.PrometheusUnavailable as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def scraped_demo(local_demo: Any, prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[ScrapedDemo]:
    """Prometheus scraping the demo while the load generator runs in each routing mode in turn.

    The load is still running (last mode) when the tests query, as on a booth; a test that
    compares exact counts stops it first (ScrapedDemo.settle), so it must come last.
    The load generator's settings are put back afterwards: other tests share the demo.
    """
    targets_dir = demo_targets_dir(local_demo)
    targets = promlib.read_targets(targets_dir)
    modes = routing_ids(targets)
    assert modes, f"no frontend in {targets_dir}/dynamo-frontend.json"
    loadgen_url = str(_get(local_demo, "loadgen_url")).rstrip("/")
    prom = promlib.Prometheus(prometheus_binary, tmp_path_factory.mktemp("prometheus"),
                              promlib.local_config(targets_dir))
    before = _get_json(f"{loadgen_url}/api/state")["settings"]
    prom.start()
    try:
        # The page's statistics and this Prometheus then cover the same requests: nothing in
        # flight from an earlier test, the page reset, and Prometheus holding a scrape of the
        # load generator's (zero-initialised) series from before the first request, so that
        # rate() counts every request (it cannot count what a series held at its first scrape).
        stop_load(loadgen_url)
        _post(f"{loadgen_url}/api/reset", {})
        prom.wait_for_series('loadgen_requests_total{job="gtc-loadgen"}', timeout=20)
        time.sleep(2.5)  # two more scrapes (1 s): the counters' values before the load are on record
        t0 = time.time()
        _post(f"{loadgen_url}/api/settings", {**LOAD_SETTINGS, "routing": modes[0], "running": True})
        time.sleep(SECONDS_PER_MODE)
        for mode in modes[1:]:
            _post(f"{loadgen_url}/api/settings", {"routing": mode})
            time.sleep(SECONDS_PER_MODE)
        # Rules are evaluated every scrape interval: make sure the last one saw every mode.
        prom.wait_for_series(f'routing:loadgen_followup_ttft_seconds:p90_5m{{routing="{modes[-1]}"}}', timeout=20)
        yield ScrapedDemo(prom, t0, time.time() - t0, loadgen_url, targets, modes)
    finally:
        try:
            restore = {k: before[k] for k in (*LOAD_SETTINGS, "routing", "running") if k in before}
            _post(f"{loadgen_url}/api/settings", restore)
        finally:
            prom.stop()


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboards")

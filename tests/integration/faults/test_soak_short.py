"""Three minutes of the soak (benchmarks/run soak, gtc_bench/soak.py) on the test suite's local demo.

The booth preset in A/B mode for 3 minutes, sampled every 30 s with the soak's own code: the load
generator's history as /api/state and /api/conversations show it stays within the app's caps
(gtc_bench.soak.CAPS, from apps/loadgen/src/gtc_loadgen stats.py and server.py), no request fails,
and the resident memory of the load generator and of each frontend grows by at most
``MARGIN_MIB`` (or ``MARGIN_SHARE`` of it, whichever is more) between the first minute (warm-up)
and the end. The 30-minute run, with the least-squares slope, is the benchmark's
(benchmarks/results/soak.md). Costs 3 minutes and a few seconds; leaves the load stopped and the
settings as found.
"""

from __future__ import annotations

import json
import time

import pytest
from gtc_bench.soak import Page, Soak

pytestmark = pytest.mark.integration

MINUTES = 3.0
INTERVAL_S = 30.0
WARMUP_MIN = 1.0
# Growth allowed from the first minute to the third, per process. The 30-minute soak measured
# (benchmarks/results/soak.md) how much these processes move from sample to sample.
MARGIN_MIB = 16.0
MARGIN_SHARE = 0.10


def test_three_minutes_of_booth_load_stay_bounded(local_demo):
    ports = {r: int(url.rsplit(":", 1)[1]) for r, url in local_demo.frontends.items()}
    soak = Soak(Page(local_demo.loadgen_url, getattr(local_demo, "presenter_token", None)), local_demo.home, ports)
    soak.start(ab=True)
    try:
        soak.sample()
        deadline = soak.started + MINUTES * 60.0
        while time.time() < deadline:
            time.sleep(max(0.0, min(INTERVAL_S, deadline - time.time())))
            soak.sample()
    finally:
        soak.stop()
    assert soak.page.state()["settings"] == soak.saved_settings  # left as found
    rows = soak.rows
    print("soak (3 min): " + json.dumps([{k: r[k] for k in ("minute", "rss_mib", "requests_delta", "errors_delta",
                                                            "load_average")} for r in rows]))
    names = {"loadgen", *(f"frontend:{r}" for r in local_demo.frontends)}
    assert all(set(r["rss_mib"]) == names for r in rows), [r["pids"] for r in rows]
    assert rows[-1]["requests"] > 100, rows[-1]  # the booth preset did run
    bounds = sorted({b for r in rows for b in r["bounds"]})
    assert not bounds, bounds
    assert rows[-1]["errors"] == 0, rows[-1]["by_routing"]
    base = next(r for r in rows if r["minute"] >= WARMUP_MIN)
    grew = {n: round(rows[-1]["rss_mib"][n] - base["rss_mib"][n], 1) for n in names}
    over = {n: g for n, g in grew.items() if g > max(MARGIN_MIB, MARGIN_SHARE * base["rss_mib"][n])}
    assert not over, f"RSS grew from minute {base['minute']} to {rows[-1]['minute']} (MiB): {grew}"

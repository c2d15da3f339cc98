"""Every listening socket of the running local demo is on gtc_demo_local_host (127.0.0.1).

The demo's processes are supervisord and the process trees of its programs (asked of supervisord),
plus anything whose command line names the demo's home; their sockets are read from
/proc/net/tcp{,6} and /proc/net/udp{,6} and matched to the processes through /proc/<pid>/fd.
Before issue 16 the mocker workers' metrics ports and their request and event ports were bound
to 0.0.0.0 (and the request and response-stream ports to the host's LAN address): this test listed
each of them with its program.
"""

from __future__ import annotations

import pytest
from faults_support import demo_pids, on_host, sockets_of  # type: ignore[import-not-found]

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"  # roles/_common's gtc_demo_local_host; the test demo keeps the default


def test_every_listener_of_the_local_demo_is_on_the_local_host(local_demo):
    pids = demo_pids(local_demo.home)
    programs = set(pids.values())
    # the whole demo is seen: every worker, every frontend, the load generator
    assert sum("worker" in p for p in programs) == local_demo.replicas, programs
    assert sum("frontend" in p for p in programs) == len(local_demo.frontends), programs
    assert any("loadgen" in p for p in programs), programs
    sockets = sockets_of(pids)
    wrong = [f"{program} (pid {pid}): {proto} {addr}" for program, pid, proto, addr in sockets
             if not on_host(addr, HOST)]
    assert not wrong, f"listening elsewhere than {HOST}:\n" + "\n".join(wrong)
    # and nothing was missed: what the demo publishes does listen (the frontends' and the page's
    # ports, the workers' metrics), and the workers' events go through the broker's Unix sockets
    published = {int(url.rsplit(":", 1)[1]) for url in [*local_demo.frontends.values(), local_demo.loadgen_url]}
    published |= {int(url.split(":")[2].split("/")[0]) for url in local_demo.worker_metrics_urls}
    seen_ports = {int(addr.rsplit(":", 1)[1]) for _prog, _pid, _proto, addr in sockets}
    assert published <= seen_ports, (sorted(published - seen_ports), sockets)
    assert any("event-broker" in p for p in programs), programs

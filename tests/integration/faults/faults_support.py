"""Helpers of the fault tests on the local demo: its processes, their listening sockets, supervisord,
the frontends' migration counters, and the load generator's API (gtc_bench.soak.Page)."""

from __future__ import annotations

import os
import re
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import REPO

# /proc/net/tcp* state of a listening socket (include/net/tcp_states.h TCP_LISTEN), of an unconnected
# UDP socket (TCP_CLOSE, 07: what a bound UDP socket shows).
TCP_LISTEN = "0A"
UDP_BOUND = "07"


def supervisor(home: Path) -> Any:
    """XML-RPC proxy to the demo's supervisord (the collection's own connection helper)."""
    if str(REPO / ".collections") not in sys.path:
        sys.path.insert(0, str(REPO / ".collections"))
    from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.supervisor import connect  # noqa: E402

    return connect(str(home / "supervisor" / "supervisord.conf"))


def program_pids(home: Path) -> dict[str, int]:
    """{"group:program": pid} of every RUNNING program, and "supervisord" itself."""
    rpc = supervisor(home)
    out = {f"{p['group']}:{p['name']}": int(p["pid"]) for p in rpc.supervisor.getAllProcessInfo()
           if p["statename"] == "RUNNING" and p["pid"]}
    out["supervisord"] = int(rpc.supervisor.getPID())
    return out


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def demo_pids(home: Path) -> dict[int, str]:
    """pid -> the supervisord program it belongs to, for every process of the demo.

    The demo is supervisord and its programs' process trees, plus any process whose command line
    mentions the demo's home (nothing of the demo may run outside supervisord, but a stray one is
    listed too, as "outside supervisord").
    """
    owner: dict[int, str] = {}
    for program, pid in program_pids(home).items():
        owner[pid] = program
        for child in _descendants(pid):
            owner.setdefault(child, program)
    me = {os.getpid(), os.getppid()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in me:
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(home) in cmd:
            owner.setdefault(int(proc.name), "outside supervisord: " + cmd[:120])
    return owner


def _address(hex_addr: str, v6: bool) -> str:
    host, port = hex_addr.split(":")
    if not v6:
        raw = bytes.fromhex(host)[::-1]
        return f"{'.'.join(str(b) for b in raw)}:{int(port, 16)}"
    # four little-endian 32-bit words
    words = [bytes.fromhex(host[i:i + 8])[::-1].hex() for i in range(0, 32, 8)]
    full = "".join(words)
    groups = [full[i:i + 4] for i in range(0, 32, 4)]
    text = ":".join(g.lstrip("0") or "0" for g in groups)
    text = re.sub(r"(^|:)0(:0)+(:|$)", "::", text, count=1)
    return f"[{text}]:{int(port, 16)}"


def listening_sockets() -> dict[str, list[tuple[str, str]]]:
    """socket inode -> [(protocol, local address)] of every listening TCP and bound UDP socket."""
    out: dict[str, list[tuple[str, str]]] = {}
    for proto, state in (("tcp", TCP_LISTEN), ("tcp6", TCP_LISTEN), ("udp", UDP_BOUND), ("udp6", UDP_BOUND)):
        path = Path("/proc/net") / proto
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[3] != state:
                continue
            out.setdefault(fields[9], []).append((proto, _address(fields[1], proto.endswith("6"))))
    return out


def sockets_of(pids: dict[int, str]) -> list[tuple[str, int, str, str]]:
    """(program, pid, protocol, address) of each listening socket the given processes hold."""
    table = listening_sockets()
    found = []
    for pid, program in pids.items():
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        seen = set()
        for fd in fds:
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            match = re.fullmatch(r"socket:\[(\d+)\]", target)
            if match and match.group(1) in table and match.group(1) not in seen:
                seen.add(match.group(1))
                found += [(program, pid, proto, addr) for proto, addr in table[match.group(1)]]
    return sorted(found)


def on_host(address: str, host: str) -> bool:
    return address.rsplit(":", 1)[0].strip("[]") == host


# -- the frontends' Prometheus counters -------------------------------------------------------
def metric_sum(url: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` (with these labels) on a /metrics page."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


@dataclass
class LoadCounts:
    sent: int
    failed: int
    ok: int
    failed_by_kind: dict[str, int]


def routing_counts(state: dict[str, Any]) -> dict[str, LoadCounts]:
    """Per routing: what the load generator sent and how it ended (contract 4's fault counters)."""
    per = state["stats"]["requests_by_routing"]
    return {r: LoadCounts(c["sent"], c["failed"], c["ok"], dict(c.get("failed_by_kind", {}))) for r, c in per.items()}


def wait_until(check, timeout: float, interval: float = 0.5) -> float | None:
    """Seconds until ``check()`` was true, or None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(interval)
    return None

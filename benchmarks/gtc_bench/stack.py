"""The booth's own local stack, brought up and torn down by the collection for a benchmark.

``RoleStack`` runs ``ansible-playbook site.yml -i inventories/local`` exactly as ``make demo``
does, with two differences: its state lives in a folder of its own (``GTC_DEMO_HOME``), and every
port is a free one of 127.0.0.1 passed as extra vars (one ``local_port`` per frontend in
``gtc_demo_frontends``, ``dynamo_local_worker_metrics_port_base``, ``loadgen_local_port``), so a
benchmark runs beside someone's ``make demo``. The topology (``dynamo_replicas``,
``dynamo_tensor_parallel_size``), the modelled GPU (``gtc_demo_gpu_node_size``) and the KV router's
policy are extra vars too; everything else (mocker profile and KV capacity from files/perf_profile,
the demo's tokenizer, supervisord, the inference check) is the roles'. ``playbooks/teardown.yml``
with the same home and vars removes it.

Standard library only: it runs under the benchmark venv (live.py) and the tooling venv
(loadgen_overhead.py) alike. The playbooks run with the checkout's ``.venv`` (``make setup``).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "local"
# The tokenizer the local demo serves (model_sync copies it for the workers): WordPiece, 32,000 entries.
DEMO_MODEL_DIR = REPO / "roles" / "model_sync" / "files" / "local-model"
# The Droplet size whose GPU the mocker models (the dynamo role reads h100/h200 from the name).
NODE_SIZES = {"h100": "gpu-h100x8-640gb", "h200": "gpu-h200x8-1128gb"}


def ansible_playbook() -> str:
    """The checkout's ansible-playbook (``make setup``), or $GTC_BENCH_ANSIBLE_PLAYBOOK."""
    exe = os.environ.get("GTC_BENCH_ANSIBLE_PLAYBOOK") or str(REPO / ".venv" / "bin" / "ansible-playbook")
    if not Path(exe).exists():
        raise FileNotFoundError(f"{exe} is missing: run `make setup` (the stack comes up through the collection's roles)")
    return exe


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports of 127.0.0.1 that nothing listens on now."""
    socks = [socket.socket() for _i in range(count)]
    try:
        for sock in socks:  # all bound at once: the kernel hands out distinct ports
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port_run(count: int, low: int = 20000, high: int = 32700) -> int:
    """The first of ``count`` consecutive free ports of 127.0.0.1 in [low, high).

    Below 32768, not in the kernel's ephemeral range: Dynamo reads a worker's metrics port
    (DYN_SYSTEM_PORT) as a signed 16-bit number, and the dynamo role's preflight refuses more.
    A random start keeps two benchmarks (or the test suite's demo) off the same run.
    """
    rng = random.Random()
    for _attempt in range(200):
        first = rng.randrange(low, high - count)
        socks = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1 in [{low}, {high})")


def find_fact(document: Any, name: str) -> Any:
    """The last value of fact ``name`` set anywhere in a JSON-callback run (``ansible_facts``)."""
    found = None
    stack = [document]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            facts = node.get("ansible_facts")
            if isinstance(facts, dict) and name in facts:
                found = facts[name]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


@dataclass
class RoleStack:
    """The local demo of ``site.yml`` in ``home``, on free ports.

    ``frontends`` maps routing id -> router mode, or -> a ``gtc_demo_frontends`` entry without its port.
    """

    home: Path
    frontends: dict[str, Any]
    replicas: int = 2
    tensor_parallel_size: int = 4
    gpu: str = "h200"
    router_policy: dict[str, float] | None = None
    extra_vars: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 1200.0
    ports: dict[str, int] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    # -- what the playbooks get -----------------------------------------------------------
    def variables(self) -> dict[str, Any]:
        if not self.ports:
            picked = free_ports(len(self.frontends) + 1)
            self.ports = {fid: picked[i] for i, fid in enumerate(self.frontends)}
            self.ports["loadgen"] = picked[-1]
            # mocker i serves its metrics on base + i + 1
            self.ports["worker_metrics_base"] = free_port_run(self.replicas + 1)
        frontends = {}
        for fid, spec in self.frontends.items():
            entry = dict(spec) if isinstance(spec, dict) else {"router_mode": spec}
            frontends[fid] = {"title": fid.replace("_", " ").capitalize(), **entry, "local_port": self.ports[fid]}
        out: dict[str, Any] = {
            "gtc_demo_frontends": frontends,
            "dynamo_local_worker_metrics_port_base": self.ports["worker_metrics_base"],
            "loadgen_local_port": self.ports["loadgen"],
            "dynamo_replicas": self.replicas,
            "dynamo_tensor_parallel_size": self.tensor_parallel_size,
            "gtc_demo_gpu_node_size": NODE_SIZES[self.gpu],
        }
        if self.router_policy is not None:
            out["dynamo_kv_router_policy"] = dict(self.router_policy)
        out.update(self.extra_vars)
        return out

    def _run(self, playbook: str, log_name: str) -> dict:
        self.home.mkdir(parents=True, exist_ok=True)
        varfile = self.home.parent / f"{self.home.name}-vars.json"
        varfile.write_text(json.dumps(self.variables(), indent=1))
        env = dict(os.environ, GTC_DEMO_HOME=str(self.home), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                   ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1")
        # the benchmark venv's own variables must not leak into the roles' venvs and pip runs
        for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
            env.pop(name, None)
        started = time.monotonic()
        proc = subprocess.run([ansible_playbook(), str(REPO / playbook), "-i", str(INVENTORY), "-e", f"@{varfile}"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        self.seconds[log_name] = round(time.monotonic() - started, 1)
        (self.home.parent / f"{self.home.name}-{log_name}.json").write_text(proc.stdout)
        if proc.returncode != 0:
            raise RuntimeError(f"{playbook} failed (rc {proc.returncode}); its JSON result is in "
                               f"{self.home.parent / (self.home.name + '-' + log_name + '.json')}\n{proc.stderr[-2000:]}")
        return json.loads(proc.stdout)

    # -- up and down --------------------------------------------------------------------------
    def up(self) -> dict[str, str]:
        """site.yml; returns routing id -> base URL, from dynamo__output (the role's published URLs)."""
        result = self._run("site.yml", "site")
        for role in ("dynamo", "model_sync", "loadgen"):
            self.outputs[role] = find_fact(result, f"{role}__output") or {}
        published = self.outputs["dynamo"].get("frontends")
        if not isinstance(published, dict) or set(published) != set(self.frontends):
            raise RuntimeError(f"dynamo__output.frontends is {published!r}; expected the ids {sorted(self.frontends)}")
        self.urls = {fid: str(published[fid]["url"]).rstrip("/") for fid in self.frontends}
        return self.urls

    def down(self) -> None:
        self._run("playbooks/teardown.yml", "teardown")

    @property
    def model(self) -> str:
        return str(self.outputs.get("dynamo", {}).get("model") or "nvidia/Llama-3.1-70B-Instruct-FP8")

    def __enter__(self) -> RoleStack:
        with ExitStack() as guard:
            guard.callback(self.down)  # a half-built stack is torn down too
            self.up()
            guard.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

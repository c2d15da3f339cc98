"""Test-side helpers around the fake DigitalOcean API: control calls and running the infra role."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fake_do.prism import Prism
from fake_do.server import FakeServer
from helpers import REPO, PlaybookRun, run_playbook

TOKEN = "dop_v1_fake_contract_test_token"
PLAYBOOKS = REPO / "tests" / "integration" / "infra" / "playbooks"


@dataclass
class DoApi:
    """The running fake (direct URL, for control) and Prism (what the modules talk to)."""

    server: FakeServer
    prism: Prism
    # Prism log line from which the fixture checks for violations.
    checked_from: int = 0

    @property
    def fake(self):  # the in-process state, for assertions
        return self.server.fake

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body or {}).encode() if body is not None else None
        req = urllib.request.Request(self.server.url + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def state(self) -> dict[str, Any]:
        return self.control("/_fake/state")

    def log(self) -> list[dict[str, Any]]:
        return self.control("/_fake/log")

    def writes_since(self, mark: int) -> list[dict[str, Any]]:
        return [e for e in self.log()[mark:] if e["method"] != "GET"]


@dataclass
class InfraRunner:
    """Runs the infra role on inventories/dev against the fake."""

    api: DoApi
    workdir: Path
    token: str = TOKEN
    overrides: dict[str, Any] = field(default_factory=dict)
    runs: list[PlaybookRun] = field(default_factory=list)

    environment: str = "dev"

    @property
    def home(self) -> Path:
        """$GTC_DEMO_HOME of the runs: the kubeconfig lands in <home>/<environment>/kubeconfig."""
        return self.workdir / "home"

    @property
    def kubeconfig(self) -> Path:
        return self.home / self.environment / "kubeconfig"

    @property
    def output_file(self) -> Path:
        return self.workdir / "infra_output.json"

    def extra_vars(self, **more: Any) -> Path:
        values = {
            "gtc_demo_do_api_endpoint": self.api.prism.url,
            "infra_wait_poll_interval": 0.2,
            "infra_wait_timeout": 60,
            "infra_gpu_wait_poll_interval": 1,
            "infra_gpu_wait_timeout": 60,
            "infra_test_output": str(self.output_file),
            **self.overrides,
            **more,
        }
        path = self.workdir / f"vars-{len(self.runs)}.json"
        path.write_text(json.dumps(values))
        return path

    def env(self, token: str | None = None) -> dict[str, str]:
        tmp = self.workdir / "ansible-tmp"
        return {
            "DIGITALOCEAN_ACCESS_TOKEN": token if token is not None else self.token,
            # The collection reads only DIGITALOCEAN_ACCESS_TOKEN; a developer's other names stay out.
            "DIGITALOCEAN_TOKEN": "",
            "DO_API_TOKEN": "",
            "GTC_DEMO_HOME": str(self.home),
            "ANSIBLE_LOCAL_TEMP": str(tmp / "local"),
            "ANSIBLE_REMOTE_TEMP": str(tmp / "remote"),
            "ANSIBLE_LOG_PATH": str(self.workdir / "ansible.log"),
            "ANSIBLE_PIPELINING": "1",
        }

    def playbook(self, name: str, *args: str, token: str | None = None, inventory: str = "inventories/dev",
                 env: dict[str, str] | None = None, **more: Any) -> PlaybookRun:
        """A test playbook of tests/integration/infra/playbooks; ``env`` adds to the run's environment."""
        run = run_playbook(str(PLAYBOOKS / name), "-e", f"@{self.extra_vars(**more)}", *args,
                           inventory=inventory, env={**self.env(token), **(env or {})}, timeout=600, json_output=True)
        self.runs.append(run)
        return run

    def apply(self, *args: str, **more: Any) -> PlaybookRun:
        return self.playbook("infra.yml", *args, **more)

    def teardown(self, *args: str, **more: Any) -> PlaybookRun:
        return self.playbook("teardown.yml", *args, **more)

    def site_playbook(self, path: str, *args: str, token: str | None = None, inventory: str = "inventories/dev",
                      env: dict[str, str] | None = None, **more: Any) -> PlaybookRun:
        """One of the collection's own playbooks (playbooks/validate.yml, playbooks/teardown.yml, site.yml)."""
        run = run_playbook(str(REPO / path), "-e", f"@{self.extra_vars(**more)}", *args, inventory=inventory,
                           env={**self.env(token), **(env or {})}, timeout=600, json_output=True)
        self.runs.append(run)
        return run

    def module(self, module: str, args: dict[str, Any], *extra: str, token: str | None = None) -> PlaybookRun:
        """One module on its own (ad hoc), through Prism."""
        bin_dir = Path(sys.executable).parent
        cmd = [str(bin_dir / "ansible"), "localhost", "-i", "inventories/dev", "-m", f"do_solutions.gtc_demo.{module}",
               "-a", json.dumps({"api_endpoint": self.api.prism.url, **args}), *extra]
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
               **self.env(token)}
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        run = PlaybookRun(cmd, proc.returncode, proc.stdout + proc.stderr)
        self.runs.append(run)
        return run

    def output(self) -> dict[str, Any]:
        return json.loads(self.output_file.read_text())

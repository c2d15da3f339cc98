"""`make rehearse ENV=dev`: the whole cloud deployment on this machine, with no DigitalOcean account.

Brings up what tests/rehearsal/harness.py describes, runs `site.yml`, then
`playbooks/validate.yml`, prints what a real run would create (DigitalOcean
resources, Helm releases, Kubernetes objects), and tears it all down with
`playbooks/teardown.yml`. The inference check is answered by the local demo's
Dynamo frontend: one already running on its default ports is used, otherwise
one is started for the rehearsal and stopped afterwards.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

import yaml

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from helpers import free_ports, run_playbook  # noqa: E402
from rehearsal.harness import Rehearsal, log  # noqa: E402

# The local demo as `make demo` runs it: roles/_common's frontends on their default
# ports, the load generator on loadgen_local_port's default.
COMMON = yaml.safe_load((TESTS.parent / "roles" / "_common" / "defaults" / "main.yml").read_text())
DEFAULT_FRONTENDS = {key: f"http://127.0.0.1:{spec['local_port']}" for key, spec in COMMON["gtc_demo_frontends"].items()}
DEFAULT_LOADGEN = "http://127.0.0.1:3000"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - 127.0.0.1 only
            return response.status == 200
    except OSError:
        return False


class LocalBridge:
    """The local demo's frontend and page, for the checks that a DOKS run makes over the network."""

    def __init__(self) -> None:
        self.home: Path | None = None
        self.vars_file: Path | None = None
        self.frontend_urls, self.loadgen_url = dict(DEFAULT_FRONTENDS), DEFAULT_LOADGEN

    def start(self) -> "LocalBridge":
        if all(_answers(f"{url}/v1/models") for url in self.frontend_urls.values()) and _answers(f"{self.loadgen_url}/healthz"):
            log(f"using the local demo already running at {', '.join(self.frontend_urls.values())}")
            return self
        self.home = Path(tempfile.mkdtemp(prefix="gtc-rehearsal-local-"))
        *ports, loadgen = free_ports(len(DEFAULT_FRONTENDS) + 1)
        metrics = free_ports(3, consecutive=True)[0]
        frontends = {key: {**spec, "local_port": port}
                     for (key, spec), port in zip(COMMON["gtc_demo_frontends"].items(), ports)}
        self.vars_file = self.home.parent / f"{self.home.name}-vars.json"
        self.vars_file.write_text(json.dumps({
            "gtc_demo_frontends": frontends,
            "dynamo_local_worker_metrics_port_base": metrics, "loadgen_local_port": loadgen}))
        log("starting a local demo to answer the inference check (site.yml -i inventories/local)")
        run = run_playbook("site.yml", "-e", f"@{self.vars_file}", env={"GTC_DEMO_HOME": str(self.home)})
        if run.returncode != 0:
            self.stop()
            raise RuntimeError(f"the local demo did not start:\n{run.output[-4000:]}")
        self.frontend_urls = {key: f"http://127.0.0.1:{spec['local_port']}" for key, spec in frontends.items()}
        self.loadgen_url = f"http://127.0.0.1:{loadgen}"
        return self

    def stop(self) -> None:
        if self.home is None:
            return
        run_playbook("playbooks/teardown.yml", "-e", f"@{self.vars_file}", env={"GTC_DEMO_HOME": str(self.home)})
        shutil.rmtree(self.home, ignore_errors=True)
        if self.vars_file:
            self.vars_file.unlink(missing_ok=True)
        self.home = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make rehearse", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dev", help="the inventory to rehearse: inventories/<env> (dev, prod)")
    parser.add_argument("--keep", action="store_true", help="stop after validate.yml and leave everything up")
    args = parser.parse_args(argv)
    if not (TESTS.parent / "inventories" / args.env).is_dir():
        parser.error(f"no inventory inventories/{args.env}")

    bridge = LocalBridge().start()
    rehearsal = Rehearsal(args.env, cluster_name=f"gtc-rehearse-{args.env}", frontend_urls=bridge.frontend_urls,
                          public_url=bridge.loadgen_url)
    failed = []
    try:
        rehearsal.start()
        for playbook in ("site.yml", "playbooks/validate.yml"):
            run = rehearsal.run(playbook)
            print(f"\n==> {playbook}: rc={run.returncode}, {run.recap}")
            if run.returncode != 0:
                print(run.output[-6000:])
                failed.append(playbook)
                break
        print()
        print(rehearsal.report())
        if args.keep:
            print(f"Kept. KUBECONFIG={rehearsal.kubeconfig()}  DigitalOcean fake: {rehearsal.cloud.prism.url}")
            input("Press Enter to tear down... ")
        run = rehearsal.run("playbooks/teardown.yml")
        print(f"==> playbooks/teardown.yml: rc={run.returncode}, {run.recap}")
        if run.returncode != 0:
            print(run.output[-6000:])
            failed.append("playbooks/teardown.yml")
        left = rehearsal.cloud_resources()
        print("DigitalOcean after teardown:", "empty" if not any(left.values()) else left)
    finally:
        rehearsal.stop()
        bridge.stop()
    print("\nRehearsal " + ("FAILED: " + ", ".join(failed) if failed else "passed") +
          "; times (s): " + ", ".join(f"{getattr(r, 'args', ['?'])[1]} {getattr(r, 'seconds', 0):.0f}"
                                      for r in rehearsal.runs))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

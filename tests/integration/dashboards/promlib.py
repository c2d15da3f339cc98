"""Helpers for the dashboard tests: a real Prometheus on loopback and the queries of the dashboard.

Kept free of pytest so a person can also point them at a running demo by hand.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
DASHBOARD_DIR = REPO / "files" / "dashboards"
PROMETHEUS_DIR = REPO / "files" / "prometheus"
LOCAL_CONFIG = PROMETHEUS_DIR / "prometheus-local.yml"

# Grafana fills these in before it sends a query; the tests use values that fit
# a 1 s scrape interval (Grafana's $__rate_interval is at least 4 scrape intervals).
GRAFANA_MACROS = {"$__rate_interval": "10s", "$__interval": "2s", "$__range": "5m"}


class PrometheusUnavailable(RuntimeError):
    """Prometheus could not be installed or started; the message says why."""


def prometheus_binary() -> str:
    """Path of Debian's prometheus binary, installing the package when it is missing.

    CI runs on a fresh machine: the apt package is the pinned-by-distribution
    way to get a real Prometheus without downloading a release tarball.
    """
    found = shutil.which("prometheus")
    if found:
        return found
    if os.geteuid() != 0:
        raise PrometheusUnavailable("prometheus is not installed and this user cannot apt-get install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Another engineer's or CI step's apt may hold the lock: wait for it rather than fail.
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600", "prometheus"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=600"], env=env,
                       capture_output=True, text=True, timeout=600, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900, check=False)
    found = shutil.which("prometheus")
    if result.returncode != 0 or not found:
        raise PrometheusUnavailable(f"apt-get install prometheus failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def host_port(url: str) -> str:
    """'http://127.0.0.1:8000/metrics' -> '127.0.0.1:8000'."""
    parsed = urllib.parse.urlsplit(url)
    if not parsed.hostname or not parsed.port:
        raise ValueError(f"URL without host and port: {url}")
    return f"{parsed.hostname}:{parsed.port}"


JOBS = ("dynamo-frontend", "dynamo-worker", "gtc-loadgen")


def write_targets(targets_dir: Path, frontends: dict[str, str], workers: list[str], loadgen: str) -> Path:
    """File_sd target files in the format the roles write (ISSUE13 contract), for a run without the demo.

    ``frontends`` maps routing id -> host:port (one group each, labelled ``routing``), ``workers``
    and ``loadgen`` are host:port.
    """
    targets_dir.mkdir(parents=True, exist_ok=True)
    groups = {
        "dynamo-frontend": [{"targets": [hp], "labels": {"routing": rid}} for rid, hp in frontends.items()],
        "dynamo-worker": [{"targets": list(workers), "labels": {}}],
        "gtc-loadgen": [{"targets": [loadgen], "labels": {}}],
    }
    for job, content in groups.items():
        (targets_dir / f"{job}.json").write_text(json.dumps(content))
    return targets_dir


def read_targets(targets_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """{job: its file_sd groups} as found in ``targets_dir`` (every job's file must be there)."""
    out = {}
    for job in JOBS:
        path = targets_dir / f"{job}.json"
        if not path.is_file():
            raise AssertionError(f"no target file {path}: the role that runs {job} did not write it")
        groups = json.loads(path.read_text())
        if not isinstance(groups, list) or not all(isinstance(g.get("targets"), list) for g in groups):
            raise AssertionError(f"{path} is not Prometheus file_sd JSON: {groups!r}")
        out[job] = groups
    return out


def local_config(targets_dir: Path, *, scrape_interval: str = "1s") -> dict[str, Any]:
    """The shipped local Prometheus config, reading its file_sd targets from ``targets_dir``.

    Everything else (jobs, the rule files) stays as shipped, so the test exercises
    the file a person would run; only the intervals are shortened and the relative
    paths made absolute (the config is written to another folder).
    """
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["global"].update(scrape_interval=scrape_interval, evaluation_interval=scrape_interval,
                            scrape_timeout=scrape_interval)
    config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    if set(jobs) != set(JOBS):
        raise AssertionError(f"unexpected jobs in {LOCAL_CONFIG}: {sorted(jobs)}")
    for job in jobs.values():
        for sd in job["file_sd_configs"]:
            sd["files"] = [str(targets_dir / Path(f).relative_to("targets")) for f in sd["files"]]
            sd["refresh_interval"] = scrape_interval
    return config


class Prometheus:
    """A Prometheus server run directly (not as a system service) with its own config and storage."""

    def __init__(self, binary: str, workdir: Path, config: dict[str, Any]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, f"--config.file={self.config_path}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrometheusUnavailable(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        raise PrometheusUnavailable(f"prometheus not ready after {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def api(self, path: str, **params: Any) -> dict[str, Any]:
        """GET /api/v1/<path>; returns the decoded body even for HTTP 400/422 (bad queries)."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return json.loads(body)
            except ValueError:
                return {"status": "error", "error": f"HTTP {exc.code}: {body[:500]!r}"}

    def targets_health(self) -> dict[str, str]:
        body = self.api("targets")
        return {t["scrapeUrl"]: t["health"] for t in body["data"]["activeTargets"]}

    def wait_for_series(self, expr: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.api("query", query=expr)
            if body.get("status") == "success" and body["data"]["result"]:
                return
            time.sleep(0.5)
        raise AssertionError(f"no series for {expr} after {timeout}s")


def grafana_expr(expr: str) -> str:
    """Replace the Grafana macros in ``expr`` the way Grafana would before querying."""
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    if "$" in expr:
        raise AssertionError(f"unhandled Grafana variable in {expr!r}")
    return expr


@dataclass(frozen=True)
class PanelQuery:
    panel_id: int
    panel_title: str
    panel_type: str
    ref_id: str
    expr: str
    instant: bool
    gpu_only: bool


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def iter_panels(panels: list[dict[str, Any]]):
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))  # panels nested in collapsed rows


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    out = []
    for panel in iter_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target["expr"]
            out.append(PanelQuery(
                panel_id=panel["id"], panel_title=panel["title"], panel_type=panel["type"],
                ref_id=target["refId"], expr=expr, instant=bool(target.get("instant")),
                gpu_only="DCGM_FI_" in expr,
            ))
    return out


def recording_rules() -> list[dict[str, Any]]:
    rules = []
    for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    values: list[float] = []
    for series in result:
        samples = series.get("values") or ([series["value"]] if "value" in series else [])
        values.extend(v for v in (float(s[1]) for s in samples) if math.isfinite(v))
    return values

"""The booth screen's Grafana kiosk URL and the admin password's command, from their owners (issue 16).

gateway__output.grafana_kiosk_url is put together from what each owner
publishes, never typed twice: the hostname (roles/_common, gtc_demo_hostname),
Grafana's path and organisation (cluster_config__output.grafana) and the booth
dashboard's uid (files/dashboards, read by cluster_config). Changing one owner
moves the URL. cluster_config__output.grafana.admin_password_command names the
Secret the password is in (the chart's, or the one given) and no password.
No cluster: the two roles' outputs entry points.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import REPO, run_playbook

PLAYBOOK = str(Path(__file__).with_name("kiosk_outputs.yml"))
BOOTH_UID = json.loads((REPO / "files" / "dashboards" / "gtc-demo.json").read_text())["uid"]


def outputs(tmp_path: Path, inventory: str, **extra: Any) -> dict[str, Any]:
    dest = tmp_path / "outputs.json"
    run = run_playbook(PLAYBOOK, "-e", json.dumps({"render_dest": str(dest), **extra}), inventory=inventory,
                       timeout=300)
    assert run.returncode == 0, run.output[-3000:]
    return json.loads(dest.read_text())


def test_the_kiosk_url_is_the_owners_hostname_path_and_dashboard(tmp_path):
    out = outputs(tmp_path, "inventories/dev")
    grafana = out["cluster_config"]["grafana"]
    assert grafana["dashboard_uid"] == BOOTH_UID and grafana["anonymous"] is True
    assert out["gateway"]["grafana_kiosk_url"] == (
        f"https://gtc-2026-dev.digitalocean.solutions/grafana/d/{BOOTH_UID}?orgId=1&kiosk")
    command = grafana["admin_password_command"]
    assert " -n monitoring get secret kube-prometheus-stack-grafana " in command
    assert command.endswith("-o jsonpath='{.data.admin-password}' | base64 -d")


def test_the_kiosk_url_follows_its_owners(tmp_path):
    out = outputs(tmp_path, "inventories/dev", gtc_demo_hostname="booth.example.com",
                  cluster_config_dns_zone="example.com", cluster_config_grafana_path="/screen",
                  cluster_config_grafana_admin_secret="booth-admin", cluster_config_grafana_admin_password_key="pass.word",
                  gtc_demo_kube_context="booth ctx")
    assert out["gateway"]["grafana_kiosk_url"] == f"https://booth.example.com/screen/d/{BOOTH_UID}?orgId=1&kiosk"
    assert out["gateway"]["url"] == "https://booth.example.com"
    command = out["cluster_config"]["grafana"]["admin_password_command"]
    assert " --context 'booth ctx' " in command
    # A dot in the key is escaped for kubectl's JSONPath.
    assert "get secret booth-admin -o jsonpath='{.data.pass\\.word}' | base64 -d" in command
    assert out["cluster_config"]["grafana"]["admin_secret"] == {
        "namespace": "monitoring", "name": "booth-admin", "user_key": "admin-user", "password_key": "pass.word"}

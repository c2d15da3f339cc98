"""One chart repository URL for every release, and one base URL for the Gateway API CRDs (issue 12, defects 2-3).

An air-gapped install (and the rehearsal) serves the pinned charts from one
repository and the CRD files from one folder. With only
cluster_config_helm_mirror_url and cluster_config_gateway_api_crds_base_url
changed, the role's plan points every release and every CRD there, and the
real Helm finds each chart at that URL with the arguments _k8s.yml gives
kubernetes.core.helm (chart_ref, chart_repo_url, chart_version).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request

import yaml

from charts_support import NO_PUBLIC_CHART, chart_archive, render_plan  # type: ignore[import-not-found]

import artifacts  # type: ignore[import-not-found]
from rehearsal.chart_repo import ArtifactServer  # type: ignore[import-not-found]

DEFAULT_CRDS_BASE = "https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/v1.6.1/config/crd/standard/"


def test_defaults_use_each_releases_repo_and_the_pinned_gateway_api_tag(plans):
    for plan in plans.values():
        for rel in plan["releases"]:
            assert rel["chart_ref"] == rel["chart"] and rel["chart_repo_url"].startswith("https://"), rel["name"]
        files = [u.rsplit("/", 1)[1] for u in plan["gateway_api_crd_urls"]]
        assert plan["gateway_api_crd_urls"] == [DEFAULT_CRDS_BASE + f for f in files]
        assert files == ["gateway.networking.k8s.io_gatewayclasses.yaml", "gateway.networking.k8s.io_gateways.yaml",
                         "gateway.networking.k8s.io_httproutes.yaml", "gateway.networking.k8s.io_referencegrants.yaml"]
        # The same files, at the same tag, as the tests' pinned artefacts.
        for url in plan["gateway_api_crd_urls"]:
            assert artifacts.MANIFEST[f"schemas/crds/gateway-api/{url.rsplit('/', 1)[1]}"].url == url


def test_the_mirror_serves_every_chart_and_crd_the_role_asks_for(plans, helm, tmp_path):
    releases = [r for r in plans["dev"]["releases"] if r["name"] not in NO_PUBLIC_CHART]
    folders = {"gateway-api": artifacts.resolve_dir("schemas/crds/gateway-api")}
    with ArtifactServer(helm, [chart_archive(r) for r in releases], folders) as server:
        out = tmp_path / "plan.json"
        proc = render_plan("inventories/dev", out, {
            "cluster_config_helm_mirror_url": server.chart_repo_url,
            "cluster_config_gateway_api_crds_base_url": server.folder_url("gateway-api")}, helm_dir=helm.parent)
        assert proc.returncode == 0, proc.stdout[-3000:]
        plan = json.loads(out.read_text())
        assert {r["chart_repo_url"] for r in plan["releases"]} == {server.chart_repo_url}
        assert [r["name"] for r in plan["releases"]] == [r["name"] for r in plans["dev"]["releases"]]
        home = tmp_path / "helm-home"
        env = {"HOME": str(home), "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
               "HELM_DATA_HOME": str(home / "data")}
        for rel in plan["releases"]:
            if rel["name"] in NO_PUBLIC_CHART:
                continue
            shown = subprocess.run(
                [str(helm), "show", "chart", rel["chart_ref"], "--repo", rel["chart_repo_url"], "--version", rel["version"]],
                capture_output=True, text=True, timeout=120, check=False, env=env)
            assert shown.returncode == 0, f"{rel['name']}: {shown.stderr}"
            meta = yaml.safe_load(shown.stdout)
            assert (meta["name"], str(meta["version"])) == (rel["chart"], rel["version"])
        for url in plan["gateway_api_crd_urls"]:
            assert url.startswith(server.folder_url("gateway-api"))
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - 127.0.0.1
                crd = yaml.safe_load(response.read())
            # _gateway_api_crds.yml looks each CRD up by the name its file name gives (<group>_<plural>.yaml).
            group, plural = url.rsplit("/", 1)[1].removesuffix(".yaml").split("_", 1)
            assert crd["metadata"]["name"] == f"{plural}.{group}"
            assert crd["metadata"]["annotations"]["gateway.networking.k8s.io/channel"] == "standard"
            assert crd["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] == "v1.6.1"
        assert any("/charts/index.yaml" in r for r in server.requests)

"""Every key our values set is one the real chart reads.

Helm ignores a value no template reads, so a typo (`servicemonitor` for
`serviceMonitor`, a key moved between chart versions) silently turns a feature
off. Each key path the role's rendered values set must exist in the chart's
values.yaml (a subchart's own values.yaml under its name) or in its
values.schema.json. Below a map whose default is empty ({}), or one listed in
FREE_FORM, any key is accepted: those are the chart's documented free-form
maps.

cert-manager's `config` is such a map in the chart, but it is a
ControllerConfiguration, so its keys are checked against that type instead.
"""

from __future__ import annotations

from typing import Any

import pytest

from charts_support import NO_PUBLIC_CHART, chart_archive, chart_values  # type: ignore[import-not-found]

# (release, dotted path) -> why any key goes below it.
FREE_FORM = {
    ("kube-prometheus-stack", "grafana.grafana.ini"):
        "grafana's ini file, section by section (grafana chart values.yaml: `grafana.ini`)",
}

# cert-manager v1.21.1, pkg/apis/config/controller/v1alpha1/types.go: the JSON
# fields of ControllerConfiguration (with its TypeMeta) and of GatewayAPIConfig,
# and the ones marked Deprecated there.
CONTROLLER_CONFIGURATION = {
    "apiVersion", "kind", "kubeConfig", "apiServerHost", "kubernetesAPIQPS", "kubernetesAPIBurst", "namespace",
    "clusterResourceNamespace", "leaderElectionConfig", "controllers", "issuerAmbientCredentials",
    "clusterIssuerAmbientCredentials", "enableCertificateOwnerRef", "enableGatewayAPI", "enableGatewayAPIListenerSet",
    "copiedAnnotationPrefixes", "numberOfConcurrentWorkers", "maxConcurrentChallenges", "metricsListenAddress",
    "metricsTLSConfig", "healthzListenAddress", "enablePprof", "pprofAddress", "logging", "featureGates",
    "ingressShimConfig", "acmeHTTP01Config", "acmeDNS01Config", "pemSizeLimitsConfig", "gatewayAPI",
    "certificateRequestMinimumBackoffDuration", "certificateRequestMaximumBackoffDuration",
}
GATEWAY_API_CONFIG = {"enabled", "enableListenerSet", "extraProtocols"}
DEPRECATED = {"apiServerHost": "kubeConfig", "enableGatewayAPI": "gatewayAPI.enabled",
              "enableGatewayAPIListenerSet": "gatewayAPI.enableListenerSet"}


def _resolve(schema: dict[str, Any] | None, root: dict[str, Any] | None) -> dict[str, Any] | None:
    while isinstance(schema, dict) and "$ref" in schema and root is not None:
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _schema_child(schema: dict[str, Any] | None, root: dict[str, Any] | None, key: str) -> tuple[bool, Any]:
    """(does the schema name this key, its schema)."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return False, None
    props = schema.get("properties") or {}
    if key in props:
        return True, props[key]
    return False, None


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base.get(key), value)
        return out
    return over if over is not None else base


def unknown_keys(release: str, ours: dict[str, Any], defaults: dict[str, Any], subcharts: dict[str, Any],
                 schema: dict[str, Any] | None) -> list[str]:
    problems: list[str] = []

    def walk(path: list[str], value: dict[str, Any], default: Any, sub_schema: Any) -> None:
        dotted = ".".join(path)
        if (release, dotted) in FREE_FORM:
            return
        if path and isinstance(default, dict) and not default and not (_resolve(sub_schema, schema) or {}).get("properties"):
            return  # the chart's default is an empty map: free-form
        for key, child in value.items():
            here = path + [key]
            in_default = isinstance(default, dict) and key in default
            in_schema, child_schema = _schema_child(sub_schema, schema, key)
            child_default = default.get(key) if isinstance(default, dict) else None
            if not path and key in subcharts:
                in_default, child_default = True, _merge(subcharts[key], child_default)
            if not (in_default or in_schema):
                problems.append(f"{release}: {'.'.join(here)} is not a value of the chart")
                continue
            if isinstance(child, dict):
                walk(here, child, child_default, child_schema)

    walk([], ours, defaults, schema)
    return problems


def releases_with_charts(plans) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for plan in plans.values():
        for rel in plan["releases"]:
            if rel["name"] not in NO_PUBLIC_CHART:
                out.setdefault(rel["name"], rel)
    return out


def test_every_value_we_set_is_read_by_the_chart(plans):
    releases = releases_with_charts(plans)
    assert set(releases) == {"kube-prometheus-stack", "cert-manager", "external-dns", "dcgm-exporter", "keda"}
    problems = []
    for name, rel in releases.items():
        defaults, subcharts, schema = chart_values(chart_archive(rel))
        problems += unknown_keys(name, rel["values"], defaults, subcharts, schema)
    assert not problems, "\n".join(problems)


def test_cert_manager_config_is_a_controller_configuration_without_deprecated_fields(plans):
    config = next(r for r in plans["dev"]["releases"] if r["name"] == "cert-manager")["values"]["config"]
    assert set(config) <= CONTROLLER_CONFIGURATION, set(config) - CONTROLLER_CONFIGURATION
    assert set(config.get("gatewayAPI", {})) <= GATEWAY_API_CONFIG
    used = {old: new for old, new in DEPRECATED.items() if old in config}
    assert not used, f"deprecated in cert-manager v1.21.1: {used} (use the replacement)"
    assert config["gatewayAPI"]["enabled"] is True


@pytest.mark.parametrize("typo,path", [
    ({"serviceMonitor": {"enabled": True}}, "cert-manager: serviceMonitor"),
    ({"prometheus": {"serviceMonitor": {"enabled": True}}}, "cert-manager: prometheus.serviceMonitor"),
])
def test_the_check_catches_a_typo(plans, typo, path):
    rel = next(r for r in plans["dev"]["releases"] if r["name"] == "cert-manager")
    defaults, subcharts, schema = chart_values(chart_archive(rel))
    problems = unknown_keys("cert-manager", _merge(rel["values"], typo), defaults, subcharts, schema)
    assert any(p.startswith(path + " ") for p in problems), problems


def test_the_check_catches_a_typo_below_a_subchart(plans):
    rel = next(r for r in plans["dev"]["releases"] if r["name"] == "kube-prometheus-stack")
    defaults, subcharts, schema = chart_values(chart_archive(rel))
    typo = _merge(rel["values"], {"grafana": {"sidecar": {"dashboard": {"enabled": True}}}})
    problems = unknown_keys("kube-prometheus-stack", typo, defaults, subcharts, schema)
    assert problems == ["kube-prometheus-stack: grafana.sidecar.dashboard is not a value of the chart"]

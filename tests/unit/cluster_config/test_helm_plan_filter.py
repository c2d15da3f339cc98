"""The helm_plan filter: where each release's chart comes from, in order, with its values."""

from __future__ import annotations

import sys

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / ".collections"))
from ansible.errors import AnsibleFilterError  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.do_solutions.gtc_demo.plugins.filter.helm_plan import helm_plan  # noqa: E402  pylint: disable=wrong-import-position

RELEASES = [
    {"name": "kube-prometheus-stack", "namespace": "monitoring", "chart": "kube-prometheus-stack", "version": "79.5.0",
     "repo": "https://prometheus-community.github.io/helm-charts", "values_file": "kube-prometheus-stack"},
    {"name": "cert-manager", "namespace": "cert-manager", "chart": "cert-manager", "version": "v1.21.1",
     "repo": "https://charts.jetstack.io", "values_file": "cert-manager"},
]
VALUES = [{"grafana": {}}, {"crds": {"enabled": True}}]


def test_each_release_comes_from_its_own_repository_in_order():
    plan = helm_plan(RELEASES, VALUES)
    assert [(r["name"], r["chart_ref"], r["chart_repo_url"], r["values"]) for r in plan] == [
        ("kube-prometheus-stack", "kube-prometheus-stack", "https://prometheus-community.github.io/helm-charts",
         {"grafana": {}}),
        ("cert-manager", "cert-manager", "https://charts.jetstack.io", {"crds": {"enabled": True}}),
    ]


def test_a_mirror_serves_every_chart_and_a_folder_of_archives_wins():
    assert {r["chart_repo_url"] for r in helm_plan(RELEASES, VALUES, mirror_url="http://127.0.0.1:1/c")} == {
        "http://127.0.0.1:1/c"}
    local = helm_plan(RELEASES, VALUES, chart_dir="/charts/", mirror_url="http://127.0.0.1:1/c")
    assert [(r["chart_ref"], r["chart_repo_url"]) for r in local] == [
        ("/charts/kube-prometheus-stack-79.5.0.tgz", ""), ("/charts/cert-manager-v1.21.1.tgz", "")]


def test_a_version_is_a_string():
    (only,) = helm_plan([{**RELEASES[0], "version": 79}], [{}])
    assert only["version"] == "79"


@pytest.mark.parametrize("releases,values,needle", [
    (RELEASES, VALUES[:1], "one values mapping per release"),
    ([{**RELEASES[0], "chart": ""}], [{}], "lacks chart"),
    (RELEASES[:1], ["not: a mapping"], "not a mapping"),
    ("kube-prometheus-stack", [], "list of mappings"),
])
def test_a_wrong_plan_is_refused(releases, values, needle):
    with pytest.raises(AnsibleFilterError, match=needle):
        helm_plan(releases, values)

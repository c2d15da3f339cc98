"""cluster_config's preflight checks (tasks/validate.yml), run the way site.yml's preflight runs them.

No infra__output, no kubeconfig, no cluster: every check here must stand on
the inventory and the environment alone, so a bad input stops the run before
infra spends money (issue 12, defect 12). A failed check names the variable
at fault and never prints a secret's value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import fake_helm as make_fake_helm

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(__file__).with_name("validate.yml")
SECRETS = {"HF_TOKEN": "hf_value_4821", "SPACES_ACCESS_KEY_ID": "spaces_id_value_4821",
           "SPACES_SECRET_ACCESS_KEY": "spaces_secret_value_4821", "DIGITALOCEAN_ACCESS_TOKEN": "dop_value_4821"}
SECRET_NAMES = {*SECRETS, "DIGITALOCEAN_TOKEN", "GRADIENT_API_KEY"}


@pytest.fixture(scope="module")
def fake_helm(tmp_path_factory) -> Path:
    """A folder with a `helm` that answers `helm version --short` as Helm v3 does (v3.X.Y+g<commit>)."""
    return make_fake_helm(tmp_path_factory.mktemp("bin"))


def run(env_secrets: dict[str, str], path_dirs: list[Path], inventory: str = "inventories/dev",
        **extra) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRET_NAMES and not k.startswith("K8S_AUTH_")}
    env.pop("KUBECONFIG", None)
    env.update(env_secrets)
    # Only the test's folders and the venv: no helm the machine happens to have.
    env["PATH"] = os.pathsep.join([*map(str, path_dirs), str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), str(PLAYBOOK), "-i", inventory,
           "-e", json.dumps(extra)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    for value in filter(None, env_secrets.values()):
        assert value not in proc.stdout + proc.stderr, "a secret value reached the output"
    return proc


def test_the_dev_inputs_pass_without_infra_or_a_kubeconfig(fake_helm):
    proc = run(SECRETS, [fake_helm])
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_gradient_api_key_is_not_required_nor_made_a_secret(fake_helm):
    """The load generator owns GRADIENT_API_KEY (optional; offline follow-ups without it)."""
    proc = run(SECRETS, [fake_helm])
    assert proc.returncode == 0 and "GRADIENT_API_KEY" not in proc.stdout, proc.stdout[-3000:]
    defaults = yaml.safe_load((REPO / "roles" / "cluster_config" / "defaults" / "main.yml").read_text())
    read = {var for secret in defaults["cluster_config_secrets"] for var in secret["data"].values()}
    assert "GRADIENT_API_KEY" not in read and "gradient-api-key" not in {
        s["name"] for s in defaults["cluster_config_secrets"]}


@pytest.mark.parametrize("missing", ["HF_TOKEN", "SPACES_SECRET_ACCESS_KEY"])
def test_a_missing_secret_is_named(fake_helm, missing):
    proc = run({k: v for k, v in SECRETS.items() if k != missing}, [fake_helm])
    assert proc.returncode != 0
    assert f"Set the environment variable(s) {missing} before running cluster_config on doks" in proc.stdout, \
        proc.stdout[-3000:]


def test_the_digitalocean_token_follows_the_one_rule(fake_helm):
    """DIGITALOCEAN_ACCESS_TOKEN, else DIGITALOCEAN_TOKEN (as infra and playbooks/images.yml read it)."""
    without = {k: v for k, v in SECRETS.items() if k != "DIGITALOCEAN_ACCESS_TOKEN"}
    assert run({**without, "DIGITALOCEAN_TOKEN": "dop_other_4821"}, [fake_helm]).returncode == 0
    proc = run(without, [fake_helm])
    assert proc.returncode != 0
    assert "Set the environment variable(s) DIGITALOCEAN_ACCESS_TOKEN before running cluster_config" in proc.stdout
    assert "DIGITALOCEAN_ACCESS_TOKEN may also come from DIGITALOCEAN_TOKEN" in proc.stdout, proc.stdout[-3000:]
    # Empty counts as unset.
    assert run({**without, "DIGITALOCEAN_ACCESS_TOKEN": ""}, [fake_helm]).returncode != 0


def test_kind_needs_only_the_hf_token(fake_helm):
    assert run({"HF_TOKEN": "hf_value_4821"}, [fake_helm], inventory="inventories/kind").returncode == 0
    proc = run({}, [fake_helm], inventory="inventories/kind")
    assert "Set the environment variable(s) HF_TOKEN before running cluster_config on kind" in proc.stdout


@pytest.mark.parametrize("extra,needle", [
    ({"gtc_demo_hostname": "localhost"}, "cluster_config_dns_zone '' must be a DNS domain"),
    ({"gtc_demo_hostname": "gtc.Example.COM"}, "cluster_config_dns_zone 'Example.COM' must be a DNS domain"),
    ({"cluster_config_dns_zone": "example.org"},
     "cluster_config_dns_zone 'example.org' must be a DNS domain (lower case, at least one dot) that contains "
     "gtc_demo_hostname 'gtc-2026-dev.digitalocean.solutions'"),
])
def test_a_bad_dns_zone_is_refused(fake_helm, extra, needle):
    proc = run(SECRETS, [fake_helm], **extra)
    assert proc.returncode != 0 and needle in proc.stdout, proc.stdout[-3000:]


def test_helm_must_be_found(fake_helm, tmp_path):
    proc = run(SECRETS, [])
    assert proc.returncode != 0
    assert "helm not found: cluster_config_helm_binary is 'helm' and it is not on PATH" in proc.stdout, \
        proc.stdout[-3000:]
    proc = run(SECRETS, [], cluster_config_helm_binary=str(tmp_path / "nowhere" / "helm"))
    assert f"helm not found: cluster_config_helm_binary is '{tmp_path}/nowhere/helm' and no such file exists" \
        in proc.stdout
    # A path works without PATH.
    assert run(SECRETS, [], cluster_config_helm_binary=str(fake_helm / "helm")).returncode == 0


def test_something_that_is_not_helm_v3_is_refused(tmp_path):
    (tmp_path / "helm").write_text("#!/bin/sh\necho v2.17.0+ga690bad\n")
    (tmp_path / "helm").chmod(0o755)
    proc = run(SECRETS, [tmp_path])
    assert proc.returncode != 0 and "is not a working Helm v3" in proc.stdout, proc.stdout[-3000:]


@pytest.mark.parametrize("extra,needle", [
    ({"cluster_config_helm_mirror_url": "oci://registry.example.com/charts"},
     "cluster_config_helm_mirror_url must be empty or an http(s) chart repository URL"),
    ({"cluster_config_gateway_api_crds_files": ["gateways.yaml"]}, "upstream CRD file names like <group>_<plural>.yaml"),
])
def test_bad_chart_and_crd_sources_are_refused(fake_helm, extra, needle):
    proc = run(SECRETS, [fake_helm], **extra)
    assert proc.returncode != 0 and needle in proc.stdout, proc.stdout[-3000:]


def _releases_without(field: str, name: str = "keda") -> list[dict]:
    releases = yaml.safe_load((REPO / "roles" / "cluster_config" / "defaults" / "main.yml").read_text())[
        "cluster_config_helm_releases"]
    for release in releases:
        if release["name"] == name:
            release.pop(field)
    return releases


def test_a_release_without_a_chart_source_is_named(fake_helm):
    proc = run(SECRETS, [fake_helm], cluster_config_helm_releases=_releases_without("repo"))
    assert proc.returncode != 0
    assert "The Helm release(s) keda have no repo" in proc.stdout, proc.stdout[-3000:]
    # A mirror serves every chart: then no release needs its own repo.
    assert run(SECRETS, [fake_helm], cluster_config_helm_releases=_releases_without("repo"),
               cluster_config_helm_mirror_url="http://127.0.0.1:9/charts").returncode == 0


@pytest.mark.parametrize("change,needle", [
    ({"cluster_config_helm_releases": "keda"}, "cluster_config_helm_releases"),
    ({"cluster_config_helm_releases": _releases_without("version")}, "version"),
    ({"cluster_config_secrets": [{"name": "x", "namespace": "gtc-demo", "data": {"K": "V"}, "platforms": ["docks"]}]},
     "docks"),
])
def test_the_argument_spec_refuses_a_malformed_release_or_secret(fake_helm, change, needle):
    """Types and fields are the spec's (meta/argument_specs.yml, entry point validate), before any task."""
    proc = run(SECRETS, [fake_helm], **change)
    assert proc.returncode != 0
    assert "Validating arguments against arg spec" in proc.stdout or "argument_spec" in proc.stdout.lower()
    assert needle in proc.stdout, proc.stdout[-3000:]


@pytest.mark.parametrize("extra, needle", [
    ({"cluster_config_grafana_booth_dashboard": "booth.json"},
     "cluster_config_grafana_booth_dashboard 'booth.json' must be one of the dashboards"),
    ({"cluster_config_grafana_admin_secret": "Grafana_Admin"},
     "cluster_config_grafana_admin_secret must be empty (the chart generates the password) or the name of a "
     "Secret (got 'Grafana_Admin')"),
])
def test_bad_grafana_inputs_are_refused_before_anything_changes(fake_helm, extra, needle):
    """The kiosk URL's dashboard must be one the role provisions; a given admin Secret must be a Secret's name."""
    proc = run(SECRETS, [fake_helm], **extra)
    assert proc.returncode != 0 and needle in " ".join(proc.stdout.split()), proc.stdout[-3000:]

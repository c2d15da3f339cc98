"""The collection artifact holds what an Ansible user installs, and nothing of the
repository's own tooling: no tests, benchmarks, plots or booth environments."""
from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from helpers import REPO, VENV_BIN


def test_the_built_collection_is_lean(tmp_path: Path) -> None:
    subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path)],
                   cwd=REPO, check=True, capture_output=True, text=True)
    (artifact,) = tmp_path.glob("do_solutions-gtc_demo-*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    tops = {n.split("/")[0] for n in names}
    assert tops <= {"roles", "plugins", "playbooks", "files", "apps", "inventories", "meta", "site.yml",
                    "README.md", "CHANGELOG.md", "LICENSE", "changelogs", "ansible.cfg", "requirements.txt", "requirements.yml",
                    "MANIFEST.json", "FILES.json"}, sorted(tops)
    for unwanted in ("tests/", "benchmarks/", "molecule/", "inventories/dev/", "inventories/prod/", ".ci/",
                     "__pycache__", ".egg-info", "node_modules"):
        assert not [n for n in names if unwanted in n], unwanted
    assert not [n for n in names if n.endswith((".png", ".pyc"))]
    # The changelog as generated (the fragments and antsibull-changelog's plugin cache stay in the repository).
    assert [n for n in names if n.startswith("changelogs/")] == ["changelogs/changelog.yaml", "changelogs/config.yaml"]
    # What a user runs: every role, the plugins, the playbooks, and the app the loadgen role installs.
    for needed in ("LICENSE", "CHANGELOG.md", "site.yml", "playbooks/site.yml", "playbooks/teardown.yml", "playbooks/validate.yml",
                   "roles/_common/defaults/main.yml", "plugins/filter/frontends.py",
                   "apps/loadgen/pyproject.toml", "apps/loadgen/Dockerfile", "inventories/local/group_vars/all.yml",
                   "files/perf_profile/llama_perf_profile.py"):
        assert needed in names, needed
    roles = {n.split("/")[1] for n in names if n.startswith("roles/")}
    assert roles == {p.name for p in (REPO / "roles").iterdir() if p.is_dir()}

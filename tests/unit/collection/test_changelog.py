"""CHANGELOG.md is what antsibull-changelog generates from changelogs/ (fragments and
changelog.yaml), not a hand-written file: the fragments lint clean, and generating
again from the repository's changelogs/ gives the committed CHANGELOG.md byte for byte."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from helpers import REPO, VENV_BIN

ANTSIBULL_CHANGELOG = str(VENV_BIN / "antsibull-changelog")


def _copy(tmp_path: Path) -> Path:
    """What generate reads: galaxy.yml, changelogs/ (with its plugin cache), and the old CHANGELOG.md it rewrites."""
    work = tmp_path / "ansible_collections" / "do_solutions" / "gtc_demo"
    work.mkdir(parents=True)
    shutil.copy(REPO / "galaxy.yml", work)
    shutil.copytree(REPO / "changelogs", work / "changelogs")
    return work


def test_the_fragments_and_changelog_yaml_lint_clean() -> None:
    for args in (["lint"], ["lint-changelog-yaml", "changelogs/changelog.yaml"]):
        proc = subprocess.run([ANTSIBULL_CHANGELOG, *args], cwd=REPO, capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and not proc.stdout.strip(), (args, proc.stdout, proc.stderr)


def test_changelog_md_is_generated_from_changelogs(tmp_path: Path) -> None:
    work = _copy(tmp_path)
    subprocess.run([ANTSIBULL_CHANGELOG, "generate"], cwd=work, check=True, capture_output=True, text=True)
    assert (work / "CHANGELOG.md").read_text() == (REPO / "CHANGELOG.md").read_text(), (
        "CHANGELOG.md differs from what antsibull-changelog generates: add a fragment under changelogs/fragments and "
        "run `antsibull-changelog release` (or `generate`), do not edit CHANGELOG.md by hand")


def test_the_galaxy_version_is_the_newest_release() -> None:
    releases = yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())["releases"]
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    assert version in releases, f"galaxy.yml says {version}, changelog.yaml has {sorted(releases)}"
    newest = max(releases, key=lambda v: tuple(int(p) for p in v.split(".")))
    assert version == newest, (version, newest)


def test_a_hand_edit_of_changelog_md_is_caught(tmp_path: Path) -> None:
    """The comparison above is not vacuous: generate rewrites a hand-edited CHANGELOG.md."""
    work = _copy(tmp_path)
    (work / "CHANGELOG.md").write_text((REPO / "CHANGELOG.md").read_text() + "\n* a line written by hand\n")
    subprocess.run([ANTSIBULL_CHANGELOG, "generate"], cwd=work, check=True, capture_output=True, text=True)
    assert "written by hand" not in (work / "CHANGELOG.md").read_text()

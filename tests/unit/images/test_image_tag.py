"""The image tag rule (roles/loadgen/vars/main.yml, loadgen__image_tag): YYYYMMDD-<short sha> of
the collection's own last commit in a git checkout; from a copy without its own git (an installed
collection, a tarball) only loadgen_image_tag names it, and playbooks/images.yml says so. The copy
is the one `ansible-galaxy collection build` makes, installed into a temporary path."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import REPO, VENV_BIN, run_playbook

TAG = "20250102-abc1234"


def shown(collections: Path | None, *extra_vars: dict) -> dict:
    """{"image": loadgen__output.image} as the role publishes it from that copy of the collection."""
    env = {"ANSIBLE_COLLECTIONS_PATH": str(collections)} if collections else {}
    args = []
    for variables in extra_vars:
        args += ["-e", json.dumps(variables)]
    run = run_playbook("tests/unit/images/show.yml", *args, env=env, json_output=True)
    assert run.returncode == 0, run.output[-3000:]
    (image,) = [t.result["msg"] for t in run.tasks() if t.name == "Show the image"]
    return {"image": image}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The collection as ansible-galaxy builds and installs it: no .git anywhere above it."""
    out = tmp_path_factory.mktemp("galaxy")
    galaxy = str(VENV_BIN / "ansible-galaxy")
    subprocess.run([galaxy, "collection", "build", "--output-path", str(out), str(REPO)], check=True,
                   capture_output=True, cwd=out)
    (tarball,) = out.glob("do_solutions-gtc_demo-*.tar.gz")
    subprocess.run([galaxy, "collection", "install", str(tarball), "-p", str(out / "collections"), "--no-deps",
                    "--force"], check=True, capture_output=True, cwd=out)
    root = out / "collections"
    assert (root / "ansible_collections/do_solutions/gtc_demo/roles/loadgen").is_dir()
    assert not [p for p in [root, *root.parents] if (p / ".git").exists()]
    return root


def test_a_checkout_tags_the_image_with_its_last_commit():
    expected = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--abbrev=7", "--format=%cd-%h",
                               "--date=format:%Y%m%d"], check=True, capture_output=True, text=True).stdout.strip()
    assert re.fullmatch(r"\d{8}-[0-9a-f]{7,}", expected)
    assert shown(None)["image"]["tag"] == expected
    assert shown(None, {"loadgen_image_tag": TAG})["image"]["tag"] == TAG


def test_an_installed_collection_has_no_tag_unless_given_one(installed):
    assert shown(installed)["image"]["tag"] == ""
    image = shown(installed, {"loadgen_image_tag": TAG})["image"]
    assert image["tag"] == TAG and image["repository"].endswith("/gtc-demo-loadgen")


def test_images_playbook_from_an_installed_collection(installed):
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed), "DOCKER_HOST": "unix:///nonexistent/gtc-demo-test/docker.sock"}
    untagged = run_playbook("do_solutions.gtc_demo.images", env=env, json_output=True)
    failed = untagged.failed_tasks()
    assert untagged.returncode != 0 and [t.name for t in failed] == ["Check that the image has a tag"]
    assert "set loadgen_image_tag" in failed[0].result["msg"]
    tagged = run_playbook("do_solutions.gtc_demo.images", "-e", f"loadgen_image_tag={TAG}", env=env,
                          json_output=True)
    assert tagged.returncode == 0, tagged.output[-3000:]
    said = " ".join(str(t.result.get("msg", "")) for t in tagged.tasks() if t.action == "ansible.builtin.debug")
    assert f"gtc-demo-loadgen:{TAG}." in said and "No Docker engine answers" in said


def test_a_copy_inside_another_git_repository_does_not_take_its_commit(installed, tmp_path):
    """A collection installed into some project's git tree has no commit of its own: the project's
    last commit names other code, so the tag stays empty (loadgen_image_tag must be given)."""
    outer = tmp_path / "project"
    shutil.copytree(installed, outer / "collections", symlinks=True)
    git = ["git", "-C", str(outer), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "outer"], check=True)
    assert shown(outer / "collections")["image"]["tag"] == ""

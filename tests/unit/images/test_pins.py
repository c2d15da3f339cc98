"""The load generator's dependency pins have one source: apps/loadgen/requirements.in names the
direct dependencies with their versions, apps/loadgen/requirements.lock (made from it by a pinned
uv, with hashes) fixes the whole closure, and everything that installs the app follows the lock:
the image (Dockerfile: the lock with --require-hashes), the loadgen role's local install (its pins
are read from the lock) and pyproject.toml (its == pins must be the lock's). Each test fails when one
of them drifts."""
from __future__ import annotations

import json
import re
import tomllib

from helpers import REPO, run_playbook
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

APP = REPO / "apps" / "loadgen"
LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock() -> dict[str, str]:
    """{normalised name: version} of the lock, each entry checked to carry hashes."""
    pins: dict[str, str] = {}
    entries = re.split(r"\n(?=[A-Za-z0-9])", (APP / "requirements.lock").read_text())
    for entry in entries:
        match = LOCK_LINE.match(entry)
        if not match:
            continue
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"no hash for {match.group(1)} in the lock"
        pins[normal(match.group(1))] = match.group(2)
    assert pins, "requirements.lock pins nothing"
    return pins


def direct() -> dict[str, str]:
    pins = {}
    for line in (APP / "requirements.in").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"requirements.in must pin exactly: {line}"
            pins[normal(req.name)] = spec.version
    return pins


def test_the_lock_holds_every_direct_pin_at_its_version():
    locked = lock()
    assert {name: locked.get(name) for name in direct()} == direct()


def test_the_lock_names_the_tool_and_command_that_made_it():
    header = (APP / "requirements.lock").read_text().splitlines()[:3]
    assert any("uv pip compile requirements.in --generate-hashes" in line and "uv==" in line for line in header)


def test_pyproject_pins_are_the_locks():
    project = tomllib.loads((APP / "pyproject.toml").read_text())
    locked = lock()
    runtime = project["project"]["dependencies"] + project["project"]["optional-dependencies"]["fast"]
    everything = runtime + [r for extra in project["project"]["optional-dependencies"].values() for r in extra]
    for text in everything:
        req = Requirement(text)
        if normal(req.name) in locked or text in runtime:
            assert [s.operator for s in req.specifier] == ["=="], f"pyproject.toml does not pin {text} exactly"
            assert locked.get(normal(req.name)) == next(iter(req.specifier)).version, (
                f"pyproject.toml has {text}, the lock {req.name}=={locked.get(normal(req.name))}")
    # Every direct dependency of the app is in pyproject (the build backend is in build-system).
    named = {normal(Requirement(r).name) for r in runtime}
    assert named | {"setuptools"} == set(direct())
    (backend,) = [Requirement(r) for r in project["build-system"]["requires"]]
    assert locked[normal(backend.name)] in SpecifierSet(str(backend.specifier))


def test_the_image_installs_the_lock_with_hashes_and_pins_nothing_else():
    dockerfile = (APP / "Dockerfile").read_text()
    assert re.search(r"^COPY requirements\.lock ", dockerfile, re.M)
    installs = re.findall(r"^RUN pip install (.*)$", dockerfile, re.M)
    assert any("--require-hashes" in i and "-r requirements.lock" in i and "--no-deps" in i for i in installs)
    assert not [i for i in installs if "==" in i], f"the Dockerfile pins versions of its own: {installs}"


def test_the_role_installs_the_locks_pins():
    variables = {"loadgen_image_tag": "t", "show_role_path": str(REPO / "roles" / "loadgen")}
    run = run_playbook("tests/unit/images/show.yml", "-e", json.dumps(variables), json_output=True)
    assert run.returncode == 0, run.output[-3000:]
    (pins,) = [t.result["msg"] for t in run.tasks() if t.name == "Show the pins"]
    role = {normal(p.partition("==")[0]): p.partition("==")[2] for p in pins}
    assert all("==" in p and " " not in p for p in pins), pins
    assert role == lock()

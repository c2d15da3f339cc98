"""`make demo` checks the machine before it installs anything, and installs only
what the demo runs (ansible-core, requirements/demo.txt); the test tooling comes
with `make test`. `make stop` keeps what is installed."""
from __future__ import annotations

import os
import runpy
import subprocess
from pathlib import Path

import pytest

from helpers import REPO

CHECK = runpy.run_path(str(REPO / "scripts" / "check_platform.py"))
problems = CHECK["problems"]


@pytest.mark.parametrize("system, machine", [("Linux", "x86_64"), ("Linux", "aarch64")])
@pytest.mark.parametrize("version", [(3, 11), (3, 12), (3, 13)])
def test_supported_machines_pass(system: str, machine: str, version: tuple[int, int]) -> None:
    assert problems(system, machine, version) == []


def test_macos_is_sent_to_a_linux_vm() -> None:
    (problem,) = problems("Darwin", "arm64", (3, 11))
    assert "Linux only" in problem and "Linux VM" in problem and "Darwin" in problem


def test_an_unsupported_cpu_is_named() -> None:
    (problem,) = problems("Linux", "riscv64", (3, 11))
    assert "riscv64" in problem


@pytest.mark.parametrize("version", [(3, 10), (3, 14), (2, 7)])
def test_an_unsupported_python_says_what_to_run_instead(version: tuple[int, int]) -> None:
    (problem,) = problems("Linux", "x86_64", version)
    assert f"{version[0]}.{version[1]}" in problem and "make PYTHON=python3.11 demo" in problem


def _make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAKEFLAGS": ""}
    return subprocess.run(["make", "--no-print-directory", f"VENV={tmp_path / 'venv'}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False, timeout=60)


def test_make_demo_stops_on_an_old_python_before_installing(tmp_path: Path) -> None:
    fake = tmp_path / "python3.10"
    fake.write_text("#!/bin/sh\nexec python3 -c 'import runpy, sys; sys.version_info = (3, 10, 12, \"final\", 0); "
                    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name=\"__main__\")' \"$@\"\n")
    fake.chmod(0o755)
    proc = _make(tmp_path, f"PYTHON={fake}", "demo")
    assert proc.returncode != 0
    assert "the demo needs Python 3.11, 3.12 or 3.13" in proc.stderr and "3.10" in proc.stderr, proc.stderr
    assert not (tmp_path / "venv").exists(), "nothing may be installed on a machine that cannot run the demo"


def test_make_demo_stops_when_the_python_is_missing(tmp_path: Path) -> None:
    proc = _make(tmp_path, "PYTHON=python3.99-not-here", "demo")
    assert proc.returncode != 0 and "python3.99-not-here not found" in proc.stderr, proc.stderr
    assert not (tmp_path / "venv").exists()


def test_make_demo_installs_the_demo_requirements_only(tmp_path: Path) -> None:
    dry = _make(tmp_path, "-n", "demo")
    assert dry.returncode == 0, dry.stderr
    assert "-r requirements/demo.txt" in dry.stdout
    assert "dev.txt" not in dry.stdout and "apps/loadgen[test]" not in dry.stdout
    test = _make(tmp_path, "-n", "setup")
    assert "-r requirements/dev.txt" in test.stdout


def test_the_demo_requirements_are_ansible_core_and_its_dependencies_pinned() -> None:
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements" / "demo.txt").read_text().splitlines()]
    pins = dict(line.split("==") for line in lines if line)
    assert "ansible-core" in pins and "ansible" not in pins
    assert all(version for version in pins.values())
    dev = (REPO / "requirements" / "dev.txt").read_text().splitlines()
    assert "-r demo.txt" in dev, "the test tooling installs on top of the demo's pins, not beside them"
    assert not [line for line in dev if line.split("==")[0] in pins], "a pin has one owner: requirements/demo.txt"


def test_stop_and_start_keep_what_is_installed() -> None:
    stop = _make(Path("/nonexistent"), "-n", "stop")
    assert "playbooks/stop.yml" in stop.stdout and "teardown" not in stop.stdout
    start = _make(Path("/nonexistent"), "-n", "start")
    assert "site.yml" in start.stdout

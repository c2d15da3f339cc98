"""Shared helpers for the test suite: running playbooks and finding free ports."""
from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class TaskResult:
    """One task's result on localhost, from Ansible's JSON callback."""

    role: str          # the role's FQCN ('' for a play's own task)
    name: str          # the task's name without the role
    action: str        # the module or action (ansible.builtin.validate_argument_spec, ...)
    changed: bool
    failed: bool
    skipped: bool
    result: dict[str, Any]


@dataclass
class PlaybookRun:
    """The outcome of one ansible-playbook run."""

    args: list[str]
    returncode: int
    output: str
    stdout: str = ""

    def json_document(self) -> dict[str, Any]:
        """The JSON callback's document. With -v..-vvvv Ansible prints its verbose lines on
        stdout first; the document is what follows the last line that is a lone "{"."""
        start = 0 if self.stdout.startswith("{") else self.stdout.rfind("\n{\n") + 1
        return json.loads(self.stdout[start:])

    def tasks(self) -> list[TaskResult]:
        """Every task's result, in order (needs ``run_playbook(..., json_output=True)``)."""
        try:
            document = self.json_document()
        except ValueError as err:
            raise AssertionError(f"not the JSON callback's output ({err}):\n{self.output[-3000:]}") from None
        results: list[TaskResult] = []
        for play in document.get("plays", []):
            for task in play.get("tasks", []):
                host = task.get("hosts", {}).get("localhost")
                if host is None:
                    continue
                role, _sep, name = task["task"]["name"].rpartition(" : ")
                results.append(TaskResult(role, name, host.get("action", ""), bool(host.get("changed")),
                                          bool(host.get("failed")), bool(host.get("skipped")), host))
        return results

    def failed_tasks(self) -> list[TaskResult]:
        return [t for t in self.tasks() if t.failed and not t.result.get("ignore_errors")]

    @property
    def recap(self) -> dict[str, int]:
        """Counters of the PLAY RECAP line for localhost (ok, changed, failed, ...)."""
        if self.stdout.lstrip().startswith("{") or "\n{\n" in self.stdout:
            stats = self.json_document()["stats"]["localhost"]
            return {**stats, "failed": stats.get("failures", 0)}
        lines = [ln for ln in self.output.splitlines() if ln.startswith("localhost") and "ok=" in ln]
        if not lines:
            raise AssertionError(f"no PLAY RECAP in output of {self.args}:\n{self.output[-3000:]}")
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])}

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported a change (from the default callback)."""
        names: list[str] = []
        current = ""
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                current = line
            elif line.startswith("changed:"):
                names.append(current)
        return names


def run_playbook(
    playbook: str,
    *extra: str,
    inventory: str = "inventories/local",
    env: dict[str, str] | None = None,
    timeout: int = 1500,
    wrapper: list[str] | None = None,
    json_output: bool = False,
) -> PlaybookRun:
    """Run a playbook from the repository root with the tooling venv's Ansible.

    ``wrapper``: a command that runs ansible-playbook as its arguments (the
    rehearsal's private name resolution, for one). ``json_output``: use Ansible's
    JSON callback, so the test reads results (PlaybookRun.tasks) rather than text.
    """
    args = [*(wrapper or []), str(VENV_BIN / "ansible-playbook"), playbook, "-i", inventory, *extra]
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0"}
    full_env["PATH"] = f"{VENV_BIN}{os.pathsep}{full_env.get('PATH', '')}"
    if json_output:
        full_env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.json"
    if env:
        full_env.update(env)
    proc = subprocess.run(
        args, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return PlaybookRun(args, proc.returncode, proc.stdout + proc.stderr, proc.stdout)


def free_ports(count: int, consecutive: bool = False) -> list[int]:
    """Ports that are free on 127.0.0.1 now (consecutive=True: a run of `count`)."""
    if not consecutive:
        socks = []
        try:
            for _attempt in range(count):
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                socks.append(s)
            return [s.getsockname()[1] for s in socks]
        finally:
            for s in socks:
                s.close()
    # Below 32768: Dynamo reads DYN_SYSTEM_PORT as a signed 16-bit number. The search starts at a
    # random place: two sessions that start together and both began at 20000 picked the same run
    # (each checks before either binds), and one demo's workers then found their ports taken.
    bases = list(range(20000, 32000, 97))
    start = random.randrange(len(bases))
    for base in bases[start:] + bases[:start]:
        if all(_port_free(base + i) for i in range(count)):
            return list(range(base, base + count))
    raise RuntimeError("no run of free ports found")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (for leak checks)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.5, what: str = "") -> Any:
    """Call ``check`` until it returns something true, and return that; fail after ``timeout`` seconds.

    The failure names ``what`` (or the check's docstring) and the last value seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"not true after {timeout}s: {what or check.__doc__ or check}; last {last!r}")


def fake_helm(folder: Path) -> Path:
    """A `helm` in ``folder`` that answers only `helm version --short`, as Helm v3 does; returns ``folder``.

    For tests of input checks that must stop before any Helm call: cluster_config's
    preflight requires a Helm v3 on PATH, and anything else this helm is asked fails.
    """
    helm = folder / "helm"
    helm.write_text('#!/bin/sh\n[ "$1 $2" = "version --short" ] && echo v3.22.0+g0000000 && exit 0\nexit 1\n')
    helm.chmod(0o755)
    return folder


def cluster_support():
    """tests/cluster/fixture.py, imported once under one module name.

    Every user gets the same module object, so the session's test cluster
    (its `k8s_cluster` fixture) starts once however many test folders use it.
    """
    name = "gtc_demo_test_cluster"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "cluster" / "fixture.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def run_module_adhoc(module: str, args: dict[str, Any], *flags: str, timeout: int = 180) -> dict[str, Any]:
    """One module run as a playbook runs it (ansible ad hoc on localhost, JSON callback); its result."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    cmd = [str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
           "-e", f"ansible_python_interpreter={sys.executable}", "-m", module, "-a", json.dumps(args), *flags]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"no JSON from ansible:\n{proc.stdout}\n{proc.stderr}") from exc
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]

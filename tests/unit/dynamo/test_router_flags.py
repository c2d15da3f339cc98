"""7. Router flags: every flag the dynamo role gives a frontend exists in the
pinned Dynamo's `python -m dynamo.frontend --help` and is not deprecated there,
and the router policy file the role writes is accepted by that frontend.

Dynamo 1.6 marks --router-kv-overlap-score-credit and --router-prefill-load-scale
"deprecated and will be removed in v1.7" in favour of parameters in a
--router-policy-config file (dynamo/common/configuration/groups/kv_router_args.py
in the pinned wheel, `_policy_parameter`). The frontend venv is the one
benchmarks/run builds with the local demo's pins (ai-dynamo 1.6.1).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from dynamo_render import main_container, pinned_dynamo_version  # type: ignore[import-not-found]

FRONTEND_ENV = {"DYN_DISCOVERY_BACKEND": "file", "DYN_REQUEST_PLANE": "tcp", "DYN_EVENT_PLANE": "zmq",
                "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def parse_help(text: str) -> dict[str, bool]:
    """{flag: deprecated} for every option of an argparse --help text."""
    flags: dict[str, bool] = {}
    entries: list[tuple[list[str], list[str]]] = []
    for line in text.splitlines():
        header = re.match(r"^  (-{1,2}[A-Za-z0-9][^ ]*(?:[ ,].*)?)$", line)
        if header and not line.startswith("   "):
            head = header.group(1)
            names = re.findall(r"(?:^|, )(--?[A-Za-z0-9][A-Za-z0-9-]*)", head.split("  ")[0])
            rest = head.split("  ", 1)[1].strip() if "  " in head.strip() else ""
            entries.append((names, [rest] if rest else []))
        elif entries and line.startswith("      "):
            entries[-1][1].append(line.strip())
    for names, description in entries:
        desc = " ".join(description)
        whole = bool(re.match(r"(?i)^deprecated\b", desc))
        aliases = set(re.findall(r"deprecating flag: (--[A-Za-z0-9-]+)", desc))
        for name in names:
            own = re.search(rf"(^|\s){re.escape(name)} is deprecated", desc) is not None
            alias = name in aliases or name.replace("--no-", "--", 1) in aliases
            flags[name] = whole or own or alias
    return flags


@pytest.fixture(scope="module")
def frontend_help(dynamo_python: Path) -> dict[str, bool]:
    version = subprocess.run([str(dynamo_python), "-c", "import importlib.metadata as m; print(m.version('ai-dynamo'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == pinned_dynamo_version(), f"the venv holds ai-dynamo {version}, the role pins {pinned_dynamo_version()}"
    proc = subprocess.run([str(dynamo_python), "-m", "dynamo.frontend", "--help"], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, **FRONTEND_ENV})
    assert proc.returncode == 0, proc.stderr[-2000:]
    flags = parse_help(proc.stdout)
    # The parser sees what the help says (guards the parser itself).
    assert flags["--router-mode"] is False and flags["--http-port"] is False
    assert flags["--router-kv-overlap-score-credit"] is True and flags["--router-prefill-load-scale"] is True
    assert flags["--track-active-blocks"] is True and flags["--router-track-active-blocks"] is False
    return flags


def _flags(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("--")]


def _supervisor_frontend_args(conf: str) -> dict[str, list[str]]:
    """Arguments of each `-m dynamo.frontend` program of the supervisord config."""
    out: dict[str, list[str]] = {}
    for block in re.split(r"^\[program:", conf, flags=re.MULTILINE)[1:]:
        name = block.split("]", 1)[0]
        command = re.search(r"^command=(.*?)(?=^\S)", block, re.MULTILINE | re.DOTALL)
        assert command, block
        argv = shlex.split(command.group(1))
        if "dynamo.frontend" in argv:
            out[name] = argv[argv.index("dynamo.frontend") + 1:]
    return out


def test_every_frontend_flag_of_the_role_is_current_in_the_pinned_dynamo(rendered, frontend_help):
    passed: dict[str, list[str]] = {}
    for scenario in ("dev", "dev_reordered"):
        local = _supervisor_frontend_args(rendered[scenario].text("supervisor.conf"))
        assert len(local) == len(rendered[scenario].vars["frontends"]), local
        passed.update({f"{scenario} local {name}": args for name, args in local.items()})
    for scenario in ("dev", "kind", "dev_reordered"):
        for frontend in rendered[scenario].frontends():
            passed[f"{scenario} graph {frontend['name']}"] = main_container(frontend)["args"]
    problems = []
    for where, args in passed.items():
        for flag in _flags(args):
            if flag not in frontend_help:
                problems.append(f"{where}: {flag} is not an option of dynamo.frontend {pinned_dynamo_version()}")
            elif frontend_help[flag]:
                problems.append(f"{where}: {flag} is deprecated in dynamo.frontend {pinned_dynamo_version()}")
    assert not problems, "\n".join(problems)
    # The KV-aware frontends do get the router's tuning (through the policy file), the others not.
    kv = [args for args in passed.values() if args[args.index("--router-mode") + 1] == "kv"]
    assert kv and all("--router-policy-config" in args for args in kv), passed
    others = [args for args in passed.values() if args[args.index("--router-mode") + 1] != "kv"]
    assert others and not any("--router-policy-config" in args for args in others), passed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_frontend(python: Path, policy: Path, tmp: Path) -> tuple[subprocess.Popen, int, Path]:
    port = _free_port()
    log = tmp / f"frontend-{port}.log"
    (tmp / "kv").mkdir(exist_ok=True)
    env = {**os.environ, **FRONTEND_ENV, "DYN_FILE_KV": str(tmp / "kv")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(python), "-m", "dynamo.frontend", "--router-mode", "kv", "--http-host", "127.0.0.1",
             "--http-port", str(port), "--router-policy-config", str(policy)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, port, log


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)


def test_the_pinned_frontend_accepts_the_roles_router_policy(rendered, dynamo_python, tmp_path):
    text = rendered["dev"].text("router_policy.yaml")
    policy = tmp_path / "router-policy.yaml"
    policy.write_text(text)
    # The k8s frontends read the same text from the engine ConfigMap.
    configmap = yaml.safe_load(rendered["dev"].text("engine_configmap.yaml"))
    assert configmap["data"]["router-policy.yaml"] == text
    proc, port, log = _start_frontend(dynamo_python, policy, tmp_path)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as resp:
                    status = resp.status
                    break
            except OSError:
                time.sleep(0.5)
        assert status == 200, f"frontend exited {proc.poll()} or never served:\n{log.read_bytes()[-3000:].decode(errors='replace')}"
    finally:
        _stop(proc)

    # Control: the same frontend refuses a policy it cannot use, so the
    # acceptance above means the file was read and checked.
    bad = tmp_path / "bad-policy.yaml"
    doc = yaml.safe_load(text)
    doc["worker_selection"]["instances"][0]["parameters"]["not_a_parameter"] = 1.0
    bad.write_text(yaml.safe_dump(doc))
    proc, _port, log = _start_frontend(dynamo_python, bad, tmp_path)
    try:
        assert proc.wait(timeout=60) != 0
    finally:
        _stop(proc)
    assert b"invalid parameters for worker-selection policy" in log.read_bytes()

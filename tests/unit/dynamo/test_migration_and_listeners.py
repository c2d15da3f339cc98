"""Request migration (dynamo_migration_limit) and where the local Dynamo processes listen (issue 16).

- Every frontend, local program and graph component alike, gets ``--migration-limit`` with the
  inventory's value, and ``dynamo__output.migration_limit`` publishes it.
- Every local Dynamo process binds its TCP listeners to ``dynamo_local_host`` (which defaults to
  ``gtc_demo_local_host``) and sends its events through the broker's Unix sockets: the variables
  and the broker program are in the rendered supervisord file.
- A negative or non-integer limit is refused by the role's input checks (validate: site.yml's
  preflight) before anything is rendered or started.

The running demo's sockets are checked in tests/integration/faults/test_local_listeners.py, and
that the pinned frontend knows --migration-limit (not deprecated) in test_router_flags.py.
"""

from __future__ import annotations

import re
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from dynamo_render import REPO, main_container, render  # type: ignore[import-not-found]

HOST_VARS = ("DYN_SYSTEM_HOST", "DYN_TCP_RPC_HOST", "DYN_TCP_RESPONSE_STREAM_HOST", "DYN_EVENT_PLANE_HOST")


def inventory_limit(inventory: str) -> int:
    """The inventory's dynamo_migration_limit, else the role's default."""
    for source in (REPO / inventory / "group_vars" / "all.yml", REPO / "roles" / "dynamo" / "defaults" / "main.yml"):
        values = yaml.safe_load(source.read_text())
        if "dynamo_migration_limit" in values:
            return int(values["dynamo_migration_limit"])
    raise AssertionError("dynamo_migration_limit has no default")


def programs(conf: str) -> dict[str, dict[str, object]]:
    """{program: {"argv": [...], "env": {...}}} of a rendered supervisord file."""
    out: dict[str, dict[str, object]] = {}
    for block in re.split(r"^\[program:", conf, flags=re.MULTILINE)[1:]:
        name = block.split("]", 1)[0]
        command = re.search(r"^command=(.*?)(?=^\S)", block, re.MULTILINE | re.DOTALL)
        env_line = re.search(r"^environment=(.*)$", block, re.MULTILINE)
        env = dict(re.findall(r'([A-Z_][A-Z0-9_]*)="((?:[^"\\]|\\.)*)"', env_line.group(1))) if env_line else {}
        out[name] = {"argv": shlex.split(command.group(1)) if command else [], "env": env}
    return out


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


@pytest.mark.parametrize("scenario,inventory", [("dev", "inventories/dev"), ("kind", "inventories/kind"),
                                                ("dev_reordered", "inventories/dev")])
def test_graph_frontends_migrate_requests(rendered, scenario, inventory):
    frontends = rendered[scenario].frontends()
    assert frontends
    for component in frontends:
        args = main_container(component)["args"]
        assert flag(args, "--migration-limit") == str(rendered[scenario].output["migration_limit"]), (component["name"], args)
    # dev sets it in its inventory (one line); kind keeps the role's default
    assert rendered[scenario].output["migration_limit"] == inventory_limit(inventory) > 0


def test_local_frontends_migrate_requests(rendered):
    progs = programs(rendered["local_reordered"].text("supervisor.conf"))
    frontends = {n: p for n, p in progs.items() if "dynamo.frontend" in p["argv"]}
    assert len(frontends) == 3, sorted(progs)
    for name, prog in frontends.items():
        assert flag(prog["argv"], "--migration-limit") == str(inventory_limit("inventories/local")), name
    assert rendered["local_reordered"].output["migration_limit"] == inventory_limit("inventories/local")


def test_every_local_program_listens_on_the_local_host_and_publishes_through_the_broker(rendered):
    conf = rendered["local_reordered"].text("supervisor.conf")
    progs = programs(conf)
    dynamo = {n: p for n, p in progs.items() if "dynamo.frontend" in p["argv"] or "dynamo.mocker" in p["argv"]}
    assert len(dynamo) == 5, sorted(progs)  # two workers, three frontends
    (broker_name,) = [n for n, p in progs.items() if any(w.endswith("dynamo-event-broker.py") for w in p["argv"])]
    broker = progs[broker_name]["argv"]
    xsub, xpub = broker[-2:]
    assert xsub.startswith("ipc://") and xpub.startswith("ipc://"), broker
    for name, prog in dynamo.items():
        env = prog["env"]
        for var in HOST_VARS:
            assert env.get(var) == "127.0.0.1", (name, var, env)
        assert env.get("DYN_ZMQ_BROKER_URL") == f"xsub={xsub},xpub={xpub}", (name, env)
        assert "DYN_SYSTEM_ENABLED" not in env  # deprecated in 1.6.1: DYN_SYSTEM_PORT alone switches it on
        if "dynamo.frontend" in prog["argv"]:
            assert flag(prog["argv"], "--http-host") == "127.0.0.1", name
    # the broker is one of the group's programs (started, stopped and restarted with it)
    group = re.search(r"^programs=(.*)$", conf, re.MULTILINE).group(1).split(",")
    assert broker_name in group and set(dynamo) <= set(group)


def _render_only(tmp: Path, extra: dict) -> tuple[int, str, Path]:
    proc = render(tmp, "inventories/local", {"render_platform_values": False, **extra})
    return proc.returncode, proc.stdout + proc.stderr, tmp


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> dict[str, tuple[int, str, Path]]:
    """The local inventory rendered with a bad limit (two kinds) and with another local host, in parallel."""
    cases = {"negative": {"dynamo_migration_limit": -1}, "string": {"dynamo_migration_limit": "three"},
             "host": {"gtc_demo_local_host": "127.0.0.2"}}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(_render_only, tmp_path_factory.mktemp(f"migration-{name}"), extra)
                   for name, extra in cases.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("case,message", [
    ("negative", "dynamo_migration_limit must be between 0 (migration off) and 4294967295, got -1"),
    ("string", "dynamo_migration_limit"),
])
def test_a_bad_migration_limit_is_refused_before_anything_changes(renders, case, message):
    returncode, output, root = renders[case]
    files = sorted(p.name for p in root.iterdir())
    assert returncode != 0, output[-3000:]
    assert message in output, output[-3000:]
    if case == "string":  # the argument spec's type check, before the role's own checks
        assert "Validation of arguments failed" in output and "unable to convert to int" in output, output[-3000:]
    assert files == [], files  # render.yml rendered nothing: the checks stopped it first


def test_the_shared_local_host_moves_every_listener(renders):
    returncode, output, root = renders["host"]
    assert returncode == 0, output[-3000:]
    progs = programs((root / "supervisor.conf").read_text())
    dynamo = {n: p for n, p in progs.items() if "dynamo.frontend" in p["argv"] or "dynamo.mocker" in p["argv"]}
    assert dynamo
    for name, prog in dynamo.items():
        assert {var: prog["env"].get(var) for var in HOST_VARS} == dict.fromkeys(HOST_VARS, "127.0.0.2"), name
        if "dynamo.frontend" in prog["argv"]:
            assert flag(prog["argv"], "--http-host") == "127.0.0.2", name
    output_json = (root / "dynamo_output.json").read_text()
    assert "127.0.0.1" not in output_json and "http://127.0.0.2:" in output_json

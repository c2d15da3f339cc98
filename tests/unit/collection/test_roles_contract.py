"""Every role keeps its contract: the shared inputs come from the private _common
role, every entry point callers use has an argument spec in step with the defaults,
other task files are private, each role publishes one <role>__output and reads
other roles only through theirs, and site.yml chains and checks the roles in order."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from helpers import REPO

ROLES = ["infra", "cluster_config", "model_sync", "dynamo", "loadgen", "gateway"]
# The entry points a caller may name with tasks_from (or main). Anything else is private.
ENTRY_POINTS = {"main", "validate", "validate_account", "outputs", "verify", "stop", "teardown"}
# Every role has these.
REQUIRED_ENTRY_POINTS = {"main", "validate", "outputs", "teardown"}
INCLUDES = {"ansible.builtin.include_tasks", "ansible.builtin.import_tasks", "include_tasks", "import_tasks"}


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


def _specs(role: str) -> dict:
    return _yaml(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]


def _task_files(role: str) -> list[Path]:
    return sorted((REPO / "roles" / role / "tasks").glob("*.yml"))


def _code_lines(path: Path) -> str:
    """The file without its comments (a comment may name anything)."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith(("#", ";")))


def _role_files(role: str) -> list[Path]:
    base = REPO / "roles" / role
    return [p for sub in ("tasks", "templates", "vars", "defaults", "handlers")
            for p in sorted((base / sub).rglob("*")) if p.is_file() and p.suffix in {".yml", ".j2"}]


@pytest.mark.parametrize("role", ROLES)
def test_every_entry_point_has_a_spec_in_step_with_the_defaults(role: str) -> None:
    defaults = _yaml(REPO / "roles" / role / "defaults" / "main.yml") or {}
    specs = _specs(role)
    entry_points = {p.stem for p in _task_files(role) if not p.stem.startswith("_")}
    assert REQUIRED_ENTRY_POINTS <= entry_points, f"{role} lacks {sorted(REQUIRED_ENTRY_POINTS - entry_points)}"
    assert entry_points <= ENTRY_POINTS, (
        f"{role}: {sorted(entry_points - ENTRY_POINTS)} are neither entry points nor private (_name.yml)")
    assert set(specs) == entry_points, (
        f"{role}: entry points without a spec {sorted(entry_points - set(specs))}, "
        f"specs without a task file {sorted(set(specs) - entry_points)}")
    for name, spec in specs.items():
        options = spec.get("options") or {}
        assert set(defaults) == set(options), (
            f"{role}/{name}: only in defaults: {sorted(set(defaults) - set(options))}; "
            f"only in argument_specs: {sorted(set(options) - set(defaults))}")
        for option, option_spec in options.items():
            assert option_spec.get("description"), f"{role}: {option} has no description"
            assert "type" in option_spec, f"{role}: {option} has no type"


@pytest.mark.parametrize("role", ROLES)
def test_role_depends_on_common_and_owns_only_its_own_inputs(role: str) -> None:
    meta = _yaml(REPO / "roles" / role / "meta" / "main.yml")
    assert [d["role"] if isinstance(d, dict) else d for d in meta["dependencies"]] == ["do_solutions.gtc_demo._common"]
    defaults = _yaml(REPO / "roles" / role / "defaults" / "main.yml") or {}
    assert all(k.startswith(f"{role}_") for k in defaults), sorted(defaults)
    shared = set(_yaml(REPO / "roles" / "_common" / "defaults" / "main.yml"))
    for path in _role_files(role) + [REPO / "roles" / role / "meta" / "argument_specs.yml"]:
        data = _yaml(path) if path.suffix == ".yml" and path.parent.name in {"defaults", "vars"} else None
        if isinstance(data, dict):
            assert not shared & set(data), f"{path.relative_to(REPO)} redefines shared inputs {sorted(shared & set(data))}"


@pytest.mark.parametrize("role", ROLES)
def test_no_task_file_only_includes_another(role: str) -> None:
    """No chains of files that only pass on to another: a file that is one include is
    allowed only as an entry point's single dispatch on the platform."""
    for path in _task_files(role):
        if path.stem == "main":
            continue
        tasks = _yaml(path) or []
        if not (len(tasks) == 1 and INCLUDES & set(tasks[0])):
            continue
        target = next(tasks[0][k] for k in INCLUDES if k in tasks[0])
        target = target.get("file", "") if isinstance(target, dict) else target
        on_platform = "gtc_demo_platform" in target or "gtc_demo_platform" in str(tasks[0].get("when", ""))
        dispatch = not path.stem.startswith("_") and on_platform
        assert dispatch, f"{path.relative_to(REPO)} only includes {target}"


@pytest.mark.parametrize("role", ROLES)
def test_role_publishes_one_output_and_reads_others_only_through_theirs(role: str) -> None:
    publish = re.compile(r"^\s+(\w+__output):\s*$", re.M)
    published = {name for p in _task_files(role) for name in publish.findall(_code_lines(p))
                 if "set_fact" in p.read_text()}
    assert published == {f"{role}__output"}, f"{role} publishes {sorted(published)}"
    for other in (r for r in ROLES if r != role):
        # Another role's inputs are the names in its defaults; its internals are <other>__*.
        inputs = set(_yaml(REPO / "roles" / other / "defaults" / "main.yml") or {})
        names = re.compile(r"\b" + other + r"_\w+")
        for path in _role_files(role):
            found = {n for n in names.findall(_code_lines(path))
                     if n in inputs or (n.startswith(other + "__") and n != other + "__output")}
            assert not found, f"{path.relative_to(REPO)} reads {other}'s variables {sorted(found)}"


@pytest.mark.parametrize("role", ROLES)
def test_role_has_a_readme_with_its_output(role: str) -> None:
    readme = (REPO / "roles" / role / "README.md").read_text()
    assert f"do_solutions.gtc_demo.{role}" in readme
    assert f"{role}__output" in readme


def test_site_chains_the_roles_in_order_with_their_tags() -> None:
    plays = _yaml(REPO / "site.yml")
    chain = [(r["role"], r["tags"]) for play in plays for r in play.get("roles", [])]
    assert [name for name, _tags in chain] == [f"do_solutions.gtc_demo.{r}" for r in ROLES]
    for name, tags in chain:
        assert tags == [name.rsplit(".", 1)[1]]


def test_site_checks_every_role_before_changing_anything() -> None:
    preflight = _yaml(REPO / "site.yml")[0]
    assert preflight["tags"] == ["always"]
    calls = [(t["loop"], t["ansible.builtin.include_role"]["tasks_from"]) for t in preflight["tasks"]]
    assert calls[0] == (ROLES, "validate")
    for loop, entry in calls[1:]:
        assert entry == "validate_account"
        assert loop == [r for r in ROLES if (REPO / "roles" / r / "tasks" / "validate_account.yml").is_file()]


def test_teardown_goes_in_reverse_order() -> None:
    plays = _yaml(REPO / "playbooks" / "teardown.yml")
    stack2 = next(t for t in plays[0]["tasks"] if "loop" in t)["loop"]
    assert stack2 + ["infra"] == list(reversed(ROLES))


def test_playbooks_name_only_entry_points() -> None:
    pattern = re.compile(r"tasks_from:\s*[\"']?([\w{} .|']+?)[\"']?\s*$", re.M)
    for path in [REPO / "site.yml", *sorted((REPO / "playbooks").rglob("*.yml"))]:
        for entry in pattern.findall(path.read_text()):
            if "{{" in entry:
                continue
            assert entry in ENTRY_POINTS, f"{path.relative_to(REPO)} calls the private tasks {entry!r}"


@pytest.mark.parametrize("env", ["local", "dev", "prod", "kind"])
def test_inventories_fit_their_gpus_and_set_no_role_internals(env: str) -> None:
    data = _yaml(REPO / "inventories" / env / "group_vars" / "all.yml")
    common = _yaml(REPO / "roles" / "_common" / "defaults" / "main.yml")
    merged = {**common, **data}
    size_gpus = re.findall(r"x([0-9]+)", merged["gtc_demo_gpu_node_size"])
    gpus_per_node = int(merged["gtc_demo_gpus_per_node"]) or int(size_gpus[0])
    replicas = data.get("dynamo_replicas", 2)
    tensor_parallel = data.get("dynamo_tensor_parallel_size", 4)
    assert replicas * tensor_parallel <= gpus_per_node * int(merged["gtc_demo_gpu_node_count"])
    assert merged["gtc_demo_platform"] in {"local", "doks", "kind"}
    known = {k for role in ROLES + ["_common"] for k in (_yaml(REPO / "roles" / role / "defaults" / "main.yml") or {})}
    assert set(data) <= known, f"inventories/{env} sets unknown variables {sorted(set(data) - known)}"


def test_environments_match_the_brief() -> None:
    dev = _yaml(REPO / "inventories/dev/group_vars/all.yml")
    prod = _yaml(REPO / "inventories/prod/group_vars/all.yml")
    assert (dev["gtc_demo_gpu_node_size"], dev["infra_region"]) == ("gpu-h100x8-640gb", "ams3")
    assert (prod["gtc_demo_gpu_node_size"], prod["infra_region"]) == ("gpu-h200x8-1128gb-contracted", "atl1")
    assert dev["gtc_demo_hostname"] == "gtc-2026-dev.digitalocean.solutions"
    assert prod["gtc_demo_hostname"] == "gtc-2026.digitalocean.solutions"


@pytest.mark.parametrize("role", ["_common", *ROLES])
def test_every_spec_option_documents_the_default_the_role_uses(role: str) -> None:
    """ansible-doc -t role shows a spec's default:, while the role takes its defaults/main.yml: the two must be one."""
    defaults = _yaml(REPO / "roles" / role / "defaults" / "main.yml") or {}
    for name, spec in _specs(role).items():
        for option, option_spec in (spec.get("options") or {}).items():
            if option not in defaults:
                assert "default" not in option_spec, f"{role}/{name}: {option} documents a default the role lacks"
                continue
            if "default" not in option_spec:
                # Ansible's validator refuses null for an option that has a default: an option that takes
                # null names its default in the description instead.
                text = " ".join(option_spec.get("description") or [])
                assert "C(null)" in text and f"Default C({str(defaults[option]).lower()})" in text, (
                    f"{role}/{name}: {option} has no default: in its spec")
                continue
            assert option_spec["default"] == defaults[option], (
                f"{role}/{name}: {option}'s spec says {option_spec['default']!r}, defaults/main.yml {defaults[option]!r}")

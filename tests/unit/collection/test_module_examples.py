"""Every module's EXAMPLES are tasks that the module accepts.

Each module is imported and run until it builds its AnsibleModule, which hands over the
argument_spec and the constraints it really uses (so options merged in from module_utils,
kubernetes.core's AnsibleK8SModule or a doc fragment count as they do at run time). Each
task of EXAMPLES that calls one of our modules must then name only options the spec knows
(suboptions included), give a choice the spec lists, and pass Ansible's own
ArgumentSpecValidator (required options, types, mutually_exclusive, required_if, ...).
A value that is a Jinja template is not known until run time: it stands for a value of
the option's type.
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.playbook.task import Task

from helpers import REPO

# The collection as Ansible imports it, through the link `make setup` makes.
COLLECTIONS = REPO / ".collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
COLLECTION = "do_solutions.gtc_demo"
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))
# Keys of a task that are not the module: Ansible's own task keywords.
TASK_KEYWORDS = set(Task.fattributes) | {"local_action", "with_items", "with_dict", "with_list"}
# The AnsibleModule keywords that ArgumentSpecValidator also takes.
CONSTRAINTS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")


class Captured(Exception):
    """Raised instead of building the AnsibleModule: carries what the module passed."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("captured")
        self.kwargs = kwargs


_specs: dict[str, dict[str, Any]] = {}


def module_kwargs(name: str) -> dict[str, Any]:
    """What ``main()`` of the module passes to AnsibleModule (argument_spec and constraints)."""
    if name not in _specs:
        module = importlib.import_module(f"ansible_collections.do_solutions.gtc_demo.plugins.modules.{name}")

        def capture(self: Any, *args: Any, **kwargs: Any) -> None:
            if args:
                kwargs["argument_spec"] = args[0]
            raise Captured(kwargs)

        original = AnsibleModule.__init__
        AnsibleModule.__init__ = capture  # type: ignore[method-assign]
        try:
            module.main()
        except Captured as got:
            _specs[name] = got.kwargs
        finally:
            AnsibleModule.__init__ = original  # type: ignore[method-assign]
        assert name in _specs, f"{name}.main() returned without building an AnsibleModule"
    return _specs[name]


def examples(name: str) -> list[dict[str, Any]]:
    module = importlib.import_module(f"ansible_collections.do_solutions.gtc_demo.plugins.modules.{name}")
    tasks = yaml.safe_load(module.EXAMPLES)
    assert isinstance(tasks, list) and tasks, f"{name}: EXAMPLES is not a list of tasks"
    flat: list[dict[str, Any]] = []
    for task in tasks:
        flat.extend(task.get("block", []) + task.get("rescue", []) + task.get("always", []) if "block" in task else [task])
    return flat


def module_of(task: dict[str, Any]) -> tuple[str, Any]:
    keys = [k for k in task if k not in TASK_KEYWORDS]
    assert len(keys) == 1, f"task {task.get('name')!r}: cannot tell the module among {keys}"
    return keys[0], task[keys[0]]


def ours(action: str) -> str | None:
    """The module's short name when ``action`` is one of ours (FQCN or short, as collections: allows)."""
    short = action.removeprefix(COLLECTION + ".")
    return short if short in MODULES else None


def templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


PLACEHOLDERS = {"str": "x", "path": "/x", "raw": "x", "int": 1, "float": 1.0, "bool": True, "list": [], "dict": {},
                "jsonarg": "{}", "json": "{}", "bytes": "1", "bits": "1"}


def stand_in(spec: dict[str, Any], value: Any) -> Any:
    """A run-time value for a template: a choice when there are choices, else a value of the type."""
    if spec.get("choices"):
        return list(spec["choices"])[0]
    kind = spec.get("type", "str")
    if kind == "list" and spec.get("elements") and spec.get("options") is None:
        return []
    return PLACEHOLDERS.get(kind if isinstance(kind, str) else "raw", "x")


def check_options(where: str, spec: dict[str, Any], args: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Problems of ``args`` against ``spec`` (unknown keys, choices, suboptions) and a copy without templates."""
    problems: list[str] = []
    names: dict[str, str] = {}
    for option, option_spec in spec.items():
        names[option] = option
        for alias in option_spec.get("aliases") or []:
            names[alias] = option
    resolved: dict[str, Any] = {}
    for key, value in args.items():
        if key not in names:
            problems.append(f"{where}: unknown option {key!r} (the module has {sorted(spec)})")
            continue
        option_spec = spec[names[key]]
        if templated(value):
            resolved[key] = stand_in(option_spec, value)
            continue
        choices = option_spec.get("choices")
        if choices is not None and value not in choices and not (isinstance(value, list)
                                                                 and all(v in choices for v in value)):
            problems.append(f"{where}: {key}={value!r} is not one of {list(choices)}")
        suboptions = option_spec.get("options")
        if suboptions and isinstance(value, dict):
            sub_problems, value = check_options(f"{where}.{key}", suboptions, value)
            problems += sub_problems
        elif suboptions and isinstance(value, list):
            items = []
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    sub_problems, item = check_options(f"{where}.{key}[{i}]", suboptions, item)
                    problems += sub_problems
                items.append(item)
            value = items
        resolved[key] = value
    return problems, resolved


ROLE_OUTPUT = re.compile(r"\b([a-z_]+)__output\.([a-z_]+)")


def role_output_keys(role: str) -> set[str]:
    """The keys of ``<role>__output`` as the role's outputs entry point sets it (roles/<role>/tasks/outputs.yml)."""
    path = REPO / "roles" / role / "tasks" / "outputs.yml"
    if not path.is_file():
        return set()
    keys: set[str] = set()
    for task in yaml.safe_load(path.read_text()) or []:
        facts = task.get("ansible.builtin.set_fact") or task.get("set_fact") or {}
        if isinstance(facts.get(f"{role}__output"), dict):
            keys |= set(facts[f"{role}__output"])
    return keys


def check_role_outputs(where: str, value: Any) -> list[str]:
    """A template in an example that reads ``<role>__output.<key>`` names a key that role publishes."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in check_role_outputs(where, v)]
    if isinstance(value, list):
        return [p for v in value for p in check_role_outputs(where, v)]
    problems = []
    for role, key in ROLE_OUTPUT.findall(value) if templated(value) else []:
        keys = role_output_keys(role)
        if key not in keys:
            problems.append(f"{where}: {role}__output has no {key!r} (roles/{role}/tasks/outputs.yml sets {sorted(keys)})")
    return problems


@pytest.mark.parametrize("name", MODULES)
def test_examples_call_the_module_with_options_it_accepts(name: str) -> None:
    kwargs = module_kwargs(name)
    spec = kwargs["argument_spec"]
    calls = 0
    problems: list[str] = []
    for task in examples(name):
        action, args = module_of(task)
        target = ours(action)
        if target is None:
            continue  # ansible.builtin.debug and friends around the example
        calls += 1
        where = f"{name} EXAMPLES, task {task.get('name')!r}"
        assert isinstance(args, dict), f"{where}: give the options as a mapping, not {args!r}"
        target_kwargs = module_kwargs(target)
        found, resolved = check_options(where, target_kwargs["argument_spec"], args)
        problems += found + check_role_outputs(where, args)
        if not found:
            validator = ArgumentSpecValidator(target_kwargs["argument_spec"],
                                              **{k: target_kwargs[k] for k in CONSTRAINTS if target_kwargs.get(k)})
            result = validator.validate(resolved)
            problems += [f"{where}: {error}" for error in result.error_messages]
    assert calls, f"{name}: no example calls {COLLECTION}.{name}"
    assert spec, name
    assert not problems, "\n".join(problems)


def test_the_checker_refuses_what_the_module_refuses() -> None:
    """The check itself: an unknown key, a wrong choice, a bad suboption and a missing required option are caught."""
    spec = module_kwargs("do_kubernetes_node_pool")["argument_spec"]
    assert check_options("t", spec, {"cluster_id": "c", "name": "p"}) == ([], {"cluster_id": "c", "name": "p"})
    (unknown,) = check_options("t", spec, {"cluster_id": "c", "name": "p", "nodes": 3})[0]
    assert "unknown option 'nodes'" in unknown
    (choice,) = check_options("t", spec, {"cluster_id": "c", "name": "p", "state": "gone"})[0]
    assert "'gone' is not one of ['present', 'absent']" in choice
    (effect,) = check_options("t", spec, {"cluster_id": "c", "name": "p",
                                          "taints": [{"key": "k", "effect": "Sometimes"}]})[0]
    assert "t.taints[0]: effect='Sometimes'" in effect
    cluster = module_kwargs("do_kubernetes_cluster")["argument_spec"]
    (sub,) = check_options("t", cluster, {"name": "c", "node_pools": [{"name": "p", "nodes": 1}]})[0]
    assert "t.node_pools[0]: unknown option 'nodes'" in sub
    # The example issue 18 found: wait_for_gpu_nodes read infra__output.kubeconfig_path, which infra never set.
    (stale,) = check_role_outputs("t", {"kubeconfig": "{{ infra__output.kubeconfig_path }}"})
    assert "infra__output has no 'kubeconfig_path'" in stale
    assert check_role_outputs("t", {"kubeconfig": "{{ infra__output.kubeconfig }}"}) == []
    resolved = check_options("t", spec, {"name": "{{ pool }}"})[1]
    errors = ArgumentSpecValidator(spec).validate(resolved).error_messages
    assert any("required" in e for e in errors), errors


def test_every_module_is_covered() -> None:
    assert len(MODULES) == len(list(Path(REPO / "plugins" / "modules").glob("*.py")))
    assert {"wait_for_gpu_nodes", "do_vpc", "validate_inference"} <= set(MODULES)

"""Helpers for the k8s_roles tests: the public CRDs (found by tests/artifacts.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import artifacts


def crd_file(group_dir: str, file: str) -> Path:
    """schemas/crds/<group_dir>/<file>: a shared folder's copy, or the pinned download."""
    return artifacts.resolve(f"schemas/crds/{group_dir}/{file}")


def crd_schema(group_dir: str, file: str, version: str) -> dict[str, Any]:
    """openAPIV3Schema of one served version of a public CRD."""
    path = crd_file(group_dir, file)
    if not path.exists():
        pytest.fail(f"{path} is missing from the resolved public CRDs (tests/artifacts.py)")
    crd = yaml.safe_load(path.read_text())
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            assert entry.get("served"), f"{file} does not serve {version}"
            return entry["schema"]["openAPIV3Schema"]
    raise AssertionError(f"{file} has no version {version}")


def storage_version(group_dir: str, file: str) -> str:
    crd = yaml.safe_load(crd_file(group_dir, file).read_text())
    return next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))

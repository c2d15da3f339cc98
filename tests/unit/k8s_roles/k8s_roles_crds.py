"""Helpers for the k8s_roles tests: the public CRDs under ../shared/schemas/crds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CRDS = Path(os.environ.get("GTC_SHARED_DIR", REPO.parent / "shared")) / "schemas" / "crds"


def crd_schema(group_dir: str, file: str, version: str) -> dict[str, Any]:
    """openAPIV3Schema of one served version of a public CRD."""
    path = CRDS / group_dir / file
    if not path.exists():
        pytest.fail(f"{path} is missing: the public CRDs are expected in ../shared/schemas/crds")
    crd = yaml.safe_load(path.read_text())
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            assert entry.get("served"), f"{file} does not serve {version}"
            return entry["schema"]["openAPIV3Schema"]
    raise AssertionError(f"{file} has no version {version}")


def storage_version(group_dir: str, file: str) -> str:
    crd = yaml.safe_load((CRDS / group_dir / file).read_text())
    return next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The model_sync_models filter: every model the workers load, with its revision and its path."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

# A Hugging Face repository id: owner/name.
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def model_sync_models(models: object, revision: str = "main", local_root: str = "") -> list[dict]:
    """``[{name, revision, path}]`` for the models, the served one first.

    The served model is fetched at ``revision``, the others (the speculative model) at
    their default branch. ``path`` is where the workers read the model: with
    ``local_root``, the folder ``<local_root>/models/<owner>--<name>``; without it (a
    cluster), the folder relative to the model volume's root, ``<owner>/<name>``.
    """
    if not isinstance(models, list) or not models:
        raise AnsibleFilterError(f"model_sync_models: a list of models (the served one first) is needed, got {models!r}")
    out = []
    for index, name in enumerate(models):
        if not isinstance(name, str) or not REPO_ID.match(name):
            raise AnsibleFilterError(
                f"model_sync_models: {name!r} is not a Hugging Face repository such as nvidia/Llama-3.1-70B-Instruct-FP8")
        path = f"{local_root.rstrip('/')}/models/{name.replace('/', '--')}" if local_root else name
        out.append({"name": name, "revision": str(revision) if index == 0 else "main", "path": path})
    return out


class FilterModule:
    """model_sync's models."""

    def filters(self) -> dict:
        return {"model_sync_models": model_sync_models}

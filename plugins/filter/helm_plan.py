# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The helm_plan filter: where each Helm release's chart comes from, with its rendered values.

cluster_config installs exactly the list this returns (roles/cluster_config/tasks/_plan.yml),
and the chart tests run the real charts' ``helm template`` on the same list.
"""

from __future__ import annotations

from collections.abc import Iterable

from ansible.errors import AnsibleFilterError


def helm_plan(releases: object, values: object, chart_dir: str = "", mirror_url: str = "") -> list[dict]:
    """Each release with ``chart_ref``, ``chart_repo_url`` and ``values``, in the releases' order.

    The chart comes, most local first, from ``chart_dir`` (an archive ``<chart>-<version>.tgz``, as
    ``helm package`` names it), else from the one chart repository ``mirror_url``, else from the
    release's own ``repo``.
    """
    if not isinstance(releases, list) or not all(isinstance(r, dict) for r in releases):
        raise AnsibleFilterError(f"helm_plan: the releases must be a list of mappings, got {releases!r}")
    values = list(values) if isinstance(values, Iterable) and not isinstance(values, (str, dict)) else values
    if not isinstance(values, list) or len(values) != len(releases):
        raise AnsibleFilterError(f"helm_plan: one values mapping per release is needed ({len(releases)} releases)")
    plan = []
    for release, release_values in zip(releases, values, strict=True):
        missing = [k for k in ("name", "namespace", "chart", "version") if not release.get(k)]
        if missing:
            raise AnsibleFilterError(f"helm_plan: release {release.get('name', release)!r} lacks {', '.join(missing)}")
        if not isinstance(release_values, dict):
            raise AnsibleFilterError(f"helm_plan: the values of {release['name']} are not a mapping: {release_values!r}")
        version = str(release["version"])
        if chart_dir:
            chart_ref, repo_url = f"{chart_dir.rstrip('/')}/{release['chart']}-{version}.tgz", ""
        else:
            chart_ref, repo_url = release["chart"], mirror_url or release.get("repo") or ""
        plan.append({"name": release["name"], "namespace": release["namespace"], "chart": release["chart"],
                     "version": version, "chart_ref": chart_ref, "chart_repo_url": repo_url,
                     "values": release_values})
    return plan


class FilterModule:
    """cluster_config's Helm plan."""

    def filters(self) -> dict:
        return {"helm_plan": helm_plan}

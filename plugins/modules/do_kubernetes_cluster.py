#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: do_kubernetes_cluster
short_description: Create, update or delete a DigitalOcean Kubernetes (DOKS) cluster
version_added: 0.1.0
description:
  - Finds the cluster by O(name) and makes it match the options, in place.
  - Tags, maintenance window, high availability (off to on only), auto and surge upgrade and the
    container registry integration change in place. Region, VPC and the Kubernetes minor version are
    fixed once the cluster exists; a difference there fails (version) or warns (a newer patch exists).
  - O(node_pools) is used only to create the cluster (the API needs at least one pool);
    manage pools afterwards with M(do_solutions.gtc_demo.do_kubernetes_node_pool).
author: DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - do_solutions.gtc_demo.digitalocean
  - do_solutions.gtc_demo.digitalocean.wait
options:
  name:
    description: Cluster name, unique in the account.
    type: str
    required: true
  state:
    description: V(present) creates or updates; V(absent) deletes and, with O(wait), waits until it is gone.
    type: str
    choices: [present, absent]
    default: present
  region:
    description: Region slug. Required to create.
    type: str
  version:
    description:
      - Kubernetes version. A minor version such as V(1.33) picks the newest matching DOKS slug,
        a full slug such as V(1.33.1-do.0) is used as is, V(latest) picks the newest.
    type: str
    default: latest
  vpc_id:
    description: UUID of the VPC the nodes join. Fixed at creation.
    type: str
  ha:
    description: Highly available control plane. Can be turned on later, never off.
    type: bool
  auto_upgrade:
    description: Let DigitalOcean upgrade patch versions in the maintenance window.
    type: bool
  surge_upgrade:
    description: Add new nodes before draining old ones during upgrades.
    type: bool
  maintenance_window:
    description: When DigitalOcean may do maintenance.
    type: dict
    suboptions:
      day:
        description: Day of the week, or V(any).
        type: str
        choices: [any, monday, tuesday, wednesday, thursday, friday, saturday, sunday]
      start_time:
        description: Start time, C(HH:MM) in UTC.
        type: str
  tags:
    description: Tags on the cluster. Tags DigitalOcean adds itself (C(k8s), C(k8s:*)) are ignored when comparing.
    type: list
    elements: str
  registry_integration:
    description: Connect the cluster to the account's container registry (DOCR) so pods can pull from it.
    type: bool
  node_pools:
    description:
      - Node pools to create the cluster with (at least one). Ignored when the cluster exists.
    type: list
    elements: dict
    suboptions:
      name:
        description: Pool name.
        type: str
        required: true
      size:
        description: Droplet size slug.
        type: str
        required: true
      count:
        description: Number of nodes.
        type: int
        required: true
      labels:
        description: Kubernetes labels on the nodes.
        type: dict
      taints:
        description: Kubernetes taints on the nodes; each a dict of C(key), C(value), C(effect).
        type: list
        elements: dict
      tags:
        description: Tags on the pool's Droplets.
        type: list
        elements: str
attributes:
  check_mode:
    support: full
    description: Reports what would change and writes nothing.
  diff_mode:
    support: full
    description: Shows the managed fields before and after.
"""

EXAMPLES = r"""
- name: The demo's DOKS cluster
  do_solutions.gtc_demo.do_kubernetes_cluster:
    name: gtc-demo-dev
    region: ams3
    version: "1.33"
    vpc_id: "{{ vpc.vpc.id }}"
    maintenance_window:
      day: sunday
      start_time: "04:00"
    tags: [gtc-demo]
    registry_integration: true
    node_pools:
      - name: gtc-demo-dev-cpu
        size: s-4vcpu-8gb
        count: 2
  register: cluster
"""

RETURN = r"""
cluster:
  description: The cluster as the API returns it; empty after deletion or when a check-mode run would create it.
  returned: always
  type: dict
  sample: {"id": "bd5f5959-5e1e-4205-a714-a914373942af", "name": "gtc-demo-dev", "status": {"state": "running"}}
id:
  description: The cluster's UUID; empty when it does not exist (yet).
  returned: always
  type: str
api_attempts:
  description: HTTP requests made, retries included.
  returned: always
  type: int
api_retries_used:
  description: Requests repeated after a 429, a 5xx or a dropped connection.
  returned: always
  type: int
"""

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.digitalocean import (
    DOError,
    diff_fields,
    find_cluster,
    get_cluster,
    make_diff,
    new_module,
    norm_labels,
    norm_tags,
    norm_taints,
    norm_time,
    run,
)

UPDATABLE = ("tags", "maintenance_window", "ha", "auto_upgrade", "surge_upgrade")


def resolve_version(client, wanted):
    """The DOKS slug for a minor version, a slug, or 'latest'."""
    _status, body = client.call("list Kubernetes options", client.client.kubernetes.list_options)
    versions = (body.get("options") or {}).get("versions") or []
    slugs = [v.get("slug") for v in versions]
    if wanted in slugs:
        return wanted
    if wanted == "latest" and slugs:
        return slugs[0]
    for v in versions:  # the API lists the newest first
        kv = v.get("kubernetes_version") or ""
        if kv == wanted or kv.startswith(wanted + "."):
            return v["slug"]
    raise DOError("Kubernetes version {0} is not offered by DigitalOcean; offered: {1}".format(
        wanted, ", ".join(s for s in slugs if s)))


def view(cluster):
    if not cluster:
        return {}
    mp = cluster.get("maintenance_policy") or {}
    return dict(
        name=cluster.get("name"), region=cluster.get("region"), version=cluster.get("version"),
        vpc_uuid=cluster.get("vpc_uuid"), ha=cluster.get("ha"), auto_upgrade=cluster.get("auto_upgrade"),
        surge_upgrade=cluster.get("surge_upgrade"), tags=norm_tags(cluster.get("tags")),
        maintenance_window=dict(day=mp.get("day"), start_time=norm_time(mp.get("start_time"))),
        registry_integration=bool(cluster.get("registry_enabled")),
    )


def desired_window(params, actual=None):
    window = params.get("maintenance_window")
    if not window:
        return None
    current = dict(actual or {})
    for key in ("day", "start_time"):
        if window.get(key) is not None:
            current[key] = norm_time(window[key]) if key == "start_time" else window[key]
    return current


def wait_running(module, client, cluster_id):
    p = module.params

    def done(cluster):
        if cluster is None:
            raise DOError("Kubernetes cluster {0} disappeared while waiting for it".format(cluster_id))
        state = (cluster.get("status") or {}).get("state")
        if state == "error":
            raise DOError("Kubernetes cluster {0} failed: {1}".format(
                cluster_id, (cluster.get("status") or {}).get("message")))
        return state == "running"

    return client.wait_for("Kubernetes cluster {0} to be running".format(p["name"]),
                           lambda: get_cluster(client, cluster_id), done, p["wait_timeout"], p["poll_interval"])


def set_registry(client, cluster_id, enable):
    operation = client.client.kubernetes.add_registry if enable else client.client.kubernetes.remove_registry
    client.call("{0} the container registry integration".format("turn on" if enable else "turn off"),
                operation, body=dict(cluster_uuids=[cluster_id]))


def pool_body(pool):
    body = dict(name=pool["name"], size=pool["size"], count=pool["count"])
    if pool.get("labels"):
        body["labels"] = norm_labels(pool["labels"])
    if pool.get("taints"):
        body["taints"] = norm_taints(pool["taints"])
    if pool.get("tags"):
        body["tags"] = list(pool["tags"])
    return body


def create(module, client):
    p = module.params
    if not p["region"] or not p["node_pools"]:
        raise DOError("region and at least one entry in node_pools are required to create cluster {0}".format(p["name"]))
    version = resolve_version(client, p["version"])
    body = dict(name=p["name"], region=p["region"], version=version,
                node_pools=[pool_body(pool) for pool in p["node_pools"]])
    if p["vpc_id"]:
        body["vpc_uuid"] = p["vpc_id"]
    for key in ("ha", "auto_upgrade", "surge_upgrade"):
        if p[key] is not None:
            body[key] = p[key]
    if p["tags"]:
        body["tags"] = list(p["tags"])
    window = desired_window(p)
    if window:
        body["maintenance_policy"] = window
    after = dict(name=p["name"], region=p["region"], version=version, vpc_uuid=p["vpc_id"], ha=bool(p["ha"]),
                 auto_upgrade=bool(p["auto_upgrade"]), surge_upgrade=bool(p["surge_upgrade"]),
                 tags=norm_tags(p["tags"]), maintenance_window=window or {},
                 registry_integration=bool(p["registry_integration"]),
                 node_pools=[pool_body(pool) for pool in p["node_pools"]])
    if module.check_mode:
        return dict(changed=True, cluster={}, id="", diff=make_diff({}, after))
    _status, created = client.call("create Kubernetes cluster {0}".format(p["name"]),
                                   client.client.kubernetes.create_cluster, body=body)
    cluster = created["kubernetes_cluster"]
    if p["registry_integration"]:
        set_registry(client, cluster["id"], True)
    if p["wait"]:
        cluster = wait_running(module, client, cluster["id"])
    else:
        cluster = get_cluster(client, cluster["id"]) or cluster
    return dict(changed=True, cluster=cluster, id=cluster["id"], diff=make_diff({}, view(cluster)))


def update(module, client, cluster):
    p = module.params
    have = view(cluster)
    for fixed, option in (("region", "region"), ("vpc_uuid", "vpc_id")):
        if p[option] and have[fixed] != p[option]:
            raise DOError("Kubernetes cluster {0} exists with {1}={2}, but {3} was asked for; it cannot change "
                          "in place. Delete the cluster or pick another name.".format(
                              p["name"], option, have[fixed], p[option]))
    if p["version"] not in ("latest", have["version"]) and not (have["version"] or "").startswith(p["version"] + "."):
        raise DOError("Kubernetes cluster {0} runs {1}, not {2}; upgrades are not done by this module "
                      "(use DigitalOcean's upgrade API or doctl).".format(p["name"], have["version"], p["version"]))
    if have["ha"] and p["ha"] is False:
        raise DOError("Kubernetes cluster {0} has a highly available control plane; it cannot be turned off.".format(
            p["name"]))
    want = dict(
        tags=norm_tags(p["tags"]) if p["tags"] is not None else None,
        maintenance_window=desired_window(p, have["maintenance_window"]),
        ha=p["ha"], auto_upgrade=p["auto_upgrade"], surge_upgrade=p["surge_upgrade"],
        registry_integration=p["registry_integration"],
    )
    changes = diff_fields(want, have)
    if not changes:
        return dict(changed=False, cluster=cluster, id=cluster["id"])
    after = dict(have, **dict((k, v[1]) for k, v in changes.items()))
    if module.check_mode:
        return dict(changed=True, cluster=cluster, id=cluster["id"], diff=make_diff(have, after))
    if any(key in changes for key in UPDATABLE):
        body = dict(name=cluster["name"])
        for key in ("tags", "ha", "auto_upgrade", "surge_upgrade"):
            if key in changes:
                body[key] = changes[key][1]
        if "maintenance_window" in changes:
            body["maintenance_policy"] = changes["maintenance_window"][1]
        client.call("update Kubernetes cluster {0}".format(p["name"]), client.client.kubernetes.update_cluster,
                    cluster["id"], body=body)
    if "registry_integration" in changes:
        set_registry(client, cluster["id"], changes["registry_integration"][1])
    if p["wait"]:
        cluster = wait_running(module, client, cluster["id"])
    else:
        cluster = get_cluster(client, cluster["id"]) or cluster
    return dict(changed=True, cluster=cluster, id=cluster["id"], diff=make_diff(have, view(cluster)))


def present(module, client):
    cluster = find_cluster(client, module.params["name"])
    if cluster is None:
        return create(module, client)
    return update(module, client, cluster)


def absent(module, client):
    p = module.params
    cluster = find_cluster(client, p["name"])
    if cluster is None:
        return dict(changed=False, cluster={}, id="")
    if module.check_mode:
        return dict(changed=True, cluster={}, id="", diff=make_diff(view(cluster), {}))
    if (cluster.get("status") or {}).get("state") != "deleting":
        client.call("delete Kubernetes cluster {0}".format(p["name"]), client.client.kubernetes.delete_cluster,
                    cluster["id"])
    if p["wait"]:
        client.wait_for("Kubernetes cluster {0} to be deleted".format(p["name"]),
                        lambda: get_cluster(client, cluster["id"]), lambda c: c is None,
                        p["wait_timeout"], p["poll_interval"])
    return dict(changed=True, cluster={}, id="", diff=make_diff(view(cluster), {}))


def main():
    pool_spec = dict(
        name=dict(type="str", required=True),
        size=dict(type="str", required=True),
        count=dict(type="int", required=True),
        labels=dict(type="dict"),
        taints=dict(type="list", elements="dict"),
        tags=dict(type="list", elements="str"),
    )
    module = new_module(dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        region=dict(type="str"),
        version=dict(type="str", default="latest"),
        vpc_id=dict(type="str"),
        ha=dict(type="bool"),
        auto_upgrade=dict(type="bool"),
        surge_upgrade=dict(type="bool"),
        maintenance_window=dict(type="dict", options=dict(
            day=dict(type="str", choices=["any", "monday", "tuesday", "wednesday", "thursday", "friday",
                                          "saturday", "sunday"]),
            start_time=dict(type="str"),
        )),
        tags=dict(type="list", elements="str"),
        registry_integration=dict(type="bool"),
        node_pools=dict(type="list", elements="dict", options=pool_spec),
    ), wait=True)
    run(module, present if module.params["state"] == "present" else absent)


if __name__ == "__main__":
    main()

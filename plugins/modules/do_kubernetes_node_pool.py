#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: do_kubernetes_node_pool
short_description: Create, resize, relabel or delete a node pool of a DOKS cluster
version_added: 0.1.0
description:
  - Finds the pool by O(name) in the cluster O(cluster_id) and makes it match the options, in place
    (the cluster is never replaced).
  - Node count, labels, taints, tags and autoscaling change in place. The Droplet size of a pool is fixed;
    asking for another size fails with a clear message (create a pool with a new name instead).
author: DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - do_solutions.gtc_demo.digitalocean
  - do_solutions.gtc_demo.digitalocean.wait
options:
  cluster_id:
    description:
      - UUID of the cluster. In check mode an empty value means the cluster would be created first;
        the module then reports the pool as to be created.
    type: str
    required: true
  name:
    description: Pool name, unique in the cluster.
    type: str
    required: true
  state:
    description: V(present) creates or updates; V(absent) deletes and, with O(wait), waits until it is gone.
    type: str
    choices: [present, absent]
    default: present
  size:
    description: Droplet size slug. Required to create; fixed afterwards.
    type: str
  count:
    description: Number of nodes. Required to create.
    type: int
  labels:
    description: Kubernetes labels on the nodes; replaces the pool's labels when given (V({}) removes all).
    type: dict
  taints:
    description: Kubernetes taints on the nodes; replaces the pool's taints when given (V([]) removes all).
    type: list
    elements: dict
    suboptions:
      key:
        description: Taint key.
        type: str
        required: true
      value:
        description: Taint value.
        type: str
        default: ""
      effect:
        description: Taint effect.
        type: str
        required: true
        choices: [NoSchedule, PreferNoSchedule, NoExecute]
  tags:
    description: Tags on the pool's Droplets. Tags DigitalOcean adds itself (C(k8s), C(k8s:*)) are ignored.
    type: list
    elements: str
  auto_scale:
    description: Let the cluster autoscaler size the pool between O(min_nodes) and O(max_nodes).
    type: bool
  min_nodes:
    description: Smallest size when autoscaling.
    type: int
  max_nodes:
    description: Largest size when autoscaling.
    type: int
attributes:
  check_mode:
    support: full
    description: Reports what would change and writes nothing.
  diff_mode:
    support: full
    description: Shows the managed fields before and after.
"""

EXAMPLES = r"""
- name: The GPU pool, labelled for the demo
  do_solutions.gtc_demo.do_kubernetes_node_pool:
    cluster_id: "{{ cluster.id }}"
    name: gtc-demo-dev-gpu
    size: gpu-h100x8-640gb
    count: 1
    labels:
      gtc-demo/pool: gpu
"""

RETURN = r"""
node_pool:
  description: The pool as the API returns it; empty after deletion or when a check-mode run would create it.
  returned: always
  type: dict
  sample: {"id": "cdda885e-7663-40c8-bc74-3a036c66545d", "name": "gtc-demo-dev-gpu", "count": 1}
id:
  description: The pool's UUID; empty when it does not exist (yet).
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
    list_node_pools,
    make_diff,
    new_module,
    norm_labels,
    norm_tags,
    norm_taints,
    run,
)

MANAGED = ("count", "labels", "taints", "tags", "auto_scale", "min_nodes", "max_nodes")


def view(pool):
    if not pool:
        return {}
    return dict(name=pool.get("name"), size=pool.get("size"), count=pool.get("count"),
                labels=norm_labels(pool.get("labels")), taints=norm_taints(pool.get("taints")),
                tags=norm_tags(pool.get("tags")), auto_scale=bool(pool.get("auto_scale")),
                min_nodes=pool.get("min_nodes") or 0, max_nodes=pool.get("max_nodes") or 0)


def desired(params):
    return dict(
        count=params["count"],
        labels=norm_labels(params["labels"]) if params["labels"] is not None else None,
        taints=norm_taints(params["taints"]) if params["taints"] is not None else None,
        tags=norm_tags(params["tags"]) if params["tags"] is not None else None,
        auto_scale=params["auto_scale"], min_nodes=params["min_nodes"], max_nodes=params["max_nodes"],
    )


def find_pool(client, cluster_id, name):
    for pool in list_node_pools(client, cluster_id):
        if pool.get("name") == name:
            return pool
    return None


def pool_ready(pool):
    """Every node running and, unless autoscaling, as many nodes as asked for."""
    if pool is None:
        return False
    nodes = pool.get("nodes") or []
    if not pool.get("auto_scale") and len(nodes) != pool.get("count"):
        return False
    return all((n.get("status") or {}).get("state") == "running" for n in nodes)


def wait_ready(module, client, pool_id):
    p = module.params

    def fetch():
        status, body = client.call("read node pool {0}".format(p["name"]), client.client.kubernetes.get_node_pool,
                                   p["cluster_id"], pool_id)
        if status == 404:
            raise DOError("Node pool {0} disappeared while waiting for it".format(p["name"]), status=404)
        return body.get("node_pool")

    return client.wait_for("node pool {0} to have {1} running nodes".format(p["name"], p["count"]), fetch,
                           pool_ready, p["wait_timeout"], p["poll_interval"])


def create(module, client):
    p = module.params
    if not p["size"] or p["count"] is None:
        raise DOError("size and count are required to create node pool {0}".format(p["name"]))
    body = dict(name=p["name"], size=p["size"], count=p["count"])
    want = desired(p)
    for key in ("labels", "taints", "tags", "auto_scale", "min_nodes", "max_nodes"):
        if want[key] is not None:
            body[key] = want[key]
    after = dict(view(dict(name=p["name"], size=p["size"])), **dict((k, v) for k, v in want.items() if v is not None))
    if module.check_mode:
        return dict(changed=True, node_pool={}, id="", diff=make_diff({}, after))
    _status, created = client.call("create node pool {0}".format(p["name"]), client.client.kubernetes.add_node_pool,
                                   p["cluster_id"], body=body)
    pool = created["node_pool"]
    if p["wait"]:
        pool = wait_ready(module, client, pool["id"])
    return dict(changed=True, node_pool=pool, id=pool["id"], diff=make_diff({}, view(pool)))


def update(module, client, pool):
    p = module.params
    have = view(pool)
    if p["size"] and p["size"] != have["size"]:
        raise DOError("Node pool {0} has size {1}, not {2}; a pool's Droplet size cannot change. "
                      "Create a pool with another name and delete this one.".format(p["name"], have["size"], p["size"]))
    changes = diff_fields(desired(p), have)
    if not changes:
        if p["wait"] and not module.check_mode and not pool_ready(pool):
            pool = wait_ready(module, client, pool["id"])
        return dict(changed=False, node_pool=pool, id=pool["id"])
    after = dict(have, **dict((k, v[1]) for k, v in changes.items()))
    if module.check_mode:
        return dict(changed=True, node_pool=pool, id=pool["id"], diff=make_diff(have, after))
    # PUT replaces the pool's settings: send every managed field, the unchanged ones as they are.
    body = dict(name=pool["name"], count=after["count"], labels=after["labels"], taints=after["taints"],
                tags=after["tags"])
    if after["auto_scale"] or "auto_scale" in changes:
        body.update(auto_scale=after["auto_scale"], min_nodes=after["min_nodes"], max_nodes=after["max_nodes"])
    _status, updated = client.call("update node pool {0}".format(p["name"]), client.client.kubernetes.update_node_pool,
                                   p["cluster_id"], pool["id"], body=body)
    pool = updated["node_pool"]
    if p["wait"]:
        pool = wait_ready(module, client, pool["id"])
    return dict(changed=True, node_pool=pool, id=pool["id"], diff=make_diff(have, view(pool)))


def present(module, client):
    p = module.params
    if not p["cluster_id"]:
        if module.check_mode:
            return create(module, client)
        raise DOError("cluster_id is empty; create the cluster first.")
    pool = find_pool(client, p["cluster_id"], p["name"])
    if pool is None:
        return create(module, client)
    return update(module, client, pool)


def absent(module, client):
    p = module.params
    if not p["cluster_id"]:
        return dict(changed=False, node_pool={}, id="")
    status, body = client.call("read Kubernetes cluster {0}".format(p["cluster_id"]),
                               client.client.kubernetes.get_cluster, p["cluster_id"])
    if status == 404:
        return dict(changed=False, node_pool={}, id="")
    pool = find_pool(client, p["cluster_id"], p["name"])
    if pool is None:
        return dict(changed=False, node_pool={}, id="")
    if module.check_mode:
        return dict(changed=True, node_pool={}, id="", diff=make_diff(view(pool), {}))
    client.call("delete node pool {0}".format(p["name"]), client.client.kubernetes.delete_node_pool,
                p["cluster_id"], pool["id"])
    if p["wait"]:
        client.wait_for("node pool {0} to be deleted".format(p["name"]),
                        lambda: find_pool(client, p["cluster_id"], p["name"]), lambda found: found is None,
                        p["wait_timeout"], p["poll_interval"])
    return dict(changed=True, node_pool={}, id="", diff=make_diff(view(pool), {}))


def main():
    module = new_module(dict(
        cluster_id=dict(type="str", required=True),
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        size=dict(type="str"),
        count=dict(type="int"),
        labels=dict(type="dict"),
        taints=dict(type="list", elements="dict", options=dict(
            key=dict(type="str", required=True, no_log=False),
            value=dict(type="str", default=""),
            effect=dict(type="str", required=True, choices=["NoSchedule", "PreferNoSchedule", "NoExecute"]),
        )),
        tags=dict(type="list", elements="str"),
        auto_scale=dict(type="bool"),
        min_nodes=dict(type="int"),
        max_nodes=dict(type="int"),
    ), wait=True)
    run(module, present if module.params["state"] == "present" else absent)


if __name__ == "__main__":
    main()

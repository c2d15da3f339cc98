#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: do_kubernetes_cluster_info
short_description: Look up a DOKS cluster and its node pools by name
version_added: 0.1.0
description:
  - Read-only; never creates or changes anything.
author: DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - do_solutions.gtc_demo.digitalocean
  - do_solutions.gtc_demo.digitalocean.info
options:
  name:
    description: Cluster name.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Find the demo's cluster
  do_solutions.gtc_demo.do_kubernetes_cluster_info:
    name: gtc-demo-dev
  register: cluster
"""

RETURN = r"""
exists:
  description: Whether the cluster exists.
  returned: always
  type: bool
cluster:
  description: The cluster as the API returns it, node pools included; empty when it does not exist.
  returned: always
  type: dict
node_pools:
  description: The cluster's node pools by name.
  returned: always
  type: dict
api_attempts:
  description: HTTP requests made, retries included.
  returned: always
  type: int
api_retries_used:
  description: Requests repeated after a 429, a 5xx or a dropped connection.
  returned: always
  type: int
"""

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.digitalocean import find_cluster, new_module, run


def lookup(module, client):
    cluster = find_cluster(client, module.params["name"])
    pools = dict((p.get("name"), p) for p in (cluster or {}).get("node_pools") or [])
    return dict(changed=False, exists=cluster is not None, cluster=cluster or {}, node_pools=pools)


def main():
    module = new_module(dict(name=dict(type="str", required=True)))
    run(module, lookup)


if __name__ == "__main__":
    main()

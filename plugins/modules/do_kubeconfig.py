#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: do_kubeconfig
short_description: Save the kubeconfig of a DOKS cluster to a file
version_added: 0.1.0
description:
  - Downloads the cluster's kubeconfig and writes it to O(path) with mode O(mode).
  - DigitalOcean hands out a fresh credential on every download, so the file is compared by what it points at
    (clusters, contexts, current context), not byte for byte; an existing file for the same cluster is left as
    it is unless O(refresh) asks for a new credential. That keeps a second run at C(changed=false).
  - The kubeconfig holds a credential; the module never returns or diffs the file's content.
author: DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - do_solutions.gtc_demo.digitalocean
options:
  cluster_id:
    description:
      - UUID of the cluster. In check mode an empty value means the cluster would be created first;
        the module then reports the file as to be written.
    type: str
  path:
    description: Where to write the kubeconfig. Parent folders are created (mode 0700).
    type: path
    required: true
  state:
    description: V(present) writes the file; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  mode:
    description: File mode of the kubeconfig.
    type: str
    default: "0600"
  expiry_seconds:
    description: Lifetime of the credential in seconds; V(0) takes DigitalOcean's default (7 days).
    type: int
    default: 0
  refresh:
    description: Rewrite the file with a fresh credential even when it already points at this cluster.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports whether the file would be written; writes nothing.
  diff_mode:
    support: full
    description: Shows the clusters and contexts the file points at, never the credential.
"""

EXAMPLES = r"""
- name: Save the demo cluster's kubeconfig
  do_solutions.gtc_demo.do_kubeconfig:
    cluster_id: "{{ cluster.id }}"
    path: ~/.kube/gtc-demo-dev.yaml
"""

RETURN = r"""
path:
  description: The kubeconfig's path.
  returned: always
  type: str
server:
  description: The API server URL the kubeconfig points at.
  returned: when O(state=present)
  type: str
context:
  description: The kubeconfig's current context.
  returned: when O(state=present)
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

import os
import tempfile
import traceback

from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.digitalocean import DOError, make_diff, new_module, run

YAML_IMPORT_ERROR = None
try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core depends on PyYAML
    yaml = None  # type: ignore[assignment]
    YAML_IMPORT_ERROR = traceback.format_exc()


def identity(config):
    """What a kubeconfig points at, without its credentials."""
    if not isinstance(config, dict):
        return {}
    clusters = sorted((c.get("name"), (c.get("cluster") or {}).get("server"),
                       (c.get("cluster") or {}).get("certificate-authority-data"))
                      for c in config.get("clusters") or [])
    contexts = sorted((c.get("name"), (c.get("context") or {}).get("cluster"), (c.get("context") or {}).get("user"))
                      for c in config.get("contexts") or [])
    return dict(clusters=clusters, contexts=contexts, current_context=config.get("current-context"))


def shown(ident, path):
    """Diff-safe account of a kubeconfig: names and servers only."""
    if not ident:
        return dict(path=path, state="absent")
    return dict(path=path, state="present", current_context=ident.get("current_context"),
                clusters=["{0} {1}".format(name, server) for name, server, _ca in ident.get("clusters", [])])


def read_existing(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as handle:
        try:
            return yaml.safe_load(handle) or {}
        except yaml.YAMLError:
            return {}


def write(module, path, text):
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".kubeconfig-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(to_bytes(text))
        module.atomic_move(tmp, path)
        # atomic_move gives a new file the umask's mode; a credential file must be private.
        os.chmod(path, int(module.params["mode"], 8))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def mode_differs(module, path):
    return os.path.exists(path) and (os.stat(path).st_mode & 0o7777) != int(module.params["mode"], 8)


def present(module, client):
    p = module.params
    path = p["path"]
    before = identity(read_existing(path))
    if not p["cluster_id"]:
        if module.check_mode:
            return dict(changed=True, path=path, diff=make_diff(shown(before, path), dict(path=path, state="present")))
        raise DOError("cluster_id is empty; create the cluster first.")
    _status, text = client.get_text("download the kubeconfig of cluster {0}".format(p["cluster_id"]),
                                    "/v2/kubernetes/clusters/{0}/kubeconfig".format(p["cluster_id"]),
                                    expiry_seconds=p["expiry_seconds"])
    if _status == 404:
        raise DOError("Kubernetes cluster {0} does not exist; cannot download its kubeconfig.".format(p["cluster_id"]),
                      status=404)
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DOError("The kubeconfig DigitalOcean returned is not YAML: {0}".format(to_native(exc))) from exc
    after = identity(config)
    result = dict(path=path, server=(after["clusters"][0][1] if after.get("clusters") else ""),
                  context=after.get("current_context") or "")
    rewrite = p["refresh"] or before != after
    chmod = not rewrite and mode_differs(module, path)
    if not rewrite and not chmod:
        return dict(result, changed=False)
    diff = make_diff(shown(before, path), shown(after, path))
    if chmod:
        diff["before"]["mode"] = "%04o" % (os.stat(path).st_mode & 0o7777)
        diff["after"]["mode"] = p["mode"]
    if not module.check_mode:
        if rewrite:
            write(module, path, text)
        else:
            os.chmod(path, int(p["mode"], 8))
    return dict(result, changed=True, diff=diff)


def absent(module, client):
    path = module.params["path"]
    if not os.path.exists(path):
        return dict(changed=False, path=path)
    before = shown(identity(read_existing(path)), path)
    if not module.check_mode:
        os.unlink(path)
    return dict(changed=True, path=path, diff=make_diff(before, dict(path=path, state="absent")))


def main():
    module = new_module(dict(
        cluster_id=dict(type="str"),
        path=dict(type="path", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        mode=dict(type="str", default="0600"),
        expiry_seconds=dict(type="int", default=0),
        refresh=dict(type="bool", default=False),
    ), required_if=[("state", "present", ("cluster_id",))])
    if yaml is None:
        module.fail_json(msg="PyYAML is required", exception=YAML_IMPORT_ERROR)
    run(module, present if module.params["state"] == "present" else absent)


if __name__ == "__main__":
    main()

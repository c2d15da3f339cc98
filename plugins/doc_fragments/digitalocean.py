# -*- coding: utf-8 -*-
# Copyright: DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:
    # Authentication and API options shared by every DigitalOcean module.
    DOCUMENTATION = r"""
options:
  token:
    description:
      - DigitalOcean API token.
      - When not given, read from E(DIGITALOCEAN_ACCESS_TOKEN), else E(DIGITALOCEAN_TOKEN); the first one
        set and not empty wins. The roles and playbooks of the collection follow the same rule. Keeping the
        token in the environment keeps it out of inventories, logs and module arguments.
      - Never logged or returned.
    type: str
  api_endpoint:
    description:
      - Base URL of the DigitalOcean API. Plain C(http://) is accepted so tests can point it at a local fake.
    type: str
    default: https://api.digitalocean.com
  api_retries:
    description:
      - How many times a request is retried. pydo's own retry policy (azure-core's C(RetryPolicy)) does the retries.
      - Retried, for every method, a 429 and any answer that carries C(Retry-After). Reads, updates and deletes are
        also retried on 408, 500, 502, 503, 504 and a dropped connection; creates (POST, PATCH) only on 500,
        503 and 504, so that a create is not sent twice. 401, 403 and 422 are never retried.
      - The wait is C(Retry-After) when the API sends it, at most 60 seconds; otherwise the first retry is
        at once and each next one waits 2, 4, 8, 16 ... seconds.
    type: int
    default: 5
requirements:
  - pydo >= 0.44.0
notes:
  - Runs on the controller (or any host with C(pydo)); it talks only to the DigitalOcean API.
"""

    # Options of the modules that wait for a resource to become ready or go away.
    WAIT = r"""
options:
  wait:
    description:
      - Wait until the resource is ready (or, for O(state=absent), gone).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait before failing; the failure says what was last seen.
    type: int
    default: 1800
  poll_interval:
    description:
      - Seconds between two looks while waiting.
    type: float
    default: 10.0
"""

    # Attributes of the read-only *_info modules.
    INFO = r"""
attributes:
  check_mode:
    support: full
    description: Only reads; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
"""

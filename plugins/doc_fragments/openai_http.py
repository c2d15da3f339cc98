# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Options for talking to an OpenAI-compatible HTTP server.

Matches HTTP_ARG_SPEC in plugins/module_utils/openai_client.py.
"""

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
  api_key:
    description:
      - "Bearer token sent as C(Authorization: Bearer <api_key>)."
      - When not given, the value of the E(GTC_DEMO_API_KEY) environment variable is used, if set.
      - The local demo and an in-cluster Dynamo frontend need none.
      - Never put a token in O(headers); this option is masked in logs and results.
    type: str
  headers:
    description:
      - Extra HTTP headers sent with every request.
      - Their values appear in logs; pass secrets in O(api_key) instead.
    type: dict
    default: {}
  timeout:
    description:
      - Seconds one request may take, also the socket timeout for connecting and for each read.
      - For the streaming request it bounds the whole stream.
    type: float
    default: 30
  retries:
    description:
      - How many times to try again after a transient failure, so a check runs at most O(retries) + 1 times.
      - Transient failures are a refused or timed out connection, HTTP 408, 425, 429, 500, 502, 503 and 504,
        and a model that V(/v1/models) does not list yet (Dynamo workers register after the frontend starts).
      - Other HTTP errors and malformed answers fail at once; a stream that breaks after it started is never retried.
    type: int
    default: 3
  retry_delay:
    description:
      - Seconds to wait between two attempts.
    type: float
    default: 2
  validate_certs:
    description:
      - Verify the server's TLS certificate when O(url) is C(https://).
      - Set to V(false) only for a test cluster with a self-signed certificate; prefer O(ca_path).
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the certificate authority to trust for C(https://) URLs.
    type: path
  use_proxy:
    description:
      - Use the proxy named by the usual C(http_proxy)/C(https_proxy)/C(no_proxy) environment variables.
    type: bool
    default: true
"""

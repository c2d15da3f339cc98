#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: validate_inference
short_description: Check that an OpenAI-compatible inference server (Dynamo) answers a model
version_added: 0.1.0
description:
  - Lists the models of an OpenAI-compatible server (V(/v1/models)), checks that O(model) is among them,
    sends one chat completion and one streaming chat completion, and returns the answer, the time to
    first token measured on the stream, the token usage and, when the server is NVIDIA Dynamo, its
    C(nvext) timing (server-side TTFT, KV cache hit rate) and the id of the worker that decoded.
  - >-
    Dynamo's extra fields are asked for with C({"nvext": {"extra_fields": ["timing", "worker_id"]}});
    other servers ignore or reject that field, see O(request_nvext).
  - Fails with a message naming what went wrong when the URL cannot be reached, the model is not served
    (the message lists the served ones), the server answers with an HTTP error (status and the start of
    the body), or the answer is malformed (not JSON, a line that is not a server-sent event, a chunk
    that is not JSON, a stream without its closing C([DONE]) or cut mid-stream).
  - An answer without text is not a success, even if its usage counts generated tokens (what a
    mocker engine does when its tokenizer decodes the generated ids to nothing). The module warns,
    sets RV(empty_content), and fails unless O(allow_empty_content=true).
  - The server is either a URL (O(url)) or a Kubernetes Service reached through the API server's service
    proxy (O(service)), with the API server's address, CA and token read from a kubeconfig the way
    M(kubernetes.core.k8s) names it (O(kubeconfig), O(context)).
  - The module only reads and asks; it never changes the server, so RV(ignore:changed) is always V(false).
author:
  - DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - do_solutions.gtc_demo.checks
  - do_solutions.gtc_demo.openai_http
attributes:
  check_mode:
    support: full
    details:
      - The requests are sent in check mode too. An inference request changes nothing on the server
        (beyond warming its KV cache), so a dry run checks exactly what a real run checks.
options:
  url:
    description:
      - Base URL of the server, for example V(http://127.0.0.1:8000).
      - A trailing V(/v1) or V(/) is accepted and ignored; the module adds V(/v1/models) and V(/v1/chat/completions).
      - Exactly one of O(url) and O(service) is required.
    type: str
    aliases: [base_url]
  service:
    description:
      - A Kubernetes Service to reach through the API server's service proxy
        (C(<server>/api/v1/namespaces/<namespace>/services/<scheme>:<name>:<port>/proxy)), for a
        ClusterIP Service that this machine cannot reach directly.
      - The API server's address, its CA and the bearer token come from O(kubeconfig) and O(context);
        O(api_key), O(ca_path) and O(validate_certs) are not used for it (C(insecure-skip-tls-verify)
        in the kubeconfig turns certificate checks off).
      - Only kubeconfig users with a C(token) or C(tokenFile) are supported, which is what a
        DigitalOcean Kubernetes kubeconfig has; client certificates and exec plugins fail with a
        message saying so.
      - Exactly one of O(url) and O(service) is required.
    type: dict
    suboptions:
      namespace:
        description: Namespace of the Service.
        type: str
        required: true
      name:
        description: Name of the Service.
        type: str
        required: true
      port:
        description: The Service port, by number or by name.
        type: str
        required: true
      scheme:
        description: How the API server talks to the Service's port.
        type: str
        choices: [http, https]
        default: http
  kubeconfig:
    description:
      - Path of the kubeconfig for O(service), as in M(kubernetes.core.k8s).
      - Defaults to E(K8S_AUTH_KUBECONFIG), then the first entry of E(KUBECONFIG), then C(~/.kube/config).
    type: path
  context:
    description:
      - The kubeconfig's context for O(service); its current context when not given.
      - Defaults to E(K8S_AUTH_CONTEXT).
    type: str
  model:
    description:
      - The model name to ask for; it must be listed by V(/v1/models) when O(checks) contains V(models).
    type: str
    required: true
  prompt:
    description:
      - The user message to send.
      - When neither O(prompt) nor O(messages) is given, the prompt is V(Say hello in one short sentence.)
    type: str
  messages:
    description:
      - The whole conversation to send instead of O(prompt), as OpenAI chat messages (C(role) and C(content)).
      - Sending the same long system prompt twice is a way to see the KV cache hit in RV(kv_hit_rate).
    type: list
    elements: dict
  max_tokens:
    description:
      - Largest number of tokens to generate for each of the two completions.
    type: int
    default: 16
  checks:
    description:
      - The checks to run, always in the order models, chat, stream.
      - Leave out V(models) for a gateway that does not expose V(/v1/models).
      - RV(ttft_ms) needs V(stream).
    type: list
    elements: str
    choices: [models, chat, stream]
    default: [models, chat, stream]
  request_nvext:
    description:
      - Ask Dynamo for its C(nvext) timing and worker id.
      - Set to V(false) for a server that rejects unknown request fields.
    type: bool
    default: true
  extra_body:
    description:
      - More fields for both chat completion requests, for example C(temperature) or C(seed).
      - They override the fields the module sets (C(model), C(messages), C(max_tokens), C(nvext)).
    type: dict
    default: {}
  allow_empty_content:
    description:
      - Succeed (with a warning and RV(empty_content=true)) when an answer carries no text.
      - By default such an answer fails the task.
    type: bool
    default: false
notes:
  - Uses only the Python standard library and C(ansible.module_utils.urls); it needs no C(requests) or C(openai) package.
  - RV(ttft_ms) is measured by the module from just before the streaming request is sent to the arrival of the
    first chunk that carries text, so it includes connecting and queueing. RV(server_ttft_ms) is Dynamo's own figure.
  - Retries apply to each check on its own; RV(attempts) tells how many tries each one took.
seealso:
  - name: OpenAI chat completions API
    description: The request and streaming chunk format this module speaks.
    link: https://platform.openai.com/docs/api-reference/chat
"""

EXAMPLES = r"""
- name: Check the local demo's KV-aware frontend
  do_solutions.gtc_demo.validate_inference:
    url: http://127.0.0.1:8000
    model: nvidia/Llama-3.1-70B-Instruct-FP8
  register: kv_check

- name: Show what it measured
  ansible.builtin.debug:
    msg: >-
      {{ kv_check.answer }} (TTFT {{ kv_check.ttft_ms }} ms on worker {{ kv_check.worker_id }},
      KV hit rate {{ kv_check.kv_hit_rate }})

- name: Wait up to about a minute for a frontend whose workers are still registering
  do_solutions.gtc_demo.validate_inference:
    url: http://127.0.0.1:8001/v1
    model: nvidia/Llama-3.1-70B-Instruct-FP8
    retries: 30
    retry_delay: 2
    timeout: 10

- name: Check the public endpoint with a token from the environment and a private CA
  do_solutions.gtc_demo.validate_inference:
    url: https://gtc-2026.digitalocean.solutions
    model: nvidia/Llama-3.1-70B-Instruct-FP8
    api_key: "{{ lookup('ansible.builtin.env', 'GTC_DEMO_API_KEY') }}"
    ca_path: /etc/ssl/certs/gtc-demo-ca.pem
    messages:
      - role: system
        content: You are a terse assistant at a conference booth.
      - role: user
        content: What is KV-cache-aware routing?
    max_tokens: 64
    extra_body:
      temperature: 0
  no_log: true

- name: Check a frontend's ClusterIP Service through the API server's service proxy
  do_solutions.gtc_demo.validate_inference:
    service:
      namespace: gtc-demo
      name: gtc-demo-frontend
      port: 8000
    kubeconfig: "{{ gtc_demo_kubeconfig }}"
    model: nvidia/Llama-3.1-70B-Instruct-FP8
    retries: 20
    retry_delay: 5

- name: Only stream, and accept a mocker whose tokenizer decodes to nothing
  do_solutions.gtc_demo.validate_inference:
    url: http://127.0.0.1:8000
    model: nvidia/Llama-3.1-70B-Instruct-FP8
    checks: [stream]
    allow_empty_content: true
"""

RETURN = r"""
url:
  description:
    - The base URL used, without a trailing V(/v1).
    - With O(service), the service proxy URL on the API server.
  returned: always
  type: str
  sample: http://127.0.0.1:8000
context:
  description: With O(service), the kubeconfig context used.
  returned: when O(service) is given
  type: str
  sample: do-sfo3-gtc-dev
model:
  description: The model asked for.
  returned: always
  type: str
  sample: nvidia/Llama-3.1-70B-Instruct-FP8
models:
  description: The model ids V(/v1/models) lists.
  returned: when O(checks) contains V(models) and the server answered
  type: list
  elements: str
  sample: [nvidia/Llama-3.1-70B-Instruct-FP8]
served_models:
  description: On failure because the model is not served, the model ids the server does list.
  returned: when the model is not served
  type: list
  elements: str
  sample: [some/other-model]
answer:
  description: The text of the chat completion, or of the stream when O(checks) has no V(chat).
  returned: when O(checks) contains V(chat) or V(stream)
  type: str
  sample: " Hello there, welcome to the booth."
ttft_ms:
  description:
    - Time to first token in milliseconds, measured by the module on the stream (see notes).
    - V(null) when the stream carried no text.
  returned: when O(checks) contains V(stream)
  type: float
  sample: 21.4
server_ttft_ms:
  description: Dynamo's own time to first token (C(nvext.timing.ttft_ms)) of the last completion; V(null) when absent.
  returned: when O(checks) contains V(chat) or V(stream)
  type: float
  sample: 20.79
kv_hit_rate:
  description:
    - Share of the prompt found in the chosen worker's KV cache (C(nvext.timing.kv_hit_rate)), from 0 to 1.
    - Only a KV-aware Dynamo router reports it; V(null) otherwise.
  returned: when O(checks) contains V(chat) or V(stream)
  type: float
  sample: 0.0
worker_id:
  description: Id of the Dynamo worker that decoded the last completion (C(nvext.worker_id.decode_worker_id)); V(null) when absent.
  returned: when O(checks) contains V(chat) or V(stream)
  type: int
  sample: 7758947890440306334
usage:
  description: Token usage of the last completion (the stream's when streamed), as the server reported it.
  returned: when O(checks) contains V(chat) or V(stream)
  type: dict
  sample: {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25, "prompt_tokens_details": {"cached_tokens": 0}}
cached_tokens:
  description: C(usage.prompt_tokens_details.cached_tokens) of the last completion; V(null) when absent.
  returned: when O(checks) contains V(chat) or V(stream)
  type: int
  sample: 0
nvext:
  description: Dynamo's C(nvext) object of the last completion (merged over the stream's chunks); V(null) when absent.
  returned: when O(checks) contains V(chat) or V(stream)
  type: dict
  sample:
    worker_id: {"prefill_worker_id": 7758947890440306334, "decode_worker_id": 7758947890440306334}
    timing: {"ttft_ms": 20.79, "total_time_ms": 43.88, "kv_hit_rate": 0.0, "router_queue_depth": 0}
empty_content:
  description: V(true) when an answer carried no text (see O(allow_empty_content)).
  returned: always
  type: bool
  sample: false
chat:
  description: The non-streaming chat completion.
  returned: when O(checks) contains V(chat)
  type: dict
  contains:
    id:
      description: The completion id.
      type: str
    answer:
      description: The message content.
      type: str
    finish_reason:
      description: Why generation stopped (V(stop), V(length)).
      type: str
    latency_ms:
      description: Milliseconds from sending the request to reading the whole answer.
      type: float
    usage:
      description: Token usage.
      type: dict
    nvext:
      description: Dynamo's extra fields, or V(null).
      type: dict
  sample: {"id": "chatcmpl-1", "answer": " Hello.", "finish_reason": "length", "latency_ms": 83.3, "usage": {}, "nvext": null}
stream:
  description: The streaming chat completion.
  returned: when O(checks) contains V(stream)
  type: dict
  contains:
    id:
      description: The completion id.
      type: str
    answer:
      description: The text of all chunks joined.
      type: str
    ttft_ms:
      description: Milliseconds to the first chunk with text, or V(null).
      type: float
    first_chunk_ms:
      description: Milliseconds to the first chunk of any kind.
      type: float
    total_ms:
      description: Milliseconds to the end of the stream.
      type: float
    chunks:
      description: "Number of JSON chunks before the closing C(data: [DONE]) line."
      type: int
    content_chunks:
      description: Number of chunks that carried text.
      type: int
    finish_reason:
      description: Why generation stopped.
      type: str
    usage:
      description: Token usage from the final chunk (asked for with C(stream_options.include_usage)).
      type: dict
    nvext:
      description: Dynamo's extra fields merged over all chunks, or V(null).
      type: dict
  sample: {"id": "chatcmpl-2", "answer": " Hello.", "ttft_ms": 21.4, "first_chunk_ms": 21.4, "total_ms": 44.0,
           "chunks": 7, "content_chunks": 5, "finish_reason": "length", "usage": {}, "nvext": null}
attempts:
  description: How many tries each check took (1 when it passed at once).
  returned: always
  type: dict
  sample: {"models": 1, "chat": 1, "stream": 1}
status:
  description: The HTTP status, when the task failed on an HTTP error.
  returned: on an HTTP error
  type: int
  sample: 500
body:
  description: The start of the error response's body, when the task failed on an HTTP error.
  returned: on an HTTP error
  type: str
  sample: '{"message":"Model not found","type":"Not Found","code":404}'
request_url:
  description: The URL of the request that failed.
  returned: on failure of a request
  type: str
  sample: http://127.0.0.1:8000/v1/models
partial_answer:
  description: The text received before a stream broke.
  returned: when the stream was malformed or cut
  type: str
  sample: " Hello"
"""

import os

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.kubeconfig import KubeconfigError, api_server, default_path
from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.openai_client import (
    CHECKS,
    HTTP_ARG_SPEC,
    InferenceError,
    InferenceValidation,
    OpenAIClient,
)


def through_service_proxy(module):
    """The base URL, token and TLS settings of the Service through the API server's proxy."""
    p = module.params
    path = p['kubeconfig'] or default_path()
    service = p['service']
    try:
        server = api_server(path, p['context'])
        url = server.service_proxy_url(service['namespace'], service['name'], service['port'], service['scheme'])
    except KubeconfigError as exc:
        module.fail_json(msg='Cannot reach the Service %s/%s through the service proxy: %s'
                         % (service['namespace'], service['name'], exc), changed=False)
    # Masked wherever it might show, like a no_log option.
    module.no_log_values.add(server.token)
    ca_path = server.ca_file
    if server.ca_data:
        # The module's own temporary folder, removed by Ansible when the module ends.
        ca_path = os.path.join(module.tmpdir, 'api-server-ca.pem')
        with open(ca_path, 'wb') as handle:
            handle.write(server.ca_data)
    return dict(url=url, api_key=server.token, ca_path=ca_path, validate_certs=not server.insecure,
                context=server.context)


def main():
    argument_spec = dict(
        url=dict(type='str', aliases=['base_url']),
        service=dict(type='dict', options=dict(
            namespace=dict(type='str', required=True),
            name=dict(type='str', required=True),
            port=dict(type='str', required=True),
            scheme=dict(type='str', choices=['http', 'https'], default='http'),
        )),
        kubeconfig=dict(type='path', fallback=(env_fallback, ['K8S_AUTH_KUBECONFIG'])),
        context=dict(type='str', fallback=(env_fallback, ['K8S_AUTH_CONTEXT'])),
        model=dict(type='str', required=True),
        prompt=dict(type='str'),
        messages=dict(type='list', elements='dict'),
        max_tokens=dict(type='int', default=16, no_log=False),  # a token count, not a secret
        checks=dict(type='list', elements='str', choices=list(CHECKS), default=list(CHECKS)),
        request_nvext=dict(type='bool', default=True),
        extra_body=dict(type='dict', default={}),
        allow_empty_content=dict(type='bool', default=False),
    )
    argument_spec.update(HTTP_ARG_SPEC)
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[('prompt', 'messages'), ('url', 'service')],
        required_one_of=[('url', 'service')],
        supports_check_mode=True,
    )
    p = module.params
    if p['max_tokens'] < 1:
        module.fail_json(msg='max_tokens must be 1 or more, got %d' % p['max_tokens'])

    target = dict(url=p['url'], api_key=p['api_key'], ca_path=p['ca_path'], validate_certs=p['validate_certs'])
    extra = {}
    if p['service']:
        target = through_service_proxy(module)
        extra['context'] = target.pop('context')

    validation = None
    try:
        client = OpenAIClient(
            target['url'], api_key=target['api_key'], headers=p['headers'], timeout=p['timeout'],
            retries=p['retries'], retry_delay=p['retry_delay'], validate_certs=target['validate_certs'],
            ca_path=target['ca_path'], use_proxy=p['use_proxy'])
        validation = InferenceValidation(
            client, p['model'], messages=p['messages'], prompt=p['prompt'], max_tokens=p['max_tokens'],
            checks=p['checks'], request_nvext=p['request_nvext'], extra_body=p['extra_body'])
        result = validation.run()
    except InferenceError as exc:
        seen = dict(validation.result) if validation is not None else dict(changed=False)
        seen.update(exc.details)
        seen.update(extra)
        module.fail_json(msg=exc.msg, **seen)

    result.update(extra)
    for warning in validation.warnings:
        module.warn(warning)
    if result['empty_content'] and not p['allow_empty_content']:
        module.fail_json(msg='%s; set allow_empty_content=true to accept it' % '; '.join(validation.warnings), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

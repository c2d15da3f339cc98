# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What a module needs from a kubeconfig to reach the API server over plain HTTPS.

The kubeconfig format (clusters, contexts, users, current-context; a cluster's
server, certificate-authority(-data) and insecure-skip-tls-verify; a user's
token or tokenFile) is the one client-go reads (k8s.io/client-go
tools/clientcmd/api/v1/types.go). Only bearer-token users are supported: that
is what a DigitalOcean Kubernetes kubeconfig carries. Client certificates and
exec plugins are refused with a message saying so.

The service proxy path is the API server's
``/api/v1/namespaces/<ns>/services/[<scheme>:]<name>[:<port>]/proxy/``
(Kubernetes docs, "Manually constructing apiserver proxy URLs").
"""

from __future__ import annotations

import base64
import os
from urllib.parse import quote

try:
    import yaml
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    HAS_YAML = False


class KubeconfigError(Exception):
    """The kubeconfig cannot give what is needed; the message says what and where."""


class ApiServer:
    """The API server one context of a kubeconfig points at, and how to authenticate to it."""

    def __init__(self, server, token, ca_data=None, ca_file=None, insecure=False, context=''):
        self.server = server.rstrip('/')
        self.token = token
        self.ca_data = ca_data
        self.ca_file = ca_file
        self.insecure = insecure
        self.context = context

    def service_proxy_url(self, namespace, name, port, scheme='http'):
        """Base URL of a Service's port through this API server's service proxy (no trailing slash)."""
        for what, value in (('namespace', namespace), ('name', name), ('port', port)):
            if value is None or str(value).strip() == '':
                raise KubeconfigError('the service %s is empty' % what)
        target = '%s:%s:%s' % (scheme, name, port)
        return '%s/api/v1/namespaces/%s/services/%s/proxy' % (
            self.server, quote(str(namespace), safe=''), quote(target, safe=':'))


def default_path(environ=None):
    """The kubeconfig kubectl would read: the first entry of $KUBECONFIG, else ~/.kube/config."""
    environ = os.environ if environ is None else environ
    listed = [p for p in (environ.get('KUBECONFIG') or '').split(os.pathsep) if p]
    if listed:
        return listed[0]
    return os.path.join(os.path.expanduser('~'), '.kube', 'config')


def _named(config, section, name, path):
    entries = config.get(section) or []
    if not isinstance(entries, list):
        raise KubeconfigError('%s: %s is not a list' % (path, section))
    for entry in entries:
        if isinstance(entry, dict) and entry.get('name') == name:
            body = entry.get(section[:-1])
            if not isinstance(body, dict):
                raise KubeconfigError('%s: %s %r has no %s mapping' % (path, section[:-1], name, section[:-1]))
            return body
    known = ', '.join(str(e.get('name')) for e in entries if isinstance(e, dict)) or 'none'
    raise KubeconfigError('%s has no %s named %r (it has: %s)' % (path, section[:-1], name, known))


def _relative(path, value):
    """Paths in a kubeconfig are relative to the kubeconfig's folder (clientcmd ResolvePaths)."""
    return value if os.path.isabs(value) else os.path.join(os.path.dirname(os.path.abspath(path)), value)


def load(path):
    """The parsed kubeconfig at ``path``."""
    if not HAS_YAML:
        raise KubeconfigError('reading a kubeconfig needs PyYAML')
    try:
        with open(path, encoding='utf-8') as handle:
            config = yaml.safe_load(handle)
    except OSError as exc:
        raise KubeconfigError('cannot read the kubeconfig %s: %s' % (path, exc.strerror or exc)) from exc
    except yaml.YAMLError as exc:
        raise KubeconfigError('the kubeconfig %s is not YAML: %s' % (path, exc)) from exc
    if not isinstance(config, dict):
        raise KubeconfigError('the kubeconfig %s is not a mapping of clusters, contexts and users' % path)
    return config


def api_server(path, context=None):
    """The API server of ``context`` (default: the current context) in the kubeconfig at ``path``."""
    config = load(path)
    name = context or config.get('current-context')
    if not name:
        raise KubeconfigError('the kubeconfig %s has no current-context; name a context' % path)
    ctx = _named(config, 'contexts', name, path)
    if not ctx.get('cluster') or not ctx.get('user'):
        raise KubeconfigError('%s: context %r names no cluster or no user' % (path, name))
    cluster = _named(config, 'clusters', ctx['cluster'], path)
    user = _named(config, 'users', ctx['user'], path)

    server = cluster.get('server') or ''
    if not server.startswith(('https://', 'http://')):
        raise KubeconfigError('%s: cluster %r has no http(s) server address (got %r)' % (path, ctx['cluster'], server))

    ca_data = None
    ca_file = None
    if cluster.get('certificate-authority-data'):
        try:
            ca_data = base64.b64decode(cluster['certificate-authority-data'], validate=True)
        except (TypeError, ValueError) as exc:
            raise KubeconfigError('%s: certificate-authority-data of cluster %r is not base64' % (path, ctx['cluster'])) from exc
    elif cluster.get('certificate-authority'):
        ca_file = _relative(path, cluster['certificate-authority'])
        if not os.path.isfile(ca_file):
            raise KubeconfigError('%s: the certificate-authority file %s of cluster %r does not exist' % (path, ca_file, ctx['cluster']))

    token = user.get('token')
    if not token and user.get('tokenFile'):
        token_file = _relative(path, user['tokenFile'])
        try:
            with open(token_file, encoding='utf-8') as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise KubeconfigError('%s: cannot read the tokenFile of user %r: %s' % (path, ctx['user'], exc.strerror or exc)) from exc
    if not token:
        how = ('an exec plugin' if user.get('exec') else 'client certificates'
               if user.get('client-certificate-data') or user.get('client-certificate') else 'no credential')
        raise KubeconfigError(
            '%s: user %r of context %r has %s, not a bearer token; only token users can reach the service proxy '
            'here (give the URL of the Service instead)' % (path, ctx['user'], name, how))
    return ApiServer(server, token, ca_data=ca_data, ca_file=ca_file,
                     insecure=bool(cluster.get('insecure-skip-tls-verify')), context=name)

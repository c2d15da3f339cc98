"""The presenter's settings, kept across a restart of the app.

Every accepted change (``/api/settings``, a preset) is written to a small JSON
document; at start the app reads it back over its initial settings. The
document also records the initial settings it was made from (``--settings``,
that is the inventory's ``loadgen_settings``): when those changed, the
deployment asked for something new and the kept settings are dropped.

A document that cannot be used (not JSON, another format, a routing that is no
longer configured, a value out of range) is reported in the log and ignored;
it never stops the app from starting.

``FileStore`` (local) writes a file atomically (a temporary file in the same
folder, flushed, then renamed over the old one), so a crash mid-write leaves the
old document or the new one, never half of one. ``ConfigMapStore`` (doks,
kind) keeps it in one key of a ConfigMap through the Kubernetes API, with the
pod's own service account, which the loadgen role allows to get and patch that
one ConfigMap and nothing else; a JSON merge patch replaces the key in one
request (atomic on the API server). Its writes run on a thread of their own,
the newest document first, so a slow API server never holds a control.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .settings import Settings, SettingsError

log = logging.getLogger(__name__)

FORMAT = "gtc-loadgen-settings/1"


class Store(Protocol):
    def load(self) -> str | None:
        """The stored document's text, or None when there is none."""

    def save(self, text: str) -> None:
        """Replace the stored document."""

    def describe(self) -> str:
        """Where it is, for the log."""


class FileStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    def load(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def save(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# Where a pod finds its API server and service account (Kubernetes' in-cluster configuration).
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigMapStore:
    """One key of a ConfigMap, read with GET and written with a JSON merge patch (RFC 7386).

    ``server``, ``token_file`` and ``ca_file`` default to the pod's in-cluster configuration
    (KUBERNETES_SERVICE_HOST/PORT and the service account's mounted token and CA). The token is
    read again for every request: projected service-account tokens are rotated by the kubelet.
    """

    def __init__(self, namespace: str, name: str, key: str = "settings.json", *, server: str | None = None,
                 token_file: str | Path | None = None, ca_file: str | Path | None = None,
                 timeout_s: float = 5.0) -> None:
        if server is None:
            host, port = os.environ.get("KUBERNETES_SERVICE_HOST", ""), os.environ.get("KUBERNETES_SERVICE_PORT", "")
            if not host or not port:
                raise ValueError("a ConfigMap store needs the in-cluster API server (KUBERNETES_SERVICE_HOST/PORT)")
            server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        self.namespace, self.name, self.key, self.timeout_s = namespace, name, key, timeout_s
        self.url = (f"{server.rstrip('/')}/api/v1/namespaces/{urllib.parse.quote(namespace)}"
                    f"/configmaps/{urllib.parse.quote(name)}")
        self.token_file = Path(token_file) if token_file else SA_DIR / "token"
        self.ssl = ssl.create_default_context(cafile=str(ca_file or SA_DIR / "ca.crt"))
        self.last_error: str | None = None
        self._pending: str | None = None
        self._cond = threading.Condition()
        self._busy = False
        self._thread = threading.Thread(target=self._writer, name="configmap-writer", daemon=True)
        self._thread.start()

    def describe(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name} key {self.key}"

    def _request(self, method: str, body: bytes | None = None, content_type: str | None = None) -> dict:
        token = self.token_file.read_text(encoding="utf-8").strip()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url, data=body, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=self.timeout_s, context=self.ssl) as resp:
            return json.load(resp)

    def load(self) -> str | None:
        try:
            obj = self._request("GET")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise OSError(f"GET {self.describe()}: HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise OSError(f"GET {self.describe()}: {exc.reason}") from None
        value = (obj.get("data") or {}).get(self.key)
        return value if isinstance(value, str) else None

    def save(self, text: str) -> None:
        """Hand ``text`` to the writer thread (a newer document replaces one not yet sent)."""
        with self._cond:
            self._pending = text
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every handed document was sent (or failed); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def _writer(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None)
                text, self._pending, self._busy = self._pending, None, True
            try:
                body = json.dumps({"data": {self.key: text}}).encode()
                self._request("PATCH", body, "application/merge-patch+json")
                error = None
            except urllib.error.HTTPError as exc:
                error = f"PATCH {self.describe()}: HTTP {exc.code}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                error = f"PATCH {self.describe()}: {exc}"
            if error:
                log.warning("settings not kept: %s", error)
            with self._cond:
                self.last_error, self._busy = error, False
                self._cond.notify_all()


def document(settings: Settings, initial: dict[str, Any]) -> str:
    return json.dumps({"format": FORMAT, "initial": initial, "settings": settings.to_dict()},
                      indent=1, sort_keys=True) + "\n"


def restore(text: str | None, base: Settings, initial: dict[str, Any], routings: Sequence[str],
            where: str) -> Settings:
    """``base`` with the kept settings of ``text`` applied, or ``base`` (and a log line why) when unusable."""
    if text is None:
        return base
    try:
        doc = json.loads(text)
    except ValueError as exc:
        log.warning("kept settings in %s ignored: not JSON (%s)", where, exc)
        return base
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("settings"), dict):
        log.warning("kept settings in %s ignored: not a %s document", where, FORMAT)
        return base
    if doc.get("initial") != initial:
        log.info("kept settings in %s ignored: the initial settings changed since they were written", where)
        return base
    try:
        restored = base.patched(doc["settings"], routings=routings)
    except SettingsError as exc:
        log.warning("kept settings in %s ignored: %s", where, exc)
        return base
    log.info("settings restored from %s", where)
    return restored


class Keeper:
    """Writes the settings after each change; a failed write is logged, the change stands."""

    def __init__(self, store: Store, initial: dict[str, Any]) -> None:
        self.store, self.initial = store, initial
        self.last_error: str | None = None
        self._last: str | None = None

    def load(self, base: Settings, routings: Sequence[str]) -> Settings:
        try:
            text = self.store.load()
        except (OSError, ValueError) as exc:
            log.warning("kept settings in %s cannot be read: %s", self.store.describe(), exc)
            return base
        out = restore(text, base, self.initial, routings, self.store.describe())
        self._last = document(out, self.initial) if out is not base else None
        return out

    def save(self, settings: Settings) -> None:
        text = document(settings, self.initial)
        if text == self._last:
            return
        try:
            self.store.save(text)
        except Exception as exc:  # noqa: BLE001 - keeping settings must never break a control
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("settings not kept in %s: %s", self.store.describe(), self.last_error)
            return
        self._last, self.last_error = text, None

    @property
    def error(self) -> str | None:
        """The last write's error: this keeper's, or the store's own (a ConfigMap's writer thread)."""
        return self.last_error or getattr(self.store, "last_error", None)

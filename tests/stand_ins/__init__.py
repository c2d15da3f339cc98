"""Stand-ins for the controllers and webhook servers that the real charts'
pods would run, which kwok cannot run (its pods run no containers).

Each stand-in is a ``StandIn``: ``start()`` runs its loops in background
threads against a real API server (the test cluster of tests/cluster),
``stop()`` ends them (and any server they opened) and raises if one is left,
``log`` lists what it did. Each follows the upstream source it stands in for;
the rules cite the upstream file they come from. See README.md.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

LOGGER = logging.getLogger("stand_ins")


class StandIn:
    """Background loops with a clean stop and a log of what they did."""

    name = "stand-in"
    interval = 0.5

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client
        self.log: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------

    def loops(self) -> list[Callable[[], None]]:
        """One pass of each loop; subclasses return theirs."""
        raise NotImplementedError

    def start(self) -> "StandIn":
        if self._threads:
            raise RuntimeError(f"{self.name} is already running")
        self._stop.clear()
        for step in self.loops():
            thread = threading.Thread(target=self._run, args=(step,), name=f"{self.name}:{step.__name__}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        self.record(f"started ({len(self._threads)} loops)")
        return self

    def stop(self, timeout: float = 15) -> None:
        self._stop.set()
        self.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads = []
        if alive:
            raise RuntimeError(f"{self.name}: threads still running after stop: {alive}")
        self.record("stopped")

    def close(self) -> None:
        """Release what the loops opened (servers); called by ``stop``."""

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def __enter__(self) -> "StandIn":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------

    def record(self, message: str) -> None:
        with self._lock:
            self.log.append(message)
        LOGGER.info("[%s] %s", self.name, message)

    def logged(self, text: str) -> list[str]:
        """Lines of the log that contain ``text``."""
        with self._lock:
            return [line for line in self.log if text in line]

    def _run(self, step: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                step()
                self._errors.pop(step.__name__, None)
            except Exception as exc:  # pylint: disable=broad-except  # a loop survives an API hiccup
                message = _describe(exc)
                if self._errors.get(step.__name__) != message:  # log each new error once
                    self._errors[step.__name__] = message
                    self.record(f"{step.__name__} error: {message}")
            self._stop.wait(self.interval)


def _describe(exc: Exception) -> str:
    """One line per kind of error (an API error's headers differ each time: not part of it)."""
    status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
    if status is not None and reason is not None:
        body = str(getattr(exc, "body", "") or "")
        try:
            import json  # pylint: disable=import-outside-toplevel

            body = json.loads(body).get("message", body)
        except (ValueError, AttributeError):
            pass
        return f"API {status} {reason}: {body[:200]}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def raw_request(api_client: Any, method: str, path: str, body: Any = None, content_type: str = "application/json",
                query: list[tuple[str, str]] | None = None) -> Any:
    """One request by path with the client's credentials; the JSON answer as plain dicts.

    For what the typed clients make awkward: server-side apply of a partial
    object, and any resource without loading it into models.
    """
    import json  # pylint: disable=import-outside-toplevel

    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    method_, url, headers, payload, _files = api_client.param_serialize(
        method, path, query_params=query or [],
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body, auth_settings=["BearerToken"])
    response = api_client.call_api(method_, url, header_params=headers, body=payload)
    response.read()
    if not 200 <= response.status < 300:
        raise ApiException(http_resp=response)
    return json.loads(response.data or b"{}")


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def set_condition(conditions: list[dict[str, Any]], condition: dict[str, Any]) -> list[dict[str, Any]]:
    """Conditions with ``condition`` set by type; lastTransitionTime moves only when the status changes
    (the rule of k8s.io/apimachinery/pkg/api/meta/conditions.go SetStatusCondition)."""
    out = []
    found = False
    for existing in conditions or []:
        if existing.get("type") == condition["type"]:
            found = True
            merged = dict(condition)
            if existing.get("status") == condition["status"] and existing.get("lastTransitionTime"):
                merged["lastTransitionTime"] = existing["lastTransitionTime"]
            out.append(merged)
        else:
            out.append(existing)
    if not found:
        out.append(condition)
    return out


def same_conditions(a: list[dict[str, Any]] | None, b: list[dict[str, Any]] | None) -> bool:
    """Equal but for lastTransitionTime (so an unchanged status is not written again)."""
    def strip(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        return sorted(({k: v for k, v in c.items() if k != "lastTransitionTime"} for c in items or []),
                      key=lambda c: str(c.get("type")))
    return strip(a) == strip(b)

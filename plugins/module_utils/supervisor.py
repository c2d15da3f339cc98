# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The local demo's process group under supervisord, reconciled through supervisord's XML-RPC API.

The protocol `supervisorctl update` and `status` follow, without parsing their
output: ``supervisor.reloadConfig`` reports which groups the files on disk
add, change or remove, and ``addProcessGroup``/``removeProcessGroup`` apply
one group's part of it (supervisor's ``supervisorctl.py``, ``do_update``;
``rpcinterface.py`` for the calls and the process states used below).
"""

from __future__ import annotations

import configparser
import http.client
import os
import shutil
import socket
import tempfile
import time
import xmlrpc.client
from typing import Any, Callable

# supervisor/states.py: ProcessStates.
RUNNING = "RUNNING"
FAILED_STATES = frozenset(["FATAL"])
STOPPED_STATES = frozenset(["STOPPED", "EXITED", "FATAL"])


class SupervisorError(Exception):
    """Something supervisord refused or reported; the message says what and where."""


class SupervisorDown(SupervisorError):
    """Nothing answers on supervisord's control socket: no supervisord runs there."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        self.unix_path = path
        self.timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self.unix_path, self.timeout)


def server_url(config_path: str) -> str:
    """supervisorctl's own rule: [supervisorctl] serverurl, else the [unix_http_server] socket."""
    parser = configparser.RawConfigParser(strict=False, inline_comment_prefixes=(";", "#"))
    if not os.path.exists(config_path):
        raise SupervisorDown(f"supervisord's configuration {config_path} does not exist")
    if not parser.read(config_path):
        raise SupervisorError(f"cannot read supervisord's configuration {config_path}")
    if parser.has_option("supervisorctl", "serverurl"):
        return parser.get("supervisorctl", "serverurl").strip()
    if parser.has_option("unix_http_server", "file"):
        return "unix://" + parser.get("unix_http_server", "file").strip()
    raise SupervisorError(f"{config_path} names no control socket ([supervisorctl] serverurl)")


def connect(config_path: str, timeout: float = 10.0) -> Any:
    """An XML-RPC proxy to the supervisord that ``config_path`` configures."""
    url = server_url(config_path)
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=_UnixTransport(path, timeout))
    if url.startswith("http://"):
        return xmlrpc.client.ServerProxy(url.rstrip("/") + "/RPC2")
    raise SupervisorError(f"unsupported supervisord serverurl {url!r} in {config_path}")


class ProgramGroup:
    """One process group: its program file, its processes, and the calls that reconcile them."""

    def __init__(self, rpc: Any, name: str, conf_file: str | None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.rpc = rpc
        self.name = name
        self.conf_file = conf_file
        self.sleep = sleep
        self.clock = clock

    # -- what there is --------------------------------------------------------

    def processes(self) -> list[dict[str, Any]]:
        if self.rpc is None:
            raise SupervisorDown("no supervisord to ask")
        try:
            infos = self.rpc.supervisor.getAllProcessInfo()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SupervisorDown(f"supervisord does not answer: {exc}") from exc
        except (OSError, xmlrpc.client.Error) as exc:
            raise SupervisorError(f"supervisord does not answer: {exc}") from exc
        return [p for p in infos if p["group"] == self.name]

    def current_content(self) -> str | None:
        if not self.conf_file or not os.path.exists(self.conf_file):
            return None
        with open(self.conf_file, encoding="utf-8") as handle:
            return handle.read()

    def all_running(self) -> bool:
        procs = self.processes()
        return bool(procs) and all(p["statename"] == RUNNING for p in procs)

    # -- changes --------------------------------------------------------------

    def _call(self, what: str, *args: Any) -> Any:
        try:
            return getattr(self.rpc.supervisor, what)(*args)
        except xmlrpc.client.Fault as fault:
            raise SupervisorError(f"supervisord refused {what}{args}: {fault.faultString}") from fault
        except OSError as exc:
            raise SupervisorError(f"supervisord does not answer ({what}): {exc}") from exc

    def stop(self) -> bool:
        """Stop every process of the group; True if one was running."""
        running = [p for p in self.processes() if p["statename"] not in STOPPED_STATES]
        if running:
            self._call("stopProcessGroup", self.name, True)
        return bool(running)

    def write(self, content: str) -> None:
        if not self.conf_file:
            raise SupervisorError("program group %s has no conf_file to write" % self.name)
        write_file(self.conf_file, content, 0o644)

    def apply_files(self) -> bool:
        """`supervisorctl update <group>`: load what the files say about this group alone."""
        added, changed, removed = self._call("reloadConfig")[0]
        if self.name in removed or self.name in changed:
            self.stop()
            self._call("removeProcessGroup", self.name)
        if self.name in added or self.name in changed:
            self._call("addProcessGroup", self.name)
        return self.name in added or self.name in changed or self.name in removed

    def start(self) -> bool:
        """Start the processes that are not running; True if one was started."""
        stopped = [p for p in self.processes() if p["statename"] in STOPPED_STATES]
        if stopped:
            self._call("startProcessGroup", self.name, False)
        return bool(stopped)

    def remove(self) -> bool:
        loaded = bool(self.processes())
        if loaded:
            self.stop()
            self._call("removeProcessGroup", self.name)
        return loaded

    # -- waiting --------------------------------------------------------------

    def log_tail(self, process: dict[str, Any], lines: int) -> str:
        full = f"{process['group']}:{process['name']}"
        try:
            text = self.rpc.supervisor.tailProcessStdoutLog(full, 0, 200 * max(lines, 1))[0]
        except (OSError, xmlrpc.client.Error):
            text = ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_running(self, timeout: float, log_lines: int, poll: float = 0.5) -> list[dict[str, Any]]:
        """Until every process is RUNNING; a FATAL one, or the timeout, fails with each one's log."""
        deadline = self.clock() + timeout
        while True:
            procs = self.processes()
            failed = [p for p in procs if p["statename"] in FAILED_STATES]
            if procs and not failed and all(p["statename"] == RUNNING for p in procs):
                return procs
            if failed or self.clock() >= deadline:
                reason = "ended FATAL" if failed else f"not all RUNNING after {timeout:g}s"
                raise SupervisorError(self._explain(procs, reason, log_lines))
            self.sleep(poll)

    def _explain(self, procs: list[dict[str, Any]], reason: str, log_lines: int) -> str:
        lines = [f"the programs of {self.name} {reason}:"]
        for proc in procs:
            lines.append(f"  {proc['name']}: {proc['statename']} {proc.get('description', '')} "
                         f"{proc.get('spawnerr') or ''}".rstrip())
        for proc in procs:
            if proc["statename"] != RUNNING:
                lines.append(f"--- {proc['name']} (log {proc.get('stdout_logfile') or '?'}) ---")
                lines.append(self.log_tail(proc, log_lines))
        return "\n".join(lines)


def read_file(path: str) -> str | None:
    """A file's text, or None when there is none."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def write_file(path: str, content: str, mode: int) -> None:
    """Replace a file atomically (a reader sees the old file or the new one, never half of it)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".supervisor-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def clear(paths: list[str]) -> list[str]:
    """Remove files or folders the group keeps state in; the ones that existed."""
    removed = []
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
            removed.append(path)
        elif os.path.lexists(path):
            os.unlink(path)
            removed.append(path)
    return removed


def summary(procs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": p["name"], "state": p["statename"], "pid": p.get("pid", 0),
             "description": p.get("description", ""), "log": p.get("stdout_logfile", "")} for p in procs]

"""Stoplight Prism in proxy mode in front of the fake: DigitalOcean's own spec checks every exchange.

Prism is installed from npm into ~/.cache/gtc-demo/prism-<version> the first
time (CI starts from a fresh machine) and reused afterwards.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

PRISM_VERSION = "5.16.0"
REPO = Path(__file__).resolve().parents[2]
# Read DigitalOcean's spec where the project keeps the public schemas; never copied in.
SPEC = REPO.parent / "shared" / "schemas" / "digitalocean-openapi" / "DigitalOcean-public.v2.bundled.yaml"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "gtc-demo" / f"prism-{PRISM_VERSION}"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def prism_binary() -> Path:
    """Install the pinned Prism once; return its executable."""
    binary = CACHE / "node_modules" / ".bin" / "prism"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install @stoplight/prism-cli for the DigitalOcean contract tests")
    CACHE.mkdir(parents=True, exist_ok=True)
    # Two test workers (pytest-xdist) may both find it missing: one installs, the other waits.
    with open(CACHE.parent / f"{CACHE.name}.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(CACHE),
                 f"@stoplight/prism-cli@{PRISM_VERSION}"],
                check=True, timeout=600,
            )
    if not binary.exists():
        raise RuntimeError(f"npm did not install prism at {binary}")
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prism:
    """A running `prism proxy`; collects its log so tests can look for violations."""

    def __init__(self, upstream: str) -> None:
        if not SPEC.exists():
            raise RuntimeError(f"DigitalOcean's OpenAPI spec is missing: {SPEC}")
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 90.0) -> "Prism":
        env = dict(os.environ, FORCE_COLOR="0", NO_COLOR="1")
        self.proc = subprocess.Popen(
            [str(prism_binary()), "proxy", str(SPEC), self.upstream, "--errors",
             "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prism exited early:\n" + "\n".join(self.lines[-30:]))
            if any("Prism is listening" in line for line in self.log_since(0)):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("prism did not start within {0}s:\n{1}".format(timeout, "\n".join(self.lines[-30:])))

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(ANSI.sub("", line.rstrip("\n")))

    def mark(self) -> int:
        with self._lock:
            return len(self.lines)

    def log_since(self, mark: int) -> list[str]:
        with self._lock:
            return list(self.lines[mark:])

    def violations_since(self, mark: int) -> list[str]:
        """Prism's complaints about a request or a response not matching the spec."""
        marks = ("✖", "⚠", "prism/errors#", "violation")
        return [line for line in self.log_since(mark) if any(m in line.lower() for m in marks)]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_http(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")

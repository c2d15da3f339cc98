"""A real image registry for the tests: the CNCF distribution registry
(github.com/distribution/distribution/v3, cmd/registry), built from the Go module proxy once per
machine and cached under ~/.cache/gtc-demo/, run on 127.0.0.1 with htpasswd authentication.

Plain HTTP on 127.0.0.1: dockerd treats 127.0.0.0/8 as an insecure registry by default
(moby registry/config.go: the loopback range is always in InsecureRegistryCIDRs), so it logs in and
pushes over HTTP without a change to the host's /etc/docker. The htpasswd file holds bcrypt hashes,
the only kind distribution's htpasswd backend accepts (registry/auth/htpasswd/htpasswd.go compares
with golang.org/x/crypto/bcrypt).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

MODULE = "github.com/distribution/distribution/v3"
# The newest version the Go module proxy listed (go list -m -versions, 2026-12-01).
VERSION = "v3.1.2"
CACHE = Path(os.environ.get("GTC_DEMO_CACHE", Path.home() / ".cache" / "gtc-demo")) / "registry"


def binary() -> Path:
    """The registry binary, built with `go install` into the cache when it is not there."""
    target = CACHE / VERSION / "registry"
    if target.is_file():
        return target
    go = shutil.which("go") or "/usr/local/go/bin/go"
    work = Path(tempfile.mkdtemp(prefix="registry-build-", dir=CACHE.parent if CACHE.parent.exists() else None))
    try:
        env = {**os.environ, "GOBIN": str(work), "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
        proc = subprocess.run([go, "install", f"{MODULE}/cmd/registry@{VERSION}"], env=env, capture_output=True,
                              text=True, timeout=1800, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"go install {MODULE}/cmd/registry@{VERSION} failed:\n{proc.stderr[-4000:]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Moved next to the target under a name of this run's, then renamed into place at once.
        partial = target.with_name(f".registry-{os.getpid()}")
        shutil.move(str(work / "registry"), partial)
        partial.rename(target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bcrypt_htpasswd(user: str, password: str) -> str:
    """One htpasswd line with a bcrypt ($2b$) hash, from libcrypt through Python's crypt module
    (deprecated in 3.11, still there in the tooling venv's 3.11; no package needed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # pylint: disable=import-outside-toplevel,deprecated-module

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))
    if not hashed or not hashed.startswith("$2"):
        raise RuntimeError("this libcrypt makes no bcrypt hashes")
    return f"{user}:{hashed}\n"


@dataclass
class Registry:
    root: Path
    port: int
    process: subprocess.Popen

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.root / "registry.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def start(port: int, user: str, password: str, timeout: float = 60) -> Registry:
    exe = binary()
    root = Path(tempfile.mkdtemp(prefix="gtc-registry-"))
    (root / "htpasswd").write_text(bcrypt_htpasswd(user, password))
    (root / "config.yml").write_text(f"""version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {root / 'data'}
http:
  addr: 127.0.0.1:{port}
  secret: {secrets.token_hex(16)}
auth:
  htpasswd:
    realm: gtc-demo-test
    path: {root / 'htpasswd'}
""")
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen([str(exe), "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    registry = Registry(root, port, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = registry.log()
            registry.stop()
            raise RuntimeError(f"the registry exited ({process.returncode}):\n{text[-3000:]}")
        try:
            urllib.request.urlopen(f"http://{registry.address}/v2/", timeout=5)  # noqa: S310 (loopback)
        except urllib.error.HTTPError as err:
            if err.code == 401:  # up, and asking for credentials
                return registry
        except OSError:
            pass
        time.sleep(0.3)
    text = registry.log()
    registry.stop()
    raise RuntimeError(f"the registry did not answer within {timeout}s:\n{text[-3000:]}")

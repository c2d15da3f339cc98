"""A private Docker engine for the tests: Debian's dockerd with everything of its own in one
temporary folder, on a unix socket only, changing nothing of the host's network.

- ``--data-root``, ``--exec-root``, ``--pidfile`` and ``-H unix://...`` all point into the folder, so it
  shares nothing with a system Docker (if one runs) and removing the folder removes its state. dockerd
  starts its own containerd under the exec root.
- ``--iptables=false --ip6tables=false --ip-masq=false``: no rule is added to the host's tables.
  ``--bridge=none``: no docker0 bridge is made. Containers and builds use the host's network
  (``--network host``), so the load generator reaches the frontends on 127.0.0.1 and a build reaches
  the package registry the way the host does.
- ``docker.io`` is installed with apt-get when dockerd is missing (Debian bookworm's 20.10).

``Engine.stop()`` sends SIGTERM, waits for dockerd and its containerd to exit, then removes the folder.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DOCKERD = "/usr/sbin/dockerd"


def ensure_docker_io() -> str:
    """dockerd's path, installing Debian's docker.io first when it is missing."""
    if Path(DOCKERD).exists():
        return DOCKERD
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # The package's own service must not start (it would be a system dockerd with the default bridge and
    # iptables rules): Debian's maintainer scripts ask /usr/sbin/policy-rc.d, and 101 means "not now"
    # (invoke-rc.d(8)). One the machine already has is left as it is.
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\n# written by the image tests while they install docker.io\nexit 101\n")
        policy.chmod(0o755)
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, env=env)
        # --no-install-recommends: no apparmor, cgroupfs-mount or git; the engine needs none of them.
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io"], check=True,
                       capture_output=True, env=env)
    finally:
        if ours:
            policy.unlink(missing_ok=True)
    return DOCKERD


def docker_cli() -> str:
    """The docker client: the machine's own if it has one, else docker.io's."""
    return shutil.which("docker") or "/usr/bin/docker"


@dataclass
class Engine:
    """A running dockerd; ``host`` is its DOCKER_HOST."""

    root: Path
    process: subprocess.Popen

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """Environment for a docker client or a playbook that talks to this engine only."""
        config = self.root / "client-config"
        config.mkdir(exist_ok=True)
        return {"DOCKER_HOST": self.host, "DOCKER_CONFIG": str(config)}

    def docker(self, *args: str, check: bool = True, timeout: int = 600, input_bytes: bytes | None = None,
               ) -> subprocess.CompletedProcess:
        proc = subprocess.run([docker_cli(), *args], env={**os.environ, **self.env()}, capture_output=True,
                              timeout=timeout, input=input_bytes, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout.decode(errors='replace')[-3000:]}"
                                 f"{proc.stderr.decode(errors='replace')[-3000:]}")
        return proc

    def log(self) -> str:
        return (self.root / "dockerd.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        # dockerd's containerd and shims run in its process group: nothing of it may outlive the test.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _unmount_under(self.root)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.root)], check=False)


def _unmount_under(root: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if line.split()[1].startswith(str(root))]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


def start(parent: Path | None = None, timeout: float = 120) -> Engine:
    dockerd = ensure_docker_io()
    # Short path: the socket's path must fit a sockaddr_un (108 bytes), containerd's even more so.
    root = Path(tempfile.mkdtemp(prefix="gtc-dockerd-", dir=parent or "/tmp"))
    config = root / "daemon.json"
    # An empty config file of our own, so a /etc/docker/daemon.json of the machine does not apply.
    config.write_text(json.dumps({}))
    argv = [dockerd, f"--config-file={config}", f"--data-root={root / 'data'}", f"--exec-root={root / 'exec'}",
            f"--pidfile={root / 'dockerd.pid'}", f"--host=unix://{root / 'docker.sock'}",
            "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--bridge=none",
            "--storage-driver=overlay2"]
    log = (root / "dockerd.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    engine = Engine(root, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = engine.log()
            engine.stop()
            raise RuntimeError(f"dockerd exited ({process.returncode}):\n{text[-4000:]}")
        if engine.socket.exists() and engine.docker("version", check=False, timeout=20).returncode == 0:
            return engine
        time.sleep(0.5)
    text = engine.log()
    engine.stop()
    raise RuntimeError(f"dockerd did not answer within {timeout}s:\n{text[-4000:]}")

"""A local stand-in for ``python:3.11-slim-bookworm``, the load generator's base image.

No container registry can be reached here, so the base image is made from Debian's packages
(debootstrap) and ``docker import``-ed under the official name, which lets apps/loadgen/Dockerfile
build unchanged. It is shaped like the official image as far as the Dockerfile can tell
(docker-library/python, 3.11/slim-bookworm/Dockerfile):

- ``python``, ``python3``, ``pip`` and ``pip3`` are on PATH in /usr/local/bin (the official image
  builds CPython into /usr/local and links ``python``/``pip`` there); here they point at Debian's
  python3.11 and pip.
- pip may install into the system interpreter: the official image has no EXTERNALLY-MANAGED
  marker (PEP 668), so the Debian one is removed.
- ENV PATH=/usr/local/bin:..., LANG=C.UTF-8 and PYTHON_VERSION (Debian's 3.11.x here), CMD
  ["python3"], as the official Dockerfile sets them.
- ca-certificates is installed (the official slim image installs it) and carries this machine's
  CA bundle, so the build's pip reaches PyPI through the machine's egress the way the host's
  pip does, without a change to the Dockerfile.

The tarball is cached under ~/.cache/gtc-demo/images/, keyed by a hash of this recipe (this
file) and of the CA bundle, so a second run on one machine only imports it.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

NAME = "python:3.11-slim-bookworm"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ["python3.11", "python3-pip", "python3-venv", "ca-certificates"]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CACHE = Path(os.environ.get("GTC_DEMO_CACHE", Path.home() / ".cache" / "gtc-demo")) / "images"


def recipe_key() -> str:
    """What decides the tarball's content: the suite, mirror and packages, the code that shapes the
    root filesystem and the image's ENV, and the CA bundle baked in (not how it is cached)."""
    digest = hashlib.sha256(repr((SUITE, MIRROR, PACKAGES)).encode())
    for function in (_make_rootfs, image_changes):
        digest.update(inspect.getsource(function).encode())
    if CA_BUNDLE.is_file():
        digest.update(CA_BUNDLE.read_bytes())
    return digest.hexdigest()[:16]


def cached_tarball() -> Path:
    return CACHE / f"python-3.11-slim-bookworm-{recipe_key()}.tar.gz"


def _ensure_debootstrap() -> str:
    found = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None)
    if found:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "debootstrap"], check=True, capture_output=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return "/usr/sbin/debootstrap"


def _chroot(root: Path, *argv: str) -> str:
    return subprocess.run(["chroot", str(root), *argv], check=True, capture_output=True, text=True,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}).stdout


def _make_rootfs(root: Path, debootstrap: str, log) -> None:
    started = time.monotonic()
    subprocess.run([debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), MIRROR],
                   check=True, capture_output=True, text=True)
    log(f"debootstrap {SUITE}: {time.monotonic() - started:.0f}s")
    if CA_BUNDLE.is_file():
        shutil.copyfile(CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")
    (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    local_bin = root / "usr/local/bin"
    local_bin.mkdir(parents=True, exist_ok=True)
    for link, to in {"python": "/usr/bin/python3.11", "python3": "/usr/bin/python3.11",
                     "pip": "/usr/bin/pip3", "pip3": "/usr/bin/pip3"}.items():
        (local_bin / link).unlink(missing_ok=True)
        (local_bin / link).symlink_to(to)
    version = _chroot(root, "python3.11", "-c", "import platform; print(platform.python_version())").strip()
    (root / "PYTHON_VERSION").write_text(version + "\n")  # read back by image_changes()
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                 "usr/share/locale"):
        path = root / junk
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                elif child.name != "lock":
                    child.unlink()


def build_tarball(log=print) -> Path:
    """Make the root filesystem with debootstrap and pack it; the cached tarball's path."""
    target = cached_tarball()
    if target.is_file():
        return target
    debootstrap = _ensure_debootstrap()
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gtc-base-image-", dir=CACHE))
    root = work / "rootfs"
    try:
        started = time.monotonic()
        _make_rootfs(root, debootstrap, log)
        # Packed beside the target and renamed: a reader never sees half a tarball, and two runs
        # making it at once each write their own.
        partial = work / "image.tar.gz"
        subprocess.run(f"tar -C {root} --one-file-system --numeric-owner -cf - . | gzip -1 > {partial}",
                       shell=True, check=True)
        partial.rename(target)
        log(f"base image tarball {target.name}: {target.stat().st_size / 2**20:.0f} MiB,"
            f" {time.monotonic() - started:.0f}s in all")
        return target
    finally:
        # debootstrap mounts /proc and /sys in the target while it installs; a run that stopped half-way
        # may leave them mounted, and rm must not walk into the host's /proc.
        for mount in sorted((line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                             if line.split()[1].startswith(str(work) + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)


def image_changes(tarball: Path) -> list[str]:
    """The Dockerfile instructions the import adds (the official image's ENV and CMD)."""
    version = subprocess.run(["tar", "-xzOf", str(tarball), "./PYTHON_VERSION"], check=True, capture_output=True,
                             text=True).stdout.strip()
    return [
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f"ENV PYTHON_VERSION={version}",
        'CMD ["python3"]',
    ]

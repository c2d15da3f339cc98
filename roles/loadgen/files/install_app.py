"""Install the load generator into its virtual environment, doing only what is missing.

Usage: install_app.py --venv DIR --app SRC --copy DEST [--pin NAME==VERSION ...] [--check]

One process for what was four tasks, so a rerun with nothing to do costs one
command: it

1. creates the virtual environment when it has no python (with this interpreter);
2. installs the pins when the environment lacks one of them, asked by looking for
   each pin's ``<name>-<version>.dist-info`` in site-packages (no pip run);
3. mirrors the app's source SRC into DEST (without a developer's __pycache__,
   *.egg-info, build/ or tests/): copies what differs, removes what SRC no longer has;
4. installs the app from DEST (``pip install --no-deps --no-build-isolation``) when
   the source changed or the app is not installed.

Prints JSON ``{"changed": bool, "actions": [...], "files": [...], "digest": "..."}``;
``digest`` identifies the source installed (the program file carries it, so new code
restarts the program even when a run stopped between install and restart). With --check
it only reports what it would do.
"""

from __future__ import annotations

import argparse
import filecmp
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

SKIP = re.compile(r"(^|/)(__pycache__|build|tests|[^/]*\.egg-info)(/|$)|\.pyc$")
APP_DIST = "gtc_loadgen"


def wanted(root: str) -> set[str]:
    out = set()
    for base, dirs, files in os.walk(root):
        rel_base = os.path.relpath(base, root)
        dirs[:] = [d for d in dirs if not SKIP.search(os.path.normpath(os.path.join(rel_base, d)))]
        for name in files:
            rel = os.path.normpath(os.path.join(rel_base, name))
            if not SKIP.search(rel):
                out.add(rel)
    return out


def sync(src: str, dest: str, check: bool) -> list[str]:
    """Mirror src into dest; the files that differ(ed)."""
    changed = []
    source = wanted(src)
    for rel in sorted(source):
        target = os.path.join(dest, rel)
        if os.path.isfile(target) and filecmp.cmp(os.path.join(src, rel), target, shallow=False):
            continue
        changed.append(rel)
        if not check:
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            shutil.copyfile(os.path.join(src, rel), target)
            os.chmod(target, 0o644)
    if os.path.isdir(dest):
        for rel in sorted(wanted(dest) - source):
            changed.append(rel + " (removed)")
            if not check:
                os.remove(os.path.join(dest, rel))
    return changed


def digest(root: str) -> str:
    """A digest of the source the app is installed from (names and contents)."""
    sha = hashlib.sha256()
    for rel in sorted(wanted(root)):
        sha.update(rel.encode() + b"\0")
        with open(os.path.join(root, rel), "rb") as handle:
            sha.update(handle.read() + b"\0")
    return sha.hexdigest()[:16]


def _normal(name: str) -> str:
    """A distribution's name as dist-info folders spell it (PEP 503 normalisation, '_' for runs)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def installed(venv: str) -> dict[str, str]:
    """{normalised name: version} of what the environment's site-packages holds."""
    out = {}
    for path in glob.glob(os.path.join(venv, "lib", "python*", "site-packages", "*.dist-info")):
        name, _sep, version = os.path.basename(path)[: -len(".dist-info")].rpartition("-")
        if name:
            out[_normal(name)] = version
    return out


def missing_pins(venv: str, pins: list[str]) -> list[str]:
    have = installed(venv)
    missing = []
    for pin in pins:
        name, _sep, version = pin.partition("==")
        if have.get(_normal(name)) != version:
            missing.append(pin)
    return missing


def pip(venv: str, *args: str) -> None:
    subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *args], check=True, stdout=sys.stderr)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--venv", required=True)
    ap.add_argument("--app", required=True)
    ap.add_argument("--copy", required=True)
    ap.add_argument("--pin", action="append", default=[])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    actions: list[str] = []

    python = os.path.join(args.venv, "bin", "python")
    if not os.path.exists(python):
        actions.append("created the virtual environment")
        if not args.check:
            subprocess.run([sys.executable, "-m", "venv", args.venv], check=True, stdout=sys.stderr)
    missing = missing_pins(args.venv, args.pin)
    if missing:
        actions.append("installed " + " ".join(missing))
        if not args.check:
            pip(args.venv, *missing)
    files = sync(args.app, args.copy, args.check)
    if files:
        actions.append(f"copied {len(files)} file(s) of the app's source")
    app_installed = APP_DIST in installed(args.venv) and os.path.exists(os.path.join(args.venv, "bin", "gtc-loadgen"))
    app_changed = bool(files) or not app_installed
    if app_changed:
        actions.append("installed the app")
        if not args.check:
            pip(args.venv, "--no-deps", "--no-build-isolation", "--force-reinstall", args.copy)
    print(json.dumps({"changed": bool(actions), "actions": actions, "files": files, "digest": digest(args.app)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

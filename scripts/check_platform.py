"""Checks, before `make demo` installs anything, that this machine can run the local demo.

- Dynamo's engine, ai-dynamo-runtime 1.6.1, ships manylinux_2_28 wheels only, for
  x86-64 and arm64 (abi3 from CPython 3.10; there is no macOS or Windows wheel,
  which `pip download --platform` confirms).
- ansible-core 2.19, which runs the demo, supports Python 3.11 to 3.13 on the
  controller; the demo is tested on 3.11. Ubuntu 22.04's 3.10 fails deep inside pip.

Anything else would fail half-way through the install: say so here, with what to
do instead. Run by the interpreter that would build the venv
(``python3 scripts/check_platform.py``); written without f-strings, so that an old
Python 3 still prints the message.
"""
import platform
import sys

SYSTEMS = ("Linux",)
MACHINES = {"x86_64": "x86-64", "amd64": "x86-64", "aarch64": "arm64", "arm64": "arm64"}
PYTHONS = ((3, 11), (3, 12), (3, 13))


def problems(system, machine, version):
    """What stops the demo on this system, machine and (major, minor) Python; empty when nothing does."""
    found = []
    if system not in SYSTEMS:
        found.append(
            "the local demo runs on Linux only (x86-64 or arm64), not on {0}: Dynamo's engine, "
            "ai-dynamo-runtime 1.6.1, ships Linux wheels only. On macOS or Windows, run it in a Linux VM "
            "or container (for example a Debian 12 or Ubuntu 24.04 VM with Python 3.11).".format(system))
    elif machine.lower() not in MACHINES:
        found.append("the local demo needs an x86-64 or arm64 CPU, not {0} (ai-dynamo-runtime has no wheel for it)."
                     .format(machine))
    if tuple(version[:2]) not in PYTHONS:
        found.append(
            "the demo needs Python 3.11, 3.12 or 3.13, and {0} is {1}.{2}. Install one (Debian 12 has "
            "python3.11; Ubuntu 22.04: the deadsnakes PPA's python3.11) and run, for example, "
            "make PYTHON=python3.11 demo".format(sys.executable or "python", version[0], version[1]))
    return found


def main():
    found = problems(platform.system(), platform.machine(), sys.version_info)
    for problem in found:
        sys.stderr.write("make demo: " + problem + "\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

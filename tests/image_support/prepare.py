"""Make the image tests' two cached inputs, side by side: the stand-in base image's tarball
(debootstrap, mostly downloads and dpkg) and the registry binary (go install, mostly CPU).
Both are kept under ~/.cache/gtc-demo/ and reused while their recipe is the same.

    .venv/bin/python tests/image_support/prepare.py    # prints the two paths

The image test calls prepare() itself; running this first (as the Makefile does for the test
control plane's binaries) keeps a cold build out of the test's own time."""
from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from image_support import base_image, registry  # noqa: E402  pylint: disable=wrong-import-position


def prepare(log=print) -> tuple[Path, Path]:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        tarball = pool.submit(base_image.build_tarball, log)
        binary = pool.submit(registry.binary)
        out = tarball.result(), binary.result()
    log(f"image test inputs ready in {time.monotonic() - started:.0f}s: {out[0]}, {out[1]}")
    return out


if __name__ == "__main__":
    prepare()

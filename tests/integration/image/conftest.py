"""Fixtures of the image tests: a private Docker engine (tests/image_support/engine.py), the
stand-in base image imported into it, a real registry on 127.0.0.1, and the image built and
pushed there by playbooks/images.yml. Everything is stopped and removed at the module's end."""
from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from helpers import PlaybookRun, free_ports, processes_mentioning
from image_support import base_image
from image_support import engine as engine_support
from image_support import registry as registry_support
from image_support.images import REGISTRY_PATH, images_playbook
from image_support.prepare import prepare


@pytest.fixture(scope="module")
def inputs() -> dict:
    """The cached base image tarball and registry binary, made side by side when missing."""
    cached = base_image.cached_tarball().is_file()
    started = time.monotonic()
    tarball, registry_binary = prepare(log=print)
    return {"tarball": tarball, "registry": registry_binary, "cached": cached,
            "seconds": time.monotonic() - started}


@pytest.fixture(scope="module")
def docker_engine() -> Iterator[engine_support.Engine]:
    started = engine_support.start()
    try:
        yield started
    finally:
        started.stop()
        left = processes_mentioning(str(started.root))
        assert not left, f"the test's dockerd left processes behind: {left}"


@pytest.fixture(scope="module")
def stand_in_base(docker_engine, inputs) -> dict:
    """python:3.11-slim-bookworm in the engine, from the cached (or a new) debootstrap tarball."""
    started = time.monotonic()
    changes = [arg for change in base_image.image_changes(inputs["tarball"]) for arg in ("--change", change)]
    docker_engine.docker("import", *changes, str(inputs["tarball"]), base_image.NAME, timeout=600)
    print(f"\nbase image: {'cached' if inputs['cached'] else 'made'} ({inputs['seconds']:.0f}s for the inputs),"
          f" imported in {time.monotonic() - started:.0f}s")
    return inputs


@dataclass
class TestRegistry:
    registry: registry_support.Registry
    token: str

    @property
    def prefix(self) -> str:
        return f"{self.registry.address}/{REGISTRY_PATH}"


@pytest.fixture(scope="module")
def image_registry(inputs) -> Iterator[TestRegistry]:
    # DigitalOcean's registry takes the API token as user name and password (playbooks/images.yml).
    token = "dop_v1_test_" + secrets.token_hex(16)
    (port,) = free_ports(1)
    started = registry_support.start(port, user=token, password=token)
    try:
        yield TestRegistry(started, token)
    finally:
        started.stop()
        assert not processes_mentioning(str(started.root)), "the registry is still running"


@dataclass
class Built:
    run: PlaybookRun
    repository: str
    tag: str
    seconds: float

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


@pytest.fixture(scope="module")
def built(docker_engine, stand_in_base, image_registry) -> Built:
    """The load generator's image, built and pushed by playbooks/images.yml with the checkout's tag."""
    started = time.monotonic()
    run = images_playbook(docker_engine, image_registry, image_registry.token)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.output[-6000:]
    (image,) = [t.result["ansible_facts"]["loadgen__output"]["image"] for t in run.tasks()
                if "loadgen__output" in t.result.get("ansible_facts", {})]
    print(f"\nimages.yml (build and push): {seconds:.0f}s")
    return Built(run, image["repository"], image["tag"], seconds)

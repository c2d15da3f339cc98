"""Fixtures for the unit tests of the collection's plugins."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[3]
COLLECTIONS = REPO / '.collections'

# Plugins import each other as ansible_collections.do_solutions.gtc_demo.*;
# `make setup` links the checkout there.
if not (COLLECTIONS / 'ansible_collections' / 'do_solutions' / 'gtc_demo' / 'plugins').is_dir():
    raise pytest.UsageError('%s/ansible_collections/do_solutions/gtc_demo is missing: run `make setup`' % COLLECTIONS)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from openai_fake_server import FakeOpenAI, self_signed_tls  # noqa: E402  (needs the path above)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A scripted OpenAI-compatible server on a random port of 127.0.0.1."""
    fake = FakeOpenAI().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_openai_tls(tmp_path: Path) -> Iterator[tuple[FakeOpenAI, Path]]:
    """The same server behind TLS with a self-signed certificate, and that certificate's PEM file."""
    context, cert = self_signed_tls(tmp_path)
    fake = FakeOpenAI(tls=context).start()
    try:
        yield fake, cert
    finally:
        fake.stop()


@pytest.fixture
def run_module(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """Run a module's main() the way Ansible does and return its JSON result.

    The module reads its arguments from the patched ANSIBLE_MODULE_ARGS and
    prints its result as JSON before exiting, as it would under AnsiballZ;
    nothing in the module is mocked.
    """
    from ansible.module_utils import _internal
    from ansible.module_utils.testing import patch_module_args

    # A module runs on the target side. Once a test in this process has imported
    # the controller (a filter plugin's ansible.errors, say), ansible-core 2.19
    # sends module warnings to the controller's display instead of the result.
    monkeypatch.setattr(_internal, "is_controller", False)

    def run(module: Any, args: dict[str, Any]) -> dict[str, Any]:
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                module.main()
        out = capsys.readouterr().out
        return json.loads(out)

    return run

"""The Dynamo stack the validate_inference integration tests ask.

It is the shared ``local_demo`` session fixture of tests/integration/conftest.py:
site.yml -i inventories/local on free ports with a temporary GTC_DEMO_HOME,
i.e. two ``dynamo.mocker`` workers behind a KV-aware and a round-robin
``dynamo.frontend``, loading the project's offline word-level tokenizer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
COLLECTIONS = REPO / '.collections'

# The tests import the module's engine as ansible_collections.do_solutions.gtc_demo.*;
# `make setup` links the checkout there.
if not (COLLECTIONS / 'ansible_collections' / 'do_solutions' / 'gtc_demo' / 'plugins').is_dir():
    raise pytest.UsageError('%s/ansible_collections/do_solutions/gtc_demo is missing: run `make setup`' % COLLECTIONS)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


@pytest.fixture(scope='session')
def dynamo_frontends(local_demo: Any) -> dict[str, Any]:
    """``{"kv_url", "round_robin_url", "model"}`` of the running local demo."""
    return dict(kv_url=local_demo.kv_url, round_robin_url=local_demo.round_robin_url, model=local_demo.model)

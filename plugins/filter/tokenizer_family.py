# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The tokenizer_family filter: which tokenizer a Hugging Face model uses.

Speculative decoding with a draft model works only when the draft shares the
target's tokenizer (the same vocabulary and ids): the target verifies the
draft's token ids as its own. The dynamo role compares the two families before
anything changes.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

# Every Llama 3.x model (3, 3.1, 3.2, 3.3; Meta's repositories and NVIDIA's
# quantised copies) uses the Llama 3 tokenizer, a 128k-token tiktoken vocabulary.
FAMILIES = (
    {"family": "llama3", "pattern": r"(?i)/(meta-)?llama-3(\.[0-9])?-"},
)


def tokenizer_family(model: object, families: object = None) -> str:
    """The family of the first pattern that matches the model, else ``own:<model>`` (a family of its own)."""
    if not isinstance(model, str) or not model.strip():
        raise AnsibleFilterError(f"tokenizer_family expects a model name, got {model!r}")
    table = FAMILIES if families is None else families
    if not isinstance(table, (list, tuple)):
        raise AnsibleFilterError(f"tokenizer_family: families must be a list of {{family, pattern}}, got {table!r}")
    for entry in table:
        if not isinstance(entry, dict) or not {"family", "pattern"} <= set(entry):
            raise AnsibleFilterError(f"tokenizer_family: each family needs a family and a pattern, got {entry!r}")
        try:
            if re.search(entry["pattern"], model):
                return str(entry["family"])
        except re.error as exc:
            raise AnsibleFilterError(f"tokenizer_family: bad pattern {entry['pattern']!r}: {exc}") from exc
    return "own:" + model


class FilterModule:
    """Tokenizer families of models."""

    def filters(self) -> dict:
        return {"tokenizer_family": tokenizer_family}

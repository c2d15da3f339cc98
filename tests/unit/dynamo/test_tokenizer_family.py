"""The tokenizer_family filter (plugins/filter/tokenizer_family.py) the draft check uses."""

from __future__ import annotations

import sys

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / ".collections"))
from ansible.errors import AnsibleFilterError  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.do_solutions.gtc_demo.plugins.filter.tokenizer_family import tokenizer_family  # noqa: E402  pylint: disable=wrong-import-position


@pytest.mark.parametrize("model", [
    "nvidia/Llama-3.1-70B-Instruct-FP8", "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.3-70B-Instruct",
    "meta-llama/Meta-Llama-3-8B-Instruct", "nvidia/Llama-3.3-70B-Instruct-FP8", "meta-llama/llama-3.2-1b"])
def test_every_llama_3_model_is_one_family(model):
    assert tokenizer_family(model) == "llama3"


@pytest.mark.parametrize("model", ["Qwen/Qwen2.5-0.5B-Instruct", "meta-llama/Llama-2-7b-hf", "mistralai/Mistral-7B-v0.1"])
def test_any_other_model_is_a_family_of_its_own(model):
    assert tokenizer_family(model) == "own:" + model
    assert tokenizer_family(model) != tokenizer_family("meta-llama/Llama-3.1-8B-Instruct")


def test_families_of_ones_own_and_bad_input():
    assert tokenizer_family("Qwen/Qwen2.5-7B", [{"family": "qwen2", "pattern": "(?i)/qwen2"}]) == "qwen2"
    for bad in ("", None, 3):
        with pytest.raises(AnsibleFilterError):
            tokenizer_family(bad)
    with pytest.raises(AnsibleFilterError, match="needs a family and a pattern"):
        tokenizer_family("a/b", [{"pattern": "x"}])
    with pytest.raises(AnsibleFilterError, match="bad pattern"):
        tokenizer_family("a/b", [{"family": "x", "pattern": "("}])

"""The offline tokenizer of the local demo: rebuilt from its word lists it is
byte-for-byte the committed one, and it decodes the mocker's ids to words."""
from __future__ import annotations

import importlib.util
import json

from helpers import REPO

TOKENIZER_DIR = REPO / "files" / "local" / "tokenizer"
MODEL_DIR = REPO / "roles" / "model_sync" / "files" / "local-model"


def _builder():
    spec = importlib.util.spec_from_file_location("build_tokenizer", TOKENIZER_DIR / "build_tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_committed_tokenizer_is_the_built_one() -> None:
    builder = _builder()
    rebuilt = builder.render(TOKENIZER_DIR / "common-words.txt", TOKENIZER_DIR / "words.txt")
    assert rebuilt == (MODEL_DIR / "tokenizer.json").read_text()


def test_mocker_id_range_decodes_to_whole_words() -> None:
    doc = json.loads((MODEL_DIR / "tokenizer.json").read_text())
    vocab = doc["model"]["vocab"]
    assert len(vocab) == 32000
    by_id = {i: w for w, i in vocab.items()}
    # Dynamo's mocker emits ids between about 1,000 and 2,000.
    for token_id in range(1000, 2000):
        word = by_id[token_id]
        assert word.isalpha() and not word.startswith("##"), (token_id, word)


def test_any_ascii_text_tokenizes_without_unknowns() -> None:
    """[UNK] for unknown words would make unrelated prompts share KV blocks."""
    vocab = json.loads((MODEL_DIR / "tokenizer.json").read_text())["model"]["vocab"]
    import string

    for ch in string.ascii_lowercase + string.digits + string.punctuation:
        assert ch in vocab and f"##{ch}" in vocab, ch


def test_chat_template_and_model_shape() -> None:
    config = json.loads((MODEL_DIR / "tokenizer_config.json").read_text())
    assert "<|start_header_id|>" in config["chat_template"]
    assert config["eos_token"] == "<|eot_id|>"
    shape = json.loads((MODEL_DIR / "config.json").read_text())
    # Llama 3.1 70B: 80 layers, 64 query heads, 8 KV heads, hidden 8192.
    assert (shape["num_hidden_layers"], shape["num_attention_heads"], shape["num_key_value_heads"]) == (80, 64, 8)
    assert shape["hidden_size"] == 8192

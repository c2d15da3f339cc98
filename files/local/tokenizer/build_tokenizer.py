"""Build the offline tokenizer the local demo's mocker workers load.

Dynamo's mocker answers with random token ids (seen between about 1,000 and
2,000). A byte-level BPE vocabulary turns those ids into fragments that decode
to nothing, so the frontend would stream no text at all. A WordPiece
vocabulary of whole English words decodes every id to a word, so answers read
like (nonsense) text in the conversation viewer, one word per streamed token.

Layout of the vocabulary, and why:
- ids 0-7: Llama-3-style special tokens used by the chat template;
- then punctuation, digits, letters and "##" continuation pieces, so that any
  prompt text tokenizes without [UNK] (prompts that collapse to [UNK] would
  share KV-cache blocks across unrelated conversations and fake cache hits);
- ids 1000 upward: the common words of common-words.txt, so the mocker's
  output reads as everyday words;
- the rest: dictionary words (words.txt) up to VOCAB_SIZE entries.

The output is deterministic; tests rebuild it and compare with the committed
tokenizer.json.
"""
from __future__ import annotations

import argparse
import json
import string
from pathlib import Path

VOCAB_SIZE = 32000
COMMON_WORDS_START = 1000
SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "[UNK]",
    "[PAD]",
    "<|reserved_special_token_0|>",
)
HERE = Path(__file__).resolve().parent


def _read_words(path: Path) -> list[str]:
    return [w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip()]


def build_vocab(common_words: list[str], dictionary_words: list[str]) -> list[str]:
    """Return the vocabulary in id order."""
    pieces = list(SPECIAL_TOKENS)
    symbols = list(string.punctuation) + list(string.digits) + list(string.ascii_lowercase)
    pieces += symbols
    pieces += ["##" + c for c in string.digits + string.ascii_lowercase + string.punctuation]
    seen = set(pieces)
    fill = iter(w for w in dictionary_words if w not in seen and w not in set(common_words))
    vocab = list(pieces)
    # Dictionary words fill the ids below the common words.
    while len(vocab) < COMMON_WORDS_START:
        word = next(fill)
        vocab.append(word)
    seen = set(vocab)
    for word in common_words:
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    for word in fill:
        if len(vocab) >= VOCAB_SIZE:
            break
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    if len(vocab) != VOCAB_SIZE:
        raise SystemExit(f"vocabulary has {len(vocab)} entries, wanted {VOCAB_SIZE}")
    return vocab


def tokenizer_json(vocab: list[str]) -> dict:
    """The Hugging Face tokenizers document for a lower-casing WordPiece model."""
    added = [
        {
            "id": i,
            "content": tok,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, tok in enumerate(SPECIAL_TOKENS)
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {
            "type": "BertNormalizer",
            "clean_text": True,
            "handle_chinese_chars": True,
            "strip_accents": True,
            "lowercase": True,
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": None,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": {tok: i for i, tok in enumerate(vocab)},
        },
    }


def render(common: Path, words: Path) -> str:
    vocab = build_vocab(_read_words(common), _read_words(words))
    return json.dumps(tokenizer_json(vocab), ensure_ascii=False, indent=None, separators=(",", ":")) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--common-words", type=Path, default=HERE / "common-words.txt")
    parser.add_argument("--words", type=Path, default=HERE / "words.txt")
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE.parents[2] / "roles" / "model_sync" / "files" / "local-model" / "tokenizer.json",
    )
    args = parser.parse_args()
    args.out.write_text(render(args.common_words, args.words), encoding="utf-8")


if __name__ == "__main__":
    main()

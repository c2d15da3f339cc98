"""gtc_demo_speculative rendered: the TensorRT-LLM engine config against the
documented keys, the local mocker's decode speed-up, model_sync's Jobs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

# The keys TensorRT-LLM documents for `speculative_config` in the LLM API
# options YAML (trtllm-serve --extra_llm_api_options, Dynamo's
# --extra-engine-args), for the two modes the demo uses:
# - TensorRT-LLM docs/source/features/speculative-decoding.md ("Usage with
#   trtllm-bench and trtllm-serve"): decoding_type is one of MTP, Eagle3, NGram,
#   DraftTarget, ...; the other keys are the config classes' fields
#   (DraftTargetDecodingConfig, Eagle3DecodingConfig: max_draft_len,
#   speculative_model, with speculative_model_dir accepted as its alias).
# - Eagle3DecodingConfig's eagle3_one_model (optional; bool, default true in the
#   stable API reference, gone from the 1.3/1.4 release candidates), as set in
#   TensorRT-LLM's Llama 4 Maverick EAGLE3 tech blog and Dynamo's trtllm
#   engine_configs (llama4/eagle).
# - The draft/target quick start runs with disable_overlap_scheduler=True
#   (an LLM API option, a top-level key of the same YAML).
SPECULATIVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "disable_overlap_scheduler": {"type": "boolean"},
        "speculative_config": {
            "oneOf": [
                {
                    "type": "object",
                    "properties": {
                        "decoding_type": {"const": "DraftTarget"},
                        "max_draft_len": {"type": "integer", "minimum": 1},
                        "speculative_model_dir": {"type": "string", "minLength": 1},
                    },
                    "required": ["decoding_type", "max_draft_len", "speculative_model_dir"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {
                        "decoding_type": {"const": "Eagle3"},
                        "max_draft_len": {"type": "integer", "minimum": 1},
                        "speculative_model_dir": {"type": "string", "minLength": 1},
                        "eagle3_one_model": {"type": "boolean"},
                    },
                    "required": ["decoding_type", "max_draft_len", "speculative_model_dir"],
                    "additionalProperties": False,
                },
            ]
        },
    },
}


def engine(root: Path) -> dict[str, Any]:
    return yaml.safe_load((root / "engine.yaml").read_text())


def validate(config: dict[str, Any]) -> None:
    errors = list(jsonschema.Draft202012Validator(SPECULATIVE_SCHEMA).iter_errors(config))
    assert not errors, "\n".join(e.message for e in errors)


def test_none_renders_no_speculation(spec_rendered):
    config = engine(spec_rendered["none"])
    assert "speculative_config" not in config and "disable_overlap_scheduler" not in config
    # The rest of the engine config is still there.
    assert config["tensor_parallel_size"] == 4 and config["kv_cache_config"]["enable_block_reuse"] is True


def test_draft_renders_a_draft_target_config(spec_rendered):
    config = engine(spec_rendered["draft"])
    validate(config)
    assert config["speculative_config"] == {
        "decoding_type": "DraftTarget",
        "max_draft_len": 3,
        "speculative_model_dir": "/models/meta-llama/Llama-3.1-8B-Instruct",
    }
    assert config["disable_overlap_scheduler"] is True


def test_eagle3_renders_an_eagle3_config(spec_rendered):
    config = engine(spec_rendered["eagle3"])
    validate(config)
    assert config["speculative_config"] == {
        "decoding_type": "Eagle3",
        "max_draft_len": 4,
        "speculative_model_dir": "/models/yuhuili/EAGLE3-LLaMA3.3-Instruct-70B",
        "eagle3_one_model": True,
    }
    assert "disable_overlap_scheduler" not in config


def test_eagle3_one_model_can_be_left_out(spec_rendered):
    config = engine(spec_rendered["eagle3_without_one_model"])
    validate(config)
    assert config["speculative_config"] == {
        "decoding_type": "Eagle3",
        "max_draft_len": 3,
        "speculative_model_dir": "/models/yuhuili/EAGLE3-LLaMA3.3-Instruct-70B",
    }


def test_the_schema_rejects_what_tensorrt_llm_does_not_document():
    """The schema is strict enough to catch a typo or a key of the other mode."""
    bad = [
        {"speculative_config": {"decoding_type": "Draft", "max_draft_len": 3, "speculative_model_dir": "/m"}},
        {"speculative_config": {"decoding_type": "DraftTarget", "max_draft_len": 3,
                                "speculative_model_dir": "/m", "eagle3_one_model": True}},
        {"speculative_config": {"decoding_type": "Eagle3", "max_draft_len": "3", "speculative_model_dir": "/m"}},
        {"speculative_config": {"decoding_type": "Eagle3", "max_draft_tokens": 3, "speculative_model_dir": "/m"}},
    ]
    for config in bad:
        with pytest.raises(AssertionError):
            validate(config)


@pytest.mark.parametrize(("scenario", "ratio"), [("none", 1.0), ("draft", 2.0), ("eagle3", 3.0)])
def test_mocker_decode_speedup_follows_the_mode(spec_rendered, scenario, ratio):
    conf = (spec_rendered[scenario] / "supervisor.conf").read_text()
    found = [float(v) for v in re.findall(r"--decode-speedup-ratio (\S+)", conf)]
    assert found == [ratio, ratio], conf  # one per mocker worker (2 replicas)


@pytest.mark.parametrize(("scenario", "extra"), [
    ("none", None),
    ("draft", "meta-llama/Llama-3.1-8B-Instruct"),
    ("eagle3", "yuhuili/EAGLE3-LLaMA3.3-Instruct-70B"),
])
def test_model_sync_copies_the_extra_model(spec_rendered, scenario, extra):
    root = spec_rendered[scenario]
    jobs = json.loads((root / "jobs.json").read_text())
    output = json.loads((root / "model_sync_output.json").read_text())
    served = output["models"][0]["name"]
    models = sorted(j["metadata"]["annotations"]["gtc-demo/model"] for j in jobs)
    assert models == sorted(([extra] * 2 if extra else []) + [served] * 2)  # hf-to-spaces and spaces-to-volume each
    names = [j["metadata"]["name"] for j in jobs]
    assert len(set(names)) == len(names), names
    # The served model first, then the one speculative decoding loads; paths relative to the volume.
    assert output["models"] == [{"name": served, "path": served}] + ([{"name": extra, "path": extra}] if extra else [])
    if extra:
        # The path the engine config reads is the one model_sync published.
        config = engine(root)
        assert config["speculative_config"]["speculative_model_dir"] == "/models/" + output["models"][1]["path"]


def test_the_served_models_jobs_keep_their_names(spec_rendered):
    """Turning speculation on adds Jobs; the served model's Jobs are the same ones (nothing copied again)."""
    def served_names(scenario: str) -> list[str]:
        root = spec_rendered[scenario]
        served = json.loads((root / "model_sync_output.json").read_text())["models"][0]["name"]
        return [j["metadata"]["name"] for j in json.loads((root / "jobs.json").read_text())
                if j["metadata"]["annotations"]["gtc-demo/model"] == served]

    assert served_names("none") == served_names("draft")


def test_each_mode_redeploys_the_workers(spec_rendered):
    """The engine config is part of the graph's rollout id: switching the mode rolls the workers."""
    ids = {name: (root / "rollout_id").read_text().strip() for name, root in spec_rendered.items()}
    assert all(ids.values()) and len(set(ids.values())) == len(ids), ids

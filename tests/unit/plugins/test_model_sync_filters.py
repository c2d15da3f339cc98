"""model_sync's filters: the models with their revisions and paths, and the copy Jobs' names."""

from __future__ import annotations

import copy

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.do_solutions.gtc_demo.plugins.filter.model_sync_job_name import model_sync_job_name
from ansible_collections.do_solutions.gtc_demo.plugins.filter.model_sync_models import model_sync_models

SERVED = "nvidia/Llama-3.1-70B-Instruct-FP8"
DRAFT = "meta-llama/Llama-3.1-8B-Instruct"


def job(stage: str = "hf-to-spaces", model: str = SERVED, revision: str = "main", image: str = "python:3.12-slim"):
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"namespace": "gtc-demo", "labels": {"gtc-demo/model-sync-stage": stage},
                         "annotations": {"gtc-demo/model": model, "gtc-demo/revision": revision}},
            "spec": {"template": {"spec": {"containers": [{"name": "copy", "image": image}]}}}}


def test_models_on_a_cluster_are_relative_to_the_volume_and_only_the_served_one_takes_the_revision():
    assert model_sync_models([SERVED, DRAFT], revision="abc123") == [
        {"name": SERVED, "revision": "abc123", "path": SERVED},
        {"name": DRAFT, "revision": "main", "path": DRAFT},
    ]


def test_models_locally_are_folders_under_the_local_root():
    (only,) = model_sync_models([SERVED], local_root="/tmp/gtc/")
    assert only["path"] == "/tmp/gtc/models/nvidia--Llama-3.1-70B-Instruct-FP8"


@pytest.mark.parametrize("bad", [[], ["not-a-repo"], [SERVED, ""], "nvidia/x"])
def test_a_model_that_is_not_a_repository_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match="model_sync_models"):
        model_sync_models(bad)


def test_a_job_is_named_after_stage_model_and_spec_and_keeps_its_name():
    named = model_sync_job_name(job())
    name = named["metadata"]["name"]
    assert name.startswith("model-hf-to-spaces-") and len(name.split("-")[-1]) == 6 and len(name) <= 63
    # The same Job, even with another name given, gets the same name.
    again = job()
    again["metadata"]["name"] = "something-else"
    assert model_sync_job_name(again)["metadata"]["name"] == name
    # The input is left alone.
    assert "name" not in job()["metadata"]


@pytest.mark.parametrize("change", [
    {"revision": "v2"}, {"model": DRAFT}, {"stage": "spaces-to-volume"}, {"image": "python:3.13-slim"}])
def test_any_change_gives_a_new_name(change):
    assert model_sync_job_name(job(**change))["metadata"]["name"] != model_sync_job_name(job())["metadata"]["name"]


def test_the_model_digest_is_shared_by_the_stages_of_one_model():
    first = model_sync_job_name(job("hf-to-spaces"))["metadata"]["name"].split("-")
    second = model_sync_job_name(job("spaces-to-volume"))["metadata"]["name"].split("-")
    assert first[-2] == second[-2] and first[-1] != second[-1]


def test_a_job_without_its_labels_is_refused():
    bare = copy.deepcopy(job())
    bare["metadata"]["annotations"].pop("gtc-demo/revision")
    with pytest.raises(AnsibleFilterError, match="gtc-demo/revision"):
        model_sync_job_name(bare)
    with pytest.raises(AnsibleFilterError, match="Job definition"):
        model_sync_job_name({"kind": "Pod"})

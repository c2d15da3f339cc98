# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The model_sync_job_name filter: a copy Job's name, derived from what it copies and from its own spec.

A Job's pod template cannot change once the Job exists. Naming each Job after its stage, its
model and revision, and a digest of the rest of its definition means a rerun with nothing
changed finds the same Job (nothing applied, nothing copied again), and any change gets a new
Job instead of an error on the immutable template.
"""

from __future__ import annotations

import copy
import hashlib
import json

from ansible.errors import AnsibleFilterError

STAGE_LABEL = "gtc-demo/model-sync-stage"
MODEL_ANNOTATION = "gtc-demo/model"
REVISION_ANNOTATION = "gtc-demo/revision"
# A Job name becomes its pods' job-name label: a DNS-1123 label, at most 63 characters.
MAX_NAME = 63


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def model_sync_job_name(job: object) -> dict:
    """The Job with ``metadata.name`` set to ``model-<stage>-<model digest>-<spec digest>``."""
    if not isinstance(job, dict) or job.get("kind") != "Job":
        raise AnsibleFilterError(f"model_sync_job_name: a Job definition is needed, got {job!r}")
    metadata = job.get("metadata") or {}
    stage = (metadata.get("labels") or {}).get(STAGE_LABEL)
    annotations = metadata.get("annotations") or {}
    model, revision = annotations.get(MODEL_ANNOTATION), annotations.get(REVISION_ANNOTATION)
    if not stage or not model or revision is None:
        raise AnsibleFilterError(f"model_sync_job_name: the Job needs the label {STAGE_LABEL} and the annotations "
                                 f"{MODEL_ANNOTATION} and {REVISION_ANNOTATION}; got {metadata!r}")
    unnamed = copy.deepcopy(job)
    unnamed["metadata"].pop("name", None)
    spec_digest = _sha1(json.dumps(unnamed, sort_keys=True, separators=(",", ":")))[:6]
    name = f"model-{stage}-{_sha1(f'{model}@{revision}')[:8]}-{spec_digest}"
    if len(name) > MAX_NAME:
        raise AnsibleFilterError(f"model_sync_job_name: {name} is longer than {MAX_NAME} characters (stage {stage!r})")
    unnamed["metadata"] = {"name": name, **unnamed["metadata"]}
    return unnamed


class FilterModule:
    """model_sync's Job names."""

    def filters(self) -> dict:
        return {"model_sync_job_name": model_sync_job_name}

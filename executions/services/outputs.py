"""A step's outputs: digested, kept inline when small, else in the artifact store by digest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from executions.artifacts import ArtifactStore
from executions.models import StepRun
from workflows.manifest import canonical_json, sha256_digest


@dataclass(frozen=True)
class StoredOutputs:
    inline: dict[str, Any] | None
    ref: str
    digest: str


def outputs_store(outputs: dict[str, Any]) -> StoredOutputs:
    """Digest outputs; keep them inline when small, else in the artifact store by digest."""
    data = canonical_json(outputs)
    digest = sha256_digest(data)
    if len(data) <= settings.MC_OUTPUT_INLINE_LIMIT:
        return StoredOutputs(outputs, "", digest)
    return StoredOutputs(None, ArtifactStore().put(data, content_type="application/json"), digest)


def outputs_load(step: StepRun) -> Any:
    if step.outputs_ref:
        return json.loads(ArtifactStore().get(step.outputs_ref))
    return step.outputs

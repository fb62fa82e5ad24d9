"""deploy/Dockerfile and .dockerignore: what the image promises, checked without a Docker engine."""

from __future__ import annotations

import re

from tests.deploy.conftest import DEPLOY, REPO

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def test_the_base_image_is_pinned_by_digest() -> None:
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, flags=re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base.group(1))
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert stages == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"], "a build stage, then the runtime"


def test_the_runtime_is_non_root_with_a_healthcheck_and_oci_labels() -> None:
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    user = re.findall(r"^USER (\S+)$", runtime, flags=re.MULTILINE)
    assert user and not user[-1].startswith(("root", "0"))
    assert "HEALTHCHECK" in runtime and "/healthz" in runtime
    for label in ("source", "revision", "version"):
        assert f"org.opencontainers.image.{label}=" in runtime


def test_dockerignore_keeps_local_state_and_keys_out() -> None:
    patterns = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    for needed in (".git", ".venv", "var", "*.pem", "*.key", "**/keys", "*.sqlite3", ".env", "**/__pycache__"):
        assert needed in patterns, f".dockerignore lacks {needed}"

"""The OpenAPI schema says what the API does: every shared error status, and request bodies as strict as the server.

The rules live in mc_project/openapi.py; tests/test_fuzz_api.py checks real responses against them.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def schema() -> dict[str, Any]:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return dict(response.json())


def test_the_schema_lists_every_shared_error_status() -> None:
    """What the schema must say for each operation: see mc_project/openapi.py."""
    document = schema()
    error_ref = "#/components/schemas/ErrorOutput"
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            parameters = operation.get("parameters", [])
            expected = {"429", "503"}
            if operation.get("security") != [{}]:
                expected |= {"401", "403"}
            if any(p["in"] == "path" for p in parameters):
                expected |= {"400", "404"}
            if any(p["in"] == "query" for p in parameters):
                expected.add("400")
            if method in ("post", "put", "patch"):
                expected |= {"400", "413", "415"}
            label = f"{method.upper()} {path}"
            assert expected <= set(responses), (label, sorted(expected - set(responses)))
            for status in expected:
                content = responses[status]["content"]["application/json"]["schema"]
                assert content == {"$ref": error_ref}, (label, status, content)
            for status in ("429", "503"):
                assert "Retry-After" in responses[status]["headers"], (label, status)


def test_request_bodies_are_as_strict_in_the_schema_as_in_the_server() -> None:
    document = schema()
    components = document["components"]["schemas"]

    def body(path: str) -> dict[str, Any]:
        content = document["paths"][path]["post"]["requestBody"]["content"]
        ref = content["application/json"]["schema"]["$ref"]
        return dict(components[ref.rsplit("/", 1)[-1]])

    canary, plan, workflow = body("/api/canaries"), body("/api/manifests/plan"), body("/api/workflows")
    for request in (canary, plan, workflow):
        assert request["additionalProperties"] is False  # unknown keys are a 400
    assert canary["required"] == ["workflow"]
    assert canary["properties"]["workflow"] | {"description": ""} == {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "description": "",
    }
    assert (canary["properties"]["weight"]["minimum"], canary["properties"]["weight"]["maximum"]) == (0, 100)
    assert canary["properties"]["weight_steps"]["maxItems"] == 20
    assert plan["properties"]["region"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9-]{1,31}$"
    assert workflow["properties"]["description"]["maxLength"] == 2000
    for request in (plan, workflow):
        assert {option["type"] for option in request["properties"]["manifest"]["oneOf"]} == {"object", "string"}
    # A YAML body is read as the bare manifest, so only manifest-taking operations list YAML.
    assert "application/yaml" in document["paths"]["/api/workflows"]["post"]["requestBody"]["content"]
    assert "application/yaml" not in document["paths"]["/api/canaries"]["post"]["requestBody"]["content"]

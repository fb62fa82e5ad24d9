"""Assertions shared by the API tests."""

from __future__ import annotations

import json
from typing import Any


def assert_error(response: Any, status: int, code: str, paths: list[str] | None = None) -> dict[str, Any]:
    """MC's one error shape, ``{"error": {"code", "message", "details": [{"path", "message"}]}}``, with
    ``status`` and ``code`` (and exactly these detail paths, when given); returns the error."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], list), error
    for detail in error["details"]:
        assert set(detail) == {"path", "message"}, detail
    if paths is not None:
        assert sorted(detail["path"] for detail in error["details"]) == sorted(paths), error["details"]
    return error
